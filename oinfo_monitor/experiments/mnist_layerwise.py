"""Layerwise synergy and redundancy of an MNIST MLP, and retraining its most synergistic sub-network.

Clauw, Stramaglia & Marinazzo (2022, arXiv:2211.00416) train MLPs 784-20-20-20-10 on MNIST and
measure the task-related O-information (the label joins every multiplet) of the pre-activations of
the three hidden layers over the test set. Their Figure 1: the first layer (fc1) is dominated by
redundancy (large max Ω), the last hidden layer (fc3) by synergy (large negative min Ω). Their
Figure 2: resetting a sub-network to its initial weights and retraining it while everything else
stays frozen ("rewind") costs the least accuracy when the sub-network is the most synergistic one,
compared with random neurons and with the top neurons of two single-neuron MI rankings.

This demo reruns that pipeline, one network per seed:

1. train with SGD (the paper's recipe) while `OInfoMonitor` streams cheap layerwise curves
   (exhaustive sizes 3..6) to TensorBoard;
2. after training, the final analysis: sizes 3..20, exhaustive to 6 then greedy growth (beam 1),
   once per way of adding the label (--target: discrete classes, or the digit as a continuous
   variable as a Gaussian-copula toolbox would treat it; the two disagree about fc3);
3. rewind and retrain each layer's sub-networks chosen by every strategy (`oinfo_monitor.retrain`);
4. after every seed, rewrite Figure 1 (bars by size, mean ± std over seeds) and the Figure 2
   analogue (accuracy change per layer and strategy) as PNG + JSON, so a long run can be read
   while it goes on.

The seeds run in a local process pool by default (``--workers`` at a time), as Ray tasks with
``--backend ray``, or one after the other with ``--backend serial``: the same results either way.

Run ``oinfo-monitor demo mnist --help`` (in a clone: ``python demos/mnist_layerwise.py --help``)
for every option, ``--quick`` for a few-minute version. Outputs go to ``<runs-dir>/<name>/``: ``figure1_<target>.png`` and ``figure1.json``
(every network, layer and size), ``figure2.png`` (accuracy change after retraining),
``figure2_rewound.png`` (right after the reset) and ``figure2.json``; per seed ``seed<k>/``:
TensorBoard events and the monitor's ``oinfo_history.jsonl`` of training, ``final_<target>/``
for the final analysis, ``init.pt`` and ``final.pt``.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oinfo_monitor.cli.options import HelpFormatter
from oinfo_monitor.experiments.common import add_run_folder, add_threads, new_run_dir
from oinfo_monitor.experiments.mnist_figures import seed_table, write_figure1, write_figure2
from oinfo_monitor.experiments.mnist_training import (
    WIDTH,
    final_analysis,
    load_data,
    retrain_subnetworks,
    train_and_monitor,
)
from oinfo_monitor.experiments.trials import add_backend, run_trials
from oinfo_monitor.retrain import RetrainResult

# ----------------------------------------------------------------------------- configuration

PAPER_ACCURACY = 0.96  # the paper kept networks with >= 96% train and test accuracy
# A clone's neighbouring shared/data (oinfo_monitor/experiments/ -> the clone's parent folder).
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

# The full run: the paper's setting for seeds, epochs and sizes; the retraining length and the
# random draws are our choice. --quick replaces these by QUICK; a flag given explicitly wins.
FULL: dict[str, Any] = {
    "seeds": 20,
    "epochs": 50,
    "max_size": 20,
    "exhaustive_to": 6,
    "retrain_epochs": 1,
    "random_draws": 3,
}
QUICK: dict[str, Any] = {
    "seeds": 2,
    "epochs": 3,
    "max_size": 10,
    "exhaustive_to": 6,
    "retrain_epochs": 0.2,
    "random_draws": 2,
}

# How the label joins every multiplet (task-related O-information); see --target.
TARGETS = ("discrete", "continuous", "none")


def default_data_root() -> Path:
    """The shared MNIST next to a clone of the repository (../shared/data) when present, else ./data."""
    return SHARED_DATA if SHARED_DATA.is_dir() else Path("data")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, validated; defaults are the full run (FULL) or QUICK with --quick."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )

    def preset(key: str) -> str:
        """The full run's and --quick's value of a setting, for the help text."""
        return f"(full: {FULL[key]}; --quick: {QUICK[key]})"

    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few-minute run: 2 seeds, 3 epochs, sizes up to 10, a fifth of an epoch of "
        "retraining",
    )
    train = parser.add_argument_group("training (defaults: the 2022 paper's setting)")
    train.add_argument(
        "--seeds", type=int, default=None, help=f"networks to train, seeds 0..N-1 {preset('seeds')}"
    )
    train.add_argument(
        "--epochs", type=int, default=None, help=f"passes over the training set {preset('epochs')}"
    )
    train.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (no momentum)")
    train.add_argument("--batch-size", type=int, default=32, help="mini-batch size")
    train.add_argument(
        "--data-root",
        type=Path,
        default=default_data_root(),
        help="folder holding MNIST/raw/ (IDX files, raw or .gz)",
    )
    train.add_argument(
        "--limit-train",
        type=int,
        default=None,
        help="use only the first N training images (tests, smoke runs; default: all 60,000)",
    )
    train.add_argument(
        "--limit-test",
        type=int,
        default=None,
        help="use only the first N test images (default: all 10,000)",
    )
    add_threads(train, "one is fastest for this tiny MLP at batch 32")
    measure = parser.add_argument_group("O-information (task-related: the label is the target)")
    measure.add_argument(
        "--probe",
        choices=("test", "train"),
        default="test",
        help="the images whose pre-activations are measured (the paper: the test set)",
    )
    measure.add_argument(
        "--target",
        nargs="+",
        choices=TARGETS,
        default=["discrete", "continuous"],
        help="how the label joins every multiplet, one Figure 1 each: discrete = class labels "
        "one-hot and jointly Gaussian with the neurons (the package's model for labels); "
        "continuous = the digit value copula-ranked like a neuron (what a Gaussian-copula "
        "toolbox does with a scalar label); none = no target. The first one drives the "
        "in-training curves and picks the retrained sub-networks",
    )
    measure.add_argument(
        "--max-size",
        type=int,
        default=None,
        help=f"final analysis: multiplet sizes 3..MAX_SIZE {preset('max_size')}",
    )
    measure.add_argument(
        "--exhaustive-to",
        type=int,
        default=None,
        help="final analysis: every multiplet up to this size, greedy growth (beam 1) beyond it; "
        f"the in-training curves use exhaustive sizes 3..EXHAUSTIVE_TO {preset('exhaustive_to')}",
    )
    measure.add_argument(
        "--every",
        type=int,
        default=1875,
        help="in-training evaluation every this many SGD steps (1875 = one epoch at batch 32; "
        "0: only before and after training)",
    )
    retrain = parser.add_argument_group("retraining (the paper's Figure 2, 'rewind' procedure)")
    retrain.add_argument(
        "--retrain-epochs",
        type=float,
        default=None,
        help="epochs of SGD retraining a rewound sub-network (fractions allowed); 0 skips the "
        "retraining "
        f"{preset('retrain_epochs')}",
    )
    retrain.add_argument(
        "--retrain-size",
        type=int,
        default=None,
        help="neurons per retrained sub-network (default: min(EXHAUSTIVE_TO, MAX_SIZE), the "
        "largest size whose synergy/redundancy multiplets are exact optima)",
    )
    retrain.add_argument(
        "--random-draws",
        type=int,
        default=None,
        help=f"random sub-networks of the same size per layer and seed {preset('random_draws')}",
    )
    add_backend(parser.add_argument_group("where the seeds run"))
    add_run_folder(parser.add_argument_group("output"), "mnist")
    args = parser.parse_args(argv)
    args.target = list(dict.fromkeys(args.target))  # drop repeats, keep the order

    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.retrain_size is None:
        args.retrain_size = min(args.exhaustive_to, args.max_size)
    check_args(parser, args)
    return args


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject impossible settings up front, saying what was wrong and what to pass."""
    problems = []
    for flag, value, low in (
        ("--seeds", args.seeds, 1),
        ("--epochs", args.epochs, 1),
        ("--batch-size", args.batch_size, 1),
        ("--every", args.every, 0),
        ("--retrain-epochs", args.retrain_epochs, 0),
        ("--random-draws", args.random_draws, 0),
        ("--threads", args.threads, 0),
    ):
        if value < low:
            problems.append(f"{flag} must be >= {low}, got {value}")
    if not args.lr > 0:
        problems.append(f"--lr must be positive, got {args.lr}")
    if not 3 <= args.max_size <= WIDTH:
        problems.append(
            f"--max-size must lie in 3..{WIDTH} (Ω of a pair is 0; a layer has {WIDTH} neurons), "
            f"got {args.max_size}"
        )
    if not 3 <= args.exhaustive_to <= args.max_size:
        problems.append(
            f"--exhaustive-to must lie in 3..MAX_SIZE ({args.max_size}), got {args.exhaustive_to}"
        )
    if not 3 <= args.retrain_size <= min(args.max_size, WIDTH - 1):
        problems.append(
            f"--retrain-size must be a searched size below the layer width, "
            f"3..{min(args.max_size, WIDTH - 1)}, got {args.retrain_size}"
        )
    for flag, value in (("--limit-train", args.limit_train), ("--limit-test", args.limit_test)):
        if value is not None and value < 100:
            problems.append(f"{flag} must be >= 100 images (or omitted for all), got {value}")
    if problems:
        parser.error("; ".join(problems))


def run_taken(run_dir: Path) -> bool:
    """Whether a run folder already holds results (its histories would be appended to)."""
    return (run_dir / "figure1.json").exists() or any(run_dir.glob("seed*/oinfo_history.jsonl"))


# ----------------------------------------------------------------------------- main


def run_seed(args: argparse.Namespace, run_dir: Path, seed: int) -> dict[str, Any]:
    """Train, analyse and retrain one network (a trial of the sweep); its row, records and retraining."""
    data = load_data(args)
    probe = data[args.probe]
    seed_dir = run_dir / f"seed{seed}"
    seed_dir.mkdir()
    began = time.perf_counter()
    model, initial, log = train_and_monitor(seed, data, probe, args, seed_dir)
    tic = time.perf_counter()
    evaluations = {
        target: final_analysis(model, probe, target, log["steps"][-1], seed, args, seed_dir)
        for target in args.target
    }
    analysis_seconds = time.perf_counter() - tic
    tic = time.perf_counter()
    retrain = None
    if args.retrain_epochs:
        retrain = retrain_subnetworks(
            model, initial, evaluations[args.target[0]], data, probe, seed, args
        )
    retrain_seconds = time.perf_counter() - tic
    train_acc, test_acc = log["train_acc"][-1], log["test_acc"][-1]
    row = {
        "seed": seed,
        "train_acc": train_acc,
        "test_acc": test_acc,
        "meets_paper_bar": min(train_acc, test_acc) >= PAPER_ACCURACY,
        "curves": {key: log[key] for key in ("steps", "train_acc", "test_acc")},
        "seconds": {
            "training": log["seconds"],
            "of_which_monitor": log["monitor_seconds"],
            "final_analysis": analysis_seconds,
            "retraining": retrain_seconds,
            "total": time.perf_counter() - began,
        },
        "load_average_1min": os.getloadavg()[0],
        "layers": {target: seed_table(e) for target, e in evaluations.items()},
    }
    records = {target: evaluation.records for target, evaluation in evaluations.items()}
    return {"row": row, "records": records, "retrain": retrain}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train every seed with the monitor (on ``--backend``), analyse and retrain it, and write both figures."""
    args = parse_args(argv)
    data = load_data(args)
    run_dir = new_run_dir(args, "mnist", run_taken)
    config = {
        key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()
    }
    config.update(run_dir=str(run_dir), train_images=len(data["train"][1]))
    config["probe_images"] = len(data[args.probe][1])
    config["load_average_1min_at_start"] = os.getloadavg()[0]
    del data  # each trial loads its own copy
    started = time.perf_counter()

    seeds: list[dict[str, Any]] = []
    records: dict[str, list[dict[str, Any]]] = {target: [] for target in args.target}
    retrains: dict[int, RetrainResult] = {}
    figure2: dict[str, Any] | None = None
    figure1: dict[str, Any] = {}

    def add_seed(trial: tuple[int], result: dict[str, Any]) -> None:
        """Add one network to the tables and rewrite both figures, as soon as its seed is done."""
        nonlocal figure1, figure2
        seeds.append(result["row"])
        for target, target_records in result["records"].items():
            records[target].extend(target_records)
        if result["retrain"] is not None:
            retrains[trial[0]] = result["retrain"]
        figure1 = write_figure1(run_dir, config, seeds, records)
        if retrains:
            figure2 = write_figure2(run_dir, config, retrains)
        if not args.quiet:
            row = result["row"]
            print(
                f"seed {row['seed']}: train {row['train_acc']:.4f} test {row['test_acc']:.4f}, "
                f"{row['seconds']['total']:.0f} s",
                flush=True,
            )

    run_trials(
        functools.partial(run_seed, args, run_dir),
        [(seed,) for seed in range(args.seeds)],
        backend=args.backend,
        workers=args.workers,
        threads=args.threads,
        address=args.ray_address,
        on_result=add_seed,
    )

    names = [f"figure1_{target}.png" for target in args.target]
    names += ["figure1.json", "figure2.png", "figure2_rewound.png", "figure2.json"]
    outputs = {
        "figure1": figure1,
        "figure2": figure2,
        "seconds": time.perf_counter() - started,
        "paths": {
            "run_dir": str(run_dir),
            **{name: str(run_dir / name) for name in names if (run_dir / name).exists()},
        },
    }
    if not args.quiet:
        report(outputs, args.runs_dir)
    return outputs


def report(outputs: dict[str, Any], runs_dir: Path) -> None:
    """Print the per-layer verdicts, the retraining comparison, timings and where everything is."""
    for target, summary in outputs["figure1"]["summary"].items():
        print(f"\nTarget {target}: synergy −min Ω vs redundancy max Ω, mean over networks")
        for layer, row in summary.items():
            size = max(int(k) for k in row["sizes"] if int(k) <= 6)
            at = row["sizes"][str(size)]
            print(
                f"  {layer}: at size {size} synergy {-at['synergy']['mean']:.2f} / redundancy "
                f"{at['redundancy']['mean']:.2f} bits; synergy larger at sizes "
                f"{row['synergy_dominant_sizes'] or 'none'}; synergy-dominated in "
                f"{row['synergy_dominated']}/{row['networks']} networks (majority of sizes)"
            )
    if outputs["figure2"]:
        print("\nRetraining (rewind): test accuracy change vs the trained network, mean ± std")
        print(
            f"  {'layer':<6}{'strategy':<12}{'size':>5}{'runs':>5}{'at reset':>18}{'retrained':>18}"
        )
        for layer, rows in outputs["figure2"]["comparison_test"].items():
            for row in rows:
                cells = [
                    f"{row[key]['mean']:+.4f} ±{row[key]['std'] or 0:.4f}"
                    for key in ("change_at_rewind", "change_after_retraining")
                ]
                print(
                    f"  {layer:<6}{row['strategy']:<12}{row['size']:>5}{row['runs']:>5}"
                    f"{cells[0]:>18}{cells[1]:>18}"
                )
    print(f"\nwall time: {outputs['seconds']:.0f} s")
    for name, path in outputs["paths"].items():
        print(f"{name:>20}: {path}")
    print(f"\nTensorBoard: tensorboard --logdir {runs_dir}")


if __name__ == "__main__":
    main()
