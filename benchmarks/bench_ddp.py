"""Under DDP, does splitting the evaluation over the ranks cut the time each rank spends in the monitor?

Two gloo ranks (one process and one torch thread each) train a 2-layer MLP (64 -> 250 -> 250 -> 10,
both hidden layers monitored after their ReLU, or with ``--layers 1`` the first alone, whose
surrogate searches are then what the ranks split; probe of --samples samples) with DDP and the
monitor's defaults at every=10. Each repeat trains twice from the same seed, once with
``split_ranks=False`` (rank 0 evaluates every layer alone, as before the split) and once with
``split_ranks=True`` (each rank scores one layer, rank 0 writes), in alternating order. It prints the
seconds each rank spent inside ``monitor.step()`` and the ratio of the slowest rank's time with the
split to rank 0's time without it, per repeat (median and range), plus the training wall times.
The same ratio is printed for CPU seconds (``time.process_time``) inside ``monitor.step()``: on a
machine that other work keeps busy, wall seconds measure the share of the cores each rank gets as
much as the work it does, while CPU seconds measure the work alone.

    python benchmarks/bench_ddp.py                 # 200 steps, 3 repeats
    python benchmarks/bench_ddp.py --steps 100 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oinfo_monitor import OInfoMonitor


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200, help="training steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="pairs of runs (split off / on)")
    parser.add_argument("--samples", type=int, default=2000, help="probe samples")
    parser.add_argument(
        "--layers",
        type=int,
        choices=(1, 2),
        default=2,
        help="monitored hidden layers: both, or the first alone (its surrogates are split)",
    )
    return parser.parse_args()


def train(rank: int, args: argparse.Namespace, split: bool) -> dict[str, float]:
    """One timed DDP run on this rank: wall seconds, and wall and CPU seconds inside ``monitor.step()``."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(64, 250), nn.ReLU(), nn.Linear(250, 250), nn.ReLU(), nn.Linear(250, 10)
    )
    model = nn.parallel.DistributedDataParallel(net)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(args.samples, 64, generator=generator)
    y = torch.randint(0, 10, (args.samples,), generator=generator)
    layers = ["0", "2"][: args.layers]
    monitor = OInfoMonitor(
        model, x, layers=layers, capture="post", every=10, track_phases=False, split_ranks=split
    )
    in_monitor = cpu_in_monitor = 0.0
    start = time.perf_counter()
    for step in range(args.steps):
        batch = slice(rank, None, 2)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        tic, cpu = time.perf_counter(), time.process_time()
        monitor.step(step)
        in_monitor += time.perf_counter() - tic
        cpu_in_monitor += time.process_time() - cpu
    monitor.close()
    torch.distributed.barrier()
    wall = time.perf_counter() - start
    return {"wall": wall, "in_monitor": in_monitor, "cpu_in_monitor": cpu_in_monitor}


def rank_main(rank: int, port: int, args: argparse.Namespace, out: str) -> None:
    """One rank: the repeats, split off and on in alternating order; results to ``out``."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        runs: list[dict[str, Any]] = []
        for repeat in range(args.repeats):
            order = (False, True) if repeat % 2 == 0 else (True, False)
            for split in order:
                runs.append({"repeat": repeat, "split": split, **train(rank, args, split)})
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(runs))
    finally:
        dist.destroy_process_group()


def spread(values: list[float]) -> str:
    """Median and range, as ``0.55 (0.52-0.60)``."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    """Spawn the two ranks and print the table."""
    args = parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        torch.multiprocessing.start_processes(
            rank_main, args=(port, args, out), nprocs=2, join=True, start_method="spawn"
        )
        ranks = [json.loads((Path(out) / f"rank{r}.json").read_text()) for r in (0, 1)]
    print(
        f"torch {torch.__version__}, 2 gloo ranks x 1 thread, {args.steps} steps, every=10, "
        f"{args.samples} probe samples, {args.layers} monitored layer(s), "
        f"load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| repeat | split | rank 0 in monitor (s) | rank 1 in monitor (s) | "
        "CPU s in monitor, rank 0 / rank 1 | wall rank 0 (s) |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    walls: list[float] = []
    for repeat in range(args.repeats):
        pair = {
            split: [next(r for r in rank if r["repeat"] == repeat and r["split"] == split)
                    for rank in ranks]
            for split in (False, True)
        }  # fmt: skip
        for split, (zero, one) in pair.items():
            print(
                f"| {repeat + 1} | {'on' if split else 'off'} | {zero['in_monitor']:.2f} | "
                f"{one['in_monitor']:.2f} | {zero['cpu_in_monitor']:.2f} / "
                f"{one['cpu_in_monitor']:.2f} | {zero['wall']:.2f} |"
            )
        for key, found in (("in_monitor", ratios), ("cpu_in_monitor", cpu_ratios)):
            found.append(max(run[key] for run in pair[True]) / pair[False][0][key])
        walls.append(pair[True][0]["wall"] / pair[False][0]["wall"])
    print(f"\nslowest rank in the monitor, split on / rank 0 split off: {spread(ratios)}")
    print(f"the same in CPU seconds: {spread(cpu_ratios)}")
    print(f"training wall, split on / split off: {spread(walls)}")
    print(
        f"command: python benchmarks/bench_ddp.py --steps {args.steps} --repeats {args.repeats} "
        f"--samples {args.samples} --layers {args.layers}"
    )


if __name__ == "__main__":
    main()
