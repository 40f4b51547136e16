"""The monitor's options, checked once at construction so that nothing fails later, mid-training.

`MonitorSettings` holds every option of `OInfoMonitor` that does not need the model; the monitor
and the Lightning callback both build one, so a bad option is rejected, with a message naming it
and what it accepts, before the first training step.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from torch import Tensor, nn

from oinfo_monitor.estimators import TIE_POLICIES, TiePolicy
from oinfo_monitor.monitor.background import DEFAULT_MAX_PENDING
from oinfo_monitor.monitor.capture import CaptureSpec
from oinfo_monitor.monitor.phases import PhaseTracker
from oinfo_monitor.monitor.sinks import DEFAULT_TAG_BUDGET, LAYER_SCALARS
from oinfo_monitor.monitor.steps import Schedule, check_schedule
from oinfo_monitor.search import check_search

Forward = Callable[[nn.Module, Any], Any]
"""Runs the model on one probe batch: ``forward(model, batch)`` (default ``model(batch)``)."""

DEFAULT_TIME_BUDGET = 0.1
"""Seconds per layer that `strategy="auto"` plans its search for, so monitoring stays a small
fraction of training at the default cadence (see benchmarks/bench_overhead.py)."""

_SEARCH_KEYS = frozenset({"sizes", "strategy"})


class OInfoMonitorWarning(UserWarning):
    """Warned when the monitor skips an evaluation or a layer; training is never interrupted."""


def _check_int(name: str, value: Any, low: int, optional: bool = False) -> None:
    """Raise unless `value` is an integer ≥ `low` (or None when `optional`)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        accepted = f"an integer >= {low}" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {accepted}, got {value!r}")


def _check_axis(name: str, value: Any) -> None:
    """Raise unless `value` is a non-negative axis index."""
    _check_int(name, value, 0)


@dataclass(frozen=True)
class MonitorSettings:
    """Every model-independent option of `OInfoMonitor`, validated in `__post_init__`.

    See `OInfoMonitor` for what each option means. Building one is how both the monitor and the
    Lightning callback check their options before training starts.

    Examples:
        >>> MonitorSettings(strategy="greedy", search_options={"beam": 2}).strategy
        'greedy'
        >>> MonitorSettings(capture="Post")
        Traceback (most recent call last):
        ...
        ValueError: capture must be 'pre' or 'post', got 'Post'
    """

    capture: Literal["pre", "post"] = "pre"
    activation: Callable[[Tensor], Tensor] | None = None
    token: int | Literal["mean"] = -1
    every: Schedule = 100
    sizes: int | Iterable[int] | None = None
    strategy: str = "auto"
    search_options: Mapping[str, Any] | None = None
    layer_options: Mapping[str, Mapping[str, Any]] | None = None
    logdir: str | Path | None = None
    history_path: str | Path | None = None
    figure_every: int = 10
    tag_budget: int = DEFAULT_TAG_BUDGET
    ties: TiePolicy = "random"
    seed: int = 0
    bias_correct: bool = True
    batch_size: int | None = None
    max_samples: int | None = None
    track_phases: bool | Mapping[str, Any] = True
    on_evaluation: Callable[[Any], None] | None = None
    forward: Forward | None = None
    probe_axis: int = 0
    sample_axis: int | Mapping[str, int] | None = None
    resume: bool = False
    noise_resamples: int = 10
    surrogates: int = 19
    null_every: int = 50
    background: bool = False
    max_pending: int = DEFAULT_MAX_PENDING
    split_ranks: bool = True
    schedule: Schedule = field(init=False)

    def __post_init__(self) -> None:
        """Check every option; the first bad one raises, naming it and what it accepts."""
        CaptureSpec(capture=self.capture, activation=self.activation, token=self.token)
        object.__setattr__(self, "schedule", check_schedule(self.every))
        if self.ties not in TIE_POLICIES:
            raise ValueError(f"ties must be one of {TIE_POLICIES}, got {self.ties!r}")
        _check_int("seed", self.seed, 0)
        _check_int("figure_every", self.figure_every, 0)
        _check_int("tag_budget", self.tag_budget, len(LAYER_SCALARS))  # room for the headline
        _check_int("batch_size", self.batch_size, 1, optional=True)
        _check_int("max_samples", self.max_samples, 1, optional=True)
        if self.noise_resamples == 1:
            raise ValueError(
                "noise_resamples must be 0 (off) or >= 2 (an SD needs two values), got 1"
            )
        _check_int("noise_resamples", self.noise_resamples, 0)
        _check_int("surrogates", self.surrogates, 0)
        _check_int("null_every", self.null_every, 1)
        _check_int("max_pending", self.max_pending, 1)
        _check_axis("probe_axis", self.probe_axis)
        for flag in ("bias_correct", "resume", "background", "split_ranks"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        for hook in ("on_evaluation", "forward"):
            if getattr(self, hook) is not None and not callable(getattr(self, hook)):
                raise TypeError(f"{hook} must be callable or None, got {getattr(self, hook)!r}")
        self._check_sample_axis()
        self._check_search()
        self.trackers([])  # checks the PhaseTracker options

    def _check_sample_axis(self) -> None:
        """`sample_axis`: None, one axis for every layer, or a mapping of layer name to axis."""
        if self.sample_axis is None:
            return
        if isinstance(self.sample_axis, Mapping):
            for layer, axis in self.sample_axis.items():
                _check_axis(f"sample_axis[{layer!r}]", axis)
        else:
            _check_axis("sample_axis", self.sample_axis)

    def _check_search(self) -> None:
        """The search options, and each layer's overrides of them, as `search` would check them."""
        options = self.search_options or {}
        if not isinstance(options, Mapping):
            raise TypeError(f"search_options must be a dict of options, got {options!r}")
        clash = sorted(_SEARCH_KEYS & set(options))
        if clash:
            raise ValueError(
                f"pass {', '.join(clash)} as monitor argument(s), not inside search_options"
            )
        for layer, overrides in (self.layer_options or {}).items():
            if not isinstance(overrides, Mapping):
                raise TypeError(f"layer_options[{layer!r}] must be a dict, got {overrides!r}")
            merged = self.layer_search(layer)
            sizes = merged.pop("sizes")
            try:
                check_search(merged.pop("strategy"), sizes, merged)
            except ValueError as error:
                raise ValueError(f"layer_options[{layer!r}]: {error}") from None
        merged = self.layer_search(None)
        check_search(merged.pop("strategy"), merged.pop("sizes"), merged)

    def layer_search(self, layer: str | None) -> dict[str, Any]:
        """The search options of one layer: defaults, `search_options`, then its `layer_options`."""
        overrides = dict((self.layer_options or {}).get(layer, {})) if layer is not None else {}
        strategy = overrides.get("strategy", self.strategy)
        options: dict[str, Any] = {"sizes": self.sizes, "strategy": strategy}
        if strategy == "auto":
            options["time_budget"] = DEFAULT_TIME_BUDGET
        if strategy == self.strategy:
            options.update(self.search_options or {})
        options.update(overrides)
        return options

    def trackers(self, layers: Iterable[str]) -> dict[str, PhaseTracker]:
        """One `PhaseTracker` per layer (none for False), with the options of `track_phases`."""
        if isinstance(self.track_phases, bool):
            options: Mapping[str, Any] = {}
            layers = layers if self.track_phases else []
        elif isinstance(self.track_phases, Mapping):
            options = self.track_phases
            try:
                PhaseTracker(**options)
            except TypeError as error:
                raise ValueError(f"track_phases: {error}") from None
        else:
            raise TypeError(
                "track_phases must be a bool or a dict of PhaseTracker options, "
                f"got {self.track_phases!r}"
            )
        return {name: PhaseTracker(**options) for name in layers}

    def check_layer_names(self, layers: Iterable[str]) -> None:
        """Options keyed by layer name must name monitored layers."""
        for option in ("layer_options", "sample_axis"):
            value = getattr(self, option)
            unknown = sorted(set(value) - set(layers)) if isinstance(value, Mapping) else []
            if unknown:
                raise ValueError(
                    f"{option} names unmonitored layer(s) {unknown}; monitored: {list(layers)}"
                )

    def layer_sample_axis(self, layer: str) -> int | None:
        """The sample axis given for one layer's output, or None to read it from the module."""
        if isinstance(self.sample_axis, Mapping):
            return self.sample_axis.get(layer)
        return self.sample_axis


_MODEL_BOUND = ("probe", "target", "layers", "writer")
"""`OInfoMonitor` arguments that are checked against the model, when the monitor is built."""


def check_monitor_options(options: Mapping[str, Any]) -> MonitorSettings:
    """Validate `OInfoMonitor` keyword options without a model, as callbacks do before training.

    Examples:
        >>> check_monitor_options({"every": 10, "strategy": "greedy"}).schedule
        10
        >>> check_monitor_options({"strategy": "fast"})
        Traceback (most recent call last):
        ...
        ValueError: strategy must be one of 'auto', 'exhaustive', 'greedy', 'clusters', 'anneal'; got 'fast'
    """
    known = [*_MODEL_BOUND, *(f.name for f in fields(MonitorSettings) if f.init)]
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
            raise TypeError(f"unknown OInfoMonitor option {name!r}{hint}")
    return MonitorSettings(**{k: v for k, v in options.items() if k not in _MODEL_BOUND})
