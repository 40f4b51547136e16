"""Higher-order information measures (O-information, S-information, TC, DTC) under the Gaussian copula.

One copula covariance is computed per data set (`CopulaCovariance`); every multiplet is then scored
from sub-blocks of it, so the samples are never touched again. All values are in **bits**.

For a set of n variables Z with entropy H (Rosas et al. 2019):

- TC  = Σ_j H(Z_j) − H(Z)
- DTC = H(Z) − Σ_j [H(Z) − H(Z∖Z_j)]
- Ω   = TC − DTC = (n−2) H(Z) + Σ_j [H(Z_j) − H(Z∖Z_j)]   (> 0 redundancy, < 0 synergy)
- Σ   = TC + DTC = −n H(Z) + Σ_j [H(Z_j) + H(Z∖Z_j)]

A target y joins every multiplet as one more variable (task-related O-information). A continuous
y is copula-transformed like a neuron. A discrete y (integer labels) is not ranked, because ranking
labels is arbitrary tie-breaking: it is one-hot coded and the neurons and indicators are modelled as
jointly Gaussian. Then H(set ∪ y) = H(y) + H(set | y), where H(set | y) is the Gaussian entropy of the
pooled within-class covariance (the residual of regressing the neurons on the class indicators, with
T − C degrees of freedom); H(y) cancels exactly in all four measures, so the labels' own entropy is
never estimated. This costs one extra covariance, whatever the number of classes.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from oinfo_monitor.estimators.copula import TiePolicy
from oinfo_monitor.estimators.multiplets import MultipletsLike
from oinfo_monitor.estimators.state import Measure, copula_covariance
from oinfo_monitor.estimators.validation import TargetKind


def _measure(
    measure: Measure,
    x: Any,
    multiplets: MultipletsLike,
    y: Any,
    bias_correct: bool,
    ties: TiePolicy,
    seed: int,
    target_kind: TargetKind,
) -> Tensor:
    """One copula covariance of `x` (and `y`), then `measure` for every multiplet."""
    stats = copula_covariance(
        x, y=y, target_kind=target_kind, bias_correct=bias_correct, ties=ties, seed=seed
    )
    return stats.measure(measure, multiplets)


def oinfo(
    x: Any,
    multiplets: MultipletsLike = None,
    *,
    y: Any = None,
    bias_correct: bool = True,
    ties: TiePolicy = "random",
    seed: int = 0,
    target_kind: TargetKind = "auto",
) -> Tensor:
    """O-information Ω in bits of each multiplet of the columns of `x` [samples, variables].

    `multiplets` is a `[M, k]` integer array, a list of index tuples (sizes may differ) or None for
    all variables; returns float64 [M] on x's device. Ω > 0: redundancy-dominated; Ω < 0:
    synergy-dominated. `y` (continuous, or integer labels) joins every multiplet as one more
    variable; `target_kind` overrides the dtype rule. `bias_correct` subtracts the Gaussian
    small-sample entropy bias; `ties`/`seed` set the copula's tie policy (see `copnorm`).

    Examples:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(2, 5000, generator=g, dtype=torch.float64)
        >>> xor_like = torch.stack([a, b, a + b], 1)  # the sum is known only to the pair
        >>> copies = a[:, None] + 0.3 * torch.randn(5000, 3, generator=g, dtype=torch.float64)
        >>> bool(oinfo(xor_like) < -0.5), bool(oinfo(copies) > 0.5)  # synergy, redundancy
        (True, True)
    """
    return _measure("oinfo", x, multiplets, y, bias_correct, ties, seed, target_kind)


def sinfo(
    x: Any,
    multiplets: MultipletsLike = None,
    *,
    y: Any = None,
    bias_correct: bool = True,
    ties: TiePolicy = "random",
    seed: int = 0,
    target_kind: TargetKind = "auto",
) -> Tensor:
    """S-information Σ = TC + DTC in bits of each multiplet: the total amount of dependence.

    Arguments as in `oinfo`.

    Examples:
        >>> import torch
        >>> x = torch.randn(2000, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> abs(float(sinfo(x)[0])) < 0.05  # independent variables share nothing
        True
    """
    return _measure("sinfo", x, multiplets, y, bias_correct, ties, seed, target_kind)


def tc(
    x: Any,
    multiplets: MultipletsLike = None,
    *,
    y: Any = None,
    bias_correct: bool = True,
    ties: TiePolicy = "random",
    seed: int = 0,
    target_kind: TargetKind = "auto",
) -> Tensor:
    """Total correlation Σ_j H(Z_j) − H(Z) in bits of each multiplet; arguments as in `oinfo`.

    Examples:
        >>> import torch
        >>> a = torch.randn(4000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        >>> x = torch.stack([a, a + torch.randn(4000, dtype=torch.float64)], 1)  # correlation 1/√2
        >>> round(float(tc(x)[0]), 1)  # closed form: −½ log₂(1 − ½) = 0.5 bits
        0.5
    """
    return _measure("tc", x, multiplets, y, bias_correct, ties, seed, target_kind)


def dtc(
    x: Any,
    multiplets: MultipletsLike = None,
    *,
    y: Any = None,
    bias_correct: bool = True,
    ties: TiePolicy = "random",
    seed: int = 0,
    target_kind: TargetKind = "auto",
) -> Tensor:
    """Dual total correlation H(Z) − Σ_j H(Z_j | Z∖Z_j) in bits of each multiplet; as `oinfo`.

    Examples:
        >>> import torch
        >>> x = torch.randn(2000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> abs(float(dtc(x)[0])) < 0.05
        True
    """
    return _measure("dtc", x, multiplets, y, bias_correct, ties, seed, target_kind)
