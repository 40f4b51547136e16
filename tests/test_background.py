"""OInfoMonitor(background=True): the same records as in the foreground, in step order, training untouched."""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from oinfo_monitor import OInfoMonitor, OInfoMonitorWarning
from oinfo_monitor.monitor.background import BackgroundWorker
from oinfo_monitor.monitor.records import RECORD_FIELDS, read_records

# Small but complete: exhaustive search, bootstrap noise and chance levels (recomputed every 2).
OPTIONS: dict[str, Any] = {
    "strategy": "exhaustive",
    "sizes": [3, 4],
    "noise_resamples": 3,
    "surrogates": 3,
    "null_every": 2,
}
VALUES = [key for key in RECORD_FIELDS if not key.endswith("_seconds")]


def make_data(samples: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(samples, 8, generator=generator)
    return x, (x[:, 0] * x[:, 1] > 0).long()


def net() -> nn.Module:
    return nn.Sequential(
        nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 2)
    )


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, monitor: Any) -> None:
    """Full-batch AdamW; the monitor (if any) is stepped after each update and closed at the end."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if monitor is not None:
            monitor.step(step)
    if monitor is not None:
        monitor.close()


def train(steps: int, options: dict[str, Any] | None) -> tuple[nn.Module, OInfoMonitor | None]:
    """Training from a fixed seed, with a monitor every 2 steps (None: without one)."""
    torch.manual_seed(0)
    model = net()
    x, y = make_data()
    monitor = None if options is None else OInfoMonitor(model, x, every=2, **OPTIONS, **options)
    fit(model, x, y, steps, monitor)
    return model, monitor


def values(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records without their timings."""
    return [{key: record[key] for key in VALUES} for record in records]


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Train on two intra-op threads (the conftest sets one), restored afterwards."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs two CPU cores")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_background_records_equal_foreground_records_in_step_order(tmp_path: Path) -> None:
    seen: list[int] = []
    _, foreground = train(12, {"history_path": tmp_path / "fg.jsonl"})
    _, background = train(
        12,
        {
            "history_path": tmp_path / "bg.jsonl",
            "background": True,
            "max_pending": 6,
            "on_evaluation": lambda evaluation: seen.append(evaluation.step),
        },
    )
    assert foreground is not None and background is not None
    assert values(background.history) == values(foreground.history)
    assert {r["chance_step"] for r in background.history} == {0, 4, 8}  # the cadence held
    assert seen == [0, 2, 4, 6, 8, 10]
    assert [r["step"] for r in read_records(tmp_path / "bg.jsonl")] == [
        r["step"] for r in background.history
    ]
    assert [t.summary() for t in background.trackers.values()] == [
        t.summary() for t in foreground.trackers.values()
    ]


@pytest.mark.usefixtures("two_threads")
def test_training_is_bit_identical_with_the_background_monitor() -> None:
    """On two training threads, while the worker scores (and pins its own thread count to one)."""
    torch.manual_seed(0)
    x = torch.randn(3000, 60)
    y = torch.randint(0, 40, (3000,))

    def run(options: dict[str, Any] | None, threads: int = 2) -> torch.Tensor:
        torch.set_num_threads(threads)
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(60, 80), nn.ReLU(), nn.Linear(80, 40))
        monitor = None
        if options is not None:
            monitor = OInfoMonitor(model, x[:500], every=3, **{**OPTIONS, "sizes": [3]}, **options)
        fit(model, x, y, 15, monitor)
        torch.set_num_threads(2)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    alone = run(None)
    assert torch.equal(run({"background": True}), alone)
    # The check can fail: with one thread the gradient sums round differently here.
    assert not torch.equal(run(None, threads=1), alone)


def test_close_waits_for_the_queue(tmp_path: Path) -> None:
    def slow(_: Any) -> None:
        time.sleep(0.05)

    _, monitor = train(
        12,
        {
            "history_path": tmp_path / "h.jsonl",
            "background": True,
            "max_pending": 8,
            "on_evaluation": slow,
        },
    )
    assert monitor is not None and monitor.closed
    assert monitor.evaluations == 6
    assert {r["step"] for r in read_records(tmp_path / "h.jsonl")} == {0, 2, 4, 6, 8, 10}
    assert not any(t.name.startswith("oinfo-monitor") for t in threading.enumerate())


def test_a_failing_worker_warns_once_on_the_training_thread_and_training_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = net()
    x, _ = make_data()
    monitor = OInfoMonitor(model, x, every=1, background=True, **OPTIONS)

    def broken(*_: Any) -> None:
        assert threading.current_thread() is not threading.main_thread()
        raise RuntimeError("scoring exploded")

    monkeypatch.setattr(monitor.scorer, "score", broken)
    warned_on: list[threading.Thread] = []
    warn = warnings.warn

    def recording(*args: Any, **kwargs: Any) -> None:
        warned_on.append(threading.current_thread())
        warn(*args, **kwargs)

    monkeypatch.setattr(warnings, "warn", recording)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(4):
            assert monitor.step(step) is None  # never raises
        monitor.close()
    ours = [w for w in caught if issubclass(w.category, OInfoMonitorWarning)]
    assert len([w for w in ours if "scoring exploded" in str(w.message)]) == 1
    assert warned_on and set(warned_on) == {threading.current_thread()}  # the training thread
    assert monitor.skipped_steps == [0, 1, 2, 3] and monitor.evaluations == 0


def test_a_full_queue_makes_training_wait_counts_and_warns_and_loses_nothing() -> None:
    model = net()
    x, _ = make_data()
    monitor = OInfoMonitor(
        model,
        x,
        every=1,
        background=True,
        max_pending=1,
        on_evaluation=lambda _: time.sleep(0.05),
        **OPTIONS,
    )
    with pytest.warns(OInfoMonitorWarning, match="fell 1 behind"):
        for step in range(4):
            monitor.step(step)
    monitor.close()
    assert monitor.worker is not None and monitor.worker.waits >= 1
    assert monitor.worker.waited_seconds > 0
    steps = [r["step"] for r in monitor.history]
    assert steps == sorted(steps) and set(steps) == {0, 1, 2, 3} and len(steps) == 4 * 4


def test_resume_and_state_dict_keep_the_history_whole(tmp_path: Path) -> None:
    history = tmp_path / "h.jsonl"
    model = net()
    x, _ = make_data()
    first = OInfoMonitor(model, x, every=2, history_path=history, background=True, **OPTIONS)
    for step in range(7):
        first.step(step)
    state = first.state_dict()  # waits for the queue: every step submitted so far is in it
    assert sorted({r["step"] for r in state["history"]}) == [0, 2, 4, 6]
    first.close()
    second = OInfoMonitor(
        model, x, every=2, history_path=history, resume=True, background=True, **OPTIONS
    )
    second.load_state_dict(state)
    with pytest.warns(OInfoMonitorWarning, match="already in the history"):
        for step in range(4, 12):  # steps up to 6 are in the history already
            second.step(step)
    second.close()
    steps = [r["step"] for r in read_records(history)]
    assert sorted(set(steps)) == [0, 2, 4, 6, 8, 10]
    assert len(steps) == 4 * 6  # two layers x two sizes per step, each step once


def test_worker_runs_jobs_in_order_and_counts_waits() -> None:
    worker = BackgroundWorker(max_pending=1)
    done: list[int] = []
    release = threading.Event()

    def first() -> None:
        release.wait(5)
        done.append(0)

    worker.submit(first)
    assert worker.pending == 1
    threading.Timer(0.05, release.set).start()
    assert worker.submit(lambda: done.append(1)) > 0  # waited for the first
    worker.close()
    assert done == [0, 1] and worker.waits == 1 and worker.pending == 0
