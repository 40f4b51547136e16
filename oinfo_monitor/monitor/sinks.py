"""Where the monitor's results go: every sink follows one small protocol (`Sink`).

`HistorySink` appends the records to the JSONL history file; `TensorBoardSink` owns every
TensorBoard tag (all O-information values in bits):

- ``oinfo/<layer>/synergy``: min Ω over the searched sizes (more negative = more synergistic)
- ``oinfo/<layer>/redundancy``: max Ω over the searched sizes
- ``oinfo/<layer>/synergy_lower``, ``_upper``, ``_sd``: the headline's ±2 SD band and its bootstrap
  SD; ``oinfo/<layer>/synergy_chance``: its chance level; ``oinfo/<layer>/synergy_significant``:
  1 when it is beyond its chance level, else 0 (the same six for ``redundancy``)
- ``oinfo/<layer>/synergy_size``: neurons in the most synergistic multiplet (the synergistic sub-network)
- ``oinfo/<layer>/search_seconds``, ``trust_seconds``, ``dead_neurons``, ``duplicate_neurons``
- ``oinfo_by_size/<layer>/synergy_kNN`` and ``oinfo_by_size/<layer>/redundancy_kNN``: per size k,
  for the sizes the layer's tag budget leaves room for (see `scalar_sizes`)
- ``oinfo/<layer>/size_profile`` (image, every evaluation): Ω against k, every size (`size_profile`)
- ``oinfo/probe_seconds``: time to run the probe through the model; ``oinfo/eval_seconds``: whole evaluation
- ``oinfo/config`` (text): the monitor's configuration; ``oinfo/<layer>/phase`` (text): phase changes
- ``oinfo/size_bars`` (image): per-layer bars of synergy and redundancy by size

A layer writes at most `tag_budget` scalar tags (`DEFAULT_TAG_BUDGET`): its `LAYER_SCALARS`, then
two per size; the history file keeps every size. A custom-scalars layout gives each layer's
synergy and redundancy charts of their own (they can differ by an order of magnitude) and puts
every layer's synergy (and redundancy) in one chart per measure. A new destination (a CSV file,
an experiment tracker) is one more class with the three methods of `Sink`.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from oinfo_monitor.monitor.figures import SizeProfile, size_bars, size_table
from oinfo_monitor.monitor.records import Evaluation, write_records

if TYPE_CHECKING:  # options imports this module for the tag budget's default and minimum
    from oinfo_monitor.monitor.options import MonitorSettings

TRUST_SUFFIXES = ("", "_lower", "_upper", "_sd", "_chance", "_significant")
"""The headline tags of each measure: the value, its ±2 SD band, SD, chance level, significance."""

RECORD_SCALARS = ("search_seconds", "trust_seconds", "dead_neurons", "duplicate_neurons")
"""Per-layer record fields written as scalars once per evaluation."""

LAYER_SCALARS: tuple[str, ...] = (
    *(name + suffix for name in ("synergy", "redundancy") for suffix in TRUST_SUFFIXES),
    "synergy_size",
    *RECORD_SCALARS,
)
"""Every ``oinfo/<layer>/...`` scalar a layer may write; they come first in its tag budget."""

DEFAULT_TAG_BUDGET = 40
"""Scalar tags per layer by default: the 17 `LAYER_SCALARS` and per-size curves of 11 sizes."""


class Sink(Protocol):
    """A destination of the monitor's evaluations."""

    def start(self, layers: list[str], config: dict[str, Any]) -> None:
        """Called once, when the monitor is built, with the monitored layers and its configuration."""

    def write(self, evaluation: Evaluation) -> None:
        """Called after every evaluation that produced records."""

    def close(self) -> None:
        """Called once, from `OInfoMonitor.close`."""


def layer_tag(layer: str, name: str) -> str:
    """The headline scalar tag of one layer, e.g. ``oinfo/fc1/synergy``.

    Examples:
        >>> layer_tag("fc1", "synergy")
        'oinfo/fc1/synergy'
    """
    return f"oinfo/{layer}/{name}"


def size_tag(layer: str, name: str, size: int) -> str:
    """The per-size scalar tag of one layer, e.g. ``oinfo_by_size/fc1/synergy_k03``."""
    return f"oinfo_by_size/{layer}/{name}_k{size:02d}"


def scalar_sizes(sizes: list[int], tag_budget: int) -> list[int]:
    """The sizes that get per-size scalar curves within a layer's tag budget, so that a search of
    hundreds of sizes does not write hundreds of tags: every size if they fit, else as many as fit
    (two tags each, after the `LAYER_SCALARS`), spread evenly from the smallest to the largest.

    Examples:
        >>> scalar_sizes([3, 4, 5], 40)
        [3, 4, 5]
        >>> scalar_sizes(list(range(3, 21)), 40)
        [3, 5, 6, 8, 10, 11, 13, 15, 17, 18, 20]
        >>> scalar_sizes([3, 4, 5], len(LAYER_SCALARS))
        []
    """
    ordered = sorted(set(sizes))
    slots = max(0, (tag_budget - len(LAYER_SCALARS)) // 2)
    if len(ordered) <= slots:
        return ordered
    picks = np.unique(np.round(np.linspace(0, len(ordered) - 1, slots)).astype(int))
    return [ordered[index] for index in picks]


def custom_layout(layers: list[str]) -> dict[str, dict[str, list[Any]]]:
    """Custom-scalars layout, one group per layer: synergy and redundancy each as a margin chart
    (the value with its ±2 SD band) and each with its chance level in a chart of its own, never
    the two measures on one axis (redundancy is often an order of magnitude larger and would
    flatten synergy); then one chart per measure over all layers.

    Examples:
        >>> sorted(custom_layout(["fc1"])["O-information: fc1"])  # doctest: +NORMALIZE_WHITESPACE
        ['redundancy and its chance level (bits)', 'redundancy ± 2 SD (bits)',
         'synergy and its chance level (bits)', 'synergy ± 2 SD (bits)']
    """
    layout: dict[str, dict[str, list[Any]]] = {}
    for layer in layers:
        charts: dict[str, list[Any]] = {}
        for name in ("synergy", "redundancy"):
            tag = layer_tag(layer, name)
            charts[f"{name} ± 2 SD (bits)"] = ["Margin", [tag, f"{tag}_lower", f"{tag}_upper"]]
            charts[f"{name} and its chance level (bits)"] = [
                "Multiline",
                [f"^{re.escape(tag)}$", f"^{re.escape(tag)}_chance$"],
            ]
        layout[f"O-information: {layer}"] = charts
    layout["O-information: all layers"] = {
        f"{measure} (all layers, bits)": ["Multiline", [rf"^oinfo/.+/{measure}$"]]
        for measure in ("synergy", "redundancy")
    }
    return layout


class HistorySink:
    """Appends every evaluation's records to a JSONL history file (see `records.write_records`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Write to `path` (its folder is created on the first write)."""
        self.path = path

    def start(self, layers: list[str], config: dict[str, Any]) -> None:
        """Nothing to write before the first evaluation."""

    def write(self, evaluation: Evaluation) -> None:
        """Append the evaluation's records."""
        write_records(self.path, evaluation.records)

    def close(self) -> None:
        """Every write is already flushed."""


def headline_scalars(evaluation: Evaluation) -> dict[str, float]:
    """Per layer, the headline values with their band, SD, chance level and significance, keyed by
    their TensorBoard tags; what any logger that takes flat metrics should receive.

    Examples:
        >>> from oinfo_monitor.monitor.records import Evaluation
        >>> record = {"layer": "fc1", "headline_synergy_sd": None, "headline_synergy_chance": None,
        ...           "headline_redundancy_sd": None, "headline_redundancy_chance": None}
        >>> headline_scalars(Evaluation(0, [record], {}, summary={"fc1": (-0.3, 0.5, 4)}))
        {'oinfo/fc1/synergy': -0.3, 'oinfo/fc1/redundancy': 0.5, 'oinfo/fc1/synergy_size': 4.0}
    """
    scalars: dict[str, float] = {}
    first = {record["layer"]: record for record in reversed(evaluation.records)}
    for layer, (synergy, redundancy, size) in evaluation.summary.items():
        for name, value in (("synergy", synergy), ("redundancy", redundancy)):
            tag, sd = layer_tag(layer, name), first[layer][f"headline_{name}_sd"]
            scalars[tag] = value
            if sd is not None:
                scalars[f"{tag}_lower"] = value - 2 * sd
                scalars[f"{tag}_upper"] = value + 2 * sd
                scalars[f"{tag}_sd"] = sd
            chance = first[layer][f"headline_{name}_chance"]
            if chance is not None:
                scalars[f"{tag}_chance"] = chance
                beyond = value < chance if name == "synergy" else value > chance
                scalars[f"{tag}_significant"] = float(beyond)
        scalars[layer_tag(layer, "synergy_size")] = float(size)
    return scalars


def monitor_sinks(
    history_path: str | os.PathLike[str] | None,
    writer: SummaryWriter | None,
    settings: MonitorSettings,
) -> list[Sink]:
    """The sinks of a monitor: the history file, and TensorBoard through the given writer or a
    writer on ``settings.logdir`` (which the sink then owns and closes)."""
    sinks: list[Sink] = []
    if history_path is not None:
        sinks.append(HistorySink(history_path))
    owns = writer is None and settings.logdir is not None
    if owns:
        writer = SummaryWriter(log_dir=str(settings.logdir))
    if writer is not None:
        sinks.append(
            TensorBoardSink(
                writer,
                owns_writer=owns,
                figure_every=settings.figure_every,
                bias_correct=settings.bias_correct,
                tag_budget=settings.tag_budget,
            )
        )
    return sinks


class TensorBoardSink:
    """Writes evaluations to a `SummaryWriter` and flushes after each one so curves appear live.

    Scalars and each layer's size profile every evaluation, phase changes as text, the bars-by-size
    figure every `figure_every` evaluations (0: never). Each layer writes at most `tag_budget`
    scalar tags: the sizes with per-size curves (`scalar_sizes`) are chosen from the sizes of the
    first evaluation this sink writes and kept for the run, so the tag count stays bounded.
    """

    def __init__(
        self,
        writer: SummaryWriter,
        *,
        owns_writer: bool = False,
        figure_every: int = 10,
        bias_correct: bool = True,
        tag_budget: int = DEFAULT_TAG_BUDGET,
    ) -> None:
        """Wrap a writer; `owns_writer` closes it in `close` (a writer you pass stays open)."""
        self.writer = writer
        self.owns_writer = owns_writer
        self.figure_every = figure_every
        self.bias_note = "bias-corrected" if bias_correct else "no bias correction"
        self.tag_budget = tag_budget
        self.size_scalars: dict[str, frozenset[int]] = {}
        self.profiles: dict[str, SizeProfile] = {}
        self.written = 0

    def start(self, layers: list[str], config: dict[str, Any]) -> None:
        """Write the custom-scalars layout and the configuration as a markdown table."""
        self.writer.add_custom_scalars(custom_layout(layers))
        rows = "\n".join(f"| {key} | `{value}` |" for key, value in config.items())
        self.writer.add_text("oinfo/config", "| option | value |\n| --- | --- |\n" + rows, 0)
        self.writer.flush()

    def write(self, evaluation: Evaluation) -> None:
        """Headline, per-size, count and timing scalars, the size profiles, phase changes, the
        bars figure; then a flush."""
        add, step = self.writer.add_scalar, evaluation.step
        for tag, value in headline_scalars(evaluation).items():
            add(tag, value, step)
        by_layer: dict[str, list[dict[str, Any]]] = {}
        for record in evaluation.records:
            by_layer.setdefault(record["layer"], []).append(record)
        for layer, records in by_layer.items():
            for name in RECORD_SCALARS:
                add(layer_tag(layer, name), records[0][name], step)
            chosen = self.size_scalars.setdefault(
                layer, frozenset(scalar_sizes([r["size"] for r in records], self.tag_budget))
            )
            for record in (r for r in records if r["size"] in chosen):
                for name in ("synergy", "redundancy"):
                    add(size_tag(layer, name, record["size"]), record[name], step)
            if layer not in self.profiles:
                self.profiles[layer] = SizeProfile(self.bias_note)
            profile = self.profiles[layer].update(records, title=f"{layer}, step {step}")
            self.writer.add_figure(layer_tag(layer, "size_profile"), profile, step, close=False)
        add("oinfo/probe_seconds", evaluation.probe_seconds, step)
        add("oinfo/eval_seconds", evaluation.seconds, step)
        for name, change in evaluation.phase_changes.items():
            text = f"{change.previous.value} → {change.phase.value}: {change.reason}"
            self.writer.add_text(layer_tag(name, "phase"), text, step)
        self.written += 1
        if self.figure_every and (self.written - 1) % self.figure_every == 0:
            figure = size_bars(
                size_table(evaluation.records), title=f"step {step}", bias_note=self.bias_note
            )
            self.writer.add_figure("oinfo/size_bars", figure, step, close=False)
        self.writer.flush()

    def close(self) -> None:
        """Flush, and close the writer if the monitor created it."""
        self.writer.flush()
        if self.owns_writer:
            self.writer.close()
