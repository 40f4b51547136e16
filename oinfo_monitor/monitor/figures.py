"""Figures the monitor logs: per-layer bars of synergy and redundancy by multiplet size.

This is the layout of the 2022 paper's Figure 1: for each layer, one bar per size k for the most
synergistic (min Ω) and one for the most redundant (max Ω) multiplet, in bits. Figures are built
with `matplotlib.figure.Figure` directly (no pyplot), so no global state or GUI backend is touched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
from matplotlib.figure import Figure

SizeTable = dict[str, dict[int, tuple[list[float], list[float]]]]
"""layer -> size -> (synergy values, redundancy values); several values are averaged (e.g. seeds)."""

SYNERGY_COLOR = "#1f77b4"
REDUNDANCY_COLOR = "#d62728"


def size_table(records: Iterable[dict[str, Any]]) -> SizeTable:
    """Collect history records into a `SizeTable` (all records of a layer and size are pooled)."""
    table: SizeTable = defaultdict(dict)
    for record in records:
        synergy, redundancy = table[record["layer"]].setdefault(int(record["size"]), ([], []))
        synergy.append(float(record["synergy"]))
        redundancy.append(float(record["redundancy"]))
    return dict(table)


def size_bars(table: SizeTable, title: str = "", bias_note: str = "bias-corrected") -> Figure:
    """Per-layer bars of min Ω (synergy) and max Ω (redundancy) by size; error bars show the std.

    Values are in bits; `bias_note` is printed on the y axis so the figure says how it was estimated.
    """
    layers = list(table)
    figure = Figure(figsize=(4.2 * max(1, len(layers)), 3.4), layout="constrained")
    axes = figure.subplots(1, max(1, len(layers)), squeeze=False, sharey=True)[0]
    for axis, layer in zip(axes, layers, strict=False):
        sizes = sorted(table[layer])
        positions = np.arange(len(sizes))
        for offset, index, color, label in (
            (-0.2, 1, REDUNDANCY_COLOR, "redundancy (max Ω)"),
            (0.2, 0, SYNERGY_COLOR, "synergy (min Ω)"),
        ):
            values = [table[layer][size][index] for size in sizes]
            means = [float(np.mean(v)) for v in values]
            spread = [float(np.std(v)) if len(v) > 1 else 0.0 for v in values]
            axis.bar(positions + offset, means, 0.4, yerr=spread, color=color, label=label)
        axis.axhline(0.0, color="black", linewidth=0.6)
        axis.set_xticks(positions, [str(size) for size in sizes])
        axis.set_xlabel("multiplet size k")
        axis.set_title(layer)
    axes[0].set_ylabel(f"O-information (bits, {bias_note})")
    axes[0].legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return figure
