"""``oinfo-monitor demo NAME ...``: run one of the package's demo experiments with the remaining arguments."""

from __future__ import annotations

import argparse

from oinfo_monitor.cli.options import PROG, Commands, add_command, add_forwarding

DEMOS: dict[str, str] = {
    "grokking": "oinfo_monitor.experiments.grokking",
    "mnist": "oinfo_monitor.experiments.mnist_layerwise",
}
"""Demo names accepted by ``oinfo-monitor demo`` and the experiment module each runs."""


def demo_experiment(args: argparse.Namespace) -> str | None:
    """The experiment module of the demo named on the command line (None before it is parsed)."""
    return DEMOS.get(args.demo or "")


def add_parser(commands: Commands) -> None:
    """The ``demo`` subcommand."""
    parser = add_command(
        commands,
        "demo",
        "Run a demo: one of the experiments that ship with the package.",
        "grokking: oinfo_monitor.experiments.grokking (synergy while an MLP groks modular\n"
        "addition); mnist: oinfo_monitor.experiments.mnist_layerwise (layerwise synergy of an\n"
        "MLP on MNIST). Every argument after NAME (except --debug) goes to the demo: see\n"
        f"'{PROG} demo NAME --help'. In a clone, demos/grokking.py and demos/mnist_layerwise.py\n"
        "run the same.",
        add_help=False,
        allow_abbrev=False,
        epilog=f"example:\n  {PROG} demo grokking --steps 1000 --runs-dir runs",
    )
    parser.add_argument("demo", choices=sorted(DEMOS), metavar="NAME", help="grokking or mnist")
    add_forwarding(parser, demo_experiment)
