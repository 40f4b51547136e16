"""Benchmark the Gaussian-copula O-information engine against a numpy baseline, HOI and THOI.

Workload A: every multiplet of sizes 3-6 of 20 variables (60,249 multiplets), 10,000 samples,
without a target, with a continuous target and with our discrete (one-hot) target.
Workload B: every multiplet of sizes 3-6 of 40 variables (4,597,658 multiplets), no target.

Each (implementation, workload, mode, threads) runs in a fresh Python process, so that its peak
memory can be read honestly: peak RSS of that process (``ru_maxrss``) minus its resident memory
just before the first run (after imports and data generation). Times are the best and the median of
``--repeats`` runs after one warm-up run (HOI, and THOI on workload B: a single run; HOI's includes
its JIT compilation). Ours and numpy also run with one thread. Every value is compared with our
engine's after matching multiplets by their sorted member tuples.

Two more rows on workload A without a target: "busy machine" (ours and numpy again while a
spinning Python process, started before the row's process and stopped after by its PID, keeps one
core busy: the setting of a training loop or data loaders next to the engine; compared with the
quiet rows of the same run) and "from tuples" (ours given all 60,249 multiplets as one list of
Python tuples, parsed by the engine, instead of one `[M, k]` array per size).

Run from the repository root:  .venv-bench/bin/python benchmarks/bench_oinfo.py
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import itertools
import json
import math
import operator
import os
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial, reduce
from multiprocessing import get_context

import numpy as np
import torch
from scipy import special

SIZES = range(3, 7)
N_SAMPLES = 10_000
N_CLASSES = 10
SEED = 0
WORKLOADS = {"A": 20, "B": 40}
MODES = {
    "none": "no target",
    "continuous": "target, copula-transformed (HOI/THOI convention)",
    "discrete": "target, one-hot Gaussian model (our default for integer labels)",
}
LN2 = math.log(2.0)
LOG_2PIE = math.log(2.0 * math.pi * math.e)
NUMPY_CHUNK = 1 << 16
"""Multiplets per stacked Cholesky in the numpy baseline, so that workload B fits in memory."""

Pairs = list[tuple[np.ndarray, np.ndarray]]
"""An implementation's output: (members [M, k] padded with -1, O-information [M] in bits) pairs."""


# --------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------


def make_data(n_variables: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Seeded samples [N_SAMPLES, n_variables] with redundant and synergistic blocks, and 10-class labels.

    Each block of 10 variables holds 4 noisy copies of one source (redundancy), 3 independent
    variables and their noisy sum (synergy), and 2 pure-noise variables. The labels are the deciles
    of the first block's source plus its sum, so the target relates to both kinds of structure.
    """
    rng = np.random.default_rng(seed)
    columns = []
    for _ in range(n_variables // 10):
        source = rng.standard_normal(N_SAMPLES)
        copies = [source + 0.5 * rng.standard_normal(N_SAMPLES) for _ in range(4)]
        parts = [rng.standard_normal(N_SAMPLES) for _ in range(3)]
        total = sum(parts) + 0.3 * rng.standard_normal(N_SAMPLES)
        noise = [rng.standard_normal(N_SAMPLES) for _ in range(2)]
        columns += [*copies, *parts, total, *noise]
    x = np.column_stack(columns)
    score = x[:, 0] + x[:, 7] + rng.standard_normal(N_SAMPLES)
    labels = np.searchsorted(np.quantile(score, np.linspace(0, 1, N_CLASSES + 1)[1:-1]), score)
    return x, labels.astype(np.int64)


def stable_ranks(values: np.ndarray) -> np.ndarray:
    """Zero-based ranks along axis 0 with ties broken by sample order (HOI's convention)."""
    order = np.argsort(values, axis=0, kind="stable")
    positions = np.arange(len(values), dtype=np.float64).reshape(-1, *[1] * (values.ndim - 1))
    ranks = np.empty(values.shape)
    np.put_along_axis(ranks, order, positions, axis=0)
    return ranks


def enumerate_multiplets(n_variables: int, size: int) -> np.ndarray:
    """All `size`-subsets of range(n_variables) in lexicographic order, as an [M, size] index array."""
    flat = itertools.chain.from_iterable(itertools.combinations(range(n_variables), size))
    count = math.comb(n_variables, size) * size
    return np.fromiter(flat, dtype=np.intp, count=count).reshape(-1, size)


# --------------------------------------------------------------------------------------------
# Implementations: each `prepare_*` imports what it needs and returns a zero-argument run function
# --------------------------------------------------------------------------------------------


def prepare_ours(
    x: np.ndarray, labels: np.ndarray, mode: str, tuples: bool = False
) -> Callable[[], Pairs]:
    """Our engine: one `copula_covariance`, then `.oinfo` on each size's `[M, k]` multiplets, or,
    with `tuples`, one `.oinfo` on all of them as a list of Python tuples (the README's form).

    The continuous-target mode uses ties="stable" so that the tied labels rank as in HOI and THOI;
    the other modes use the library defaults (x has no ties, so the policy does not matter there).
    """
    from oinfo_monitor.estimators import TiePolicy, copula_covariance
    from oinfo_monitor.estimators.multiplets import combinations
    from oinfo_monitor.estimators.validation import TargetKind

    data = torch.from_numpy(x)
    target: torch.Tensor | None = None
    kind: TargetKind = "auto"
    ties: TiePolicy = "random"
    if mode == "continuous":
        target, kind, ties = torch.from_numpy(labels.astype(np.float64)), "continuous", "stable"
    elif mode == "discrete":
        target = torch.from_numpy(labels)
    n_variables = x.shape[1]
    combos = (itertools.combinations(range(n_variables), k) for k in SIZES)
    rows = list(itertools.chain.from_iterable(combos)) if tuples else []
    padded = np.full((len(rows), max(SIZES)), -1)
    for index, row in enumerate(rows):
        padded[index, : len(row)] = row

    def run() -> Pairs:
        stats = copula_covariance(data, y=target, target_kind=kind, ties=ties)
        if tuples:
            return [(padded, stats.oinfo(rows).numpy())]
        pairs = []
        for size in SIZES:
            members = combinations(n_variables, size)
            pairs.append((members.numpy(), stats.oinfo(members).numpy()))
        return pairs

    return run


def numpy_bias(dims: int, samples: int) -> float:
    """Small-sample bias (nats) of the Gaussian entropy of `dims` variables from `samples` samples."""
    digammas = special.psi((samples - np.arange(1, dims + 1)) / 2.0).sum()
    return 0.5 * (dims * math.log(2.0 / (samples - 1.0)) + digammas)


def numpy_covariance(z: np.ndarray) -> np.ndarray:
    """T-1 normalised covariance of the columns of z."""
    centred = z - z.mean(0)
    return centred.T @ centred / (len(z) - 1)


def numpy_entropies(
    cov: np.ndarray, members: np.ndarray, samples: int, leave_one_out: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected joint entropy and summed leave-one-out entropies (bits) of blocks cov[S, S].

    One stacked Cholesky factorisation of all blocks; log det Σ₋ⱼ = log det Σ + log (Σ⁻¹)ⱼⱼ, where
    (Σ⁻¹)ⱼⱼ is the squared norm of column j of L⁻¹.
    """
    size = members.shape[1]
    chol = np.linalg.cholesky(cov[members[:, :, None], members[:, None, :]])
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1)
    joint = 0.5 * (size * LOG_2PIE + logdet) - numpy_bias(size, samples)
    if not leave_one_out:
        return joint / LN2, np.zeros_like(joint)
    loo = logdet[:, None] + np.log((np.linalg.inv(chol) ** 2).sum(1))
    loo_total = (0.5 * ((size - 1) * LOG_2PIE + loo) - numpy_bias(size - 1, samples)).sum(1)
    return joint / LN2, loo_total / LN2


def numpy_within_covariance(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Pooled within-class covariance (T - C normalised) of z, and the number of classes C."""
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((len(classes), z.shape[1]))
    np.add.at(sums, inverse, z)
    residual = z - (sums / counts[:, None])[inverse]
    return residual.T @ residual / (len(z) - len(classes)), len(classes)


def prepare_numpy(x: np.ndarray, labels: np.ndarray, mode: str) -> Callable[[], Pairs]:
    """Plain batched-numpy baseline of the same estimator as ours, in all three modes."""
    samples, n_variables = x.shape

    def run() -> Pairs:
        data = np.column_stack([x, labels]) if mode == "continuous" else x
        ranks = stable_ranks(data)
        z = special.ndtri((ranks + 1.0) / (samples + 1.0))
        cov = numpy_covariance(z)
        singles = (0.5 * (LOG_2PIE + np.log(np.diag(cov))) - numpy_bias(1, samples)) / LN2
        if mode == "discrete":
            within, n_classes = numpy_within_covariance(z, labels)
        pairs = []
        for size in SIZES:
            members = enumerate_multiplets(n_variables, size)
            values = np.empty(len(members))
            for start in range(0, len(members), NUMPY_CHUNK):
                rows = members[start : start + NUMPY_CHUNK]
                if mode == "continuous":
                    rows = np.column_stack([rows, np.full(len(rows), n_variables)])
                if mode == "discrete":
                    joint, _ = numpy_entropies(cov, rows, samples, leave_one_out=False)
                    cond_samples = samples - n_classes + 1
                    cond_joint, cond_loo = numpy_entropies(within, rows, cond_samples)
                    omega = (size - 1) * cond_joint + singles[rows].sum(1) - cond_loo - joint
                else:
                    joint, loo = numpy_entropies(cov, rows, samples)
                    omega = (rows.shape[1] - 2) * joint + singles[rows].sum(1) - loo
                values[start : start + NUMPY_CHUNK] = omega
            pairs.append((members, values))
        return pairs

    return run


def prepare_hoi(x: np.ndarray, labels: np.ndarray, mode: str) -> Callable[[], Pairs]:
    """HOI (JAX, float32): `Oinfo(x, y).fit(minsize=3, maxsize=6, method="gc")`.

    HOI appends y as one more (copula-transformed) feature to every multiplet; its `multiplets`
    then carry the target's index, which is removed here so multiplets match ours.
    """
    from hoi.metrics import Oinfo

    target = labels.astype(np.float64) if mode == "continuous" else None
    n_variables = x.shape[1]

    def run() -> Pairs:
        model = Oinfo(x, y=target, verbose=False)
        values = np.asarray(model.fit(minsize=min(SIZES), maxsize=max(SIZES), method="gc"))
        members = model.multiplets
        return [(np.where(members == n_variables, -1, members), values[:, 0].astype(np.float64))]

    return run


def prepare_thoi(x: np.ndarray, labels: np.ndarray, mode: str) -> Callable[[], Pairs]:
    """THOI (PyTorch, float64, nats): `multi_order_measures`, or `nplets_measures` with a target.

    THOI has no target argument: for the continuous-target mode the labels' stable ranks (HOI's tie
    convention, which THOI's own copula transform then preserves) are appended as one more column
    and that column is added to every multiplet.
    """
    from thoi.measures.gaussian_copula import multi_order_measures, nplets_measures

    n_variables = x.shape[1]

    def collect(nplets: torch.Tensor, result: torch.Tensor, _: int) -> tuple[np.ndarray, ...]:
        """Keep the multiplets and their O-information (column 2 of TC, DTC, O, S) in bits."""
        return nplets.numpy(), result[:, 0, 2].numpy() / LN2

    def run_plain() -> Pairs:
        return multi_order_measures(
            x,
            min_order=min(SIZES),
            max_order=max(SIZES),
            batch_data_collector=collect,
            batch_aggregation=list,
        )

    def run_target() -> Pairs:
        augmented = np.column_stack([x, stable_ranks(labels)])
        pairs = []
        for size in SIZES:
            members = enumerate_multiplets(n_variables, size)
            nplets = np.column_stack([members, np.full(len(members), n_variables)])
            result = nplets_measures(augmented, nplets)
            pairs.append((members, result[:, 0, 2].numpy() / LN2))
        return pairs

    return run_plain if mode == "none" else run_target


PREPARE = {"ours": prepare_ours, "numpy": prepare_numpy, "thoi": prepare_thoi, "hoi": prepare_hoi}
PEERS = ("hoi", "thoi")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# --------------------------------------------------------------------------------------------
# Measuring one task in a fresh process
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def busy_core() -> Iterator[int]:
    """Keep one core busy for the block with a spinning Python process; yields its PID.

    It stands for the other work of a training run (the training loop, data loaders); it is stopped
    by its PID when the block ends, whatever happens inside.
    """
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)  # let it start spinning
        yield spinner.pid
    finally:
        os.kill(spinner.pid, signal.SIGTERM)
        spinner.wait()


@dataclass(frozen=True)
class Task:
    """One measured configuration; `threads=None` keeps torch's default thread count, `busy` runs
    it next to `busy_core`, `tuples` passes our engine a list of tuples (see `prepare_ours`)."""

    impl: str
    workload: str
    mode: str
    repeats: int
    warmup: int = 1
    threads: int | None = None
    busy: bool = False
    tuples: bool = False

    @property
    def label(self) -> str:
        """Row name: the implementation, with what differs from its default run."""
        notes = [f"{self.threads} thread"] if self.threads is not None else []
        notes += ["busy machine"] if self.busy else []
        notes += ["from tuples"] if self.tuples else []
        return f"{self.impl} ({', '.join(notes)})" if notes else self.impl


@dataclass
class Measurement:
    """What one task reports back: wall and CPU times (s), peak memory growth (MiB), values."""

    task: Task
    times: list[float]
    cpu_times: list[float]
    peak_mib: float
    threads: int
    members: np.ndarray
    values: np.ndarray


def resident_kib() -> int:
    """Current resident set size of this process in KiB (Linux /proc), else the peak so far."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def canonical(pairs: Pairs) -> tuple[np.ndarray, np.ndarray]:
    """Members [M, max size] (sorted within rows, -1 padded) and values, ordered by (size, members)."""
    width, blank = max(SIZES), np.iinfo(np.int64).max
    rows = []
    for members, _ in pairs:
        members = np.asarray(members, dtype=np.int64)
        ordered = np.sort(np.where(members >= 0, members, blank), axis=1)
        padded = np.full((len(members), max(width, ordered.shape[1])), blank)
        padded[:, : ordered.shape[1]] = ordered
        rows.append(padded[:, :width])
    members = np.concatenate(rows)
    members[members == blank] = -1
    values = np.concatenate([np.asarray(v, dtype=np.float64) for _, v in pairs])
    order = np.lexsort([*members.T[::-1], (members >= 0).sum(1)])
    return members[order].astype(np.int8), values[order]


def run_task(task: Task) -> Measurement:
    """Prepare, warm up and time one task in this process; return its times, memory and values.

    The peers' progress bars (written to stderr) are silenced.
    """
    if task.threads is not None:
        torch.set_num_threads(task.threads)
    x, labels = make_data(WORKLOADS[task.workload])
    times, cpu_times = [], []
    result: Pairs | None = None
    with contextlib.redirect_stderr(io.StringIO()):
        prepare = partial(prepare_ours, tuples=True) if task.tuples else PREPARE[task.impl]
        run = prepare(x, labels, task.mode)
        before = resident_kib()
        for index in range(task.warmup + task.repeats):
            result = None
            start, cpu_start = time.perf_counter(), time.process_time()
            result = run()
            if index >= task.warmup:
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
    peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result is not None
    members, values = canonical(result)
    threads = torch.get_num_threads()
    return Measurement(task, times, cpu_times, peak_mib, threads, members, values)


def run_fresh(task: Task) -> Measurement:
    """Run `task` in a freshly spawned Python process, so its peak memory is its own.

    A thread count is passed to the OpenMP/BLAS pools through the environment, which the child
    inherits, so that it limits numpy's BLAS as well as torch. A busy task runs its whole process
    next to `busy_core`.
    """
    saved = dict(os.environ)
    if task.threads is not None:
        os.environ.update({name: str(task.threads) for name in THREAD_VARIABLES})
    try:
        with contextlib.ExitStack() as stack:
            if task.busy:
                stack.enter_context(busy_core())
            pool = stack.enter_context(
                ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
            )
            return pool.submit(run_task, task).result()
    finally:
        os.environ.clear()
        os.environ.update(saved)


# --------------------------------------------------------------------------------------------
# Plan, comparison and report
# --------------------------------------------------------------------------------------------


def build_plan(workloads: list[str], repeats: int, skip: list[str]) -> list[Task]:
    """The tasks to measure; ours comes first in each (workload, mode) group as the reference.

    Ours and numpy run with the default thread counts and with one thread. The slow peers (HOI
    everywhere, THOI on workload B) run once, without a warm-up; HOI is not run on workload B at
    all (about an hour), and no peer runs the discrete mode, which neither implements. Workload A
    without a target also has the busy-machine rows (ours and numpy) and ours from tuples.
    """
    installed = {peer for peer in PEERS if importlib.util.find_spec(peer)} - set(skip)
    plan = []
    for workload in workloads:
        modes = ["none", "continuous", "discrete"] if workload == "A" else ["none"]
        for mode in modes:
            for impl in ("ours", "numpy"):
                plan.append(Task(impl, workload, mode, repeats))
                plan.append(Task(impl, workload, mode, repeats, threads=1))
            if workload == "A" and mode == "none":
                plan.append(Task("ours", workload, mode, repeats, tuples=True))
                plan += [
                    Task(impl, workload, mode, repeats, busy=True) for impl in ("ours", "numpy")
                ]
            peers = [] if mode == "discrete" else sorted(installed)
            for peer in peers:
                if peer == "thoi" and workload == "A":
                    plan.append(Task(peer, workload, mode, repeats))
                elif workload == "A" or peer == "thoi":
                    plan.append(Task(peer, workload, mode, repeats=1, warmup=0))
    return plan


def max_difference(measured: Measurement, reference: Measurement) -> str:
    """Largest |Δ| in bits against the reference after matching multiplets, or why it is undefined."""
    if measured is reference:
        return "reference"
    if not np.array_equal(measured.members, reference.members):
        return "multiplet sets differ"
    return f"{np.max(np.abs(measured.values - reference.values)):.2e}"


def describe(measurement: Measurement) -> str:
    """One progress line for a finished task."""
    task, times = measurement.task, measurement.times
    shown = ", ".join(f"{t:.3f}" for t in times)
    return (
        f"  {task.label:<18} {task.workload} {task.mode:<10} threads={measurement.threads} "
        f"runs=[{shown}] s, CPU {min(measurement.cpu_times):.3f} s, "
        f"peak +{measurement.peak_mib:.0f} MiB"
    )


def numpy_for(measured: Measurement, rows: dict[str, Measurement]) -> Measurement | None:
    """The numpy row at the same thread setting and load as `measured` (else the default one)."""
    return rows.get(replace(measured.task, impl="numpy", tuples=False).label, rows.get("numpy"))


def check_rows_a(rows: dict[str, Measurement]) -> None:
    """Print the busy-machine and from-tuples rows of workload A against its quiet arrays rows.

    The target for tuples: parsing them (the from-tuples row minus the arrays row) costs at most
    10% of the arrays row.
    """
    for impl in ("ours", "numpy"):
        busy, quiet = rows.get(f"{impl} (busy machine)"), rows.get(impl)
        if busy and quiet:
            best = min(busy.times) / min(quiet.times)
            median = statistics.median(busy.times) / statistics.median(quiet.times)
            print(
                f"Busy machine, {impl}: {best:.2f}x the quiet row's time (medians: {median:.2f}x)"
            )
    tuples, arrays = rows.get("ours (from tuples)"), rows.get("ours")
    if tuples and arrays:
        extra = min(tuples.times) - min(arrays.times)
        share = extra / min(arrays.times)
        print(
            f"From tuples: {min(tuples.times):.3f} s against {min(arrays.times):.3f} s from arrays; "
            f"parsing {extra * 1e3:.1f} ms = {share:.0%} of the arrays row, target <= 10%: "
            + ("met" if share <= 0.1 else "MISSED")
        )
        floor = conversion_floor(WORKLOADS["A"])
        print(
            f"The least any parse of them costs here, converting without a check (one "
            f"concatenation, then bytes of the entries and of the row lengths): {floor * 1e3:.1f} ms "
            f"= {floor / min(arrays.times):.0%} of the arrays row"
        )


def conversion_floor(n_variables: int, repeats: int = 20) -> float:
    """Best time (s) to turn workload A's tuples into index and length bytes, checking nothing.

    Every parse has to touch each of the Python objects at least this much, so this bounds from
    below what the from-tuples row can gain on the arrays row.
    """
    combos = (itertools.combinations(range(n_variables), k) for k in SIZES)
    rows = list(itertools.chain.from_iterable(combos))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        bytes(reduce(operator.iconcat, rows, []))
        bytes(map(len, rows))
        times.append(time.perf_counter() - start)
    return min(times)


def check_targets(groups: dict[tuple[str, str], dict[str, Measurement]]) -> None:
    """Print whether our rows meet the issue's targets: A >= 3x numpy; B < 3 s and < 1 GB peak."""
    for (workload, mode), rows in groups.items():
        if mode != "none":
            continue
        if workload == "A":
            check_rows_a(rows)
        for label, m in rows.items():
            if not label.startswith("ours") or m.task.busy or m.task.tuples:
                continue
            baseline = numpy_for(m, rows)
            if workload == "A" and baseline is not None:
                ratio = min(baseline.times) / min(m.times)
                cpu_ratio = min(baseline.cpu_times) / min(m.cpu_times)
                verdict = "met" if ratio >= 3 else "MISSED"
                print(
                    f"Target A >= 3x numpy, {label}: {ratio:.2f}x, {verdict} "
                    f"(by CPU time {cpu_ratio:.2f}x)"
                )
            if workload == "B":
                fast, small = min(m.times) < 3, m.peak_mib * 2**20 < 1e9
                verdict = "met" if fast and small else "MISSED"
                print(
                    f"Target B < 3 s and < 1 GB (954 MiB), {label}: {min(m.times):.2f} s, "
                    f"{m.peak_mib:.0f} MiB, {verdict} (CPU time {min(m.cpu_times):.2f} s)"
                )


def report(measurements: list[Measurement], command: str) -> None:
    """Print the markdown table of times, ratios, memory and agreement, and how it was produced."""
    groups: dict[tuple[str, str], dict[str, Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.task.workload, m.task.mode), {})[m.task.label] = m
    print(
        "\n| implementation | workload | threads | best s | median s | speed-up vs numpy "
        "| CPU s | CPU speed-up | peak MiB | max abs Δ vs ours (bits) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (workload, mode), rows in groups.items():
        reference = rows["ours"]
        for label, m in rows.items():
            best = min(m.times)
            baseline = numpy_for(m, rows)
            ratio = f"{min(baseline.times) / best:.3g}x" if baseline else "n/a"
            cpu_ratio = f"{min(baseline.cpu_times) / min(m.cpu_times):.3g}x" if baseline else "n/a"
            name = f"{workload} ({WORKLOADS[workload]} vars), {mode}"
            print(
                f"| {label} | {name} | {m.threads} | {best:.3f} | {statistics.median(m.times):.3f} "
                f"| {ratio} | {min(m.cpu_times):.3f} | {cpu_ratio} | {m.peak_mib:.0f} "
                f"| {max_difference(m, reference)} |"
            )
    print()
    check_targets(groups)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\nProduced by: {command}  (load average at the end: {load})")
    print("Modes: " + "; ".join(f"{mode} = {text}" for mode, text in MODES.items()) + ".")
    print(
        "Times: best and median of the repeats after one warm-up (HOI, and THOI on B: a single "
        "run, HOI's JIT compilation included), "
        "end to end from raw samples to all values. Speed-up = best time of numpy at the same "
        "thread setting / the row's best time. Threads: torch's count; 1-thread rows also set "
        "OMP/OpenBLAS/MKL_NUM_THREADS=1, which limits numpy's BLAS too.\n"
        "CPU s: the least process CPU time (all threads) of the timed runs, and the speed-up by "
        "it; on a busy machine these are the steadier numbers for single-threaded rows.\n"
        "Peak MiB: peak RSS (ru_maxrss) of a fresh process per row minus its RSS just before the "
        "first run (after imports and data generation); an upper bound on the working memory.\n"
        "Δ: after sorting multiplets by member tuple; HOI computes in float32; THOI in nats "
        "(converted). The discrete mode has no peer: it is checked against the numpy baseline's "
        "one-hot model, and scores two covariances per multiplet (total and within-class).\n"
        "Busy machine: the row's process runs while a spinning Python process keeps one core busy "
        "(started before it, stopped after by its PID). From tuples: the same multiplets as one "
        "list of Python tuples, parsed by the engine, instead of one [M, k] array per size."
    )


def main() -> None:
    """Parse arguments, run every task in a fresh process, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=["A", "B"])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up")
    parser.add_argument("--skip", nargs="*", choices=PEERS, default=[])
    parser.add_argument("--json", help="also write every row's times and memory to this file")
    args = parser.parse_args()
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"torch {torch.__version__}, default threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs, load average {load}. Other engineers may be running tests on "
        "this machine at the same time: read the median as well as the best time."
    )
    measurements = []
    for task in build_plan(args.workloads, args.repeats, args.skip):
        measurements.append(run_fresh(task))
        print(describe(measurements[-1]), flush=True)
    report(measurements, command)
    if args.json:
        write_json(args.json, measurements, command, load)


def write_json(path: str, measurements: list[Measurement], command: str, load: str) -> None:
    """Write the rows (task, wall and CPU times in s, peak MiB) and the conditions to `path`."""
    rows = [
        {
            "label": m.task.label,
            "workload": m.task.workload,
            "mode": m.task.mode,
            "threads": m.threads,
            "busy": m.task.busy,
            "tuples": m.task.tuples,
            "times": m.times,
            "cpu_times": m.cpu_times,
            "peak_mib": m.peak_mib,
        }
        for m in measurements
    ]
    run = {
        "command": command,
        "torch": torch.__version__,
        "load_before": load,
        "load_after": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
        "rows": rows,
    }
    with open(path, "w", encoding="utf-8") as out:
        json.dump(run, out, indent=1)


if __name__ == "__main__":
    main()
