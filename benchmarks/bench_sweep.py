"""How much faster does the grokking sweep run in a process pool or on Ray than serially? Measured in one run.

A few short grokking trials (by default 2 settings x 2 seeds, 300 steps, 12 log-spaced
evaluations each) run as one sweep command per backend (``python -m
oinfo_monitor.experiments.grokking_sweep --backend serial|pool|ray``, a fresh process and runs
folder each), the backends interleaved in a rotating order, --repeats times. It prints every
sweep's wall time (what a user waits for: imports, the pool's process start-up, the local Ray's
start-up and shut-down, the figure), the speed-up against the serial sweep of the same repeat,
the median and range of those ratios, the cores the sweep got (its processes' CPU seconds ÷ its
wall seconds; not for Ray, whose workers are not this script's descendants), and whether every
backend gave the same per-run summaries (exit status 1 if not). Ray is skipped when it is not
installed.

    python benchmarks/bench_sweep.py               # the docs' table
    python benchmarks/bench_sweep.py --repeats 1   # quicker
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

WHERE = {"paths", "summary"}
"""Keys of a run's summary and row that say where its files are; keys ending in "seconds" say how long it took."""


def found(value: Any) -> Any:
    """What a run found: its summary or row without file paths and timings, at any depth."""
    if isinstance(value, dict):
        return {
            key: found(item)
            for key, item in value.items()
            if key not in WHERE and not key.endswith("seconds")
        }
    return [found(item) for item in value] if isinstance(value, list) else value


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--settings", nargs="+", default=["wd2", "alpha8"], help="sweep settings")
    parser.add_argument("--seeds", nargs="+", default=["0", "1"], help="seeds per setting")
    parser.add_argument("--steps", type=int, default=300, help="training steps per trial")
    parser.add_argument(
        "--log-points", type=int, default=12, help="log-spaced evaluations per trial"
    )
    parser.add_argument("--repeats", type=int, default=3, help="sweeps per backend")
    parser.add_argument("--workers", type=int, default=2, help="pool and local Ray workers")
    return parser.parse_args()


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) of the finished processes started from here and their reaped descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sweep(args: argparse.Namespace, backend: str, runs_dir: Path) -> dict[str, Any]:
    """One quiet sweep command on `backend` into `runs_dir`; its wall time and what each run found."""
    command = [sys.executable, "-m", "oinfo_monitor.experiments.grokking_sweep"]
    command += ["--settings", *args.settings, "--seeds", *args.seeds, "--steps", str(args.steps)]
    command += ["--log-points", str(args.log_points), "--every", "0", "--threads", "1"]
    command += ["--backend", backend, "--runs-dir", str(runs_dir)]
    if backend != "serial":
        command += ["--workers", str(args.workers)]
    load = os.getloadavg()[0]
    cpu = children_cpu_seconds()
    started = time.perf_counter()
    subprocess.run(
        command,
        check=True,
        cwd=runs_dir.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - started
    cpu = children_cpu_seconds() - cpu
    runs = []
    for row in json.loads((runs_dir / "sweep.json").read_text(encoding="utf-8"))["runs"]:
        summary = json.loads(Path(row["summary"]).read_text(encoding="utf-8"))
        runs.append({"row": found(row), "summary": found(summary)})
    return {"seconds": seconds, "cpu": cpu, "load": load, "runs": runs}


def spread(values: list[float], unit: str) -> str:
    """``median [min, max]`` of `values`, with `unit` after each number."""
    return (
        f"{statistics.median(values):.2f}{unit} [{min(values):.2f}{unit}, {max(values):.2f}{unit}]"
    )


def main() -> None:
    """Run the interleaved sweeps and print the timings, the ratios and the equality check."""
    args = parse_args()
    backends = ["serial", "pool"]
    if importlib.util.find_spec("ray") is not None:
        backends.append("ray")
    trials = len(args.settings) * len(args.seeds)
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, 1 torch thread per trial; {trials} "
        f"trials of {args.steps} steps, {args.log_points} log-spaced evaluations; "
        f"{args.workers} workers; backends {', '.join(backends)}"
    )
    seconds: dict[str, list[float]] = {backend: [] for backend in backends}
    cores: dict[str, list[float]] = {backend: [] for backend in backends}
    reference: list[dict[str, Any]] | None = None
    equal = True
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            order = backends[repeat % len(backends) :] + backends[: repeat % len(backends)]
            for backend in order:
                result = sweep(args, backend, Path(folder) / f"{backend}-{repeat}")
                seconds[backend].append(result["seconds"])
                cores[backend].append(result["cpu"] / result["seconds"])
                reference = reference or result["runs"]
                same = result["runs"] == reference
                equal &= same
                print(
                    f"repeat {repeat + 1} {backend:>6}: {result['seconds']:7.1f} s, "
                    f"{cores[backend][-1]:.2f} cores (load {result['load']:.1f} at start), per-run summaries "
                    f"{'equal to' if same else 'DIFFERENT from'} the first sweep's",
                    flush=True,
                )
    print("\n| backend | wall seconds | speed-up vs serial | cores used |")
    print("| --- | --- | --- | --- |")
    for backend in backends:
        ratios = [s / b for s, b in zip(seconds["serial"], seconds[backend], strict=True)]
        used = "–" if backend == "ray" else spread(cores[backend], "")
        print(f"| {backend} | {spread(seconds[backend], '')} | {spread(ratios, 'x')} | {used} |")
    print(f"\nper-run summaries equal across backends and repeats: {'yes' if equal else 'NO'}")
    if not equal:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
