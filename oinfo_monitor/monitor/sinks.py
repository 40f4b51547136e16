"""Where the monitor's results go: TensorBoard (scalars, layout, figures, text).

TensorBoard tags (all O-information values in bits):

- ``oinfo/<layer>/synergy``: min Ω over the searched sizes (more negative = more synergistic)
- ``oinfo/<layer>/redundancy``: max Ω over the searched sizes
- ``oinfo/<layer>/synergy_size``: neurons in the most synergistic multiplet (the synergistic sub-network)
- ``oinfo/<layer>/search_seconds``, ``oinfo/<layer>/dead_neurons``
- ``oinfo_by_size/<layer>/synergy_kNN`` and ``oinfo_by_size/<layer>/redundancy_kNN``: per size k
- ``oinfo/probe_seconds``: time to run the probe through the model; ``oinfo/eval_seconds``: whole evaluation
- ``oinfo/config`` (text): the monitor's configuration; ``oinfo/<layer>/phase`` (text): phase changes
- ``oinfo/size_bars`` (image): per-layer bars of synergy and redundancy by size

A custom-scalars layout puts each layer's synergy and redundancy in one chart and every layer's
synergy (and redundancy) in one chart per measure.
"""

from __future__ import annotations

import re
from typing import Any

from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter

from oinfo_monitor.monitor.records import headline


def layer_tag(layer: str, name: str) -> str:
    """The headline scalar tag of one layer, e.g. ``oinfo/fc1/synergy``."""
    return f"oinfo/{layer}/{name}"


def size_tag(layer: str, name: str, size: int) -> str:
    """The per-size scalar tag of one layer, e.g. ``oinfo_by_size/fc1/synergy_k03``."""
    return f"oinfo_by_size/{layer}/{name}_k{size:02d}"


def custom_layout(layers: list[str]) -> dict[str, dict[str, list[Any]]]:
    """Custom-scalars layout: one chart per layer (synergy with redundancy), one per measure (all layers)."""
    charts: dict[str, list[Any]] = {
        f"{layer}: synergy & redundancy": [
            "Multiline",
            [f"^{re.escape(layer_tag(layer, name))}$" for name in ("synergy", "redundancy")],
        ]
        for layer in layers
    }
    for measure in ("synergy", "redundancy"):
        charts[f"{measure} (all layers, bits)"] = ["Multiline", [rf"^oinfo/.+/{measure}$"]]
    return {"O-information": charts}


class TensorBoardSink:
    """Writes evaluations to a `SummaryWriter` and flushes after each one so curves appear live."""

    def __init__(self, writer: SummaryWriter) -> None:
        """Wrap an existing writer (the monitor closes it only if the monitor created it)."""
        self.writer = writer

    def write_header(self, layers: list[str], config: dict[str, Any]) -> None:
        """Write the custom-scalars layout and the configuration as a markdown table."""
        self.writer.add_custom_scalars(custom_layout(layers))
        rows = "\n".join(f"| {key} | `{value}` |" for key, value in config.items())
        self.writer.add_text("oinfo/config", "| option | value |\n| --- | --- |\n" + rows, 0)
        self.writer.flush()

    def write_evaluation(
        self, step: int, records: list[dict[str, Any]], scalars: dict[str, float]
    ) -> None:
        """Headline, per-size and timing scalars of one evaluation, then a flush."""
        for layer, (synergy, redundancy, size) in headline(records).items():
            self.writer.add_scalar(layer_tag(layer, "synergy"), synergy, step)
            self.writer.add_scalar(layer_tag(layer, "redundancy"), redundancy, step)
            self.writer.add_scalar(layer_tag(layer, "synergy_size"), size, step)
        for record in records:
            layer, size = record["layer"], record["size"]
            self.writer.add_scalar(size_tag(layer, "synergy", size), record["synergy"], step)
            self.writer.add_scalar(size_tag(layer, "redundancy", size), record["redundancy"], step)
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def write_figure(self, step: int, figure: Figure) -> None:
        """Log a matplotlib figure as ``oinfo/size_bars``."""
        self.writer.add_figure("oinfo/size_bars", figure, step, close=False)
        self.writer.flush()

    def write_text(self, tag: str, text: str, step: int) -> None:
        """Log a text event (e.g. a phase change)."""
        self.writer.add_text(tag, text, step)
        self.writer.flush()
