"""Run an experiment's trials serially, in a local process pool or as Ray tasks, results in submission order.

The sweeps (`grokking_sweep`, `mnist_layerwise`) hand `run_trials` one function and one tuple of
arguments per trial (a setting and a seed, say). Every backend gives back the same results: the
trials are seeded and each runs with the same number of torch threads (``threads``, 1 by default).

- ``serial``: one after the other in this process, for debugging.
- ``pool`` (the default): a local pool of fresh (spawned) processes, ``workers`` at a time.
- ``ray``: one Ray task per trial, on a local Ray started for the call (and shut down after it)
  or, with ``address``, on a running cluster (whose nodes need this package installed and, for
  the sweeps, the runs folder on a shared file system). An already initialised Ray is used as is.

Every trial runs even when another fails; then `TrialError` names each failed trial by its
arguments. Ctrl-C, SIGTERM (``kill PID``) or an exception raised by ``on_result`` stops the workers.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from oinfo_monitor.cli.options import positive_int
from oinfo_monitor.experiments.common import set_threads

BACKENDS = ("serial", "pool", "ray")
"""Where the trials run: one after the other here, a local process pool, or Ray tasks."""

Getter = Callable[[], Any]
"""Waits for one trial and returns its result, or raises the trial's exception."""


class TrialError(RuntimeError):
    """Some trials failed: the message names each by its arguments; ``failures`` holds (arguments, error)."""

    def __init__(self, message: str, failures: list[tuple[tuple[Any, ...], Exception]]) -> None:
        """Keep the message and the failed trials' arguments and exceptions."""
        super().__init__(message)
        self.failures = failures


def add_backend(parser: argparse._ActionsContainer) -> None:
    """``--backend``, ``--workers`` and ``--ray-address``: where a sweep's trials run.

    >>> parser = argparse.ArgumentParser()
    >>> add_backend(parser)
    >>> vars(parser.parse_args(["--workers", "3"]))
    {'backend': 'pool', 'workers': 3, 'ray_address': None}
    """
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="pool",
        help="run the trials in a local process pool, as Ray tasks (pip install "
        "'oinfo-monitor[ray]'), or one after the other in this process (for debugging)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="trials at a time in the pool or on the local Ray (default: CPU count ÷ --threads)",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="with --backend ray: a running Ray cluster, e.g. ray://head:10001 or auto "
        "(default: start a local Ray for the sweep)",
    )


def default_workers(threads: int) -> int:
    """Trials at a time that fill this process's CPUs with `threads` torch threads each (0: all CPUs).

    >>> default_workers(threads=10**6)
    1
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // threads) if threads > 0 else 1


def describe_trial(function: Callable[..., Any], arguments: Sequence[Any]) -> str:
    """A trial as a call, ``name(parameter=value, ...)``, for error messages.

    Arguments bound by a `functools.partial` (a sweep's flags) are left out.

    >>> def run_one(flags, setting, seed): ...
    >>> describe_trial(functools.partial(run_one, {"steps": 2000}), ("wd2", 3))
    "run_one(setting='wd2', seed=3)"
    """
    name = getattr(function, "__name__", None) or getattr(function, "func", function).__name__
    try:
        bound = inspect.signature(function).bind(*arguments).arguments
        text = ", ".join(f"{key}={value!r}" for key, value in bound.items())
    except (TypeError, ValueError):  # no signature, or arguments that do not fit it
        text = ", ".join(repr(value) for value in arguments)
    return f"{name}({text})"


def call(function: Callable[..., Any], arguments: Sequence[Any], threads: int) -> Any:
    """Run one trial with `threads` torch threads (0: PyTorch's default); what every backend runs.

    >>> call(pow, (2, 10), threads=1)
    1024
    """
    set_threads(threads)
    return function(*arguments)


def run_trials(
    function: Callable[..., Any],
    argument_list: Sequence[Sequence[Any]],
    *,
    backend: str = "pool",
    workers: int | None = None,
    threads: int = 1,
    address: str | None = None,
    on_result: Callable[[tuple[Any, ...], Any], None] | None = None,
) -> list[Any]:
    """Run ``function(*arguments)`` for every entry of `argument_list` on `backend`; results in submission order.

    `workers` trials run at a time (default: `default_workers`); `address` is a Ray cluster's
    (``backend="ray"`` only). ``on_result(arguments, result)`` sees each result as soon as it and
    every earlier one are in (a sweep prints or rewrites its figures there). A failed trial does
    not stop the others; at the end `TrialError` names every failed one by its arguments.

    >>> run_trials(pow, [(2, 3), (3, 2)], backend="serial")
    [8, 9]
    >>> run_trials(divmod, [(7, 2), (1, 0)], backend="serial")
    Traceback (most recent call last):
    ...
    oinfo_monitor.experiments.trials.TrialError: 1 of 2 trials failed: divmod(x=1, y=0): ZeroDivisionError: integer division or modulo by zero
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if address is not None and (backend != "ray" or workers is not None):
        raise ValueError("a Ray address needs backend='ray' and no workers (the cluster decides)")
    trials = [tuple(arguments) for arguments in argument_list]
    workers = min(workers or default_workers(threads), max(len(trials), 1))
    results: list[Any] = []
    failures: list[tuple[tuple[Any, ...], Exception]] = []
    with (
        _terminate_stops_trials(),
        _submitted(function, trials, backend, workers, threads, address) as getters,
    ):
        for arguments, get in zip(trials, getters, strict=True):
            try:
                result = get()
            except Exception as error:
                failures.append((arguments, error))
                continue
            results.append(result)
            if on_result is not None:
                on_result(arguments, result)
    if failures:
        lines = [f"{describe_trial(function, a)}: {type(e).__name__}: {e}" for a, e in failures]
        message = f"{len(failures)} of {len(trials)} trials failed: " + "; ".join(lines)
        raise TrialError(message, failures) from failures[0][1]
    return results


def _submitted(
    function: Callable[..., Any],
    trials: list[tuple[Any, ...]],
    backend: str,
    workers: int,
    threads: int,
    address: str | None,
) -> contextlib.AbstractContextManager[list[Getter]]:
    """Start the trials on `backend`; the context holds one `Getter` per trial, and stops what still runs on an error."""
    if backend == "pool":
        return _process_pool(function, trials, workers, threads)
    if backend == "ray":
        return _ray_tasks(function, trials, workers, threads, address)
    return contextlib.nullcontext(
        [functools.partial(call, function, arguments, threads) for arguments in trials]
    )


@contextlib.contextmanager
def _terminate_stops_trials() -> Iterator[None]:
    """While trials run, SIGTERM (``kill PID``, the way to stop a sweep run in the background, where
    Ctrl-C is ignored) exits through the backends' clean-up, as Ctrl-C does, so no worker is left behind.

    Only from the main thread and only where SIGTERM has its default action (no handler of the caller's).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        """Exit with the status a SIGTERM gives (128 + 15), unwinding through the clean-up."""
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _register_worker(pids: Any) -> None:
    """Pool initializer: leave Ctrl-C to the parent (which stops the workers) and report this worker's pid."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pids.put(os.getpid())


@contextlib.contextmanager
def _process_pool(
    function: Callable[..., Any], trials: list[tuple[Any, ...]], workers: int, threads: int
) -> Iterator[list[Getter]]:
    """The trials submitted to a pool of `workers` spawned processes; on an error they are terminated."""
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch state
    pids = context.SimpleQueue()
    pool = ProcessPoolExecutor(workers, context, initializer=_register_worker, initargs=(pids,))
    futures: list[Future[Any]] = []
    try:
        futures += [pool.submit(call, function, arguments, threads) for arguments in trials]
        yield [future.result for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()  # those not started
        while not pids.empty():  # and those running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pids.get(), signal.SIGTERM)
        raise
    finally:
        pool.shutdown(wait=True)  # joins the workers, finished or terminated
        pids.close()


@contextlib.contextmanager
def _ray_tasks(
    function: Callable[..., Any],
    trials: list[tuple[Any, ...]],
    workers: int,
    threads: int,
    address: str | None,
) -> Iterator[list[Getter]]:
    """The trials as Ray tasks of ``max(threads, 1)`` CPUs each; on an error they are cancelled."""
    try:
        import ray
    except ImportError:
        raise SystemExit(
            "error: --backend ray needs Ray: pip install 'oinfo-monitor[ray]'"
        ) from None
    cpus = max(threads, 1)
    started = not ray.is_initialized()
    if started and address is None:  # a local Ray on the loopback interface, sized for `workers`
        ray.init(num_cpus=workers * cpus, include_dashboard=False, _node_ip_address="127.0.0.1")
    elif started:
        ray.init(address=address)
    try:
        task = ray.remote(num_cpus=cpus)(call)
        references = [task.remote(function, arguments, threads) for arguments in trials]
        try:
            yield [functools.partial(_ray_result, reference) for reference in references]
        except BaseException:
            for reference in references:
                ray.cancel(reference, force=True)
            raise
    finally:
        if started:
            ray.shutdown()


def _ray_result(reference: Any) -> Any:
    """Wait for one Ray task; raise the trial's own exception, with Ray's remote traceback as its cause."""
    import ray

    try:
        return ray.get(reference)
    except ray.exceptions.RayTaskError as error:
        if error.cause is None:
            raise
        raise error.cause from error
