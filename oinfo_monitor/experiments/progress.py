"""A progress bar for training with the monitor whose time left follows measured costs."""

from __future__ import annotations

import math
import statistics
import threading
import time

from tqdm import tqdm

from oinfo_monitor.monitor.records import Evaluation


class Progress:
    """A progress bar whose time left follows measured costs rather than the step count.

    A schedule dense early (the grokking demo's puts 33 of its 116 evaluations in the first 1% of
    the steps) with evaluations that cost as much as dozens of training steps makes a bar counting
    steps crawl at first and then promise far too little. This bar advances in seconds: it is the time
    elapsed out of the time elapsed plus the time left, estimated from the mean seconds per
    training step and per evaluation so far. Evaluations that computed chance levels (the same
    search on surrogates, every `null_every` evaluations, many times a plain evaluation's cost) are
    averaged apart and expected at that cadence. With the evaluations in the background, training and
    scoring overlap and the time left is the longer of the two queues; otherwise it is their sum.
    `stepped` is called on the training thread, `evaluated` (the monitor's `on_evaluation`) on the
    worker's; a lock keeps them apart.

    Examples:
        >>> progress = Progress(10, 2, background=True, quiet=True)
        >>> progress.stepped(0.0)
        >>> progress.steps_done, progress.left() >= 0
        (1, True)
        >>> progress.close()
    """

    def __init__(
        self,
        steps: int,
        evaluations: int,
        background: bool,
        quiet: bool,
        desc: str = "training",
        null_every: int = 0,
    ) -> None:
        """A bar for `steps` training steps and `evaluations` evaluations (`quiet`: no bar), with
        chance levels every `null_every` evaluations (0: none)."""
        self.steps, self.evaluations, self.background = steps, evaluations, background
        self.null_every = null_every
        self.steps_done = self.evaluations_done = 0
        self.training_seconds = self.evaluation_seconds = self.monitor_seconds = 0.0
        self.costs: dict[bool, list[float]] = {False: [], True: []}  # by "computed chance levels"
        self.accuracy = self.synergy = ""
        self.lock = threading.Lock()
        self.started = self.last = self.shown = time.perf_counter()
        self.bar = tqdm(
            total=1.0,
            desc=desc,
            disable=quiet,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}] {postfix}",
        )

    def stepped(self, monitor_seconds: float, steps: int = 1) -> None:
        """A training step is done, of which `monitor_seconds` in the monitor's `step`."""
        now = time.perf_counter()
        with self.lock:
            self.training_seconds += now - self.last - monitor_seconds
            self.monitor_seconds += monitor_seconds
            self.steps_done += steps
            self.last = now
            self._show(now)

    def evaluated(self, evaluation: Evaluation) -> None:
        """An evaluation is published (called by the monitor, on the worker thread if any)."""
        with self.lock:
            self.evaluations_done += 1
            self.evaluation_seconds += evaluation.seconds
            chance = any(r.get("chance_step") == evaluation.step for r in evaluation.records)
            self.costs[chance].append(evaluation.seconds)
            if evaluation.summary:  # the first layer's headline synergy
                synergy = next(iter(evaluation.summary.values()))[0]
                self.synergy = f"min Ω {synergy:.3f} bits"
            self._show(time.perf_counter())

    def left(self) -> float:
        """Estimated seconds until training and every evaluation are done."""
        per_step = self.training_seconds / max(self.steps_done, 1)
        training = (self.steps - self.steps_done) * per_step
        everything = self.costs[False] + self.costs[True]
        mean = {kind: statistics.fmean(c or everything or [0.0]) for kind, c in self.costs.items()}
        pending = range(self.evaluations_done, self.evaluations)
        chance = sum(self.null_every > 0 and i % self.null_every == 0 for i in pending)
        scoring = (len(pending) - chance) * mean[False] + chance * mean[True]
        return max(training, scoring) if self.background else training + scoring

    def _show(self, now: float) -> None:
        """Move the bar to elapsed / (elapsed + left) and refresh its text, at most ten times a
        second (under the lock)."""
        if now - self.shown < 0.1:
            return
        self.shown, elapsed = now, now - self.started
        self.bar.total = elapsed + self.left()
        self.bar.n = elapsed
        self.bar.set_postfix_str(
            f"step {self.steps_done}/{self.steps}, evaluation {self.evaluations_done}/"
            f"{self.evaluations} {self.accuracy} {self.synergy}",
            refresh=False,
        )
        self.bar.refresh()

    def close(self) -> None:
        """Show the final state and close the bar."""
        self.shown = -math.inf
        self._show(time.perf_counter())
        self.bar.close()
