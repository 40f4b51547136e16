"""`OInfoMonitor`: a drop-in training callback that measures layerwise synergy and redundancy.

Three lines in a training loop::

    monitor = OInfoMonitor(model, probe=x_probe, every=100, logdir="runs/exp1")
    for step, batch in enumerate(loader):
        ...; optimizer.step()
        monitor.step(step)          # evaluates only when due; returns the evaluation or None
    monitor.close()

Every evaluation runs a fixed probe set through the (unwrapped) model with temporary hooks,
estimates one Gaussian-copula covariance per layer and searches it for the most synergistic
(min Ω) and most redundant (max Ω) multiplet of each size, in bits. The monitor never changes
training: the probe runs in eval mode without gradients, and the model's mode flags, grad mode
and RNG states are restored; any failure becomes a warning and a skipped evaluation.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from oinfo_monitor.capture import (
    LayerSelector,
    capture_activations,
    materialize_probe,
    resolve_layers,
    unwrap_model,
)
from oinfo_monitor.figures import size_bars, size_table
from oinfo_monitor.gaussian import TIE_POLICIES, TiePolicy
from oinfo_monitor.measures import copula_covariance
from oinfo_monitor.phases import PhaseChange, PhaseTracker
from oinfo_monitor.records import headline, records_from_result, write_records
from oinfo_monitor.search import SearchResult, search_covariance
from oinfo_monitor.sinks import TensorBoardSink

HISTORY_FILE = "oinfo_history.jsonl"
"""Name of the history file the monitor writes in its log directory."""

DEFAULT_TIME_BUDGET = 0.1
"""Seconds per layer that `strategy="auto"` plans its search for, so monitoring stays a small
fraction of training at the default cadence (see benchmarks/bench_overhead.py)."""

Schedule = int | Iterable[int] | Callable[[int], bool]


class OInfoMonitorWarning(UserWarning):
    """Warned when the monitor skips an evaluation or a layer; training is never interrupted."""


@dataclass
class Evaluation:
    """What one evaluation produced: history records, search results and what was skipped and why."""

    step: int
    records: list[dict[str, Any]]
    results: dict[str, SearchResult]
    skipped: dict[str, str] = field(default_factory=dict)
    phase_changes: dict[str, PhaseChange] = field(default_factory=dict)
    probe_seconds: float = 0.0
    seconds: float = 0.0

    def headline(self) -> dict[str, tuple[float, float, int]]:
        """Per layer: (min Ω over sizes, max Ω over sizes, neurons in the min-Ω multiplet), bits."""
        return headline(self.records)


def _is_due(schedule: Schedule, step: int) -> bool:
    """Whether `step` is an evaluation step of the schedule."""
    if isinstance(schedule, int):
        return step % schedule == 0
    if callable(schedule):
        return bool(schedule(step))
    assert isinstance(schedule, frozenset)
    return step in schedule


def _check_schedule(every: Schedule) -> Schedule:
    """Validate `every` up front: a positive int, a collection of steps, or a predicate."""
    if isinstance(every, bool):
        raise TypeError("every must be a positive int, an iterable of steps or a callable")
    if isinstance(every, int):
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        return every
    if callable(every):
        return every
    steps = frozenset(int(s) for s in every)
    if not steps:
        raise ValueError("every is an empty collection of steps: the monitor would never run")
    return steps


def _phase_trackers(
    layers: Iterable[str], track_phases: bool | Mapping[str, Any]
) -> dict[str, PhaseTracker]:
    """One `PhaseTracker` per layer (none for False), with the options of `track_phases` if a mapping."""
    if isinstance(track_phases, bool):
        options: Mapping[str, Any] = {}
        layers = layers if track_phases else []
    elif isinstance(track_phases, Mapping):
        options = track_phases
    else:
        raise TypeError(
            f"track_phases must be a bool or a dict of PhaseTracker options, got {track_phases!r}"
        )
    return {name: PhaseTracker(**options) for name in layers}


def _is_rank_zero() -> bool:
    """Whether this process should compute and write (always, unless a non-zero distributed rank)."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class OInfoMonitor:
    """Periodically measures each layer's synergy and redundancy on a fixed probe set while a model trains.

    Args:
        model: the model being trained (a DDP/DataParallel/`torch.compile` wrapper is unwrapped).
        probe: a tensor, a tuple of forward arguments, or a DataLoader/iterable of batches; read
            once, so every evaluation sees the same samples (see `capture.materialize_probe`).
        target: labels or a continuous target per probe sample for task-related O-information
            (added to every multiplet); a DataLoader's ``(x, y)`` batches supply it automatically.
        layers: names, module types, or None for every Linear/Conv layer except the output layer.
        capture: ``"pre"`` (the module's output, the 2022 paper's choice) or ``"post"`` (after the
            activation that follows, the 2024 paper's choice); `activation` applies a function
            instead of looking for an activation module; `token` picks a sequence position.
        every: evaluate when ``step % every == 0``; or a collection of steps; or a predicate.
        sizes, strategy, search_options: the multiplet search (see `search.search_covariance`);
            with ``strategy="auto"`` the default ``time_budget`` is `DEFAULT_TIME_BUDGET` seconds
            per layer; `layer_options` overrides any of them per layer name.
        logdir / writer: TensorBoard output (a writer you pass is not closed by the monitor).
        history_path: JSONL history file; defaults to ``<logdir>/oinfo_history.jsonl``.
        figure_every: log the bars-by-size figure every this many evaluations (0: never).
        ties, seed, bias_correct: copula tie policy, its seed, and the entropy bias correction.
        batch_size, max_samples: probe chunking and truncation.
        track_phases: run a `PhaseTracker` per layer and log phase changes as text; a dict
            instead of True passes its items to each tracker (e.g. ``{"min_bits": 0.2}``).
        on_evaluation: called with each `Evaluation` (exceptions in it are warned, not raised).
    """

    def __init__(
        self,
        model: nn.Module,
        probe: Any,
        *,
        target: Tensor | None = None,
        layers: LayerSelector | None = None,
        capture: Literal["pre", "post"] = "pre",
        activation: Callable[[Tensor], Tensor] | None = None,
        token: int | Literal["mean"] = -1,
        every: Schedule = 100,
        sizes: int | Iterable[int] | None = None,
        strategy: str = "auto",
        search_options: dict[str, Any] | None = None,
        layer_options: dict[str, dict[str, Any]] | None = None,
        logdir: str | Path | None = None,
        writer: SummaryWriter | None = None,
        history_path: str | Path | None = None,
        figure_every: int = 10,
        ties: TiePolicy = "random",
        seed: int = 0,
        bias_correct: bool = True,
        batch_size: int | None = None,
        max_samples: int | None = None,
        track_phases: bool | Mapping[str, Any] = True,
        on_evaluation: Callable[[Evaluation], None] | None = None,
    ) -> None:
        if ties not in TIE_POLICIES:
            raise ValueError(f"ties must be one of {TIE_POLICIES}, got {ties!r}")
        if figure_every < 0:
            raise ValueError(f"figure_every must be >= 0, got {figure_every}")
        self.model = model
        self.every = _check_schedule(every)
        self.capture_options: dict[str, Any] = {
            "capture": capture,
            "activation": activation,
            "token": token,
            "batch_size": batch_size,
        }
        self.layers = resolve_layers(unwrap_model(model), layers)
        self.inputs, self.target = materialize_probe(probe, target, max_samples)
        defaults: dict[str, Any] = {"sizes": sizes, "strategy": strategy}
        if strategy == "auto":
            defaults["time_budget"] = DEFAULT_TIME_BUDGET
        self.search_options = self._layer_search_options(
            {**defaults, **(search_options or {})}, layer_options or {}
        )
        self.ties, self.seed, self.bias_correct = ties, seed, bias_correct
        self.figure_every = figure_every
        self.on_evaluation = on_evaluation
        self.active = _is_rank_zero()
        self.history: list[dict[str, Any]] = []
        self.evaluations = 0
        self.skipped_steps: list[int] = []
        self.trackers = _phase_trackers(self.layers, track_phases)
        self._owns_writer = writer is None and logdir is not None
        if writer is None and logdir is not None and self.active:
            writer = SummaryWriter(log_dir=str(logdir))
        self.sink = TensorBoardSink(writer) if writer is not None and self.active else None
        if history_path is None and writer is not None:
            history_path = Path(writer.log_dir) / HISTORY_FILE
        self.history_path = Path(history_path) if history_path is not None else None
        if self.sink is not None:
            self._guard(
                "writing the configuration",
                self.sink.write_header,
                list(self.layers),
                self.config(),
            )

    def _layer_search_options(
        self, defaults: dict[str, Any], overrides: dict[str, dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """Per-layer search options: the defaults, updated by `layer_options` for named layers."""
        unknown = sorted(set(overrides) - set(self.layers))
        if unknown:
            raise ValueError(
                f"layer_options names unmonitored layer(s) {unknown}; monitored: {list(self.layers)}"
            )
        return {name: {**defaults, **overrides.get(name, {})} for name in self.layers}

    def config(self) -> dict[str, Any]:
        """The monitor's configuration as plain values (logged to TensorBoard as text)."""
        target = (
            "none"
            if self.target is None
            else ("discrete" if not self.target.is_floating_point() else "continuous")
        )
        return {
            "layers": list(self.layers),
            "probe_samples": int(self.inputs[0].shape[0]),
            "target": target,
            "capture": self.capture_options["capture"],
            "every": self.every if isinstance(self.every, int) else "custom schedule",
            "search": {
                name: {k: v for k, v in opts.items() if v is not None}
                for name, opts in self.search_options.items()
            },
            "ties": self.ties,
            "seed": self.seed,
            "bias_correct": self.bias_correct,
            "units": "bits",
        }

    def step(self, step: int) -> Evaluation | None:
        """Evaluate if `step` is due under the schedule; return the evaluation, or None."""
        if not self.active or not _is_due(self.every, step):
            return None
        return self.evaluate(step)

    def evaluate(self, step: int) -> Evaluation | None:
        """Measure every layer now, whatever the schedule; None if skipped (with a warning) or not rank 0."""
        if not self.active:
            return None
        try:
            evaluation = self._evaluate(step)
        except Exception as error:  # a monitoring failure must never stop training
            self.skipped_steps.append(step)
            warnings.warn(
                f"oinfo-monitor: evaluation at step {step} skipped: {type(error).__name__}: {error}",
                OInfoMonitorWarning,
                stacklevel=2,
            )
            return None
        self._publish(evaluation)
        return evaluation

    def _evaluate(self, step: int) -> Evaluation:
        """Capture the probe activations and search each layer; layer-level problems skip the layer."""
        start = time.perf_counter()
        activations = capture_activations(
            self.model, self.inputs, self.layers, **self.capture_options
        )
        probe_seconds = time.perf_counter() - start
        evaluation = Evaluation(step, [], {}, probe_seconds=probe_seconds)
        for name, values in activations.items():
            try:
                result, context = self._search_layer(name, values)
            except ValueError as error:
                evaluation.skipped[name] = str(error)
                warnings.warn(
                    f"oinfo-monitor: layer {name!r} skipped at step {step}: {error}",
                    OInfoMonitorWarning,
                    stacklevel=3,
                )
                continue
            evaluation.results[name] = result
            context["probe_seconds"] = probe_seconds
            evaluation.records.extend(records_from_result(step, name, result, context))
        evaluation.seconds = time.perf_counter() - start
        return evaluation

    def _search_layer(self, name: str, values: Tensor) -> tuple[SearchResult, dict[str, Any]]:
        """Drop dead neurons, estimate the layer's copula covariance and search its multiplets."""
        values = values.reshape(values.shape[0], -1)
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            raise ValueError(f"{int((~finite).sum())} NaN/inf activation(s)")
        alive = torch.nonzero((values != values[:1]).any(0))[:, 0]
        if alive.numel() < 3:
            raise ValueError(f"only {alive.numel()} non-constant neuron(s); need at least 3")
        stats = copula_covariance(
            values[:, alive],
            y=self.target,
            bias_correct=self.bias_correct,
            ties=self.ties,
            seed=self.seed,
        )
        options = {k: v for k, v in self.search_options[name].items() if v is not None}
        result = search_covariance(stats, index_map=alive.tolist(), seed=self.seed, **options)
        context = {
            "n_neurons": int(values.shape[1]),
            "dead_neurons": int(values.shape[1] - alive.numel()),
            "capture": self.capture_options["capture"],
        }
        return result, context

    def _publish(self, evaluation: Evaluation) -> None:
        """Keep the records and send them to every sink; a failing sink is warned about, not raised."""
        self.evaluations += 1
        self.history.extend(evaluation.records)
        if self.history_path is not None:
            self._guard(
                "writing the history file", write_records, self.history_path, evaluation.records
            )
        summary = headline(evaluation.records)
        for name, (synergy, redundancy, _) in summary.items():
            tracker = self.trackers.get(name)
            change = tracker.update(evaluation.step, -synergy, redundancy) if tracker else None
            if change is not None:
                evaluation.phase_changes[name] = change
        if self.sink is not None:
            self._write_tensorboard(evaluation)
        if self.on_evaluation is not None:
            self._guard("the on_evaluation callback", self.on_evaluation, evaluation)

    def _write_tensorboard(self, evaluation: Evaluation) -> None:
        """Scalars every evaluation, phase changes as text, the figure every `figure_every` evaluations."""
        assert self.sink is not None
        sink, step = self.sink, evaluation.step
        scalars = {
            "oinfo/probe_seconds": evaluation.probe_seconds,
            "oinfo/eval_seconds": evaluation.seconds,
        }
        for record in evaluation.records:
            scalars[f"oinfo/{record['layer']}/search_seconds"] = record["search_seconds"]
            scalars[f"oinfo/{record['layer']}/dead_neurons"] = record["dead_neurons"]
        self._guard(
            "writing to TensorBoard", sink.write_evaluation, step, evaluation.records, scalars
        )
        for name, change in evaluation.phase_changes.items():
            text = f"{change.previous.value} → {change.phase.value}: {change.reason}"
            self._guard(
                "writing to TensorBoard", sink.write_text, f"oinfo/{name}/phase", text, step
            )
        if (
            evaluation.records
            and self.figure_every
            and (self.evaluations - 1) % self.figure_every == 0
        ):
            figure = size_bars(
                size_table(evaluation.records),
                title=f"step {step}",
                bias_note="bias-corrected" if self.bias_correct else "no bias correction",
            )
            self._guard("writing the figure", sink.write_figure, step, figure)

    def _guard(self, what: str, function: Callable[..., Any], *args: Any) -> None:
        """Call a sink; turn its failure into a warning so training and the other sinks go on."""
        try:
            function(*args)
        except Exception as error:
            warnings.warn(
                f"oinfo-monitor: {what} failed: {type(error).__name__}: {error}",
                OInfoMonitorWarning,
                stacklevel=4,
            )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the curves after a resume (history, phase trackers, counters)."""
        return {
            "version": 1,
            "history": [dict(record) for record in self.history],
            "evaluations": self.evaluations,
            "skipped_steps": list(self.skipped_steps),
            "phases": {name: tracker.state_dict() for name, tracker in self.trackers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict`; the history file is not rewritten (it already holds those records)."""
        if state.get("version") != 1:
            raise ValueError(f"unsupported OInfoMonitor state version {state.get('version')!r}")
        self.history = [dict(record) for record in state["history"]]
        self.evaluations = int(state["evaluations"])
        self.skipped_steps = [int(step) for step in state["skipped_steps"]]
        for name, tracker_state in state["phases"].items():
            if name in self.trackers:
                self.trackers[name].load_state_dict(tracker_state)

    def close(self) -> None:
        """Flush TensorBoard and close the writer if the monitor created it; safe to call twice."""
        if self.sink is not None:
            self._guard("flushing TensorBoard", self.sink.writer.flush)
            if self._owns_writer:
                self._guard("closing TensorBoard", self.sink.writer.close)
            self.sink = None

    def __enter__(self) -> OInfoMonitor:
        """Use the monitor as a context manager that closes it on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the monitor."""
        self.close()
