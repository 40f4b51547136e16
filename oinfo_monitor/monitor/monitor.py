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

import functools
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from oinfo_monitor.estimators import TiePolicy
from oinfo_monitor.monitor.background import DEFAULT_MAX_PENDING, BackgroundWorker
from oinfo_monitor.monitor.capture import capture_activations
from oinfo_monitor.monitor.distributed import RankShare
from oinfo_monitor.monitor.layers import LayerSelector, rank_bound, resolve_layers, unwrap_model
from oinfo_monitor.monitor.options import Forward, MonitorSettings, OInfoMonitorWarning
from oinfo_monitor.monitor.preflight import check_sizes, dry_run
from oinfo_monitor.monitor.probe import keyword_probe, materialize_probe
from oinfo_monitor.monitor.records import Evaluation, earlier_records, headline
from oinfo_monitor.monitor.scoring import LayerScorer, assemble, problems
from oinfo_monitor.monitor.sinks import DEFAULT_TAG_BUDGET, Sink, monitor_sinks
from oinfo_monitor.monitor.steps import Schedule, StepGate
from oinfo_monitor.monitor.trust import Trust

__all__ = ["HISTORY_FILE", "OInfoMonitor"]

HISTORY_FILE = "oinfo_history.jsonl"
"""Name of the history file the monitor writes in its log directory."""


class OInfoMonitor:
    """Periodically measures each layer's synergy and redundancy on a fixed probe set while a model trains.

    Args:
        model: the model being trained (a DDP/DataParallel/`torch.compile` wrapper is unwrapped).
        probe: a tensor, a tuple of forward arguments, a dict of keyword inputs (run as
            ``model(**batch)``), or a DataLoader/iterable of batches; read once, so every evaluation sees the same samples (see `capture.materialize_probe`).
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
        tag_budget: the most TensorBoard scalar tags per layer (see `sinks.TensorBoardSink`).
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
        noise_resamples, surrogates, null_every: every value carries its noise and its chance
            level (see `search.uncertainty`): the bootstrap SD over `noise_resamples` resamples
            (0: off), and the 5%/95% quantiles of the same search on `surrogates` column-permuted
            probes (0: off), recomputed every `null_every` evaluations, or sooner when the layer's
            count of distinct neurons moved by more than a tenth, and reused in between.
        background, max_pending: score and publish on a worker thread while training goes on
            (`step` then captures the activations and returns None; see `monitor.background`),
            with at most `max_pending` evaluations queued before `step` waits.
        split_ranks: under `torch.distributed`, every rank scores a share of the layers and rank
            0 writes (see `monitor.distributed`); False: rank 0 evaluates alone.

    Examples:
        >>> import torch
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
        tag_budget: int = DEFAULT_TAG_BUDGET,
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
        noise_resamples: int = 10,
        surrogates: int = 19,
        null_every: int = 50,
        background: bool = False,
        max_pending: int = DEFAULT_MAX_PENDING,
        split_ranks: bool = True,
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
            tag_budget=tag_budget,
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
            noise_resamples=noise_resamples,
            surrogates=surrogates,
            null_every=null_every,
            background=background,
            max_pending=max_pending,
            split_ranks=split_ranks,
        )
        self.settings = settings
        self.model = model
        self.layers = resolve_layers(unwrap_model(model), layers)
        settings.check_layer_names(self.layers)
        if isinstance(probe, Mapping):  # keyword inputs, e.g. input_ids and attention_mask
            probe, forward = keyword_probe(probe, forward)
        self.inputs, self.target = materialize_probe(probe, target, max_samples, probe_axis)
        self.n_samples = int(self.inputs[0].shape[probe_axis])
        self.every = settings.schedule
        self.gate = StepGate(settings.schedule)
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
        widths = dry_run(self.model, self.inputs, self.layers, self.capture_options)
        self.size_limits = {
            name: rank_bound(module) if capture == "pre" and activation is None else None
            for name, module in self.layers.items()
        }
        check_sizes(self.search_options, widths, self.size_limits, self.n_samples, self.target)
        self.share = RankShare.build(widths, split_ranks, model)
        self.active = self.share.rank == 0  # the rank that writes
        self.history: list[dict[str, Any]] = []
        self.evaluations = 0
        self.skipped_steps: list[int] = []
        self.trackers = settings.trackers(self.layers)
        self.trust = Trust(
            settings.noise_resamples,
            settings.surrogates,
            settings.null_every,
            bias_correct,
            seed,
        )
        self.scorer = LayerScorer(
            self.target, ties, seed, bias_correct, self.search_options, self.size_limits,
            self.trust, capture,
        )  # fmt: skip
        self.worker = BackgroundWorker(max_pending) if background else None
        self._warned: set[Any] = set()
        if history_path is None and writer is not None:
            history_path = Path(writer.log_dir) / HISTORY_FILE
        elif history_path is None and logdir is not None:
            history_path = Path(logdir) / HISTORY_FILE
        self.history_path = Path(history_path) if history_path is not None else None
        self.sinks: list[Sink] = []
        if self.active:
            self._open_history()
            self.sinks = monitor_sinks(self.history_path, writer, settings)
        self.gate.last, self.gate.resumed = self.share.agree((self.gate.last, self.gate.resumed))
        for sink in self.sinks:
            self.guard("starting a sink", sink.start, list(self.layers), self.config())

    def _open_history(self) -> None:
        """Continue the history file of an earlier run (see `records.earlier_records`)."""
        if self.history_path is None:
            return
        records = earlier_records(self.history_path, self.settings.resume)
        by_step: dict[int, list[dict[str, Any]]] = {}
        for record in records:
            by_step.setdefault(int(record["step"]), []).append(record)
        steps = sorted(by_step)
        for step in steps:
            done = by_step[step]
            self.guard(
                "replaying phases", self._track, Evaluation(step, done, {}, summary=headline(done))
            )
        self.history, self.evaluations = records, len(steps)
        if steps:
            self.gate.last = self.gate.resumed = steps[-1]

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
        if not self.share.takes_part:
            return None
        self._emit_deferred()
        try:
            number, refusal = self.gate.admit(step, scheduled)
            if refusal is not None:
                self._warn_once(*refusal)
            return None if number is None else self._evaluate_now(number)
        except Exception as error:  # a monitoring failure must never stop training
            self._warn_once(
                ("step", type(error).__name__),
                f"step {step!r} ignored: {type(error).__name__}: {error}",
            )
            return None

    def _evaluate_now(self, step: int) -> Evaluation | None:
        """Capture the probe's activations now (they must see the current weights), then score
        and publish them here, or hand them to the background worker and return None."""
        start = time.perf_counter()
        try:
            captured: dict[str, Tensor] | Exception = capture_activations(
                self.model, self.inputs, self.layers, **self.capture_options
            )
        except Exception as error:  # reported by `_complete`, on every rank alike
            captured = error
        job = functools.partial(self._complete, step, captured, time.perf_counter() - start)
        if self.worker is None:
            return job()
        if self.worker.submit(job) > 0:
            self._warn_once(("behind",), self.worker.behind(step))
        return None

    def _complete(
        self, step: int, captured: dict[str, Tensor] | Exception, probe_seconds: float
    ) -> Evaluation | None:
        """Score the captured activations (this rank's share) and publish the evaluation; the
        step counts as evaluated even if this fails."""
        try:
            evaluation = self._score(step, captured, probe_seconds)
        except Exception as error:  # a monitoring failure must never stop training
            self.skipped_steps.append(step)
            self._warn_once(
                ("evaluation", type(error).__name__),
                f"evaluation at step {step} skipped: {type(error).__name__}: {error}",
            )
            return None
        if evaluation is None:  # a share sent to rank 0, which publishes
            return None
        self._publish(evaluation)
        return evaluation

    def _score(
        self, step: int, captured: dict[str, Tensor] | Exception, probe_seconds: float
    ) -> Evaluation | None:
        """Score every layer, or under a split this rank's share, gathered on rank 0 (None on
        the others); layer-level problems skip the layer, with one warning."""
        began = time.perf_counter()
        if self.share.splitting:
            scores = self.share.scores(step, captured, self.scorer)
        elif isinstance(captured, Exception):
            raise captured
        else:
            scores = self.scorer.score(step, captured)
        if scores is None:
            return None
        for key, message in problems(step, scores):
            self._warn_once(key, message)
        return assemble(step, list(self.layers), scores, probe_seconds, began)

    def _publish(self, evaluation: Evaluation) -> None:
        """Keep the records, track phases, send the evaluation to every sink and the callback;
        each failure is warned about, not raised, and the others go on."""
        self.evaluations += 1
        self.history.extend(evaluation.records)
        self.guard("tracking phases", self._track, evaluation)
        if evaluation.records:
            for sink in self.sinks:
                self.guard(f"writing to {type(sink).__name__}", sink.write, evaluation)
        if self.settings.on_evaluation is not None:
            self.guard("the on_evaluation callback", self.settings.on_evaluation, evaluation)

    def _track(self, evaluation: Evaluation) -> None:
        """Feed each layer's headline to its phase tracker; keep the changes it reports."""
        for name, (synergy, redundancy, _) in evaluation.summary.items():
            tracker = self.trackers.get(name)
            if tracker is None:
                continue
            first = next(r for r in evaluation.records if r["layer"] == name)
            chance = first["headline_synergy_chance"]
            change = tracker.update(
                evaluation.step,
                -synergy,
                redundancy,
                synergy_sd=first["headline_synergy_sd"],
                significant=None if chance is None else synergy < chance,
            )
            if change is not None:
                evaluation.phase_changes[name] = change

    def guard(self, what: str, function: Callable[..., Any], *args: Any) -> None:
        """Call `function(*args)` (a sink, the `on_evaluation` callback, an integration's logger),
        turning a failure into a warning, once per kind, so that training and the rest go on."""
        try:
            function(*args)
        except Exception as error:
            self._warn_once(
                (what, type(error).__name__), f"{what} failed: {type(error).__name__}: {error}"
            )

    def _warn_once(self, key: Any, message: str) -> None:
        """Warn about one kind of problem the first time it happens; later ones stay silent.
        On the background worker's thread the warning is deferred to the training thread."""
        if self.worker is not None and self.worker.in_worker():
            self.worker.defer(key, message)
            return
        if key in self._warned:
            return
        self._warned.add(key)
        warnings.warn(
            f"oinfo-monitor: {message} (further warnings of this kind are not shown)",
            OInfoMonitorWarning,
            stacklevel=4,
        )

    def _emit_deferred(self) -> None:
        """Emit, on the calling (training) thread, the warnings the background worker deferred."""
        if self.worker is not None:
            for key, message in self.worker.take_deferred():
                self._warn_once(key, message)

    def flush(self) -> None:
        """Wait until every evaluation handed to the background worker is published (no-op in
        the foreground); `history`, `evaluations` and `state_dict` are then complete."""
        if self.worker is not None:
            self.worker.wait()
            self._emit_deferred()

    @property
    def last_step(self) -> int | None:
        """The last step evaluated (or recorded in a continued history file), None before any."""
        return self.gate.last

    @property
    def closed(self) -> bool:
        """Whether `close` was called; `step` and `evaluate` then do nothing."""
        return self.gate.closed

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the curves after a resume (history, phase trackers,
        counters), once the background evaluations are published (see `flush`)."""
        self.flush()
        return {
            "version": 2,
            "history": [dict(record) for record in self.history],
            "evaluations": self.evaluations,
            "skipped_steps": list(self.skipped_steps),
            "last_step": self.gate.last,
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
        self.flush()
        history = [dict(record) for record in state["history"]]
        steps = [int(record["step"]) for record in history] + [
            int(step) for step in state["skipped_steps"]
        ]
        if state.get("last_step") is not None:
            steps.append(int(state["last_step"]))
        if self.gate.resumed is None:  # else the history file read on resume is the fuller record
            self.history = history
            self.evaluations = int(state["evaluations"])
        self.skipped_steps = [int(step) for step in state["skipped_steps"]]
        for name, tracker_state in state["phases"].items():
            if name in self.trackers:
                self.trackers[name].load_state_dict(tracker_state)
        candidates = [s for s in (self.gate.last, max(steps, default=None)) if s is not None]
        self.gate.last = max(candidates) if candidates else None

    def close(self) -> None:
        """Wait for the background evaluations, flush TensorBoard and close the writer if the
        monitor created it; safe to call twice.

        After `close`, `step` and `evaluate` do nothing (with one warning).
        """
        self.gate.closed = True
        if self.worker is not None:
            self.worker.close()
            self._emit_deferred()
        for sink in self.sinks:
            self.guard(f"closing {type(sink).__name__}", sink.close)
        self.sinks = []

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
