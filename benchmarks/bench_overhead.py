"""How much does OInfoMonitor add to training wall time? The grokking setting, measured in one run.

The model is the 2024 paper's MLP (194 -> 250 -> 97) trained full batch with AdamW on (a+b) mod 97;
the probe is the 3,763 training samples. For the monitor's defaults (every=100, default strategy
for a 250-neuron layer) and for every search strategy (every=100 and every=10) it prints the
seconds per evaluation and the overhead against training without the monitor, timed in the same
run with the runs interleaved, best of --repeats.

    python benchmarks/bench_overhead.py              # the table for the docs
    python benchmarks/bench_overhead.py --steps 300  # quicker
"""

from __future__ import annotations

import argparse
import statistics
import time
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
    return parser.parse_args()


def train(
    steps: int, data: Any, monitor_options: dict[str, Any] | None, every: int
) -> tuple[float, list[float]]:
    """Train from a fixed seed; return wall seconds and the seconds of each monitor evaluation."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(194, 250), nn.ReLU(), nn.Linear(250, 97, bias=False))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.03, betas=(0.9, 0.98), weight_decay=2.0)
    monitor = None
    if monitor_options is not None:
        monitor = OInfoMonitor(
            model, probe=data.x_train, every=every, track_phases=False, **monitor_options
        )
    seconds: list[float] = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        loss = nn.functional.cross_entropy(model(data.x_train), data.y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if monitor is not None and (evaluation := monitor.step(step)) is not None:
            seconds.append(evaluation.seconds)
    return time.perf_counter() - start, seconds


def main() -> None:
    """Run the interleaved timings and print the markdown table."""
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = modular_arithmetic()
    runs = [("no monitor", None, 100)] + [(n, o, e) for e in (100, 10) for n, o in CONFIGS]
    walls: dict[tuple[str, int], list[float]] = {}
    evals: dict[tuple[str, int], list[float]] = {}
    for repeat in range(args.repeats):
        for name, options, every in runs:
            wall, seconds = train(args.steps, data, options, every)
            walls.setdefault((name, every), []).append(wall)
            evals.setdefault((name, every), []).extend(seconds)
            print(f"repeat {repeat + 1}: {name:22s} every={every:<4d} {wall:7.2f} s", flush=True)
    base = min(walls[("no monitor", 100)])
    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.steps} steps, best of {args.repeats}"
    )
    print(f"training without the monitor: {base:.2f} s ({1000 * base / args.steps:.1f} ms/step)\n")
    print("| configuration | every | s / evaluation (median) | training wall (s) | overhead |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, _, every in runs[1:]:
        wall = min(walls[(name, every)])
        per_eval = statistics.median(evals[(name, every)]) if evals[(name, every)] else float("nan")
        print(
            f"| {name} | {every} | {per_eval:.3f} | {wall:.2f} | {100 * (wall / base - 1):+.1f}% |"
        )
    print(
        f"\ncommand: python benchmarks/bench_overhead.py --steps {args.steps} --repeats {args.repeats}"
        + (f" --threads {args.threads}" if args.threads else "")
    )


if __name__ == "__main__":
    main()
