"""Grokking on modular addition: the setting of Clauw, Stramaglia & Marinazzo (2024), ready to train.

The 2024 paper (arXiv:2408.08944) trains a one-hidden-layer MLP on (a + b) mod 97 from 40% of all
pairs, full batch, with AdamW (lr 0.03, betas (0.9, 0.98), weight decay 2.0) for 4,000 steps: the
network memorises the training set within a few dozen steps and generalises (test accuracy > 0.98)
hundreds of steps later. Its second experiment removes weight decay and instead scales the initial
weights by α (e.g. 8), zeroes the output layer and holds the weight norm constant, the Omnigrok
recipe of Liu et al. (2022), which delays generalisation.

Conventions. Step ``s`` is the model after ``s`` optimizer updates (step 0 is the initialisation);
metrics, callbacks and the monitor all see that same model. ``before_step(model, s)`` runs first at
every step (masks, pruning), so evaluations and updates see what it did.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional

from oinfo_monitor.experiments.data import ModularArithmetic, modular_arithmetic


@dataclass(frozen=True)
class GrokkingConfig:
    """One grokking run; the defaults are the 2024 paper's main setting (weight decay 2.0).

    ``alpha``, ``zero_last_layer`` and ``constant_norm`` are the initialisation-scale experiment
    (see `GrokkingConfig.alpha_experiment`): weight matrices × ``alpha`` at initialisation (biases
    untouched), the output layer zeroed, and after every update all weight matrices rescaled
    together so that their joint L2 norm stays what it was at step 0. (The paper's code measures
    that norm before zeroing the output layer, so there the norm jumps at the first update.)
    Weight decay applies to every parameter, biases included, as in the paper's code.
    """

    p: int = 97
    op: str = "+"
    train_fraction: float = 0.4
    data_seed: int = 0
    hidden: int = 250
    lr: float = 0.03
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 2.0
    steps: int = 4000
    seed: int = 0
    alpha: float = 1.0
    zero_last_layer: bool = False
    constant_norm: bool = False

    def __post_init__(self) -> None:
        """Check the values that the data loader and the optimizer would not name clearly."""
        if self.hidden < 1:
            raise ValueError(f"hidden must be a positive number of neurons, got {self.hidden}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ValueError(f"alpha must be a positive finite scale, got {self.alpha}")

    @classmethod
    def alpha_experiment(cls, alpha: float = 8.0, **overrides: Any) -> GrokkingConfig:
        """The paper's initialisation-scale setting: weights × α, no weight decay, zero output layer, constant norm."""
        settings: dict[str, Any] = {
            "alpha": alpha,
            "weight_decay": 0.0,
            "zero_last_layer": True,
            "constant_norm": True,
        }
        return cls(**{**settings, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON values."""
        values = asdict(self)
        values["betas"] = list(self.betas)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GrokkingConfig:
        """Rebuild a configuration saved with `to_dict` (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown GrokkingConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**{**values, "betas": tuple(values.get("betas", cls.betas))})


class GrokkingMLP(nn.Module):
    """One-hot (a, b) → ``hidden`` (Linear with bias) → ``act`` (ReLU) → ``out`` (Linear, no bias) → logits."""

    def __init__(self, n_inputs: int, n_hidden: int, n_outputs: int) -> None:
        """Build the three named submodules with PyTorch's default initialisation."""
        super().__init__()
        self.hidden = nn.Linear(n_inputs, n_hidden)
        self.act = nn.ReLU()
        self.out = nn.Linear(n_hidden, n_outputs, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Logits for a batch of concatenated one-hot operand pairs."""
        return self.out(self.act(self.hidden(x)))


def grokking_data(config: GrokkingConfig) -> ModularArithmetic:
    """The configuration's train/test split of (a op b) mod p (split seeded by ``data_seed``)."""
    return modular_arithmetic(config.p, config.op, config.train_fraction, config.data_seed)


def build_model(config: GrokkingConfig) -> GrokkingMLP:
    """A freshly initialised model for `config`, seeded by ``config.seed`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = GrokkingMLP(2 * config.p, config.hidden, config.p)
    with torch.no_grad():
        for weight in _weights(model):
            weight.mul_(config.alpha)
        if config.zero_last_layer:
            model.out.weight.zero_()
    return model


def _weights(model: nn.Module) -> Iterator[nn.Parameter]:
    """The model's weight matrices (parameters named ``*weight``), the ones α and the norm refer to."""
    return (p for name, p in model.named_parameters() if name.endswith("weight"))


def weight_norm(model: nn.Module) -> float:
    """Joint L2 norm of all weight matrices (biases excluded), as held by ``constant_norm``."""
    with torch.no_grad():
        return math.sqrt(sum(float(w.double().square().sum()) for w in _weights(model)))


def rescale_weight_norm(model: nn.Module, target: float) -> None:
    """Scale all weight matrices by one factor so that their joint L2 norm equals `target`."""
    current = weight_norm(model)
    if current == 0:
        raise ValueError("cannot rescale: every weight matrix is zero")
    with torch.no_grad():
        for weight in _weights(model):
            weight.mul_(target / current)


@dataclass(frozen=True)
class StepMetrics:
    """Loss (cross-entropy, nats) and accuracy on the full train and test sets at one step."""

    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float


@dataclass
class GrokkingLog:
    """Curves of a run, one entry per evaluated step: the steps and the matching `StepMetrics` fields."""

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)

    def append(self, step: int, metrics: StepMetrics) -> None:
        """Add the metrics of one evaluated step."""
        self.steps.append(step)
        for name, value in asdict(metrics).items():
            getattr(self, name).append(value)

    def to_dict(self) -> dict[str, list[Any]]:
        """The curves as plain lists (JSON-ready)."""
        return asdict(self)


StepCallback = Callable[[int, nn.Module, StepMetrics | None], None]
"""``on_step(step, model, metrics)``: metrics is None at steps that are not evaluated."""

MaskCallback = Callable[[nn.Module, int], None]
"""``before_step(model, step)``: runs under ``torch.no_grad()`` before every forward pass."""


def _accuracy(logits: Tensor, labels: Tensor) -> float:
    """Fraction of rows whose arg-max logit is the label."""
    return float((logits.argmax(dim=1) == labels).float().mean())


def _metrics(
    model: nn.Module, data: ModularArithmetic, train_loss: Tensor, train_logits: Tensor
) -> StepMetrics:
    """Train metrics from the step's own forward pass, test metrics from one more (no gradients)."""
    with torch.no_grad():
        test_logits = model(data.x_test)
        return StepMetrics(
            float(train_loss),
            _accuracy(train_logits, data.y_train),
            float(functional.cross_entropy(test_logits, data.y_test)),
            _accuracy(test_logits, data.y_test),
        )


def train_grokking(
    config: GrokkingConfig,
    *,
    model: nn.Module | None = None,
    data: ModularArithmetic | None = None,
    on_step: StepCallback | None = None,
    before_step: MaskCallback | None = None,
    eval_every: int = 1,
) -> GrokkingLog:
    """Train full batch with AdamW for ``config.steps`` updates and return the loss/accuracy curves.

    Args:
        config: the run (`GrokkingConfig`); its ``seed`` and α initialisation apply only when
            `model` is None (then `build_model` makes one).
        model: a model to train in place (e.g. one loaded from ``init.pt``); it must live on the
            data's device.
        data: the split to use; defaults to `grokking_data(config)`.
        on_step: called at every step 0..steps after the metrics and the gradient are computed and
            before the update, with the model as of that step (the place for ``monitor.step``).
        before_step: called at every step 0..steps before the forward pass, under no_grad (masks).
        eval_every: compute the test metrics every this many steps (and at the last step).
    """
    if eval_every < 1:
        raise ValueError(f"eval_every must be a positive number of steps, got {eval_every}")
    model = build_model(config) if model is None else model
    data = grokking_data(config) if data is None else data
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
    )
    target_norm = weight_norm(model) if config.constant_norm else None
    log = GrokkingLog()
    for step in range(config.steps + 1):
        updating = step < config.steps
        if before_step is not None:
            with torch.no_grad():
                before_step(model, step)
        with torch.set_grad_enabled(updating):
            logits = model(data.x_train)
            loss = functional.cross_entropy(logits, data.y_train)
        if updating:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        metrics = None
        if step % eval_every == 0 or not updating:
            metrics = _metrics(model, data, loss.detach(), logits.detach())
            log.append(step, metrics)
        if on_step is not None:
            on_step(step, model, metrics)
        if updating:
            optimizer.step()
            if target_norm is not None:
                rescale_weight_norm(model, target_norm)
    return log


def _first_step(
    steps: Iterable[int], values: Iterable[float], hit: Callable[[float], bool]
) -> int | None:
    """The first step whose value satisfies `hit`, or None."""
    return next((step for step, value in zip(steps, values, strict=True) if hit(value)), None)


def memorisation_step(log: GrokkingLog, threshold: float = 0.99) -> int | None:
    """First evaluated step with train accuracy ≥ `threshold` (the network has memorised); None if never."""
    return _first_step(log.steps, log.train_acc, lambda acc: acc >= threshold)


def grokking_step(log: GrokkingLog, threshold: float = 0.98) -> int | None:
    """First evaluated step with test accuracy > `threshold` (the paper's code's definition); None if never."""
    return _first_step(log.steps, log.test_acc, lambda acc: acc > threshold)


def evaluation_steps(total: int, log_points: int = 200, every: int = 0) -> list[int]:
    """A monitoring schedule dense early: about `log_points` steps spread log-uniformly over 1..total.

    Step 0 and `total` are always included, and with ``every > 0`` so is every multiple of `every`;
    rounding merges duplicates early on, so the list can be shorter than asked.
    """
    if total < 0 or log_points < 0 or every < 0:
        raise ValueError(
            f"total, log_points and every must be >= 0, got {total, log_points, every}"
        )
    steps = {0, total}
    if total > 0 and log_points > 0:
        ratio = total ** (1 / max(log_points - 1, 1))
        steps.update(min(total, round(ratio**i)) for i in range(log_points))
    if every > 0:
        steps.update(range(0, total + 1, every))
    return sorted(steps)
