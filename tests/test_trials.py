"""Tests for the sweeps' trial runner (oinfo_monitor/experiments/trials.py): pool and Ray give serial's results in order, failures name their trial, Ctrl-C stops the workers."""

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from oinfo_monitor.experiments.trials import TrialError, run_trials


def tiny_trial(seed: int, steps: int) -> dict:
    """A seeded trial: a few SGD steps of a small linear fit; its loss curve, torch threads and pid."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    torch.manual_seed(seed)
    x, w = torch.randn(64, 8), torch.randn(8, 1)
    y = x @ w + 0.1 * torch.randn(64, 1)
    model = torch.nn.Linear(8, 1)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(steps):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return {"seed": seed, "losses": losses, "threads": torch.get_num_threads(), "pid": os.getpid()}


def sleepy_trial(folder: str, seconds: float) -> None:
    """A trial that says it started (a file named by its pid) and then sleeps."""
    (Path(folder) / str(os.getpid())).touch()
    time.sleep(seconds)


TRIALS = [(3, 20), (1, 20)]  # submitted as seed 3, then seed 1: results must keep that order


def outcome(results: list[dict]) -> list[tuple[int, list[float]]]:
    """What a trial computed (not where it ran)."""
    return [(result["seed"], result["losses"]) for result in results]


@pytest.fixture(scope="module")
def serial() -> list[dict]:
    """The trials run one after the other in this process: the reference."""
    return run_trials(tiny_trial, TRIALS, backend="serial")


def test_pool_gives_serial_results_in_order_and_names_a_failing_trial(serial) -> None:
    seen = []
    trials = [TRIALS[0], (-2, 5), TRIALS[1]]  # a failing trial between the two
    with pytest.raises(
        TrialError, match=r"1 of 3 trials failed: tiny_trial\(seed=-2, steps=5\)"
    ) as raised:
        run_trials(
            tiny_trial,
            trials,
            backend="pool",
            workers=2,
            on_result=lambda a, r: seen.append((a, r)),
        )
    assert [arguments for arguments, _ in seen] == TRIALS  # the others ran, in submission order
    results = [result for _, result in seen]
    assert outcome(results) == outcome(serial)
    assert all(result["pid"] != os.getpid() for result in results)  # they ran elsewhere
    assert {result["threads"] for result in results} == {1}
    assert serial[0]["losses"][-1] < serial[0]["losses"][0]  # the trial does train
    ((arguments, cause),) = raised.value.failures
    assert arguments == (-2, 5) and isinstance(cause, ValueError)
    assert raised.value.__cause__ is cause and "seed must be >= 0, got -2" in str(raised.value)


@pytest.mark.parametrize(
    ("signum", "raised"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, SystemExit)]
)
def test_ctrl_c_or_kill_stops_the_pool_workers(tmp_path, signum, raised) -> None:
    def interrupt_once_both_run() -> None:
        """Signal this process (Ctrl-C, or kill PID) once both trials have started."""
        deadline = time.monotonic() + 60
        while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signum)

    threading.Thread(target=interrupt_once_both_run, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(raised):
        run_trials(sleepy_trial, [(str(tmp_path), 120)] * 3, backend="pool", workers=2)
    assert time.monotonic() - started < 60  # the sleeping workers were stopped, not waited for
    pids = [int(path.name) for path in tmp_path.iterdir()]
    assert len(pids) == 2  # the third trial never started
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the caller's handling is back


def test_ray_tasks_give_serial_results_and_name_a_failure(serial) -> None:
    ray = pytest.importorskip(
        "ray", reason="Ray is not installed (pip install 'oinfo-monitor[ray]' for --backend ray)"
    )
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
    this_file = sys.modules[__name__]  # not importable by Ray's workers: send its functions
    ray.cloudpickle.register_pickle_by_value(this_file)
    try:
        results = run_trials(tiny_trial, TRIALS, backend="ray")
        assert outcome(results) == outcome(serial)
        assert {result["threads"] for result in results} == {1}
        with pytest.raises(TrialError, match=r"tiny_trial\(seed=-1, steps=5\): ValueError"):
            run_trials(tiny_trial, [(0, 5), (-1, 5)], backend="ray")
        assert ray.is_initialized()  # a Ray it did not start is left running
    finally:
        ray.cloudpickle.unregister_pickle_by_value(this_file)
        ray.shutdown()


def test_ray_backend_without_ray_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray imports
    with pytest.raises(SystemExit, match=r"pip install 'oinfo-monitor\[ray\]'"):
        run_trials(tiny_trial, TRIALS, backend="ray")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "dask"}, "backend must be one of serial, pool, ray"),
        ({"backend": "pool", "address": "auto"}, "a Ray address needs backend='ray'"),
        ({"backend": "ray", "address": "auto", "workers": 2}, "and no workers"),
    ],
)
def test_bad_backend_options_are_refused(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        run_trials(tiny_trial, TRIALS, **options)


def test_grokking_sweep_keeps_its_command_line_and_flags_record() -> None:
    from oinfo_monitor.experiments import grokking_sweep  # here: pool workers import this file

    argv = "--settings wd2 alpha8 --seeds 0 1 2 3 4 5 6 7 8 9 --steps 2000 --threads 1"
    args = grokking_sweep.parse_args([*argv.split(), "--runs-dir", "runs/sweep10"])
    assert (args.settings, args.seeds, args.steps) == (["wd2", "alpha8"], list(range(10)), 2000)
    assert (args.threads, args.runs_dir, args.backend, args.workers) == (
        1,
        "runs/sweep10",
        "pool",
        None,
    )
    # sweep.json's "flags" record keeps the keys it had before the backends came
    assert set(grokking_sweep.recorded_flags(args)) == {
        "settings", "seeds", "steps", "log_points", "every", "threads", "quick", "runs_dir",
    }  # fmt: skip
    ray_args = grokking_sweep.parse_args(["--backend", "ray", "--ray-address", "auto"])
    assert (ray_args.backend, ray_args.ray_address) == ("ray", "auto")


def test_mnist_sweep_takes_the_backend_flags() -> None:
    from oinfo_monitor.experiments import mnist_layerwise

    args = mnist_layerwise.parse_args(["--quick", "--backend", "serial", "--workers", "2"])
    assert (args.backend, args.workers, args.ray_address) == ("serial", 2, None)
    assert mnist_layerwise.parse_args([]).backend == "pool"


def test_grokking_sweep_merges_settings_run_with_different_steps(tmp_path) -> None:
    from oinfo_monitor.experiments import grokking_sweep

    def row(setting: str, seed: int, steps: int, grokked: int | None) -> dict:
        values = dict.fromkeys(grokking_sweep.COLUMNS)
        values.update(grokking_step=grokked, lead=None if grokked is None else grokked - 300)
        return {
            "setting": setting,
            "seed": seed,
            "steps": steps,
            "peak_significant": None,
            **values,
        }

    for name, steps, rows in (
        ("short", 2000, [row("wd10", 0, 2000, None), row("wd10", 1, 2000, None)]),
        ("long", 4000, [row("wd0.1", 0, 4000, 2400), row("wd0.1", 1, 4000, 2600)]),
    ):
        (tmp_path / name).mkdir()
        record = {"flags": {"steps": steps}, "runs": rows, "by_setting": {}, "wall_seconds": 1.0}
        (tmp_path / name / "sweep.json").write_text(json.dumps(record))
    result = grokking_sweep.merged([str(tmp_path / "short"), str(tmp_path / "long")])
    assert [source["flags"]["steps"] for source in result["sources"]] == [2000, 4000]
    assert [(r["setting"], r["seed"]) for r in result["runs"]] == [
        ("wd10", 0), ("wd10", 1), ("wd0.1", 0), ("wd0.1", 1),
    ]  # fmt: skip
    stats = result["by_setting"]
    assert stats["wd0.1"]["grokking_step"]["median"] == 2500
    assert stats["wd0.1"]["confirmed_before_grokking"] == 2
    assert stats["wd10"]["grokking_step"]["n"] == 0
    text = grokking_sweep.table(result["runs"], stats)
    # each setting's missing values are said with its own number of steps
    assert "no grokking within 2000 steps" in text and "2500 [2400, 2600]" in text
    assert "no grokking within 4000 steps" not in text
