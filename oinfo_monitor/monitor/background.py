"""Evaluation off the training path: scoring runs on one worker thread while training goes on.

With ``OInfoMonitor(..., background=True)`` the training thread only captures the probe's
activations (that must see the current weights) and hands them to a `BackgroundWorker`, which
scores them (copula, search, noise and chance levels) and publishes the evaluation (history,
phases, sinks, the `on_evaluation` callback) on its own thread, one evaluation at a time, in step
order. Threads are enough: torch releases the GIL inside its kernels, which is where scoring spends
its time.

- **Threads.** The worker thread inherits the process's intra-op thread count and the math layer
  pins its own work to one thread (`estimators.threads.one_cpu_thread`). With PyTorch's OpenMP
  backend (the CPU wheels), `torch.set_num_threads` sets the calling thread's OpenMP and MKL
  counts, so the worker never changes the training thread's count, and the training results do
  not depend on the worker (tests/test_background.py trains with two threads and compares the
  weights bit for bit); what it does change for a moment is the count that threads created
  meanwhile start with.
- **RNG.** Scoring draws from its own seeded generators, never from the global RNG.
- **Queue.** At most `max_pending` evaluations wait or run; a step that would queue one more
  waits until the oldest is published (so no evaluation is dropped and the values stay those of
  a foreground run). The waits are counted (`waits`, `waited_seconds`) and the monitor warns once.
- **Warnings.** The worker never warns itself: its warnings are handed to the training thread,
  which emits them at its next `step`, `flush` or `close` (each kind once, as in the foreground).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

DEFAULT_MAX_PENDING = 4
"""Evaluations that may wait or run in the background before the training thread waits."""


class BackgroundWorker:
    """Runs jobs one at a time, in the order submitted, on one thread; at most `max_pending` at once.

    Examples:
        >>> worker = BackgroundWorker(max_pending=2)
        >>> done = []
        >>> for i in range(5):
        ...     _ = worker.submit(lambda i=i: done.append(i))
        >>> worker.close()
        >>> done
        [0, 1, 2, 3, 4]
    """

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        """Start the worker thread."""
        self.max_pending = max_pending
        self.waits = 0
        self.waited_seconds = 0.0
        self._local = threading.local()
        self._slots = threading.BoundedSemaphore(max_pending)
        self._jobs: deque[Future[Any]] = deque()
        self._deferred: deque[tuple[Any, str]] = deque()
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="oinfo-monitor", initializer=self._mark
        )

    def _mark(self) -> None:
        """Runs first on the worker thread: marks it, so `in_worker` can tell it apart."""
        self._local.worker = True

    def in_worker(self) -> bool:
        """Whether the calling thread is this worker's thread."""
        return bool(getattr(self._local, "worker", False))

    def submit(self, job: Callable[[], object]) -> float:
        """Queue `job`; if `max_pending` jobs are already queued or running, wait for the oldest
        to finish first. Returns the seconds waited (0.0 when there was room)."""
        waited = 0.0
        if not self._slots.acquire(blocking=False):
            began = time.perf_counter()
            self._slots.acquire()
            waited = time.perf_counter() - began
            self.waits += 1
            self.waited_seconds += waited
        while self._jobs and self._jobs[0].done():
            self._jobs.popleft()
        self._jobs.append(self._executor.submit(self._run, job))
        return waited

    def behind(self, step: int) -> str:
        """The warning for a step that had to wait for the worker."""
        return (
            f"the background evaluations fell {self.max_pending} behind at step {step}, so "
            f"training waited for them ({self.waits} wait(s), {self.waited_seconds:.2f} s so "
            "far: see monitor.worker); a sparser schedule or a larger max_pending avoids it"
        )

    def _run(self, job: Callable[[], object]) -> None:
        """Run one job on the worker thread; whatever it raises becomes a deferred warning."""
        try:
            job()
        except Exception as error:  # the monitor's jobs catch their own errors; this is a backstop
            self.defer(("background", type(error).__name__), f"background job failed: {error}")
        finally:
            self._slots.release()

    @property
    def pending(self) -> int:
        """Jobs queued or running now."""
        return sum(not job.done() for job in self._jobs)

    def defer(self, key: Any, message: str) -> None:
        """Keep a warning for the training thread to emit (see `take_deferred`)."""
        self._deferred.append((key, message))

    def take_deferred(self) -> list[tuple[Any, str]]:
        """The warnings deferred so far, oldest first; they are handed out once."""
        taken = []
        while self._deferred:
            taken.append(self._deferred.popleft())
        return taken

    def wait(self) -> None:
        """Block until every job submitted so far has finished."""
        while self._jobs:
            self._jobs.popleft().result()

    def close(self) -> None:
        """Finish every submitted job, then stop the thread; safe to call twice."""
        self.wait()
        self._executor.shutdown(wait=True)
