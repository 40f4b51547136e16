"""The ``oinfo-monitor`` command line: analyze saved activations, plot a monitor history, run the demos.

::

    oinfo-monitor analyze acts.npz --target-key labels --json out.json --figure bars.png
    oinfo-monitor analyze --checkpoint model.pt --probe probe.pt --layers fc1,fc2
    oinfo-monitor plot runs/exp1/oinfo_history.jsonl --log-x
    oinfo-monitor demo grokking --steps 2000
    oinfo-monitor retrain --quick

User mistakes (a missing or unreadable file, malformed data, a bad option) end in one line on
standard error, ``oinfo-monitor: error: <message>``, with exit status 2 for usage errors and 1 for
bad files or data. Anything else is reported as an internal error in one line too; ``--debug``
shows the full traceback instead.

One module per command (`analyze`, `plot`, `demo`, `retrain`) adds its subcommand to the parser;
`options` holds what they share, `inputs` the file readers. ``demo`` and ``retrain`` import the
experiments of `oinfo_monitor.experiments` and call their ``main(argv)``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import oinfo_monitor
from oinfo_monitor.cli import analyze, demo, plot, retrain
from oinfo_monitor.cli.options import PROG, HelpFormatter, Parser, exit_status, run_command


def build_parser() -> argparse.ArgumentParser:
    """The ``oinfo-monitor`` argument parser with its subcommands."""
    parser = Parser(
        prog=PROG,
        description="Synergy and redundancy (O-information, in bits) among the neurons of a "
        "PyTorch model.",
        epilog=f"Run '{PROG} COMMAND --help' for the options of a command.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {oinfo_monitor.__version__}",
        help="print the version and exit",
    )
    commands = parser.add_subparsers(title="commands", dest="command_name", metavar="COMMAND")
    commands.required = True
    for command in (analyze, plot, demo, retrain):
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``oinfo-monitor`` with `argv` (default: the process arguments); return the exit status."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not args.forwards:
            args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.forwarded = extra
        return run_command(args)
    except SystemExit as stop:
        return exit_status(stop)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
