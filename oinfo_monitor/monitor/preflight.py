"""Checks the monitor runs once, at construction, so that nothing that can be known before
training fails during it: the probe runs through the model, and the multiplet sizes fit the data.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from oinfo_monitor.estimators import SAMPLES_PER_VARIABLE, supported_size
from oinfo_monitor.estimators.state import WIDE_NEURONS
from oinfo_monitor.estimators.validation import TargetModel
from oinfo_monitor.monitor.capture import capture_activations
from oinfo_monitor.monitor.options import OInfoMonitorWarning
from oinfo_monitor.search import check_search
from oinfo_monitor.search.wide import SEARCHED_NEURONS

DRY_RUN_SAMPLES = 5
"""Probe samples run through the model at construction, to catch a probe or layer that does not fit."""


def dry_run(
    model: nn.Module,
    inputs: tuple[Tensor, ...],
    layers: dict[str, nn.Module],
    capture_options: Mapping[str, Any],
) -> dict[str, int]:
    """Run the first few probe samples through the model (restoring everything, as every
    evaluation does) and return each layer's number of neurons; a probe or a layer that cannot
    work raises a `ValueError` that says why.
    """
    axis = int(capture_options.get("probe_axis", 0))
    count = min(int(inputs[0].shape[axis]), DRY_RUN_SAMPLES)
    head = tuple(t.narrow(axis, 0, count) for t in inputs)
    try:
        found = capture_activations(model, head, layers, **capture_options)
    except Exception as error:
        raise ValueError(probe_message(error, inputs)) from error
    return {name: int(values[0].numel()) for name, values in found.items()}


def probe_message(error: Exception, inputs: tuple[Tensor, ...]) -> str:
    """Explain why the probe could not run through the model, with a hint at the usual causes."""
    text = f"the probe does not run through the model: {type(error).__name__}: {error}"
    if isinstance(error, NotImplementedError):
        text += (
            "; a module without a forward of its own (e.g. a LightningModule whose training_step "
            "calls a submodule) needs forward=lambda model, batch: model.net(batch) (whatever "
            "your training step does)"
        )
    elif len(inputs) == 2 and inputs[1].ndim == 1:
        text += (
            "; a tuple probe holds the forward's positional arguments: for (inputs, labels) pass "
            "probe=inputs, target=labels (or a DataLoader of (x, y) batches)"
        )
    return text


def check_sizes(
    search_options: Mapping[str, Mapping[str, Any]],
    widths: Mapping[str, int],
    size_limits: Mapping[str, int | None],
    n_samples: int,
    target: Tensor | None,
) -> None:
    """Refuse explicit sizes no evaluation could search; warn once per layer where default sizes
    stop, and where an explicit strategy will form a wide layer's whole covariance.

    A layer's cap is the smallest of its width, what `n_samples` support (`supported_size`) and
    its `size_limits` entry (the rank bound of its pre-activations, if any).
    """
    kind: TargetModel = "none"
    if target is not None:
        kind = "continuous" if target.is_floating_point() else "discrete"
    classes = int(torch.unique(target).numel()) if target is not None and kind == "discrete" else 0
    supported = supported_size(n_samples, kind, classes)
    for name, options in search_options.items():
        width, limit = widths[name], size_limits[name]
        reasons = {width: f"the layer has {width} neurons"}
        reasons.setdefault(
            supported,
            f"{n_samples} probe samples support at most {supported} "
            f"({SAMPLES_PER_VARIABLE} samples per variable)",
        )
        if limit is not None:
            reasons.setdefault(
                limit, f"its input width {limit} bounds the rank of its pre-activations"
            )
        cap = min(reasons)
        parsed = check_search(options["strategy"], options["sizes"], {})
        if parsed is not None and parsed[-1] > cap:
            raise ValueError(
                f"sizes {[k for k in parsed if k > cap]} are too large for layer {name!r}: "
                f"{reasons[cap]}; pass smaller sizes"
                + (" or a larger probe" if cap == supported else "")
            )
        if parsed is None and cap < 3:
            raise ValueError(
                f"layer {name!r} cannot be searched: {reasons[cap]}, and multiplets need 3"
            )
        if options["strategy"] != "auto" and width > WIDE_NEURONS:
            warnings.warn(
                f"oinfo-monitor: layer {name!r} has {width:,} neurons: strategy "
                f"{options['strategy']!r} forms their {width:,} x {width:,} float64 covariance "
                f"({width * width * 8 / 1e9:.1f} GB) and searches all of them at every evaluation; "
                f"strategy='auto' (the default) screens a layer this wide down to "
                f"{SEARCHED_NEURONS:,} neurons and keeps to its time budget",
                OInfoMonitorWarning,
                stacklevel=4,
            )
        if parsed is None and cap < width:
            warnings.warn(
                f"oinfo-monitor: layer {name!r}: multiplets are limited to {cap} of its "
                f"{width} neurons: {reasons[cap]}",
                OInfoMonitorWarning,
                stacklevel=4,
            )
