"""The MNIST experiment's network and training: the paper's MLP, SGD epochs, the monitor, the final analysis and the rewinds."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from oinfo_monitor import Evaluation, OInfoMonitor
from oinfo_monitor.experiments.data import mnist
from oinfo_monitor.monitor.capture import capture_activations, probe_context, resolve_layers
from oinfo_monitor.retrain import (
    RetrainResult,
    accuracy_evaluator,
    rewind_layerwise,
    select_from_result,
    strategy_selections,
    train_epoch,
)

LAYERS = ("fc1", "fc2", "fc3")  # the hidden layers, measured before their ReLU (pre-activation)
WIDTH = 20  # neurons per hidden layer
Split = tuple[Tensor, Tensor]  # (images [N, 784] in [0, 1], labels [N])


class MLP(nn.Module):
    """The paper's network: 784 -> 20 -> 20 -> 20 -> 10, ReLU, logits for a softmax cross-entropy."""

    def __init__(self, width: int = WIDTH) -> None:
        """Three hidden Linear layers of `width` neurons and the output layer, PyTorch's default init."""
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
    on_accuracy: Callable[[int, Mapping[str, float]], None] | None = None,
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
    bar = tqdm(total=args.epochs * steps_per_epoch, desc=f"seed {seed}", disable=args.quiet)
    clock = {"monitor": 0.0}

    def after_step(step: int) -> None:
        """Advance the progress bar and let the monitor evaluate when due."""
        tic = time.perf_counter()
        monitor.step(step)
        clock["monitor"] += time.perf_counter() - tic
        bar.update(1)

    def on_accuracy(step: int, accuracies: Mapping[str, float]) -> None:
        """Log the accuracies (before training and after every epoch) to TensorBoard."""
        for split, value in accuracies.items():
            writer.add_scalar(f"accuracy/{split}", value, step)

    started = time.perf_counter()
    monitor.evaluate(0)
    log: dict[str, Any] = train_epochs(
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
