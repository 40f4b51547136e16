"""``oinfo-monitor plot``: the curves, sub-network size and bars-by-size figures of a monitor history."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from oinfo_monitor.cli.inputs import check_file
from oinfo_monitor.cli.options import (
    PROG,
    CommandError,
    Commands,
    add_command,
    add_output_flags,
    bias_note,
    save_figure,
)
from oinfo_monitor.monitor.figures import REDUNDANCY_COLOR, SYNERGY_COLOR, size_bars, size_table
from oinfo_monitor.monitor.records import Curves, history_curves, read_records


def add_parser(commands: Commands) -> None:
    """The ``plot`` subcommand."""
    parser = add_command(
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
    add_output_flags(parser)
    parser.set_defaults(command=run_plot, parser=parser, forwards=False)


def run_plot(args: argparse.Namespace) -> None:
    """``oinfo-monitor plot``: the curves, sub-network size and bars-by-size figures of a history."""
    check_file(args.history, "history")
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
        save_figure(figure, out / name, args)


def step_axis(axis: Any, log_x: bool) -> None:
    """Label the training-step axis, symmetric-log when asked (linear near 0, so step 0 fits)."""
    if log_x:
        axis.set_xscale("symlog", linthresh=1)
    axis.set_xlabel("training step" + (" (symlog)" if log_x else ""))


def curves_figure(curves: Curves, log_x: bool, note: str) -> Figure:
    """One panel per layer: synergy (min Ω) and redundancy (max Ω) over steps, in bits, each with
    its ±2 SD band and its chance level; values not beyond their chance level are drawn hollow."""
    figure = Figure(figsize=(7.5, 0.6 + 2.6 * len(curves)), layout="constrained")
    axes = figure.subplots(len(curves), 1, squeeze=False, sharex=True)[:, 0]
    for axis, (layer, curve) in zip(axes, curves.items(), strict=True):
        for key, color, label in (
            ("redundancy", REDUNDANCY_COLOR, "redundancy (max Ω)"),
            ("synergy", SYNERGY_COLOR, "synergy (min Ω)"),
        ):
            axis.plot(curve["steps"], curve[key], color=color, label=label, marker=".")
            draw_trust(axis, curve, key, color)
        axis.axhline(0.0, color="black", linewidth=0.6)
        axis.set_title(layer)
        axis.set_ylabel(f"bits ({note})")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    step_axis(axes[-1], log_x)
    return figure


def draw_trust(axis: Any, curve: dict[str, list[float]], key: str, color: str) -> None:
    """The value's ±2 SD band, its chance level (dashed) and, hollow, the points not beyond it."""
    steps, values = np.asarray(curve["steps"]), np.asarray(curve[key], dtype=float)
    sd, chance = np.asarray(curve[f"{key}_sd"]), np.asarray(curve[f"{key}_chance"])
    if np.isfinite(sd).any():
        axis.fill_between(
            steps, values - 2 * sd, values + 2 * sd, color=color, alpha=0.2, linewidth=0
        )
    if np.isfinite(chance).any():
        axis.plot(
            steps, chance, color=color, linestyle="--", linewidth=0.9, label=f"{key} chance level"
        )
        beyond = values < chance if key == "synergy" else values > chance
        weak = np.isfinite(chance) & ~beyond
        axis.scatter(
            steps[weak],
            values[weak],
            facecolors="white",
            edgecolors=color,
            zorder=3,
            label=f"{key} not significant",
        )


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
    step_axis(axis, log_x)
    return figure
