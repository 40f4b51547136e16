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

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from oinfo_monitor.gaussian import (
    LN2,
    TiePolicy,
    _copnorm_checked,
    block_logdets,
    class_means,
    covariance,
    entropy_bias,
    one_cpu_thread,
)
from oinfo_monitor.multiplets import MultipletsLike, parse_multiplets
from oinfo_monitor.validation import TargetKind, check_samples, check_target

Measure = Literal["oinfo", "sinfo", "tc", "dtc"]
_LOG_2PIE = math.log(2 * math.pi * math.e)

SAMPLES_PER_VARIABLE = 5
"""Samples per variable below which default multiplet sizes stop (see `CopulaCovariance.supported_size`)."""


@dataclass(frozen=True)
class EntropyTerms:
    """Per-multiplet entropies (bits) from which every measure is a linear combination.

    `joint` is H of the whole set, `singles` the sum of single-variable entropies and `leave_one_out`
    the sum of H(set without one variable), over the `n` variables of each set (target included).
    """

    joint: Tensor
    singles: Tensor
    leave_one_out: Tensor
    n: int

    def combine(self, measure: Measure) -> Tensor:
        """Assemble one measure from the terms (see the module docstring for the formulas)."""
        if measure == "oinfo":
            return (self.n - 2) * self.joint + self.singles - self.leave_one_out
        if measure == "sinfo":
            return -self.n * self.joint + self.singles + self.leave_one_out
        if measure == "tc":
            return self.singles - self.joint
        if measure == "dtc":
            return (1 - self.n) * self.joint + self.leave_one_out
        raise ValueError(f"unknown measure {measure!r}; use 'oinfo', 'sinfo', 'tc' or 'dtc'")


@dataclass(frozen=True)
class CopulaCovariance:
    """The sufficient statistics of a data set for every Gaussian-copula measure of its multiplets.

    Build it with `copula_covariance`; then `oinfo`, `sinfo`, `tc`, `dtc` score any multiplets from
    sub-blocks of `cov` without touching the samples again. Indices refer to the neurons (columns of
    x); a target, when present, is added to every multiplet automatically.
    """

    cov: Tensor
    n_samples: int
    n_variables: int
    target: Literal["none", "continuous", "discrete"]
    within_cov: Tensor | None
    n_classes: int
    bias_correct: bool
    ties: str
    seed: int

    def entropy_terms(self, members: Tensor) -> EntropyTerms:
        """Entropies (bits) needed by every measure, for multiplets `members` [M, k] of neurons."""
        size = members.shape[1]
        self.check_sample_size(size)
        if self.target == "continuous":
            column = torch.full_like(members[:, :1], self.n_variables)
            members = torch.cat([members, column], dim=1)
        if self.within_cov is None:
            joint, loo, singles = self._entropies(self.cov, members, self.n_samples, True)
            return EntropyTerms(joint, singles, loo, members.shape[1])
        # A discrete target needs only the joint entropy of the total covariance.
        joint, _, singles = self._entropies(self.cov, members, self.n_samples, False)
        within_samples = self.n_samples - self.n_classes + 1
        cond_joint, cond_loo, _ = self._entropies(self.within_cov, members, within_samples, True)
        return EntropyTerms(cond_joint, singles, cond_loo + joint, size + 1)

    def _entropies(
        self, cov: Tensor, members: Tensor, samples: int, leave_one_out: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per multiplet, in bits: its joint entropy, the sum of its leave-one-out entropies (NaN
        unless `leave_one_out`) and the sum of its single-variable entropies, all Gaussian
        entropies of blocks of `cov`."""
        size = members.shape[1]
        logdet, loo, log_variances = block_logdets(cov, members, leave_one_out=leave_one_out)
        joint = 0.5 * (size * _LOG_2PIE + logdet)
        loo = 0.5 * (size * (size - 1) * _LOG_2PIE + loo)
        singles = 0.5 * (size * _LOG_2PIE + log_variances)
        if self.bias_correct:
            joint -= _bias(size, samples)
            loo -= size * _bias(size - 1, samples)
            singles -= size * _bias(1, samples)
        return joint / LN2, loo / LN2, singles / LN2

    def supported_size(self) -> int:
        """Largest multiplet (in neurons) whose Ω the samples estimate reliably.

        The rule: at least `SAMPLES_PER_VARIABLE` samples per variable of the multiplet (a
        continuous target counts as one more variable; a discrete target's classes use up one
        sample each). Measured on independent Gaussian data, the SD of one multiplet's
        bias-corrected Ω stays below about 0.07 bits at that ratio and grows about fourfold
        when it halves (tests/test_measures.py::test_supported_size_bounds_the_noise); the
        extreme over a search of many multiplets is further out still.
        """
        return supported_size(self.n_samples, self.target, self.n_classes)

    def check_sample_size(self, size: int) -> None:
        """Raise if a multiplet of `size` neurons has too few samples for a full-rank covariance."""
        dims = size + (self.target == "continuous")
        if self.n_samples <= dims + 1:
            raise ValueError(
                f"a multiplet of {dims} variables needs more than {dims + 1} samples, "
                f"got {self.n_samples}"
            )
        if self.n_classes and self.n_samples - self.n_classes <= dims + 1:
            raise ValueError(
                f"a multiplet of {size} neurons with a {self.n_classes}-class target needs more "
                f"than {dims + 1 + self.n_classes} samples, got {self.n_samples}"
            )

    def measure(self, measure: Measure, multiplets: MultipletsLike = None) -> Tensor:
        """Any of the four measures for `multiplets` (see `oinfo`), as float64 bits of shape [M]."""
        with one_cpu_thread(self.cov.device):
            groups = parse_multiplets(multiplets, self.n_variables, device=self.cov.device)
            total = sum(int(positions.numel()) for positions, _ in groups)
            out = torch.empty(total, dtype=torch.float64, device=self.cov.device)
            for positions, members in groups:
                out[positions] = self.entropy_terms(members).combine(measure)
        return out

    def oinfo(self, multiplets: MultipletsLike = None) -> Tensor:
        """O-information Ω (bits) of each multiplet: > 0 redundancy-dominated, < 0 synergy-dominated."""
        return self.measure("oinfo", multiplets)

    def sinfo(self, multiplets: MultipletsLike = None) -> Tensor:
        """S-information Σ = TC + DTC (bits) of each multiplet: the total amount of dependence."""
        return self.measure("sinfo", multiplets)

    def tc(self, multiplets: MultipletsLike = None) -> Tensor:
        """Total correlation (bits) of each multiplet."""
        return self.measure("tc", multiplets)

    def dtc(self, multiplets: MultipletsLike = None) -> Tensor:
        """Dual total correlation (bits) of each multiplet."""
        return self.measure("dtc", multiplets)


@functools.lru_cache(maxsize=256)
def _bias(dims: int, samples: int) -> float:
    """`entropy_bias` as a float, cached: every chunk of multiplets of one size needs the same few."""
    return float(entropy_bias(dims, samples))


def supported_size(
    samples: int, target: Literal["none", "continuous", "discrete"] = "none", classes: int = 0
) -> int:
    """Largest multiplet (neurons) that `samples` support: `SAMPLES_PER_VARIABLE` per variable.

    A continuous target counts as one more variable; a discrete target's `classes` use up one
    sample each (see `CopulaCovariance.supported_size`).

    Examples:
        >>> supported_size(100), supported_size(100, "continuous"), supported_size(100, "discrete", 10)
        (20, 19, 18)
    """
    return (samples - classes) // SAMPLES_PER_VARIABLE - (target == "continuous")


def copula_covariance(
    x: Any,
    *,
    y: Any = None,
    target_kind: TargetKind = "auto",
    bias_correct: bool = True,
    ties: TiePolicy = "random",
    seed: int = 0,
) -> CopulaCovariance:
    """Copula-transform `x` [samples, neurons] (and y) once and keep the covariances every measure needs.

    `y` may be continuous (float dtype: one more copula-transformed variable) or discrete labels
    (integer/bool dtype: one-hot Gaussian model, see the module docstring); `target_kind` overrides
    the dtype rule.
    `ties` and `seed` set the copula's tie policy (see `copnorm`).
    """
    data = check_samples(x)
    samples, variables = data.shape
    z = _copnorm_checked(data, ties, seed)
    kind: Literal["none", "continuous", "discrete"] = "none"
    within_cov, n_classes = None, 0
    if y is not None:
        target, kind = check_target(y, samples, target_kind)
        target = target.to(z.device)
        if kind == "continuous":
            z = torch.cat([z, _copnorm_checked(target[:, None], ties, seed + 1)], dim=1)
        else:
            within_cov, n_classes = _within_class_covariance(z, target)
    return CopulaCovariance(
        cov=covariance(z),
        n_samples=samples,
        n_variables=variables,
        target=kind,
        within_cov=within_cov,
        n_classes=n_classes,
        bias_correct=bias_correct,
        ties=ties,
        seed=seed,
    )


def _within_class_covariance(z: Tensor, labels: Tensor) -> tuple[Tensor, int]:
    """Pooled within-class covariance (T − C normalised) of the copula-transformed neurons."""
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    if classes.numel() < 2:
        raise ValueError("y has a single class: a constant target carries no information")
    means = class_means(z, inverse, counts)
    residual = z - means[inverse]
    dof = z.shape[0] - classes.numel()
    return residual.T @ residual / dof, int(classes.numel())


class MeasureFunction(Protocol):
    """Signature shared by `oinfo`, `sinfo`, `tc` and `dtc`."""

    def __call__(
        self,
        x: Any,
        multiplets: MultipletsLike = None,
        *,
        y: Any = None,
        bias_correct: bool = True,
        ties: TiePolicy = "random",
        seed: int = 0,
        target_kind: TargetKind = "auto",
    ) -> Tensor:
        """Score `multiplets` of the columns of `x`; see `oinfo` for the arguments."""
        ...


def _functional(measure: Measure, doc: str) -> MeasureFunction:
    """Build the one-call form of a measure: one copula covariance, then every multiplet scored."""

    def function(
        x: Any,
        multiplets: MultipletsLike = None,
        *,
        y: Any = None,
        bias_correct: bool = True,
        ties: TiePolicy = "random",
        seed: int = 0,
        target_kind: TargetKind = "auto",
    ) -> Tensor:
        stats = copula_covariance(
            x, y=y, target_kind=target_kind, bias_correct=bias_correct, ties=ties, seed=seed
        )
        return stats.measure(measure, multiplets)

    function.__name__ = function.__qualname__ = measure
    function.__doc__ = doc
    return function


oinfo = _functional(
    "oinfo",
    """O-information Ω in bits of each multiplet of the columns of `x` [samples, variables].

    `multiplets` is a `[M, k]` integer array, a list of index tuples (sizes may differ) or None for
    all variables; returns float64 [M] on x's device. Ω > 0: redundancy-dominated; Ω < 0:
    synergy-dominated. `y` (continuous, or integer labels) joins every multiplet as one more
    variable; `target_kind` overrides the dtype rule. `bias_correct` subtracts the Gaussian
    small-sample entropy bias; `ties`/`seed` set the copula's tie policy (see `copnorm`).
    """,
)
sinfo = _functional("sinfo", "S-information Σ = TC + DTC in bits of each multiplet; as `oinfo`.")
tc = _functional("tc", "Total correlation in bits of each multiplet; arguments as in `oinfo`.")
dtc = _functional("dtc", "Dual total correlation in bits of each multiplet; as in `oinfo`.")
