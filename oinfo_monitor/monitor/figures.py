"""Figures the monitor logs: synergy and redundancy by multiplet size, in bits.

`size_bars` is the layout of the 2022 paper's Figure 1: for each layer, one bar per size k for the
most synergistic (min Ω) and one for the most redundant (max Ω) multiplet. `size_profile` is one
layer's profile at one evaluation as lines, with the ±2 SD band and the chance level, which stays
readable for the hundreds of sizes of the clusters search. Figures are built with
`matplotlib.figure.Figure` directly (no pyplot), so no global state or GUI backend is touched.
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
MEASURES = ("synergy", "redundancy")
LABELS = {"synergy": "synergy (min Ω)", "redundancy": "redundancy (max Ω)"}
"""Legend label of each measure."""
COLORS = {"synergy": SYNERGY_COLOR, "redundancy": REDUNDANCY_COLOR}


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
            (-0.2, 1, REDUNDANCY_COLOR, LABELS["redundancy"]),
            (0.2, 0, SYNERGY_COLOR, LABELS["synergy"]),
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


def optional_column(records: list[dict[str, Any]], key: str) -> np.ndarray:
    """The values of `key` as floats, NaN where a record has None (a trust value turned off).

    Examples:
        >>> optional_column([{"sd": 0.5}, {"sd": None}], "sd")
        array([0.5, nan])
    """
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in records])


class SizeProfile:
    """One layer's Ω against multiplet size, redrawn in place at each evaluation: the monitor
    logs it at every evaluation, and reusing the figure's axes, ticks and legend halves the cost
    of drawing a new one (see docs/monitor.md, TensorBoard).

    Synergy (min Ω) and redundancy (max Ω) get an axis each, since they can differ by an order of
    magnitude; each shows its ±2 SD band where the noise was measured and its chance level where
    it was computed (dashed). Values in bits.

    Examples:
        >>> profile = SizeProfile()
        >>> rows = [{"size": k, "synergy": -0.1 * k, "redundancy": 2.0 * k} for k in (3, 4)]
        >>> profile.update(rows, title="step 0") is profile.update(rows, title="step 10")
        True
        >>> profile.figure.texts[0].get_text()
        'step 10 (bias-corrected)'
    """

    def __init__(self, bias_note: str = "bias-corrected") -> None:
        """An empty profile; `bias_note` goes into the title so the image says how Ω was estimated."""
        self.bias_note = bias_note
        # Fixed margins and legend places: the automatic ones cost most of the drawing time.
        self.figure = Figure(figsize=(6.4, 4.8))
        self.figure.subplots_adjust(left=0.12, right=0.97, bottom=0.1, top=0.92, hspace=0.12)
        self.axes = list(self.figure.subplots(2, 1, sharex=True))
        self.values, self.chances = [], []
        self.bands: list[Any] = [None, None]
        self.legends: list[tuple[bool, bool] | None] = [None, None]
        for axis, name in zip(self.axes, MEASURES, strict=True):
            self.values.append(
                axis.plot([], [], color=COLORS[name], marker=".", label=LABELS[name])[0]
            )
            self.chances.append(
                axis.plot([], [], color="0.4", linestyle="--", label="chance level")[0]
            )
            axis.axhline(0.0, color="black", linewidth=0.6)
            axis.set_ylabel(f"{LABELS[name]}, bits")
        self.axes[1].set_xlabel("multiplet size k")
        self.title = self.figure.suptitle("", fontsize="medium")

    def update(self, records: Iterable[dict[str, Any]], title: str = "") -> Figure:
        """Show one evaluation's records of the layer (at least one); returns the figure."""
        rows = sorted(records, key=lambda record: int(record["size"]))
        sizes = np.array([int(record["size"]) for record in rows])
        for index, (axis, name) in enumerate(zip(self.axes, MEASURES, strict=True)):
            values = np.array([float(record[name]) for record in rows])
            spread = 2 * optional_column(rows, f"{name}_sd")
            chance = optional_column(rows, f"{name}_chance")
            self.values[index].set_data(sizes, values)
            self.chances[index].set_data(sizes, chance)  # NaN where not computed: not drawn
            if self.bands[index] is not None:
                self.bands[index].remove()
                self.bands[index] = None
            measured = np.isfinite(spread)
            if measured.any():
                low, high = values - np.nan_to_num(spread), values + np.nan_to_num(spread)
                self.bands[index] = axis.fill_between(
                    sizes, low, high, where=measured, color=COLORS[name], alpha=0.25,
                    linewidth=0, label="± 2 SD",
                )  # fmt: skip
            shown = np.concatenate([values, values - spread, values + spread, chance, [0.0]])
            bottom, top = float(np.nanmin(shown)), float(np.nanmax(shown))
            pad = 0.05 * (top - bottom) or 0.1
            axis.set_ylim(bottom - pad, top + pad)
            key = (bool(measured.any()), bool(np.isfinite(chance).any()))
            if key != self.legends[index]:  # a new legend only when its entries change
                handles = [self.values[index], self.bands[index], self.chances[index]]
                shown_handles = [h for h, on in zip(handles, (True, *key), strict=True) if on]
                axis.legend(handles=shown_handles, fontsize="small", loc="upper left")
                self.legends[index] = key
        self.axes[0].set_xlim(sizes.min() - 0.5, sizes.max() + 0.5)
        self.title.set_text(f"{title} ({self.bias_note})" if title else self.bias_note)
        return self.figure


def size_profile(
    records: Iterable[dict[str, Any]], title: str = "", bias_note: str = "bias-corrected"
) -> Figure:
    """One layer's Ω against multiplet size at one evaluation as a new figure (see `SizeProfile`).

    Examples:
        >>> rows = [{"size": k, "synergy": -0.1 * k, "redundancy": 2.0 * k, "synergy_sd": 0.05,
        ...          "synergy_chance": -0.2} for k in (3, 4, 5)]
        >>> figure = size_profile(rows, title="fc1, step 100")
        >>> [axis.get_ylabel() for axis in figure.axes]
        ['synergy (min Ω), bits', 'redundancy (max Ω), bits']
        >>> [len(axis.collections) for axis in figure.axes]  # the ±2 SD band: synergy only
        [1, 0]
    """
    return SizeProfile(bias_note).update(records, title)
