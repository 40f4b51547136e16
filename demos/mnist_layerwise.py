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

Run ``python demos/mnist_layerwise.py --help`` for every option, ``--quick`` for a few-minute
version. Outputs go to ``<runs-dir>/<name>/``: ``figure1_<target>.png`` and ``figure1.json``
(every network, layer and size), ``figure2.png`` (accuracy change after retraining),
``figure2_rewound.png`` (right after the reset) and ``figure2.json``; per seed ``seed<k>/``:
TensorBoard events and the monitor's ``oinfo_history.jsonl`` of training, ``final_<target>/``
for the final analysis, ``init.pt`` and ``final.pt``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from oinfo_monitor.data import mnist
from oinfo_monitor.monitor.capture import capture_activations, probe_context, resolve_layers
from oinfo_monitor.monitor.figures import size_bars, size_table
from oinfo_monitor.monitor.monitor import Evaluation, OInfoMonitor
from oinfo_monitor.progress import ProgressBar
from oinfo_monitor.retrain import (
    RetrainResult,
    RunResult,
    accuracy_evaluator,
    change_figure,
    rewind_layerwise,
    select_from_result,
    strategy_selections,
    train_epoch,
)

# ----------------------------------------------------------------------------- configuration

LAYERS = ("fc1", "fc2", "fc3")  # the hidden layers, measured before their ReLU (pre-activation)
WIDTH = 20  # neurons per hidden layer
PAPER_ACCURACY = 0.96  # the paper kept networks with >= 96% train and test accuracy
REPO = Path(__file__).resolve().parents[1]

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

Split = tuple[Tensor, Tensor]  # (images [N, 784] in [0, 1], labels [N])


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show each flag's default, except where it is None (the help then says what happens)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        """The help text, with ``(default: ...)`` appended only for a real default."""
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def default_data_root() -> Path:
    """The shared MNIST next to the repository (../shared/data) when present, else ./data."""
    shared = REPO.parent / "shared" / "data"
    return shared if shared.is_dir() else Path("data")


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
    train.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (one is fastest for this tiny MLP at batch 32; 0: PyTorch's default)",
    )
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
    output = parser.add_argument_group("output")
    output.add_argument("--runs-dir", type=Path, default=Path("runs"), help="parent of run folders")
    output.add_argument(
        "--name", default=None, help="run folder name (default: mnist-<date>-<time>)"
    )
    output.add_argument("--quiet", action="store_true", help="no progress bars or printout")
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


# ----------------------------------------------------------------------------- model and training


class MLP(nn.Module):
    """The paper's network: 784 -> 20 -> 20 -> 20 -> 10, ReLU, logits for a softmax cross-entropy."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, width)
        self.fc2 = nn.Linear(width, width)
        self.fc3 = nn.Linear(width, width)
        self.out = nn.Linear(width, 10)

    def forward(self, x: Tensor) -> Tensor:
        """Logits; fc1..fc3 are hooked by the monitor before their ReLU."""
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.out(torch.relu(self.fc3(x)))


def load_data(args: argparse.Namespace) -> dict[str, Split]:
    """MNIST train and test splits, cut to --limit-train/--limit-test when given."""
    try:
        train, test = mnist(args.data_root, train=True), mnist(args.data_root, train=False)
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}; or pass --data-root") from None
    cut = {"train": args.limit_train, "test": args.limit_test}
    return {
        name: (x[: cut[name]], y[: cut[name]])
        for name, (x, y) in (("train", train), ("test", test))
    }


def train_epochs(
    model: nn.Module,
    data: dict[str, Split],
    *,
    epochs: float,
    lr: float,
    batch_size: int,
    before_step: Callable[[nn.Module, int], None] | None = None,
    after_step: Callable[[int], None] | None = None,
    on_accuracy: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, list[float]]:
    """Plain SGD on the cross-entropy over shuffled mini-batches; accuracies before and per epoch.

    A fractional `epochs` stops after that share of an epoch's steps (e.g. 0.2: a fifth).

    Shuffling draws from the global torch RNG, which the caller seeds. `before_step(model, step)`
    runs before every update (retrain.py's hook that holds frozen weights), `after_step(step)`
    after it (the monitor), `on_accuracy(step, accuracies)` after each accuracy measurement.
    Returns the curves ``steps``, ``train_acc``, ``test_acc``: one point before training (for a
    rewound network: its accuracy right after the reset) and one after every epoch.
    """
    x, y = data["train"]
    accuracy = accuracy_evaluator(data)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    log: dict[str, list[float]] = {"steps": [], "train_acc": [], "test_acc": []}

    def measure(step: int) -> None:
        """Append the train and test accuracy at `step` to the log."""
        with probe_context(model):
            accuracies = accuracy(model)
        log["steps"].append(step)
        log["train_acc"].append(accuracies["train"])
        log["test_acc"].append(accuracies["test"])
        if on_accuracy is not None:
            on_accuracy(step, accuracies)

    total = max(1, round(epochs * -(-len(y) // batch_size)))
    step = 0
    measure(step)
    while step < total:
        step = train_epoch(
            model, optimizer, (x, y), batch_size, step,
            before_step=before_step, after_step=after_step, stop=total,
        )  # fmt: skip
        measure(step)
    return log


# ----------------------------------------------------------------------------- one seed


def target_values(labels: Tensor, kind: str) -> Tensor | None:
    """The monitor's target for a --target kind: integer labels are modelled as discrete
    classes, floating-point values are copula-ranked as a continuous variable."""
    return {"discrete": labels, "continuous": labels.double(), "none": None}[kind]


def train_and_monitor(
    seed: int, data: dict[str, Split], probe: Split, args: argparse.Namespace, seed_dir: Path
) -> tuple[MLP, dict[str, Tensor], dict[str, Any]]:
    """Train one network with the monitor attached; return it, its initial state and its log.

    The in-training monitor is cheap on purpose: exhaustive sizes 3..EXHAUSTIVE_TO only, with
    the first --target.
    """
    torch.manual_seed(seed)
    model = MLP()
    initial = {name: value.detach().clone() for name, value in model.state_dict().items()}
    torch.save(initial, seed_dir / "init.pt")
    writer = SummaryWriter(log_dir=str(seed_dir))
    monitor = OInfoMonitor(
        model,
        probe[0],
        target=target_values(probe[1], args.target[0]),
        layers=list(LAYERS),
        capture="pre",
        every=args.every if args.every else (lambda step: False),
        strategy="exhaustive",
        sizes=range(3, args.exhaustive_to + 1),
        seed=seed,
        writer=writer,
    )
    steps_per_epoch = -(-len(data["train"][1]) // args.batch_size)
    bar = ProgressBar(args.epochs * steps_per_epoch, f"seed {seed}", quiet=args.quiet)
    clock = {"monitor": 0.0}

    def after_step(step: int) -> None:
        """Advance the progress bar and let the monitor evaluate when due."""
        tic = time.perf_counter()
        monitor.step(step)
        clock["monitor"] += time.perf_counter() - tic
        bar.update(1)

    def on_accuracy(step: int, accuracies: dict[str, float]) -> None:
        """Log the accuracies (before training and after every epoch) to TensorBoard."""
        for split, value in accuracies.items():
            writer.add_scalar(f"accuracy/{split}", value, step)

    started = time.perf_counter()
    monitor.evaluate(0)
    log = train_epochs(
        model,
        data,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        after_step=after_step,
        on_accuracy=on_accuracy,
    )
    if log["steps"][-1] not in {record["step"] for record in monitor.history}:
        monitor.evaluate(log["steps"][-1])
    bar.close()
    monitor.close()
    writer.close()
    torch.save(model.state_dict(), seed_dir / "final.pt")
    log["seconds"] = time.perf_counter() - started
    log["monitor_seconds"] = clock["monitor"]
    return model, initial, log


def final_analysis(
    model: MLP,
    probe: Split,
    target: str,
    step: int,
    seed: int,
    args: argparse.Namespace,
    seed_dir: Path,
) -> Evaluation:
    """The paper's measurement of a trained network: sizes 3..MAX_SIZE, exhaustive then greedy.

    A second `OInfoMonitor` with the expensive search does it once per --target; its
    TensorBoard run and history go to ``seed<k>/final_<target>/``.
    """
    with OInfoMonitor(
        model,
        probe[0],
        target=target_values(probe[1], target),
        layers=list(LAYERS),
        capture="pre",
        strategy="greedy",
        sizes=args.max_size,
        search_options={"beam": 1, "start_size": args.exhaustive_to},
        seed=seed,
        logdir=seed_dir / f"final_{target}",
        figure_every=1,
        track_phases=False,
    ) as final:
        evaluation = final.evaluate(step)
    if evaluation is None or evaluation.skipped:
        reason = "see the warning above" if evaluation is None else evaluation.skipped
        raise RuntimeError(f"the final analysis of seed {seed} failed: {reason}")
    return evaluation


def retrain_subnetworks(
    model: MLP,
    initial: dict[str, Tensor],
    evaluation: Evaluation,
    data: dict[str, Split],
    probe: Split,
    seed: int,
    args: argparse.Namespace,
) -> RetrainResult:
    """The paper's Figure 2 test for one network: rewind and retrain each strategy's sub-network.

    Per layer, the strategies pick RETRAIN_SIZE neurons: the most synergistic and the most
    redundant multiplet of that size, random draws, the top neurons by each single-neuron MI
    baseline (on the probe's pre-activations), and the complement of the synergistic multiplet.
    """
    activations = capture_activations(model, (probe[0],), resolve_layers(model, list(LAYERS)))
    size = args.retrain_size
    layer_strategies = {
        layer: strategy_selections(
            WIDTH,
            select_from_result(result, size=size, kind="synergy"),
            redundancy=select_from_result(result, size=size, kind="redundancy"),
            random_draws=args.random_draws,
            seed=seed,
            activations=activations[layer],
            labels=probe[1],
        )
        for layer, result in evaluation.results.items()
    }

    def retrain_fn(network: nn.Module, before_step: Callable[[nn.Module, int], None]) -> Any:
        """Retrain with the same SGD recipe; retrain.py holds every frozen entry in place."""
        return train_epochs(
            network,
            data,
            epochs=args.retrain_epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            before_step=before_step,
        )

    return rewind_layerwise(
        model, initial, retrain_fn, accuracy_evaluator(data), layer_strategies, seed=seed
    )


# ----------------------------------------------------------------------------- figures and tables


def seed_table(evaluation: Evaluation) -> dict[str, dict[str, dict[str, Any]]]:
    """Per layer and size: min/max Ω (bits) and members of one network's final analysis."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for record in evaluation.records:
        table.setdefault(record["layer"], {})[str(record["size"])] = {
            key: record[key]
            for key in ("synergy", "synergy_members", "redundancy", "redundancy_members", "exact")
        }
    return table


def dominance(layer_table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Which of synergy and redundancy dominates one layer of one network.

    At each size the synergy (−min Ω) and the redundancy (max Ω), both in positive bits, are
    compared; the verdict is the one larger at most sizes. The strongest of each over all sizes
    is kept too (at large sizes Ω of nearly the whole layer decides both).
    """
    synergy_larger = [
        int(k) for k, row in layer_table.items() if -row["synergy"] > row["redundancy"]
    ]
    return {
        "strongest_redundancy": max(row["redundancy"] for row in layer_table.values()),
        "strongest_synergy": -min(row["synergy"] for row in layer_table.values()),
        "synergy_larger_at": synergy_larger,
        "verdict": "synergy" if 2 * len(synergy_larger) > len(layer_table) else "redundancy",
    }


def mean_std(values: list[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
    }


def figure1_summary(tables: list[dict[str, dict[str, dict[str, Any]]]]) -> dict[str, Any]:
    """Across networks, per layer: mean/std of min and max Ω by size, and the dominance verdicts.

    `tables` holds one `seed_table` per network. ``synergy_dominant_sizes`` lists the sizes at
    which the mean synergy (−min Ω) exceeds the mean redundancy (max Ω).
    """
    summary: dict[str, Any] = {}
    for layer in LAYERS:
        layer_tables = [table[layer] for table in tables if layer in table]
        if not layer_tables:
            continue
        sizes = {
            size: {
                kind: mean_std([table[size][kind] for table in layer_tables])
                for kind in ("synergy", "redundancy")
            }
            for size in layer_tables[0]
        }
        verdicts = [dominance(table) for table in layer_tables]
        summary[layer] = {
            "networks": len(layer_tables),
            "sizes": sizes,
            "synergy_dominant_sizes": [
                int(k)
                for k, row in sizes.items()
                if -row["synergy"]["mean"] > row["redundancy"]["mean"]
            ],
            "strongest_redundancy": mean_std([v["strongest_redundancy"] for v in verdicts]),
            "strongest_synergy": mean_std([v["strongest_synergy"] for v in verdicts]),
            "redundancy_dominated": sum(v["verdict"] == "redundancy" for v in verdicts),
            "synergy_dominated": sum(v["verdict"] == "synergy" for v in verdicts),
        }
    return summary


def pooled_retraining(results: dict[int, RetrainResult]) -> RetrainResult:
    """One `RetrainResult` holding every seed's runs, so its summary pools seeds (and draws).

    Run labels become ``<layer>/<strategy>:s<seed>[.<draw>]``, which `RetrainResult.groups`
    pools under ``<layer>/<strategy>``; the reference holds the trained networks' mean accuracies.
    """
    runs: dict[str, RunResult] = {}
    for seed, result in results.items():
        for label, run in result.runs.items():
            strategy, _, draw = label.partition(":")
            runs[f"{strategy}:s{seed}" + (f".{draw}" if draw else "")] = run
    references = [result.reference.final for result in results.values()]
    final = {key: statistics.fmean(ref[key] for ref in references) for key in references[0]}
    reference = RunResult(neurons={}, steps=[], train_acc=[], test_acc=[], final=final)
    first = next(iter(results.values()))
    return RetrainResult("rewind", first.seed, reference, runs, dict(first.options))


def at_rewind(result: RetrainResult) -> RetrainResult:
    """The same runs scored right after the reset, before any retraining (their curves' first point)."""
    reference = result.reference.final
    runs = {}
    for label, run in result.runs.items():
        final = {"train": run.train_acc[0], "test": run.test_acc[0]}
        change = {key: final[key] - reference[key] for key in final}
        runs[label] = dataclasses.replace(run, final=final, change=change)
    return dataclasses.replace(result, runs=runs)


def comparison(retrains: dict[int, RetrainResult], metric: str = "test") -> dict[str, list[dict]]:
    """Per layer, strategies from least to most accuracy lost after retraining, with the drop at reset.

    Each row: strategy, sub-network size, runs pooled (networks x draws), and mean ± std of the
    `metric` accuracy change right after the rewind and after retraining.
    """
    after = pooled_retraining(retrains).summary(metric)
    before = pooled_retraining({s: at_rewind(r) for s, r in retrains.items()}).summary(metric)
    table: dict[str, list[dict]] = {}
    for row, reset in zip(after, before, strict=True):
        layer, _, strategy = row["strategy"].rpartition("/")
        table.setdefault(layer, []).append(
            {
                "strategy": strategy,
                "size": row["size"],
                "runs": row["runs"],
                "change_at_rewind": {"mean": reset["change_mean"], "std": reset["change_std"]},
                "change_after_retraining": {"mean": row["change_mean"], "std": row["change_std"]},
            }
        )
    return {
        layer: sorted(rows, key=lambda r: -r["change_after_retraining"]["mean"])
        for layer, rows in table.items()
    }


def write_figure1(
    run_dir: Path,
    config: dict[str, Any],
    seeds: list[dict[str, Any]],
    records: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """Figure 1 per --target (bars by size per layer, mean ± std over networks) as
    ``figure1_<target>.png``, and one JSON table with every network, layer and size."""
    summary = {}
    for target, target_records in records.items():
        summary[target] = figure1_summary([seed["layers"][target] for seed in seeds])
        title = (
            f"MNIST MLP pre-activations, target: {target} label; {len(seeds)} network(s), "
            f"mean ± std; sizes 3..{config['exhaustive_to']} exhaustive, greedy beyond"
        )
        figure = size_bars(size_table(target_records), title=title)
        figure.savefig(run_dir / f"figure1_{target}.png", dpi=80)
    figure1 = {"config": config, "summary": summary, "seeds": seeds}
    (run_dir / "figure1.json").write_text(json.dumps(figure1, indent=1) + "\n", encoding="utf-8")
    return figure1


def write_figure2(
    run_dir: Path, config: dict[str, Any], retrains: dict[int, RetrainResult]
) -> dict[str, Any]:
    """The Figure 2 analogue: accuracy change per layer and strategy after retraining (PNG), the
    same right after the reset (``figure2_rewound.png``), and the JSON with every run."""
    size, epochs, n = config["retrain_size"], f"{config['retrain_epochs']:g}", len(retrains)
    pooled = pooled_retraining(retrains)
    for name, result, when in (
        ("figure2.png", pooled, f"after retraining {epochs} epoch(s)"),
        (
            "figure2_rewound.png",
            pooled_retraining({seed: at_rewind(r) for seed, r in retrains.items()}),
            "right after the reset, before retraining",
        ),
    ):
        title = (
            f"{size}-neuron sub-networks (complement: {WIDTH - size}) rewound, {when}\n"
            f"mean ± std over {n} network(s) and draws"
        )
        change_figure(result, title=title).savefig(run_dir / name, dpi=80)
    figure2 = {
        "config": config,
        "networks": n,
        "reference_mean": pooled.reference.final,
        "comparison_test": comparison(retrains, "test"),
        "comparison_train": comparison(retrains, "train"),
        "per_seed": {str(seed): result.to_dict() for seed, result in retrains.items()},
    }
    (run_dir / "figure2.json").write_text(json.dumps(figure2, indent=1) + "\n", encoding="utf-8")
    return figure2


# ----------------------------------------------------------------------------- main


def prepare_run_dir(args: argparse.Namespace) -> Path:
    """Create the run folder; refuse one that already holds results (histories would be appended)."""
    name = args.name or time.strftime("mnist-%Y%m%d-%H%M%S")
    run_dir = args.runs_dir / name
    if (run_dir / "figure1.json").exists() or any(run_dir.glob("seed*/oinfo_history.jsonl")):
        raise SystemExit(f"error: {run_dir} already holds a run; pass another --name or delete it")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train every seed with the monitor, analyse and retrain it, and write both figures."""
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    data = load_data(args)
    probe = data[args.probe]
    run_dir = prepare_run_dir(args)
    config = {
        key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()
    }
    config.update(run_dir=str(run_dir), train_images=len(data["train"][1]))
    config["probe_images"] = len(probe[1])
    config["load_average_1min_at_start"] = os.getloadavg()[0]
    started = time.perf_counter()

    seeds: list[dict[str, Any]] = []
    records: dict[str, list[dict[str, Any]]] = {target: [] for target in args.target}
    retrains: dict[int, RetrainResult] = {}
    figure2: dict[str, Any] | None = None
    for seed in range(args.seeds):
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
        if args.retrain_epochs:
            retrains[seed] = retrain_subnetworks(
                model, initial, evaluations[args.target[0]], data, probe, seed, args
            )
        retrain_seconds = time.perf_counter() - tic
        train_acc, test_acc = log["train_acc"][-1], log["test_acc"][-1]
        seeds.append(
            {
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
        )
        for target, evaluation in evaluations.items():
            records[target].extend(evaluation.records)
        figure1 = write_figure1(run_dir, config, seeds, records)
        if retrains:
            figure2 = write_figure2(run_dir, config, retrains)
        if not args.quiet:
            print(
                f"seed {seed}: train {train_acc:.4f} test {test_acc:.4f}, "
                f"{seeds[-1]['seconds']['total']:.0f} s",
                flush=True,
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
    main(sys.argv[1:])
