"""What every ``oinfo-monitor`` command shares: the parser, its help format, common flags and one-line errors."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeAlias

from matplotlib.figure import Figure

PROG = "oinfo-monitor"
"""The command's name, used in its help and error messages."""


class CommandError(Exception):
    """A problem with the user's files or data, reported as one line with exit status 1."""


PROGRESS_DELAY = 0.5
"""Seconds before a progress bar appears, so that quick commands (and their one-line errors) draw none."""

USER_ERRORS: tuple[type[Exception], ...] = (CommandError, OSError, ValueError, TypeError, KeyError)
"""Exceptions reported as user mistakes (one line, no traceback) rather than as internal errors."""


# ----------------------------------------------------------------------------------------------
# One-line error reporting.


def one_line(text: str) -> str:
    """The first non-empty line of a message (library errors can span many lines)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "(no message)")


def error_line(error: Exception) -> str:
    """The one-line report of a failed command: the message of a user mistake, or an internal error."""
    message = one_line(str(error))
    if isinstance(error, KeyError):
        message = f"missing key {message}"
    if not isinstance(error, USER_ERRORS):
        message = (
            f"internal error ({type(error).__name__}: {message}); "
            "rerun with --debug for the traceback and please report it"
        )
    return f"{PROG}: error: {message}"


def run_command(args: argparse.Namespace) -> int:
    """Run the chosen command; report a failure in one line unless ``--debug`` asks for the traceback."""
    try:
        args.command(args)
    except Exception as error:
        if args.debug:
            raise
        print(error_line(error), file=sys.stderr)
        return 1
    return 0


def exit_status(stop: SystemExit) -> int:
    """The exit status of a `SystemExit`; a text code (an experiment's exit message) becomes an error line."""
    if stop.code is None or isinstance(stop.code, int):
        return stop.code or 0
    message = one_line(str(stop.code)).removeprefix("error: ")
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


# ----------------------------------------------------------------------------------------------
# The parser and its help format.


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are a single line on standard error (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        """Print ``oinfo-monitor: error: <message>`` with a pointer to the help, then exit with 2."""
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the descriptions' line breaks and show real defaults (not None, False or empty lists)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        """The option's help, with ``(default: ...)`` only where the default says something."""
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


Commands: TypeAlias = "argparse._SubParsersAction[Parser]"
"""The subcommands of the ``oinfo-monitor`` parser, to which each command module adds its own."""


def add_command(
    commands: Commands, name: str, summary: str, description: str, **options: Any
) -> argparse.ArgumentParser:
    """Add one subcommand with the shared help format and error style."""
    return commands.add_parser(
        name,
        help=summary,
        description=f"{summary}\n\n{description}",
        formatter_class=HelpFormatter,
        **options,
    )


# ----------------------------------------------------------------------------------------------
# Common flags and their types.


def add_debug(parser: argparse._ActionsContainer) -> None:
    """The ``--debug`` flag every command has."""
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, show the full traceback instead of a one-line message",
    )


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """``--quiet``, ``--dpi`` and ``--debug``, shared by the commands that do their own work."""
    group = parser.add_argument_group("general")
    group.add_argument("--dpi", type=positive_int, default=110, help="resolution of PNG figures")
    group.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar and no printout; errors are still reported on standard error",
    )
    add_debug(group)


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def names(text: str) -> list[str]:
    """An argparse type: a comma-separated list of non-empty names."""
    parts = [name.strip() for name in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return parts


def parse_sizes(text: str) -> int | list[int]:
    """Parse ``--sizes``: ``K`` (sizes 3..K), ``A-B`` (A..B) or ``A,B,...``; the search checks the values."""
    try:
        if "," in text:
            return [int(part) for part in text.split(",")]
        if "-" in text.strip("-"):
            low, high = (int(part) for part in text.split("-"))
            if high < low:
                raise argparse.ArgumentTypeError(f"empty size range {text!r}")
            return list(range(low, high + 1))
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected K, A-B or a comma-separated list of sizes, got {text!r}"
        ) from None


def parse_option(text: str) -> tuple[str, Any]:
    """Parse ``--option NAME=VALUE``; VALUE is read as JSON when it parses (numbers, lists), else kept as text."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name.strip().replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return name.strip().replace("-", "_"), value


# ----------------------------------------------------------------------------------------------
# Outputs: what --quiet and --dpi govern.


def bias_note(bias_correct: bool) -> str:
    """How the entropies were estimated, as figures and tables say it."""
    return "bias-corrected" if bias_correct else "no bias correction"


def write_text(path: Path, text: str, quiet: bool) -> None:
    """Write a text file (creating its folder) and say so unless quiet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if not quiet:
        print(f"wrote {path}")


def save_figure(figure: Figure, path: Path, args: argparse.Namespace) -> None:
    """Save a figure (creating its folder; the suffix picks the format) and say so unless quiet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=args.dpi)
    if not args.quiet:
        print(f"wrote {path}")


# ----------------------------------------------------------------------------------------------
# Commands that pass their arguments on to an experiment's main(argv).

Experiment = Callable[[argparse.Namespace], str | None]
"""Which experiment module a forwarding command runs, given its parsed arguments (None: not known yet)."""


def forwarded_prog(args: argparse.Namespace) -> str:
    """The program name an experiment's help shows: the command and, for ``demo``, the demo's name."""
    return " ".join(filter(None, (args.parser.prog, args.demo)))


def run_experiment(module: str, argv: list[str], prog: str) -> None:
    """Import an experiment module of the package and call its ``main(argv)``, with `prog` in its help."""
    saved = sys.argv
    sys.argv = [prog, *argv]
    try:
        importlib.import_module(module).main(argv)
    finally:
        sys.argv = saved


def run_forwarded(args: argparse.Namespace) -> None:
    """Run a forwarding command: its experiment with the arguments it did not parse itself."""
    module = args.experiment(args)
    assert module is not None  # argparse has checked the demo's name
    run_experiment(module, args.forwarded, forwarded_prog(args))


class ForwardingHelp(argparse.Action):
    """``-h/--help`` of a forwarding command: its own help, then the help of the experiment it runs."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        """A flag taking no value, like argparse's own help action."""
        kwargs.update(dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0)
        super().__init__(option_strings, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        """Print both helps (the experiment's only once the demo name is known) and exit."""
        parser.print_help()
        module = namespace.experiment(namespace)
        if module is not None:
            print(f"\nOptions passed through to {module}:\n", flush=True)
            run_experiment(module, ["--help"], forwarded_prog(namespace))
        parser.exit()


def add_forwarding(parser: argparse.ArgumentParser, experiment: Experiment) -> None:
    """Options of a command that passes its remaining arguments to an experiment's ``main``."""
    parser.add_argument("-h", "--help", action=ForwardingHelp, help="show this help and exit")
    add_debug(parser)
    parser.set_defaults(
        command=run_forwarded, parser=parser, forwards=True, experiment=experiment, demo=None
    )
