"""Benchmark the copula transform against a plain numpy transform measured in the same run.

The transform is the first step of every evaluation: each column of the activations is ranked and
mapped to normal quantiles. Activations after a ReLU are about half exact zeros, so the tie policy
decides how the ranks are found. For each data shape and tie policy this prints our time
(`oinfo_monitor.copnorm`), the baseline's time and their ratio, and checks the values:

- the baseline ranks each column with numpy: a stable argsort for "stable" (`bench_oinfo`'s
  `stable_ranks`); a seeded shuffle of the rows followed by a stable argsort for "random"; scipy's `rankdata` for "average"; then the
  normal quantile of (rank + 1) / (T + 1) per entry;
- "stable" and "average" are deterministic, so both must agree to rounding; "random" draws
  different tie-breaks, so only the tie-free entries are compared.

Data: the grokking layer's shape (3,763 samples x 250 neurons) as post-ReLU float32 activations
and the same as float64; tie-free float64 data of that shape and of workload A's (10,000 x 20).

A second table times, per data set, the transform alone (ties="random") and the whole
`copula_covariance` (checks, transform, covariance) on a quiet machine and while a spinning
process keeps one core busy (`bench_oinfo.busy_core`, started and stopped by its PID), at the
`--threads` setting, and prints the busy/quiet ratio of each: the engine runs its CPU work on one
thread (`oinfo_monitor.estimators.threads`) so that this ratio stays near 1.

Run:  .venv/bin/python benchmarks/bench_copnorm.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import cast

import numpy as np
import torch
from bench_oinfo import busy_core, stable_ranks
from scipy import special, stats

from oinfo_monitor import copnorm
from oinfo_monitor.estimators import TIE_POLICIES, TiePolicy, copula_covariance


def parse_args() -> argparse.Namespace:
    """Command-line flags (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best is shown")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--json", help="also write the busy-machine table's times to this file")
    return parser.parse_args()


def datasets() -> dict[str, np.ndarray]:
    """The seeded inputs, by name."""
    rng = np.random.default_rng(0)
    layer = rng.standard_normal((3_763, 250))
    return {
        "ReLU float32 3,763 x 250": np.maximum(layer, 0.0).astype(np.float32),
        "ReLU float64 3,763 x 250": np.maximum(layer, 0.0) * 1.1,
        "tie-free float64 3,763 x 250": layer,
        "tie-free float64 10,000 x 20": rng.standard_normal((10_000, 20)),
    }


def numpy_copnorm(x: np.ndarray, ties: str, seed: int = 0) -> np.ndarray:
    """The baseline: rank every column with numpy/scipy under `ties`, then map to normal quantiles."""
    samples = len(x)
    if ties == "average":
        ranks = stats.rankdata(x, method="average", axis=0) - 1.0
    elif ties == "stable":
        ranks = stable_ranks(x)
    else:
        shuffle = np.random.default_rng(seed).permutation(samples)
        ranks = np.empty(x.shape)
        ranks[shuffle] = stable_ranks(x[shuffle])
    return special.ndtri((ranks + 1.0) / (samples + 1.0))


def times_of(run: Callable[[], object], repeats: int) -> list[float]:
    """Wall times of `repeats` calls of `run`, after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def best_time(run: Callable[[], object], repeats: int) -> float:
    """Least wall time of `repeats` calls of `run`, after one warm-up call."""
    return min(times_of(run, repeats))


def busy_table(repeats: int) -> list[dict[str, object]]:
    """Print the quiet and busy-machine times of the transform and of `copula_covariance`, and
    return them (seconds) as rows."""
    print(
        "| data | step | quiet best / median (ms) | busy best / median (ms) | busy / quiet (best, median) |"
    )
    print("| --- | --- | ---: | ---: | ---: |")
    rows: list[dict[str, object]] = []
    for name, x in datasets().items():
        tensor = torch.from_numpy(x)
        steps: dict[str, Callable[[], object]] = {
            "copnorm": partial(copnorm, tensor),
            "copula_covariance": partial(copula_covariance, tensor),
        }
        quiet = {step: times_of(run, repeats) for step, run in steps.items()}
        with busy_core():
            busy = {step: times_of(run, repeats) for step, run in steps.items()}
        for step in steps:
            q, b = quiet[step], busy[step]
            print(
                f"| {name} | {step} | {min(q) * 1e3:.1f} / {statistics.median(q) * 1e3:.1f} "
                f"| {min(b) * 1e3:.1f} / {statistics.median(b) * 1e3:.1f} "
                f"| {min(b) / min(q):.2f}x, {statistics.median(b) / statistics.median(q):.2f}x |"
            )
            rows.append({"data": name, "step": step, "quiet": q, "busy": b})
    return rows


def untied(x: np.ndarray) -> np.ndarray:
    """True where an entry's value occurs once in its column."""
    mask = np.empty(x.shape, dtype=bool)
    for j in range(x.shape[1]):
        _, inverse, counts = np.unique(x[:, j], return_inverse=True, return_counts=True)
        mask[:, j] = counts[inverse] == 1
    return mask


def main() -> None:
    """Time every (data, policy) pair and print the table."""
    args = parse_args()
    load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), best of {args.repeats}")
    print()
    print("| data | ties | ours (ms) | numpy (ms) | speed-up | max abs Δ (compared entries) |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for name, x in datasets().items():
        tensor = torch.from_numpy(x)
        mask = untied(x)
        for ties in TIE_POLICIES:
            policy = cast(TiePolicy, ties)
            ours = best_time(partial(copnorm, tensor, ties=policy), args.repeats)
            base = best_time(partial(numpy_copnorm, x, ties), args.repeats)
            got, expected = copnorm(tensor, ties=policy).numpy(), numpy_copnorm(x, ties)
            compared = mask if ties == "random" else np.ones_like(mask)
            delta = np.max(np.abs(got - expected)[compared])
            which = "tie-free only" if ties == "random" else "all"
            print(
                f"| {name} | {ties} | {ours * 1e3:.1f} | {base * 1e3:.1f} | "
                f"{base / ours:.1f}x | {delta:.1e} ({which}) |"
            )
    print()
    print(f"Busy machine (a spinning process on one core), {torch.get_num_threads()} thread(s):")
    print()
    rows = busy_table(args.repeats)
    command = (
        f"python benchmarks/bench_copnorm.py --repeats {args.repeats} --threads {args.threads}"
    )
    print()
    print(f"command: {command}")
    if args.json:
        load_after = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        run = {"command": command, "threads": torch.get_num_threads(), "busy_table": rows}
        run.update(load_before=load_before, load_after=load_after)
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(run, out, indent=1)


if __name__ == "__main__":
    main()
