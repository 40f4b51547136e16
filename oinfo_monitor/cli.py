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
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pickle
import sys
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import numpy as np
import torch
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor, nn

import oinfo_monitor
from oinfo_monitor.estimators import TIE_POLICIES, copula_covariance
from oinfo_monitor.estimators.validation import (
    NeuronFilter,
    as_tensor,
    check_samples,
    distinct_neurons,
)
from oinfo_monitor.monitor.capture import capture_activations, materialize_probe, resolve_layers
from oinfo_monitor.monitor.figures import (
    REDUNDANCY_COLOR,
    SYNERGY_COLOR,
    SizeTable,
    size_bars,
    size_table,
)
from oinfo_monitor.monitor.records import headline, read_records
from oinfo_monitor.progress import ProgressBar
from oinfo_monitor.search import STRATEGIES, Multiplet, SearchResult, search_covariance

PROG = "oinfo-monitor"
"""The command's name, used in its help and error messages."""

DEMO_SCRIPTS: dict[str, str] = {"grokking": "grokking.py", "mnist": "mnist_layerwise.py"}
"""Demo names accepted by ``oinfo-monitor demo`` and their scripts in the repository's ``demos/``."""

RETRAIN_SCRIPT = "retrain_subnetwork.py"
"""The demo script ``oinfo-monitor retrain`` runs."""

# Exceptions that mean "this file could not be read", turned into one-line errors where files load.
_READ_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    ValueError,
    EOFError,
    RuntimeError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    zlib.error,
)
# Unpickling a model can also fail on its class: gone from its module, or the module not importable.
_MODEL_READ_ERRORS: tuple[type[Exception], ...] = (*_READ_ERRORS, AttributeError, ImportError)
# Members shown per multiplet in the printed table (the JSON output holds all of them).
_SHOWN_MEMBERS = 16


class CommandError(Exception):
    """A problem with the user's files or data, reported as one line with exit status 1."""


USER_ERRORS: tuple[type[Exception], ...] = (CommandError, OSError, ValueError, TypeError, KeyError)
"""Exceptions reported as user mistakes (one line, no traceback) rather than as internal errors."""


# ----------------------------------------------------------------------------------------------
# Entry point and error reporting.


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``oinfo-monitor`` with `argv` (default: the process arguments); return the exit status."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not args.forwards:
            args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.forwarded = extra
        return _run(args)
    except SystemExit as stop:
        return _exit_status(stop)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    """Run the chosen command; report a failure in one line unless ``--debug`` asks for the traceback."""
    try:
        args.command(args)
    except Exception as error:
        if args.debug:
            raise
        print(error_line(error), file=sys.stderr)
        return 1
    return 0


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


def one_line(text: str) -> str:
    """The first non-empty line of a message (library errors can span many lines)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "(no message)")


def _exit_status(stop: SystemExit) -> int:
    """The exit status of a `SystemExit`; a text code (a demo's own exit message) becomes an error line."""
    if stop.code is None or isinstance(stop.code, int):
        return stop.code or 0
    message = one_line(str(stop.code)).removeprefix("error: ")
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


# ----------------------------------------------------------------------------------------------
# The argument parser.


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are a single line on standard error (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        """Print ``oinfo-monitor: error: <message>`` with a pointer to the help, then exit with 2."""
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the descriptions' line breaks and show real defaults (not None, False or empty lists)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        """The option's help, with ``(default: ...)`` only where the default says something."""
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


class _ForwardingHelp(argparse.Action):
    """``-h/--help`` of a forwarding command: its own help, then the help of the script it runs."""

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
        """Print both helps (the script's only once the demo name is known) and exit."""
        parser.print_help()
        script = namespace.script or DEMO_SCRIPTS.get(namespace.demo or "")
        if script is not None:
            print(f"\nOptions passed through to demos/{script}:\n", flush=True)
            try:
                prog = " ".join(filter(None, (parser.prog, namespace.demo)))
                run_script(script, ["--help"], prog)
            except CommandError as error:
                print(error)
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The ``oinfo-monitor`` argument parser with its subcommands."""
    parser = _Parser(
        prog=PROG,
        description="Synergy and redundancy (O-information, in bits) among the neurons of a "
        "PyTorch model.",
        epilog=f"Run '{PROG} COMMAND --help' for the options of a command.",
        formatter_class=_Formatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {oinfo_monitor.__version__}",
        help="print the version and exit",
    )
    commands = parser.add_subparsers(title="commands", dest="command_name", metavar="COMMAND")
    commands.required = True
    _add_analyze(commands)
    _add_plot(commands)
    _add_demo(commands)
    _add_retrain(commands)
    return parser


def _command(
    commands: argparse._SubParsersAction[_Parser],
    name: str,
    summary: str,
    description: str,
    **options: Any,
) -> argparse.ArgumentParser:
    """Add one subcommand with this module's formatter and error style."""
    return commands.add_parser(
        name,
        help=summary,
        description=f"{summary}\n\n{description}",
        formatter_class=_Formatter,
        **options,
    )


def _add_debug(parser: argparse._ActionsContainer) -> None:
    """The ``--debug`` flag every command has."""
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, show the full traceback instead of a one-line message",
    )


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    """``--quiet``, ``--dpi`` and ``--debug``, shared by the commands that do their own work."""
    group = parser.add_argument_group("general")
    group.add_argument("--dpi", type=_positive_int, default=110, help="resolution of PNG figures")
    group.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar and no printout; errors are still reported on standard error",
    )
    _add_debug(group)


def _add_analyze(commands: argparse._SubParsersAction[_Parser]) -> None:
    """The ``analyze`` subcommand."""
    parser = _command(
        commands,
        "analyze",
        "Find the most synergistic and most redundant multiplets of saved activations.",
        "INPUT holds activation matrices [samples, neurons]: a .npy array, a .npz with one or more\n"
        "arrays, or a .pt/.pth tensor or dict of tensors {layer: tensor}; each matrix is analyzed\n"
        "on its own. Or, instead of INPUT, a whole model (--checkpoint) and a probe batch (--probe):\n"
        "the activations of its layers on the probe are captured first. Constant columns (dead\n"
        "neurons) are left out and reported; members are column numbers of the matrix.\n\n"
        "For each matrix, prints per multiplet size the min O-information (synergy) and the max\n"
        "O-information (redundancy) found, in bits, with the members.",
        epilog=f"examples:\n  {PROG} analyze acts.npz --target-key labels --sizes 3-6 --json out.json\n"
        f"  {PROG} analyze --checkpoint model.pt --probe probe.pt --layers 0,2 --capture post",
    )
    _add_input_options(parser)
    _add_search_options(parser)
    _add_model_options(parser)
    output = parser.add_argument_group("output")
    output.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="write every result as JSON: per layer and size the synergy and redundancy value "
        "(bits) and members, plus the strategy, ties, bias correction and units",
    )
    output.add_argument(
        "--figure",
        type=Path,
        metavar="PATH",
        help="save the bars-by-size figure (per layer, min and max O-information per size), "
        "e.g. bars.png",
    )
    _add_output_flags(parser)
    parser.set_defaults(command=run_analyze, parser=parser, forwards=False)


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    """The input and target options of ``analyze``."""
    source = parser.add_argument_group("input")
    source.add_argument(
        "input",
        nargs="?",
        type=Path,
        metavar="INPUT",
        help="activation file: .npy, .npz, or .pt/.pth (a tensor or a dict of tensors); "
        "omit it when using --checkpoint",
    )
    source.add_argument(
        "--layers",
        type=_names,
        metavar="NAMES",
        help="comma-separated arrays (keys of INPUT) or module names (with --checkpoint) to "
        "analyze; default: every array, or every Linear/Conv layer but the last",
    )
    source.add_argument(
        "--max-samples",
        type=_positive_int,
        metavar="N",
        help="use only the first N samples (rows of INPUT, or of the probe)",
    )
    targets = source.add_mutually_exclusive_group()
    targets.add_argument(
        "--target",
        type=Path,
        metavar="PATH",
        help="labels or a continuous target per sample (.npy, or .pt tensor): joins every "
        "multiplet as one more variable (task-related O-information)",
    )
    targets.add_argument(
        "--target-key",
        metavar="KEY",
        help="like --target, but the array named KEY inside INPUT (.npz or .pt dict); it is "
        "not analyzed itself",
    )
    source.add_argument(
        "--target-kind",
        choices=("auto", "discrete", "continuous"),
        default="auto",
        help="how the target is modelled; auto: integer/bool dtype = discrete labels, float = "
        "continuous",
    )


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """The checkpoint and probe options of ``analyze``."""
    model = parser.add_argument_group("checkpoint and probe (instead of INPUT)")
    model.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="a whole model saved with torch.save(model); it is loaded with "
        "torch.load(weights_only=False), which UNPICKLES the file and can run any code in "
        "it: use it only with files you trust. The model's class must be importable",
    )
    model.add_argument(
        "--probe",
        type=Path,
        metavar="PATH",
        help="the probe inputs fed to the model's forward (.npy, or .pt tensor), first dim = "
        "samples; floats are cast to the model's dtype",
    )
    model.add_argument(
        "--capture",
        choices=("pre", "post"),
        default="pre",
        help="pre: each layer's own output; post: the output of the activation module that "
        "follows it (post-ReLU zeros are ties: see --ties)",
    )
    model.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help="feed the probe in chunks of N samples (default: all at once)",
    )


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    """The estimation and search options of ``analyze``."""
    search = parser.add_argument_group("estimation and search")
    search.add_argument(
        "--sizes",
        type=parse_sizes,
        metavar="SIZES",
        help="multiplet sizes (>= 3): K for 3..K, A-B for A..B, or a list like 3,5,8; "
        "default: the strategy's own",
    )
    search.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help="exhaustive: every multiplet (exact); greedy: grow the best one neuron at a time; "
        "clusters: unions of Ward bins; anneal: for wide layers; auto: picks one from the "
        "width and a time budget",
    )
    search.add_argument(
        "--option",
        type=parse_option,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a strategy option, repeatable, VALUE read as JSON when it parses: e.g. bins=10 "
        "(clusters), beam=4 (greedy), time_budget=5 (auto), steps=100 (anneal)",
    )
    search.add_argument(
        "--ties",
        choices=TIE_POLICIES,
        default="random",
        help="how the copula ranks tied values: random (seeded), stable (by sample order, "
        "as HOI) or average",
    )
    search.add_argument(
        "--seed", type=int, default=0, help="seed of random tie-breaking and of the anneal search"
    )
    search.add_argument(
        "--no-bias-correct",
        action="store_true",
        help="turn off the Gaussian entropy bias correction (on by default)",
    )


def _add_plot(commands: argparse._SubParsersAction[_Parser]) -> None:
    """The ``plot`` subcommand."""
    parser = _command(
        commands,
        "plot",
        "Draw the figures of a monitor history file (oinfo_history.jsonl).",
        "Writes three PNGs: oinfo_curves.png (per layer, synergy = min O-information and\n"
        "redundancy = max O-information over sizes, against the training step),\n"
        "synergy_size.png (neurons in the most synergistic multiplet, per layer and step) and\n"
        "size_bars_step<N>.png (per layer and size, bars of synergy and redundancy at one step).",
        epilog=f"example:\n  {PROG} plot runs/exp1/oinfo_history.jsonl --log-x --out figures/",
    )
    parser.add_argument(
        "history", type=Path, metavar="HISTORY", help="the JSONL history written by OInfoMonitor"
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="folder for the PNGs, created if needed (default: the history's folder)",
    )
    parser.add_argument(
        "--step",
        type=int,
        metavar="N",
        help="the evaluated step drawn in the bars-by-size figure (default: the last one)",
    )
    parser.add_argument(
        "--log-x",
        action="store_true",
        help="symmetric-log step axis (linear near 0): early dynamics become visible",
    )
    _add_output_flags(parser)
    parser.set_defaults(command=run_plot, parser=parser, forwards=False)


def _add_forwarding(parser: argparse.ArgumentParser, script: str | None) -> None:
    """Options of a command that passes its remaining arguments to a demo script's ``main``."""
    parser.add_argument("-h", "--help", action=_ForwardingHelp, help="show this help and exit")
    _add_debug(parser)
    parser.set_defaults(parser=parser, forwards=True, script=script, demo=None)


def _add_demo(commands: argparse._SubParsersAction[_Parser]) -> None:
    """The ``demo`` subcommand."""
    parser = _command(
        commands,
        "demo",
        "Run a demo: the same as running its script in the repository's demos/ folder.",
        "grokking: demos/grokking.py (synergy while an MLP groks modular addition);\n"
        "mnist: demos/mnist_layerwise.py (layerwise synergy of an MLP on MNIST).\n"
        "Every argument after NAME (except --debug) goes to the demo: see\n"
        f"'{PROG} demo NAME --help'. The demos ship with the source repository.",
        add_help=False,
        allow_abbrev=False,
        epilog=f"example:\n  {PROG} demo grokking --steps 1000 --runs-dir runs",
    )
    parser.add_argument(
        "demo", choices=sorted(DEMO_SCRIPTS), metavar="NAME", help="grokking or mnist"
    )
    _add_forwarding(parser, None)
    parser.set_defaults(command=run_demo)


def _add_retrain(commands: argparse._SubParsersAction[_Parser]) -> None:
    """The ``retrain`` subcommand."""
    parser = _command(
        commands,
        "retrain",
        "Retrain the sub-network that synergy picks and compare it with baselines.",
        f"Runs demos/{RETRAIN_SCRIPT} (built on oinfo_monitor.retrain): every argument\n"
        "(except --debug) goes to it; its options are listed below.",
        add_help=False,
        allow_abbrev=False,
        epilog=f"example:\n  {PROG} retrain --quick",
    )
    _add_forwarding(parser, RETRAIN_SCRIPT)
    parser.set_defaults(command=run_retrain)


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _names(text: str) -> list[str]:
    """An argparse type: a comma-separated list of non-empty names."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


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
# Reading files.


def _check_file(path: Path, what: str) -> None:
    """Fail with a one-line message unless `path` is an existing file."""
    if not path.exists():
        raise CommandError(f"{what} {path} does not exist")
    if not path.is_file():
        raise CommandError(f"{what} {path} is not a file")


def _read_npy(path: Path) -> dict[str, Any]:
    """The array of a .npy file, named after the file."""
    return {path.stem: np.load(path, allow_pickle=False)}


def _read_npz(path: Path) -> dict[str, Any]:
    """Every array of a .npz file, by name (all read now, so a damaged member fails here)."""
    with np.load(path, allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


def _read_pt(path: Path) -> dict[str, Any]:
    """A tensor (named after the file) or a dict of tensors, loaded without unpickling code."""
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, dict):
        return {str(name): value for name, value in loaded.items()}
    return {path.stem: loaded}


_READERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".pt": _read_pt,
    ".pth": _read_pt,
}


def load_arrays(path: Path, what: str = "input") -> dict[str, Tensor]:
    """The named arrays of a .npy (named after the file), .npz, or .pt/.pth file (a tensor or a dict of tensors)."""
    _check_file(path, what)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise CommandError(
            f"{what} {path}: unsupported file type {path.suffix or '(no suffix)'!r}; "
            "pass a .npy, .npz, .pt or .pth file"
        )
    try:
        raw = reader(path)
    except _READ_ERRORS as error:
        raise CommandError(f"cannot read {what} {path}: {one_line(str(error))}") from error
    return {name: _as_array(value, f"{path.name}: {name!r}") for name, value in raw.items()}


def _as_array(value: Any, label: str) -> Tensor:
    """A loaded entry as a tensor, refusing anything that is not an array of real numbers."""
    if not isinstance(value, Tensor | np.ndarray):
        raise CommandError(f"{label} is a {type(value).__name__}, not an array or tensor")
    return as_tensor(value, label)


def load_single(path: Path, what: str) -> Tensor:
    """The one array of a file that must hold exactly one (a target or a probe)."""
    arrays = load_arrays(path, what)
    if len(arrays) != 1:
        raise CommandError(f"{what} {path} holds {len(arrays)} arrays; it must hold exactly one")
    return next(iter(arrays.values()))


def load_model(path: Path) -> nn.Module:
    """Unpickle a whole model saved with ``torch.save(model)``: this runs code from the file, so trusted files only."""
    _check_file(path, "checkpoint")
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except _MODEL_READ_ERRORS as error:
        missing_class = isinstance(error, AttributeError | ImportError)
        hint = " (the model's class must be importable here)" if missing_class else ""
        raise CommandError(
            f"cannot load a model from {path}: {one_line(str(error))}{hint}"
        ) from error
    if not isinstance(model, nn.Module):
        state_dict = isinstance(model, dict)
        hint = ": a state_dict? Save the whole model with torch.save(model)" if state_dict else ""
        raise CommandError(f"{path} holds a {type(model).__name__}, not an nn.Module{hint}")
    return model


def _probe_inputs(path: Path, model: nn.Module) -> Tensor:
    """The probe tensor, floats cast to the dtype of the model's floating-point parameters."""
    probe = load_single(path, "probe")
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    return probe.to(dtype) if dtype is not None and probe.is_floating_point() else probe


# ----------------------------------------------------------------------------------------------
# analyze


@dataclass(frozen=True)
class LayerAnalysis:
    """One analyzed activation matrix: its search result and the columns left out."""

    name: str
    result: SearchResult
    n_neurons: int
    dead: list[int]
    duplicates: list[int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values: `SearchResult.to_dict`, the neuron count, the columns left out."""
        return {
            **self.result.to_dict(),
            "n_neurons": self.n_neurons,
            "dead_neurons": self.dead,
            "duplicate_neurons": self.duplicates,
        }


def run_analyze(args: argparse.Namespace) -> None:
    """``oinfo-monitor analyze``: search every activation matrix, print tables, write JSON and a figure."""
    _check_analyze_args(args)
    arrays, target, source = analysis_inputs(args)
    what = "layer" if args.checkpoint is not None else "array"
    columns = {}
    for name, values in arrays.items():
        with _about(f"{what} {name!r}"):
            columns[name] = checked_neurons(values)
    analyses = []
    with ProgressBar(len(arrays), "analyze", quiet=args.quiet) as bar:
        for name, values in arrays.items():
            with _about(f"{what} {name!r}"):
                analyses.append(analyze_matrix(name, values, columns[name], target, args))
            bar.update(1, postfix=name)
    if not args.quiet:
        print("\n\n".join(format_analysis(analysis, what) for analysis in analyses))
    if args.json is not None:
        layers = {analysis.name: analysis.to_dict() for analysis in analyses}
        payload = {"units": "bits", "source": source, "layers": layers}
        _write_text(args.json, json.dumps(payload, indent=1) + "\n", args.quiet)
    if args.figure is not None:
        title = Path(source.get("input") or source["checkpoint"]).name
        _save_figure(analysis_figure(analyses, title), args.figure, args)


def _check_analyze_args(args: argparse.Namespace) -> None:
    """Usage errors: exactly one of INPUT and --checkpoint, --probe exactly with --checkpoint."""
    error = args.parser.error
    if (args.input is None) == (args.checkpoint is None):
        error("pass either INPUT (an activation file) or --checkpoint with --probe")
    if (args.probe is None) != (args.checkpoint is None):
        error("--checkpoint and --probe go together")
    if args.target_key is not None and args.input is None:
        error("--target-key names an array inside INPUT; with --checkpoint use --target")
    formats = FigureCanvasBase.get_supported_filetypes()
    if args.figure is not None and args.figure.suffix.lower().lstrip(".") not in formats:
        error(f"--figure {args.figure}: the suffix must name an image format: {', '.join(formats)}")


@contextmanager
def _about(label: str) -> Iterator[None]:
    """Prefix the message of a data error raised inside the block with `label`."""
    try:
        yield
    except (ValueError, TypeError) as error:
        raise CommandError(f"{label}: {one_line(str(error))}") from error


def analysis_inputs(
    args: argparse.Namespace,
) -> tuple[dict[str, Tensor], Tensor | None, dict[str, Any]]:
    """The activation matrices to analyze, the target (or None) and a description of where they came from."""
    target = None if args.target is None else load_single(args.target, "target")
    if args.checkpoint is not None:
        arrays = checkpoint_activations(args)
        source = {"checkpoint": str(args.checkpoint), "probe": str(args.probe)}
        source["capture"] = args.capture
    else:
        arrays = load_arrays(args.input)
        if args.target_key is not None:
            target = _pick(arrays, [args.target_key], args.input)[args.target_key]
            del arrays[args.target_key]
        if args.layers is not None:
            arrays = _pick(arrays, args.layers, args.input)
        if not arrays:
            raise CommandError(f"{args.input} holds no activation arrays to analyze")
        source = {"input": str(args.input)}
    if target is not None:
        source["target"] = str(args.target or args.target_key)
        target = target[: args.max_samples]
    return {name: x[: args.max_samples] for name, x in arrays.items()}, target, source


def _pick(arrays: dict[str, Tensor], names: list[str], path: Path) -> dict[str, Tensor]:
    """The named arrays of a file, in the order named; an unknown name lists the file's arrays."""
    for name in names:
        if name not in arrays:
            raise CommandError(
                f"{path} holds no array named {name!r}; it holds: {', '.join(map(repr, arrays))}"
            )
    return {name: arrays[name] for name in names}


def checkpoint_activations(args: argparse.Namespace) -> dict[str, Tensor]:
    """Capture the activations of the checkpoint's layers on the probe (see `capture.capture_activations`)."""
    model = load_model(args.checkpoint)
    probe = _probe_inputs(args.probe, model)
    inputs, _ = materialize_probe(probe, max_samples=args.max_samples)
    layers = resolve_layers(model, args.layers)
    try:
        return capture_activations(
            model, inputs, layers, capture=args.capture, batch_size=args.batch_size
        )
    except RuntimeError as error:
        raise CommandError(f"the model failed on the probe: {one_line(str(error))}") from error


def checked_neurons(values: Tensor) -> NeuronFilter:
    """The columns of a [samples, neurons] matrix to search, after the engine's input checks.

    A matrix that is not 2-D, has under 2 samples or holds NaN/inf is handed to
    `validation.check_samples`, which rejects it naming the column in the matrix's own numbering;
    constant and duplicated columns are then left out rather than rejected, as the monitor does.
    """
    if values.ndim != 2 or values.shape[0] < 2 or not bool(torch.isfinite(values).all()):
        check_samples(values, "the matrix")
    return distinct_neurons(values)


def analyze_matrix(
    name: str,
    values: Tensor,
    neurons: NeuronFilter,
    target: Tensor | None,
    args: argparse.Namespace,
) -> LayerAnalysis:
    """Search one matrix over its kept columns; members come back in the matrix's column numbers."""
    stats = copula_covariance(
        values[:, neurons.kept],
        y=target,
        target_kind=args.target_kind,
        bias_correct=not args.no_bias_correct,
        ties=args.ties,
        seed=args.seed,
    )
    result = search_covariance(
        stats,
        sizes=args.sizes,
        strategy=args.strategy,
        index_map=neurons.kept.tolist(),
        seed=args.seed,
        **dict(args.option),
    )
    return LayerAnalysis(name, result, int(values.shape[1]), neurons.dead, neurons.duplicates)


def _members(members: Sequence[int]) -> str:
    """Members as space-separated indices, shortened after `_SHOWN_MEMBERS` of them."""
    shown = " ".join(str(i) for i in members[:_SHOWN_MEMBERS])
    hidden = len(members) - _SHOWN_MEMBERS
    return f"{shown} ... (+{hidden})" if hidden > 0 else shown


def _cells(multiplet: Multiplet) -> tuple[str, str]:
    """A multiplet's value (bits) and members as table cells."""
    return f"{multiplet.value:.4f}", _members(multiplet.members)


def bias_note(bias_correct: bool) -> str:
    """How the entropies were estimated, as figures and tables say it."""
    return "bias-corrected" if bias_correct else "no bias correction"


def format_analysis(analysis: LayerAnalysis, what: str) -> str:
    """A printable table of one matrix's result: per size, synergy and redundancy with members."""
    result = analysis.result
    dead, duplicates = analysis.dead, analysis.duplicates
    left_out = f", {len(dead)} constant left out ({_members(dead)})" if dead else ""
    if duplicates:
        left_out += f", {len(duplicates)} duplicated left out ({_members(duplicates)})"
    rows = [
        (str(k), *_cells(result.synergy[k]), *_cells(result.redundancy[k]))
        for k in sorted(result.synergy)
    ]
    header = ("size", "synergy", "members", "redundancy", "members")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        f"{what} {analysis.name!r}: {analysis.n_neurons} neurons{left_out}, "
        f"{result.n_samples} samples, target: {result.target}",
        f"  {result.reason}",
        f"  ties: {result.ties}, {bias_note(result.bias_correct)}, values in {result.units} "
        "(synergy = min O-information, redundancy = max O-information)",
    ]
    plateaus = {name: sizes for name, sizes in result.plateau.items() if sizes}
    if plateaus:
        lines.append(f"  greedy growth left the value unchanged at sizes: {plateaus}")
    for row in [header, *rows]:
        cells = [cell.rjust(width) for cell, width in zip(row, widths, strict=True)]
        cells[2], cells[4] = row[2].ljust(widths[2]), row[4]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def analysis_figure(analyses: list[LayerAnalysis], title: str) -> Figure:
    """The bars-by-size figure (`figures.size_bars`) of analyzed matrices."""
    table: SizeTable = {
        analysis.name: {
            k: ([analysis.result.synergy[k].value], [analysis.result.redundancy[k].value])
            for k in analysis.result.synergy
        }
        for analysis in analyses
    }
    return size_bars(table, title=title, bias_note=bias_note(analyses[0].result.bias_correct))


def _write_text(path: Path, text: str, quiet: bool) -> None:
    """Write a text file (creating its folder) and say so unless quiet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if not quiet:
        print(f"wrote {path}")


def _save_figure(figure: Figure, path: Path, args: argparse.Namespace) -> None:
    """Save a figure (creating its folder; the suffix picks the format) and say so unless quiet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=args.dpi)
    if not args.quiet:
        print(f"wrote {path}")


# ----------------------------------------------------------------------------------------------
# plot

Curves = dict[str, dict[str, list[float]]]
"""layer -> {"steps", "synergy", "redundancy", "size"}: one entry per evaluated step."""


def run_plot(args: argparse.Namespace) -> None:
    """``oinfo-monitor plot``: the curves, sub-network size and bars-by-size figures of a history."""
    _check_file(args.history, "history")
    try:
        records = list(read_records(args.history))
    except UnicodeDecodeError as error:
        raise CommandError(f"history {args.history} is not a text file ({error.reason})") from None
    if not records:
        raise CommandError(f"history {args.history} holds no records")
    steps = sorted({int(record["step"]) for record in records})
    step = steps[-1] if args.step is None else args.step
    if step not in steps:
        shown = ", ".join(map(str, steps[:10])) + (" ..." if len(steps) > 10 else "")
        raise CommandError(f"step {step} is not in the history; its steps: {shown}")
    curves = history_curves(records)
    note = bias_note(bool(records[-1].get("bias_correct", True)))
    at_step = [record for record in records if record["step"] == step]
    figures = {
        "oinfo_curves.png": curves_figure(curves, args.log_x, note),
        "synergy_size.png": size_figure(curves, args.log_x),
        f"size_bars_step{step}.png": size_bars(
            size_table(at_step), title=f"{args.history.name}: step {step}", bias_note=note
        ),
    }
    out = args.history.parent if args.out is None else args.out
    for name, figure in figures.items():
        _save_figure(figure, out / name, args)


def history_curves(records: Sequence[dict[str, Any]]) -> Curves:
    """Per layer and evaluated step: min Ω and max Ω over sizes (bits) and the min-Ω multiplet's size."""
    by_step: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_step[int(record["step"])].append(record)
    curves: Curves = {}
    for step in sorted(by_step):
        for layer, values in headline(by_step[step]).items():
            curve = curves.setdefault(
                layer, {"steps": [], "synergy": [], "redundancy": [], "size": []}
            )
            for key, value in zip(curve, (step, *values), strict=True):
                curve[key].append(value)
    return curves


def _step_axis(axis: Any, log_x: bool) -> None:
    """Label the training-step axis, symmetric-log when asked (linear near 0, so step 0 fits)."""
    if log_x:
        axis.set_xscale("symlog", linthresh=1)
    axis.set_xlabel("training step" + (" (symlog)" if log_x else ""))


def curves_figure(curves: Curves, log_x: bool, note: str) -> Figure:
    """One panel per layer: synergy (min Ω) and redundancy (max Ω) over steps, in bits."""
    figure = Figure(figsize=(7.5, 0.6 + 2.6 * len(curves)), layout="constrained")
    axes = figure.subplots(len(curves), 1, squeeze=False, sharex=True)[:, 0]
    for axis, (layer, curve) in zip(axes, curves.items(), strict=True):
        for key, color, label in (
            ("redundancy", REDUNDANCY_COLOR, "redundancy (max Ω)"),
            ("synergy", SYNERGY_COLOR, "synergy (min Ω)"),
        ):
            axis.plot(curve["steps"], curve[key], color=color, label=label, marker=".")
        axis.axhline(0.0, color="black", linewidth=0.6)
        axis.set_title(layer)
        axis.set_ylabel(f"bits ({note})")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    _step_axis(axes[-1], log_x)
    return figure


def size_figure(curves: Curves, log_x: bool) -> Figure:
    """The synergistic sub-network's size (neurons in the min-Ω multiplet) over steps, per layer."""
    figure = Figure(figsize=(7.5, 3.2), layout="constrained")
    axis = figure.add_subplot()
    for layer, curve in curves.items():
        axis.step(curve["steps"], curve["size"], where="post", marker=".", label=layer)
    axis.set_ylabel("neurons in the most\nsynergistic multiplet")
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    _step_axis(axis, log_x)
    return figure


# ----------------------------------------------------------------------------------------------
# demo and retrain: the demo scripts of the source repository.


def demos_dir() -> Path:
    """The source repository's ``demos/`` folder, next to the package in a clone or editable install."""
    return Path(oinfo_monitor.__file__).resolve().parents[1] / "demos"


def load_script(script: str) -> ModuleType:
    """Import a demo script as a module; a one-line error when it is not there."""
    path = demos_dir() / script
    if not path.is_file():
        raise CommandError(
            f"{path} not found: the demos ship with the source repository, not with the "
            "installed package; clone the repository and run the command from that install"
        )
    name = f"oinfo_monitor_demo_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a .py file always has a loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses defined in the script look their module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def run_script(script: str, argv: list[str], prog: str) -> None:
    """Call a demo script's ``main(argv)``, with `prog` as the program name its help shows."""
    module = load_script(script)
    saved = sys.argv
    sys.argv = [prog, *argv]
    try:
        module.main(argv)
    finally:
        sys.argv = saved


def run_demo(args: argparse.Namespace) -> None:
    """``oinfo-monitor demo NAME ...``: run that demo with the remaining arguments."""
    run_script(DEMO_SCRIPTS[args.demo], args.forwarded, f"{PROG} demo {args.demo}")


def run_retrain(args: argparse.Namespace) -> None:
    """``oinfo-monitor retrain ...``: run the retraining demo with the remaining arguments."""
    run_script(RETRAIN_SCRIPT, args.forwarded, f"{PROG} retrain")
