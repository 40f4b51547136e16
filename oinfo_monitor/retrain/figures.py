"""Figures of a `RetrainResult`: accuracy curves per strategy and accuracy changes per layer."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from oinfo_monitor.retrain.results import RetrainResult

__all__ = ["change_figure", "curves_figure"]


def curves_figure(result: RetrainResult, title: str = "", metric: str = "test_acc") -> Figure:
    """Accuracy over training per strategy (the 2024 paper's Figs 6-7 layout).

    A strategy with several draws is drawn as its mean with a min-max band; the reference (the
    unmasked original run) is the dashed black line.
    """
    figure = Figure(figsize=(7.0, 4.2), layout="constrained")
    axis = figure.subplots()
    ref = result.reference
    if ref.steps:
        axis.plot(ref.steps, getattr(ref, metric), "k--", linewidth=1.2, label="full network")
    for name, labels in result.groups().items():
        runs = [result.runs[label] for label in labels]
        curves = torch.tensor([getattr(run, metric) for run in runs], dtype=torch.float64)
        steps = runs[0].steps
        (line,) = axis.plot(steps, curves.mean(0).tolist(), label=f"{name} (n={len(runs)})")
        if len(runs) > 1:
            low, high = curves.min(0).values.tolist(), curves.max(0).values.tolist()
            axis.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
    axis.set_xlabel("training step")
    axis.set_ylabel(metric.replace("_acc", " accuracy"))
    axis.set_ylim(-0.02, 1.02)
    axis.legend(fontsize="small")
    axis.set_title(title or f"retraining sub-networks ({result.procedure}, seed {result.seed})")
    return figure


def change_figure(result: RetrainResult, title: str = "", metric: str = "test") -> Figure:
    """Bars of the accuracy change per layer and strategy, mean ± std over draws (the 2022 paper's Fig. 2).

    Strategy names ``"<layer>/<strategy>"`` (as `rewind_layerwise` makes them) are grouped by layer.
    """
    cells = {_split_label(row["strategy"]): row for row in result.summary(metric)}
    layers = list(dict.fromkeys(layer for layer, _ in cells))
    strategies = list(dict.fromkeys(strategy for _, strategy in cells))
    figure = Figure(figsize=(2.0 + 0.5 * len(cells), 4.0), layout="constrained")
    axis = figure.subplots()
    width = 0.8 / len(strategies)
    for offset, strategy in enumerate(strategies):
        rows = [cells.get((layer, strategy), {}) for layer in layers]
        axis.bar(
            [i - 0.4 + (offset + 0.5) * width for i in range(len(layers))],
            [row.get("change_mean") or 0.0 for row in rows],
            width,
            yerr=[row.get("change_std") or 0.0 for row in rows],
            label=strategy,
            capsize=2,
        )
    axis.axhline(0.0, color="black", linewidth=0.6)
    axis.set_xticks(range(len(layers)), [layer or "layer" for layer in layers])
    axis.set_ylabel(f"{metric} accuracy change vs reference")
    axis.legend(fontsize="small")
    axis.set_title(title or f"accuracy change after retraining ({result.procedure})")
    return figure


def _split_label(name: str) -> tuple[str, str]:
    """(layer, strategy) of a strategy name ``"<layer>/<strategy>"`` (layer '' when absent)."""
    layer, _, strategy = name.rpartition("/")
    return layer, strategy
