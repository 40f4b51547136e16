"""Simple training and evaluation for retraining classifiers: `epoch_trainer`, `train_epoch`, `accuracy_evaluator`.

Any ``train_fn(model, before_step) -> log`` works with `retrain` (see `TrainFn`); these are the
ready-made ones for classifiers trained with cross-entropy. Every loop calls ``before_step``
before each update, which is what keeps masked or frozen entries in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from oinfo_monitor.monitor.capture import probe_context

if TYPE_CHECKING:
    from oinfo_monitor.retrain import BeforeStep, EvaluateFn, TrainFn

__all__ = ["accuracy_evaluator", "epoch_trainer", "train_epoch"]


def _accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> float:
    """Classification accuracy of `model` on (x, y), in batches, without gradients."""
    with torch.no_grad():
        hits = sum(
            int((model(xb).argmax(1) == yb).sum())
            for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True)
        )
    return hits / max(1, len(y))


def accuracy_evaluator(
    splits: Mapping[str, tuple[Tensor, Tensor]], batch_size: int = 4096
) -> EvaluateFn:
    """An `EvaluateFn` returning the classification accuracy on each named (inputs, labels) split."""

    def evaluate(model: nn.Module) -> dict[str, float]:
        """Accuracy per split."""
        return {name: _accuracy(model, x, y, batch_size) for name, (x, y) in splits.items()}

    return evaluate


def epoch_trainer(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    *,
    epochs: int = 1,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
) -> TrainFn:
    """A `TrainFn` for classifiers: AdamW over shuffled mini-batches for `epochs` epochs.

    Accuracy on the train and test splits is logged at step 0 and after every epoch (``steps``
    count optimizer updates); shuffling uses the global torch RNG, which `retrain` seeds.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    x, y = train

    def train_fn(model: nn.Module, before_step: BeforeStep) -> dict[str, list[float]]:
        """Train `model` in place and return its accuracy curves."""
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        log: dict[str, list[float]] = {"steps": [], "train_acc": [], "test_acc": []}
        step = 0
        for epoch in range(epochs + 1):
            if epoch:
                step = train_epoch(
                    model, optimizer, (x, y), batch_size, step, before_step=before_step
                )
            with probe_context(model):
                log["steps"].append(step)
                log["train_acc"].append(_accuracy(model, x, y, 4096))
                log["test_acc"].append(_accuracy(model, *test, 4096))
        return log

    return train_fn


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: tuple[Tensor, Tensor],
    batch_size: int,
    step: int = 0,
    *,
    before_step: BeforeStep | None = None,
    after_step: Callable[[int], None] | None = None,
    stop: int | None = None,
) -> int:
    """One shuffled epoch of cross-entropy updates, ending early at step `stop`; returns the step count.

    `before_step(model, step)` runs under no_grad before each update (the hook that holds masked or
    frozen weights), `after_step(step)` after it (e.g. a monitor). Shuffling uses the global torch RNG.
    """
    x, y = data
    model.train()
    for batch in torch.randperm(len(y)).split(batch_size):
        if before_step is not None:
            with torch.no_grad():
                before_step(model, step)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if after_step is not None:
            after_step(step)
        if step == stop:
            break
    return step
