"""How much does OInfoMonitor add to training wall time? The grokking setting, measured in one run.

The model is the 2024 paper's MLP (194 -> 250 -> 97) trained full batch with AdamW on (a+b) mod 97;
the probe is the 3,763 training samples. For the monitor's defaults (every=100, default strategy
for a 250-neuron layer) and for every search strategy (every=100 and every=10) it prints the
seconds per evaluation and the overhead against training without the monitor, timed in the same
run with the runs interleaved, best of --repeats.

A second table compares evaluation on the training thread (foreground) with evaluation in the
background (``background=True``: the training thread only captures the probe's activations) for
the defaults at every=10: wall time against training without the monitor (closing the monitor,
which waits for the background queue, included) and the share of the training thread's time
spent inside ``monitor.step()``, in wall seconds and in the training thread's CPU seconds
(``time.thread_time``; on a machine other work keeps busy, wall seconds also count the waits for
a core).

    python benchmarks/bench_overhead.py              # both tables, for the docs
    python benchmarks/bench_overhead.py --steps 300  # quicker
    python benchmarks/bench_overhead.py --table background --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from oinfo_monitor import OInfoMonitor
from oinfo_monitor.experiments.data import modular_arithmetic

CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("defaults", {}),
    ("auto", {"strategy": "auto"}),
    ("greedy", {"strategy": "greedy"}),
    ("clusters (10 bins)", {"strategy": "clusters"}),
    ("anneal", {"strategy": "anneal"}),
    ("exhaustive (size 3)", {"strategy": "exhaustive", "sizes": [3]}),
]


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1000, help="training steps per timed run")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per configuration (best is kept)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: library default)")
    parser.add_argument(
        "--table",
        choices=("strategies", "background", "both"),
        default="both",
        help="which table to measure",
    )
    return parser.parse_args()


@dataclass
class Run:
    """One timed training run: wall seconds (closing the monitor included), the seconds of each
    evaluation, and the seconds the training thread spent inside ``monitor.step()``."""

    wall: float
    evaluations: list[float] = field(default_factory=list)
    in_step: float = 0.0
    cpu: float = 0.0  # the training thread's CPU seconds (time.thread_time), whole run
    cpu_in_step: float = 0.0  # of which inside monitor.step()


def train(steps: int, data: Any, monitor_options: dict[str, Any] | None, every: int) -> Run:
    """Train from a fixed seed with the monitor (None: without) and time it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(194, 250), nn.ReLU(), nn.Linear(250, 97, bias=False))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.03, betas=(0.9, 0.98), weight_decay=2.0)
    run = Run(0.0)
    monitor = None
    if monitor_options is not None:
        monitor = OInfoMonitor(
            model,
            probe=data.x_train,
            every=every,
            track_phases=False,
            on_evaluation=lambda evaluation: run.evaluations.append(evaluation.seconds),
            **monitor_options,
        )
    start, thread_start = time.perf_counter(), time.thread_time()
    for step in range(1, steps + 1):
        loss = nn.functional.cross_entropy(model(data.x_train), data.y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if monitor is not None:
            tic, cpu = time.perf_counter(), time.thread_time()
            monitor.step(step)
            run.in_step += time.perf_counter() - tic
            run.cpu_in_step += time.thread_time() - cpu
    if monitor is not None:
        monitor.close()
    run.wall = time.perf_counter() - start
    run.cpu = time.thread_time() - thread_start
    return run


def strategies_table(args: argparse.Namespace, data: Any) -> None:
    """Every strategy at every=100 and every=10 against training without the monitor."""
    runs = [("no monitor", None, 100)] + [(n, o, e) for e in (100, 10) for n, o in CONFIGS]
    walls: dict[tuple[str, int], list[float]] = {}
    evals: dict[tuple[str, int], list[float]] = {}
    for repeat in range(args.repeats):
        for name, options, every in runs:
            run = train(args.steps, data, options, every)
            walls.setdefault((name, every), []).append(run.wall)
            evals.setdefault((name, every), []).extend(run.evaluations)
            print(
                f"repeat {repeat + 1}: {name:22s} every={every:<4d} {run.wall:7.2f} s", flush=True
            )
    base = min(walls[("no monitor", 100)])
    print(
        f"\ntraining without the monitor: {base:.2f} s ({1000 * base / args.steps:.1f} ms/step)\n"
    )
    print("| configuration | every | s / evaluation (median) | training wall (s) | overhead |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, _, every in runs[1:]:
        wall = min(walls[(name, every)])
        per_eval = statistics.median(evals[(name, every)]) if evals[(name, every)] else float("nan")
        print(
            f"| {name} | {every} | {per_eval:.3f} | {wall:.2f} | {100 * (wall / base - 1):+.1f}% |"
        )


def background_table(args: argparse.Namespace, data: Any) -> None:
    """The defaults at every=10, foreground and background, against training without the monitor;
    each ratio is taken within one repeat (the runs of a repeat follow each other), and the table
    gives the median and the range over the repeats."""
    modes = {"no monitor": None, "foreground": {}, "background": {"background": True}}
    ratios: dict[str, list[float]] = {name: [] for name in modes}
    shares: dict[str, list[float]] = {name: [] for name in modes}
    cpu_shares: dict[str, list[float]] = {name: [] for name in modes}
    for repeat in range(args.repeats):
        runs = {name: train(args.steps, data, options, 10) for name, options in modes.items()}
        for name, run in runs.items():
            ratios[name].append(run.wall / runs["no monitor"].wall)
            shares[name].append(run.in_step / run.wall)
            cpu_shares[name].append(run.cpu_in_step / run.cpu)
            print(
                f"repeat {repeat + 1}: {name:12s} every=10 {run.wall:7.2f} s, "
                f"{run.in_step:6.2f} s in step(), {len(run.evaluations)} evaluations",
                flush=True,
            )
    print(
        "\n| defaults, every=10 | wall / no monitor | time in step() / wall | "
        "training thread's CPU in step() / its CPU |"
    )
    print("| --- | ---: | ---: | ---: |")
    for name in list(modes)[1:]:
        print(
            f"| {name} | {spread(ratios[name], 'x')} | {spread(shares[name], '%')} | "
            f"{spread(cpu_shares[name], '%')} |"
        )
    print("(median and range over the repeats)")


def spread(values: list[float], unit: str) -> str:
    """Median and range of repeated ratios, as ``1.23x (1.20-1.30)`` or ``4.5% (4.1-5.0)``."""
    scale, digits = (100.0, 1) if unit == "%" else (1.0, 2)
    low, mid, high = (scale * v for v in (min(values), statistics.median(values), max(values)))
    return f"{mid:.{digits}f}{unit} ({low:.{digits}f}-{high:.{digits}f})"


def main() -> None:
    """Run the interleaved timings and print the markdown tables."""
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = modular_arithmetic()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.steps} steps, "
        f"{args.repeats} repeats, load average {os.getloadavg()[0]:.1f}"
    )
    if args.table in ("strategies", "both"):
        strategies_table(args, data)
    if args.table in ("background", "both"):
        background_table(args, data)
    print(
        f"\ncommand: python benchmarks/bench_overhead.py --steps {args.steps} --repeats {args.repeats}"
        + (f" --threads {args.threads}" if args.threads else "")
        + (f" --table {args.table}" if args.table != "both" else "")
    )


if __name__ == "__main__":
    main()
