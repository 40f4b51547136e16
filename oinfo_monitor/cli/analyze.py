"""``oinfo-monitor analyze``: the most synergistic and most redundant multiplets of saved activations."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure
from torch import Tensor
from tqdm import tqdm

from oinfo_monitor.cli.inputs import load_arrays, load_model, load_single, probe_inputs
from oinfo_monitor.cli.options import (
    PROG,
    PROGRESS_DELAY,
    CommandError,
    Commands,
    add_command,
    add_output_flags,
    bias_note,
    names,
    one_line,
    parse_option,
    parse_sizes,
    positive_int,
    save_figure,
    write_text,
)
from oinfo_monitor.estimators import TIE_POLICIES, copula_covariance
from oinfo_monitor.estimators.validation import NeuronFilter, check_samples, distinct_neurons
from oinfo_monitor.monitor.capture import capture_activations, materialize_probe, resolve_layers
from oinfo_monitor.monitor.figures import SizeTable, size_bars
from oinfo_monitor.search import STRATEGIES, Multiplet, SearchResult, search_covariance

SHOWN_MEMBERS = 16
"""Members shown per multiplet in the printed table (the JSON output holds all of them)."""


# ----------------------------------------------------------------------------------------------
# The options.


def add_parser(commands: Commands) -> None:
    """The ``analyze`` subcommand."""
    parser = add_command(
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
    add_output_flags(parser)
    parser.set_defaults(command=run_analyze, parser=parser, forwards=False)


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    """The input and target options."""
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
        type=names,
        metavar="NAMES",
        help="comma-separated arrays (keys of INPUT) or module names (with --checkpoint) to "
        "analyze; default: every array, or every Linear/Conv layer but the last",
    )
    source.add_argument(
        "--max-samples",
        type=positive_int,
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
    """The checkpoint and probe options."""
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
        type=positive_int,
        metavar="N",
        help="feed the probe in chunks of N samples (default: all at once)",
    )


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    """The estimation and search options."""
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


# ----------------------------------------------------------------------------------------------
# The command.


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
    check_analyze_args(args)
    arrays, target, source = analysis_inputs(args)
    what = "layer" if args.checkpoint is not None else "array"
    columns = {}
    for name, values in arrays.items():
        with about(f"{what} {name!r}"):
            columns[name] = checked_neurons(values)
    analyses = []
    bar = tqdm(total=len(arrays), desc="analyze", disable=args.quiet, delay=PROGRESS_DELAY)
    with bar:
        for name, values in arrays.items():
            with about(f"{what} {name!r}"):
                analyses.append(analyze_matrix(name, values, columns[name], target, args))
            bar.set_postfix_str(name, refresh=False)
            bar.update(1)
    if not args.quiet:
        print("\n\n".join(format_analysis(analysis, what) for analysis in analyses))
    if args.json is not None:
        layers = {analysis.name: analysis.to_dict() for analysis in analyses}
        payload = {"units": "bits", "source": source, "layers": layers}
        write_text(args.json, json.dumps(payload, indent=1) + "\n", args.quiet)
    if args.figure is not None:
        title = Path(source.get("input") or source["checkpoint"]).name
        save_figure(analysis_figure(analyses, title), args.figure, args)


def check_analyze_args(args: argparse.Namespace) -> None:
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
def about(label: str) -> Iterator[None]:
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
            target = pick(arrays, [args.target_key], args.input)[args.target_key]
            del arrays[args.target_key]
        if args.layers is not None:
            arrays = pick(arrays, args.layers, args.input)
        if not arrays:
            raise CommandError(f"{args.input} holds no activation arrays to analyze")
        source = {"input": str(args.input)}
    if target is not None:
        source["target"] = str(args.target or args.target_key)
        target = target[: args.max_samples]
    return {name: x[: args.max_samples] for name, x in arrays.items()}, target, source


def pick(arrays: dict[str, Tensor], wanted: list[str], path: Path) -> dict[str, Tensor]:
    """The named arrays of a file, in the order named; an unknown name lists the file's arrays."""
    for name in wanted:
        if name not in arrays:
            raise CommandError(
                f"{path} holds no array named {name!r}; it holds: {', '.join(map(repr, arrays))}"
            )
    return {name: arrays[name] for name in wanted}


def checkpoint_activations(args: argparse.Namespace) -> dict[str, Tensor]:
    """Capture the activations of the checkpoint's layers on the probe (see `capture.capture_activations`)."""
    model = load_model(args.checkpoint)
    probe = probe_inputs(args.probe, model)
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
        neurons.columns(values),
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


# ----------------------------------------------------------------------------------------------
# The printed table and the figure.


def members_text(members: Sequence[int]) -> str:
    """Members as space-separated indices, shortened after `SHOWN_MEMBERS` of them."""
    shown = " ".join(str(i) for i in members[:SHOWN_MEMBERS])
    hidden = len(members) - SHOWN_MEMBERS
    return f"{shown} ... (+{hidden})" if hidden > 0 else shown


def cells(multiplet: Multiplet) -> tuple[str, str]:
    """A multiplet's value (bits) and members as table cells."""
    return f"{multiplet.value:.4f}", members_text(multiplet.members)


def format_analysis(analysis: LayerAnalysis, what: str) -> str:
    """A printable table of one matrix's result: per size, synergy and redundancy with members."""
    result = analysis.result
    dead, duplicates = analysis.dead, analysis.duplicates
    left_out = f", {len(dead)} constant left out ({members_text(dead)})" if dead else ""
    if duplicates:
        left_out += f", {len(duplicates)} duplicated left out ({members_text(duplicates)})"
    rows = [
        (str(k), *cells(result.synergy[k]), *cells(result.redundancy[k]))
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
        padded = [cell.rjust(width) for cell, width in zip(row, widths, strict=True)]
        padded[2], padded[4] = row[2].ljust(widths[2]), row[4]
        lines.append("  " + "  ".join(padded).rstrip())
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
