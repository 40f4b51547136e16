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

Rules that keep any training loop safe (see docs/monitor.md):

- **Steps.** Any integer-like step is accepted (int, numpy integer, integral float, one-element
  tensor). Each distinct step is evaluated at most once, and only steps beyond the last one
  evaluated: a repeated step (gradient accumulation, ``evaluate(s)`` then ``step(s)``, a resumed
  run) is silently ignored, a step below the last one (an epoch-local counter) is ignored with one
  warning. ``step`` and ``evaluate`` never raise; after ``close`` they warn once and do nothing.
- **Checks at construction.** Every option is validated and the probe runs once through the model
  on a few samples, so a bad option, a probe that does not fit and a layer that cannot be read
  raise before training starts.
- **History.** A history file that already holds records is refused unless ``resume=True``, which
  continues it: its steps count as evaluated, so nothing is written twice.
"""

from __future__ import annotations

import difflib
import inspect
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from oinfo_monitor.estimators import (
    SAMPLES_PER_VARIABLE,
    TiePolicy,
    copula_covariance,
    distinct_neurons,
    supported_size,
)
from oinfo_monitor.monitor.capture import (
    LayerSelector,
    capture_activations,
    materialize_probe,
    rank_bound,
    resolve_layers,
    unwrap_model,
)
from oinfo_monitor.monitor.figures import size_bars, size_table
from oinfo_monitor.monitor.options import Forward, MonitorSettings, Schedule, as_step, is_due
from oinfo_monitor.monitor.phases import PhaseChange
from oinfo_monitor.monitor.records import headline, read_records, records_from_result, write_records
from oinfo_monitor.monitor.sinks import TensorBoardSink
from oinfo_monitor.search import SearchResult, check_search, search_covariance

HISTORY_FILE = "oinfo_history.jsonl"
"""Name of the history file the monitor writes in its log directory."""

DRY_RUN_SAMPLES = 5
"""Probe samples run through the model at construction, to catch a probe or layer that does not fit."""

_MODEL_BOUND = ("target", "layers", "writer")


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


def _is_rank_zero() -> bool:
    """Whether this process should compute and write (always, unless a non-zero distributed rank)."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


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
    known = [name for name in inspect.signature(OInfoMonitor).parameters if name != "model"]
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
            raise TypeError(f"unknown OInfoMonitor option {name!r}{hint}")
    return MonitorSettings(
        **{k: v for k, v in options.items() if k not in (*_MODEL_BOUND, "probe")}
    )


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
            per layer; `layer_options` overrides any of them per layer name. Default sizes stop
            at what the probe supports (`SAMPLES_PER_VARIABLE` samples per variable) and, for a
            pre-activation Linear/Conv layer, at its input width (the rank of its outputs).
        logdir / writer: TensorBoard output (a writer you pass is not closed by the monitor).
        history_path: JSONL history file; defaults to ``<logdir>/oinfo_history.jsonl``.
        figure_every: log the bars-by-size figure every this many evaluations (0: never).
        ties, seed, bias_correct: copula tie policy, its seed, and the entropy bias correction.
        batch_size, max_samples: probe chunking and truncation.
        track_phases: run a `PhaseTracker` per layer and log phase changes as text; a dict
            instead of True passes its items to each tracker (e.g. ``{"min_bits": 0.2}``).
        on_evaluation: called with each `Evaluation` (exceptions in it are warned, not raised).
        forward: ``forward(model, batch)`` runs the model on one probe batch (a tensor, or a tuple
            of forward arguments); default ``model(*batch)``. Needed for a module without its own
            ``forward`` (e.g. a LightningModule whose ``training_step`` calls ``self.net``).
        probe_axis: the axis of every probe tensor that holds the samples (1 for time-first
            sequences); sample_axis: the axis of a layer's output that holds them, one int or a
            dict per layer name (default: from the module's ``batch_first``, else 0).
        resume: continue an existing history file (its steps count as evaluated); without it a
            history file that already holds records is refused.

    Examples:
        >>> net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> monitor = OInfoMonitor(net, torch.randn(200, 6), every=10, sizes=[3, 4])
        >>> evaluation = monitor.step(10)
        >>> sorted(record["size"] for record in evaluation.records)
        [3, 4]
        >>> monitor.step(10) is None  # each step is evaluated once
        True
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
        forward: Forward | None = None,
        probe_axis: int = 0,
        sample_axis: int | Mapping[str, int] | None = None,
        resume: bool = False,
    ) -> None:
        settings = MonitorSettings(
            capture=capture,
            activation=activation,
            token=token,
            every=every,
            sizes=sizes,
            strategy=strategy,
            search_options=search_options,
            layer_options=layer_options,
            logdir=logdir,
            history_path=history_path,
            figure_every=figure_every,
            ties=ties,
            seed=seed,
            bias_correct=bias_correct,
            batch_size=batch_size,
            max_samples=max_samples,
            track_phases=track_phases,
            on_evaluation=on_evaluation,
            forward=forward,
            probe_axis=probe_axis,
            sample_axis=sample_axis,
            resume=resume,
        )
        self.settings = settings
        self.model = model
        self.layers = resolve_layers(unwrap_model(model), layers)
        self._check_layer_names()
        self.inputs, self.target = materialize_probe(probe, target, max_samples, probe_axis)
        self.n_samples = int(self.inputs[0].shape[probe_axis])
        self.every = settings.schedule
        self.ties, self.seed, self.bias_correct = ties, seed, bias_correct
        self.search_options = {name: settings.layer_search(name) for name in self.layers}
        self.capture_options: dict[str, Any] = {
            "capture": capture,
            "activation": activation,
            "token": token,
            "batch_size": batch_size,
            "forward": forward,
            "probe_axis": probe_axis,
            "sample_axes": {name: settings.layer_sample_axis(name) for name in self.layers},
        }
        widths = self._dry_run()
        self.size_limits = {
            name: rank_bound(module) if capture == "pre" and activation is None else None
            for name, module in self.layers.items()
        }
        self._check_sizes(widths)
        self.active = _is_rank_zero()
        self.closed = False
        self.history: list[dict[str, Any]] = []
        self.evaluations = 0
        self.skipped_steps: list[int] = []
        self.last_step: int | None = None
        self.resumed_step: int | None = None
        self.trackers = settings.trackers(self.layers)
        self._warned: set[Any] = set()
        self._owns_writer = writer is None and logdir is not None
        if history_path is None and writer is not None:
            history_path = Path(writer.log_dir) / HISTORY_FILE
        elif history_path is None and logdir is not None:
            history_path = Path(logdir) / HISTORY_FILE
        self.history_path = Path(history_path) if history_path is not None else None
        if self.active:
            self._open_history()
        if writer is None and logdir is not None and self.active:
            writer = SummaryWriter(log_dir=str(logdir))
        self.sink = TensorBoardSink(writer) if writer is not None and self.active else None
        if self.sink is not None:
            self._guard(
                "writing the configuration",
                self.sink.write_header,
                list(self.layers),
                self.config(),
            )

    def _check_layer_names(self) -> None:
        """Options keyed by layer name must name monitored layers."""
        for option in ("layer_options", "sample_axis"):
            value = getattr(self.settings, option)
            unknown = sorted(set(value) - set(self.layers)) if isinstance(value, Mapping) else []
            if unknown:
                raise ValueError(
                    f"{option} names unmonitored layer(s) {unknown}; monitored: {list(self.layers)}"
                )

    def _dry_run(self) -> dict[str, int]:
        """Run a few probe samples through the model now, so a probe or layer that cannot work
        fails before training; return each layer's number of neurons."""
        axis = self.settings.probe_axis
        count = min(self.n_samples, DRY_RUN_SAMPLES)
        inputs = tuple(t.narrow(axis, 0, count) for t in self.inputs)
        try:
            found = capture_activations(self.model, inputs, self.layers, **self.capture_options)
        except Exception as error:
            raise ValueError(_probe_message(error, self.inputs)) from error
        return {name: int(values[0].numel()) for name, values in found.items()}

    def _check_sizes(self, widths: dict[str, int]) -> None:
        """Refuse explicit sizes no evaluation could search; say once where default sizes stop."""
        kind: Literal["none", "continuous", "discrete"] = "none"
        if self.target is not None:
            kind = "continuous" if self.target.is_floating_point() else "discrete"
        classes = int(torch.unique(self.target).numel()) if kind == "discrete" else 0
        supported = supported_size(self.n_samples, kind, classes)
        for name, options in self.search_options.items():
            width, limit = widths[name], self.size_limits[name]
            reasons = {width: f"the layer has {width} neurons"}
            reasons.setdefault(
                supported,
                f"{self.n_samples} probe samples support at most {supported} "
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
            if parsed is None and cap < width:
                warnings.warn(
                    f"oinfo-monitor: layer {name!r}: multiplets are limited to {cap} of its "
                    f"{width} neurons: {reasons[cap]}",
                    OInfoMonitorWarning,
                    stacklevel=3,
                )

    def _open_history(self) -> None:
        """Refuse a history file from an earlier run unless resuming; when resuming, continue it."""
        path = self.history_path
        if path is None or not path.exists() or path.stat().st_size == 0:
            return
        records = list(read_records(path))
        if not records:
            return
        steps = sorted({int(record["step"]) for record in records})
        if not self.settings.resume:
            raise ValueError(
                f"the history file {path} already holds {len(records)} records (steps "
                f"{steps[0]}..{steps[-1]}) from an earlier run; pass resume=True to continue it "
                "(steps up to the last one are then not evaluated again), or write to a new "
                "logdir / history_path"
            )
        self.history = records
        self.evaluations = len(steps)
        self.last_step = self.resumed_step = steps[-1]
        for step in steps:
            summary = headline(r for r in records if int(r["step"]) == step)
            for name, (synergy, redundancy, _) in summary.items():
                if name in self.trackers:
                    self.trackers[name].update(step, -synergy, redundancy)

    def config(self) -> dict[str, Any]:
        """The monitor's configuration as plain values (logged to TensorBoard as text)."""
        target = (
            "none"
            if self.target is None
            else ("discrete" if not self.target.is_floating_point() else "continuous")
        )
        return {
            "layers": list(self.layers),
            "probe_samples": self.n_samples,
            "target": target,
            "capture": self.settings.capture,
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

    def step(self, step: Any) -> Evaluation | None:
        """Evaluate if `step` is due under the schedule and beyond the last evaluated step.

        Returns the evaluation, or None. Never raises: anything wrong is warned once and skipped.
        """
        return self._run(step, scheduled=True)

    def evaluate(self, step: Any) -> Evaluation | None:
        """Measure every layer now, whatever the schedule, if `step` is beyond the last evaluated one.

        None if skipped (with a warning), already evaluated, or not rank 0. Never raises.
        """
        return self._run(step, scheduled=False)

    def _run(self, step: Any, scheduled: bool) -> Evaluation | None:
        """Accept the step, evaluate and publish; any failure is a warning and a None."""
        if not self.active:
            return None
        try:
            number = self._accept(step, scheduled)
            return None if number is None else self._evaluate_now(number)
        except Exception as error:  # a monitoring failure must never stop training
            self._warn_once(
                ("step", type(error).__name__),
                f"step {step!r} ignored: {type(error).__name__}: {error}",
            )
            return None

    def _accept(self, step: Any, scheduled: bool) -> int | None:
        """The step as an int if it should be evaluated now; else None (warned once per cause)."""
        if self.closed:
            self._warn_once("closed", "step()/evaluate() after close() does nothing")
            return None
        number = as_step(step)
        if number is None:
            self._warn_once(
                "type",
                f"step {step!r} ({type(step).__name__}) ignored: a step must be an integer "
                "(int, numpy integer, integral float or one-element tensor)",
            )
            return None
        if scheduled and not is_due(self.every, number):
            return None
        last = self.last_step
        if last is None or number > last:
            return number
        if self.resumed_step is not None and number <= self.resumed_step:
            self._warn_once(
                "resumed",
                f"steps up to {self.resumed_step} are already in the history "
                f"{self.history_path}; they are not evaluated again",
            )
        elif number < last:
            self._warn_once(
                "backwards",
                f"step {number} came after step {last}: the monitor evaluates only steps beyond "
                "the last one evaluated, so it needs a global step counter (e.g. "
                "epoch * len(loader) + batch), not an epoch-local one",
            )
        return None

    def _evaluate_now(self, step: int) -> Evaluation | None:
        """Evaluate `step` (marked as handled even if it fails) and publish the result."""
        self.last_step = step
        try:
            evaluation = self._evaluate(step)
        except Exception as error:  # a monitoring failure must never stop training
            self.skipped_steps.append(step)
            self._warn_once(
                ("evaluation", type(error).__name__),
                f"evaluation at step {step} skipped: {type(error).__name__}: {error}",
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
                self._warn_once(("layer", name), f"layer {name!r} skipped at step {step}: {error}")
                continue
            evaluation.results[name] = result
            context["probe_seconds"] = probe_seconds
            evaluation.records.extend(records_from_result(step, name, result, context))
        evaluation.seconds = time.perf_counter() - start
        return evaluation

    def _search_layer(self, name: str, values: Tensor) -> tuple[SearchResult, dict[str, Any]]:
        """Drop dead and duplicated neurons, estimate the copula covariance and search it."""
        values = values.reshape(values.shape[0], -1)
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            raise ValueError(f"{int((~finite).sum())} NaN/inf activation(s)")
        neurons = distinct_neurons(values)
        kept = neurons.kept
        if kept.numel() < 3:
            raise ValueError(
                f"only {kept.numel()} distinct non-constant neuron(s); need at least 3 "
                f"({len(neurons.dead)} constant, {len(neurons.duplicates)} duplicated)"
            )
        stats = copula_covariance(
            values[:, kept],
            y=self.target,
            bias_correct=self.bias_correct,
            ties=self.ties,
            seed=self.seed,
        )
        options = {k: v for k, v in self.search_options[name].items() if v is not None}
        result = search_covariance(
            stats,
            index_map=kept.tolist(),
            seed=self.seed,
            size_limit=self.size_limits[name],
            **options,
        )
        context = {
            "n_neurons": int(values.shape[1]),
            "dead_neurons": len(neurons.dead),
            "duplicate_neurons": len(neurons.duplicates),
            "capture": self.settings.capture,
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
        self._guard("tracking phases", self._track, evaluation)
        if self.sink is not None:
            self._write_tensorboard(evaluation)
        if self.settings.on_evaluation is not None:
            self._guard("the on_evaluation callback", self.settings.on_evaluation, evaluation)

    def _track(self, evaluation: Evaluation) -> None:
        """Feed each layer's headline to its phase tracker; keep the changes it reports."""
        for name, (synergy, redundancy, _) in headline(evaluation.records).items():
            tracker = self.trackers.get(name)
            change = tracker.update(evaluation.step, -synergy, redundancy) if tracker else None
            if change is not None:
                evaluation.phase_changes[name] = change

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
            scalars[f"oinfo/{record['layer']}/duplicate_neurons"] = record["duplicate_neurons"]
        self._guard(
            "writing to TensorBoard", sink.write_evaluation, step, evaluation.records, scalars
        )
        for name, change in evaluation.phase_changes.items():
            text = f"{change.previous.value} → {change.phase.value}: {change.reason}"
            self._guard(
                "writing to TensorBoard", sink.write_text, f"oinfo/{name}/phase", text, step
            )
        figure_every = self.settings.figure_every
        if evaluation.records and figure_every and (self.evaluations - 1) % figure_every == 0:
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
            self._warn_once(
                (what, type(error).__name__), f"{what} failed: {type(error).__name__}: {error}"
            )

    def _warn_once(self, key: Any, message: str) -> None:
        """Warn about one kind of problem the first time it happens; later ones stay silent."""
        if key in self._warned:
            return
        self._warned.add(key)
        warnings.warn(
            f"oinfo-monitor: {message} (further warnings of this kind are not shown)",
            OInfoMonitorWarning,
            stacklevel=4,
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the curves after a resume (history, phase trackers, counters)."""
        return {
            "version": 2,
            "history": [dict(record) for record in self.history],
            "evaluations": self.evaluations,
            "skipped_steps": list(self.skipped_steps),
            "last_step": self.last_step,
            "phases": {name: tracker.state_dict() for name, tracker in self.trackers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict`; the history file is not rewritten (it already holds those records).

        Steps up to the later of the state's last step and the history file's last step count as
        evaluated, so resuming from an older checkpoint never writes a step twice; when the monitor
        continued a history file (``resume=True``), its records stay the in-memory history.
        """
        if state.get("version") not in (1, 2):
            raise ValueError(f"unsupported OInfoMonitor state version {state.get('version')!r}")
        history = [dict(record) for record in state["history"]]
        steps = [int(record["step"]) for record in history] + [
            int(step) for step in state["skipped_steps"]
        ]
        if state.get("last_step") is not None:
            steps.append(int(state["last_step"]))
        if self.resumed_step is None:  # else the history file read on resume is the fuller record
            self.history = history
            self.evaluations = int(state["evaluations"])
        self.skipped_steps = [int(step) for step in state["skipped_steps"]]
        for name, tracker_state in state["phases"].items():
            if name in self.trackers:
                self.trackers[name].load_state_dict(tracker_state)
        candidates = [s for s in (self.last_step, max(steps, default=None)) if s is not None]
        self.last_step = max(candidates) if candidates else None

    def close(self) -> None:
        """Flush TensorBoard and close the writer if the monitor created it; safe to call twice.

        After `close`, `step` and `evaluate` do nothing (with one warning).
        """
        self.closed = True
        if self.sink is not None:
            self._guard("flushing TensorBoard", self.sink.writer.flush)
            if self._owns_writer:
                self._guard("closing TensorBoard", self.sink.writer.close)
            self.sink = None

    def __getstate__(self) -> dict[str, Any]:
        """Refuse to pickle: the monitor holds a live model, a TensorBoard writer and open files."""
        raise TypeError(
            "an OInfoMonitor cannot be pickled or deep-copied (it holds the live model and a "
            "TensorBoard writer); save monitor.state_dict() and call load_state_dict() on a new "
            "monitor instead"
        )

    def __enter__(self) -> OInfoMonitor:
        """Use the monitor as a context manager that closes it on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the monitor."""
        self.close()


def _probe_message(error: Exception, inputs: tuple[Tensor, ...]) -> str:
    """Explain why the probe could not run through the model at construction, with a hint."""
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
