"""The one state object every measure is computed from: a data set's copula covariance(s).

`copula_covariance` reads the samples once; `CopulaCovariance` then scores any multiplet from
sub-blocks of its covariance. A target y joins every multiplet as one more variable (see
`estimators.measures` for the formulas and the discrete-target model). For a layer wider than
`WIDE_NEURONS`, `CopulaValues.state` keeps the copula values instead (`WideCopula`) and forms
only the covariance blocks that are asked for.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from oinfo_monitor.estimators.copula import TiePolicy, copnorm_checked
from oinfo_monitor.estimators.covariance import covariance, within_class_covariance
from oinfo_monitor.estimators.entropy import entropy_bits, supported_size
from oinfo_monitor.estimators.logdets import block_logdets
from oinfo_monitor.estimators.multiplets import MultipletsLike, parse_multiplets
from oinfo_monitor.estimators.threads import one_cpu_thread
from oinfo_monitor.estimators.validation import (
    TargetKind,
    TargetModel,
    check_samples,
    check_target,
)

Measure = Literal["oinfo", "sinfo", "tc", "dtc"]

WIDE_NEURONS = 2048
"""Above this many neurons `CopulaValues.state` never forms the N×N covariance (`WideCopula`)."""


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


class Measures(abc.ABC):
    """The four measures of multiplets, for state objects that implement `measure`."""

    @abc.abstractmethod
    def measure(self, measure: Measure, multiplets: MultipletsLike = None) -> Tensor:
        """Any of the four measures for `multiplets`, as float64 bits of shape [M]."""

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


@dataclass(frozen=True)
class CopulaCovariance(Measures):
    """The sufficient statistics of a data set for every Gaussian-copula measure of its multiplets.

    Build it with `copula_covariance`; then `oinfo`, `sinfo`, `tc`, `dtc` score any multiplets from
    sub-blocks of `cov` without touching the samples again. Indices refer to the neurons (columns of
    x); a target, when present, is added to every multiplet automatically.
    """

    cov: Tensor
    n_samples: int
    n_variables: int
    target: TargetModel
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
        bias = self.bias_correct
        return (
            entropy_bits(logdet, size, 1, samples, bias),
            entropy_bits(loo, size - 1, size, samples, bias),
            entropy_bits(log_variances, 1, size, samples, bias),
        )

    def block(self, columns: list[int]) -> CopulaCovariance:
        """The state of the neurons `columns` only (the target kept), renumbered 0..len-1: the
        matching rows and columns of its covariances, so its measures equal this state's (as
        `WideCopula.block` forms them).

        Examples:
            >>> stats = copula_covariance(torch.randn(100, 6), y=torch.randn(100))
            >>> block = stats.block([1, 4, 5])
            >>> tuple(block.cov.shape), bool(block.oinfo([[0, 1, 2]]) == stats.oinfo([[1, 4, 5]]))
            ((4, 4), True)
        """
        extra = list(range(self.n_variables, self.cov.shape[-1]))  # a continuous target's column
        index = torch.tensor(columns + extra, dtype=torch.long, device=self.cov.device)
        within = None if self.within_cov is None else _submatrix(self.within_cov, index)
        return replace(
            self, cov=_submatrix(self.cov, index), within_cov=within, n_variables=len(columns)
        )

    def supported_size(self) -> int:
        """Largest multiplet (in neurons) these samples support: `entropy.supported_size`."""
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
        groups = parse_multiplets(multiplets, self.n_variables, device=self.cov.device)
        return self.measure_groups(measure, groups)

    def measure_groups(self, measure: Measure, groups: list[tuple[Tensor, Tensor]]) -> Tensor:
        """`measure` of multiplets already grouped by size, as `parse_multiplets` returns them;
        of shape [..., M] for a stack of covariances (see `stacked_states`)."""
        with one_cpu_thread(self.cov.device):
            total = sum(int(positions.numel()) for positions, _ in groups)
            shape = (*self.cov.shape[:-2], total)
            out = torch.empty(shape, dtype=torch.float64, device=self.cov.device)
            for positions, members in groups:
                out[..., positions] = self.entropy_terms(members).combine(measure)
        return out


def _submatrix(matrix: Tensor, index: Tensor) -> Tensor:
    """The rows and columns `index` of the last two dimensions of `matrix`, contiguous."""
    return matrix.index_select(-2, index).index_select(-1, index)


def stacked_states(states: list[CopulaCovariance]) -> CopulaCovariance:
    """One state whose covariances are those of `states` stacked [R, N, N]: its measures are of
    shape [R, M], every block of every state factorised in one batch (bootstrap resamples).

    The states must agree on everything but their covariances (samples, variables, target model
    and class count, bias correction).

    Examples:
        >>> values = copula_values(torch.randn(200, 4, generator=torch.Generator().manual_seed(0)))
        >>> states = [values.dense_state(torch.randperm(200)[:150]) for _ in range(3)]
        >>> tuple(stacked_states(states).oinfo([(0, 1, 2), (1, 2, 3)]).shape)
        (3, 2)
    """
    first = states[0]

    def key(state: CopulaCovariance) -> tuple[Any, ...]:
        return (
            state.n_samples,
            state.n_variables,
            state.target,
            state.n_classes,
            state.bias_correct,
        )

    if any(key(state) != key(first) for state in states):
        raise ValueError("only states that differ in their covariances alone can be stacked")
    within = None
    if first.within_cov is not None:
        within = torch.stack([state.within_cov for state in states])  # type: ignore[misc]
    return replace(first, cov=torch.stack([state.cov for state in states]), within_cov=within)


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
    values = copula_values(x, y=y, target_kind=target_kind, ties=ties, seed=seed)
    return values.dense_state(bias_correct=bias_correct)


@dataclass(frozen=True)
class CopulaValues:
    """Copula-transformed samples `z` [samples, neurons (+1 continuous target column)], kept so that
    resamples of rows and surrogates of one transform get their covariances without transforming
    again (`search.uncertainty`); `labels` holds a discrete target."""

    z: Tensor
    n_variables: int
    target: TargetModel
    labels: Tensor | None
    ties: str
    seed: int

    def state(
        self, rows: Tensor | None = None, *, bias_correct: bool = True
    ) -> CopulaCovariance | WideCopula:
        """The state of these values (or of the samples `rows`, with repeats, of them): their
        covariances (`dense_state`), or above `WIDE_NEURONS` neurons a `WideCopula`, which forms
        only the covariance blocks asked for.

        Examples:
            >>> g = torch.Generator().manual_seed(0)
            >>> values = copula_values(torch.randn(300, 4, generator=g))
            >>> rows = torch.randint(0, 300, (300,), generator=g)
            >>> values.state(rows).n_samples
            300
            >>> type(copula_values(torch.randn(20, WIDE_NEURONS + 1, generator=g)).state()).__name__
            'WideCopula'
        """
        if self.n_variables <= WIDE_NEURONS:
            return self.dense_state(rows, bias_correct=bias_correct)
        values = self if rows is None else self.rows(rows)
        return WideCopula(values, bias_correct)

    def rows(self, rows: Tensor) -> CopulaValues:
        """These values at the samples `rows` (with repeats)."""
        labels = None if self.labels is None else self.labels[rows]
        return CopulaValues(
            self.z[rows], self.n_variables, self.target, labels, self.ties, self.seed
        )

    def dense_state(
        self, rows: Tensor | None = None, *, bias_correct: bool = True
    ) -> CopulaCovariance:
        """The covariance state of these values, or of the samples `rows` (with repeats) of them.

        The covariances are computed on one CPU thread, as the copula transform is (`threads`).
        """
        values = self if rows is None else self.rows(rows)
        z, labels = values.z, values.labels
        within_cov, n_classes = None, 0
        with one_cpu_thread(z.device):
            cov = covariance(z)
            if labels is not None:
                within_cov, n_classes = within_class_covariance(z, labels)
        return CopulaCovariance(
            cov=cov,
            n_samples=z.shape[0],
            n_variables=self.n_variables,
            target=self.target,
            within_cov=within_cov,
            n_classes=n_classes,
            bias_correct=bias_correct,
            ties=self.ties,
            seed=self.seed,
        )

    def select(self, columns: list[int]) -> CopulaValues:
        """These values restricted to the neurons `columns` (the target kept), renumbered 0..len-1.

        Examples:
            >>> values = copula_values(torch.randn(50, 5), y=torch.randn(50))
            >>> tuple(values.select([0, 3]).z.shape)
            (50, 3)
        """
        if columns == list(range(self.n_variables)):  # all of them, in order: nothing to copy
            return self
        index = torch.tensor(columns, dtype=torch.long, device=self.z.device)
        z = torch.cat([self.z[:, index], self.z[:, self.n_variables :]], dim=1)
        return CopulaValues(z, len(columns), self.target, self.labels, self.ties, self.seed)

    def permuted(self, seed: int) -> CopulaValues:
        """These values with every neuron's samples permuted independently (the target kept):
        marginals and ties kept, every dependence destroyed. Permuting tie-broken copula values is
        a fresh random tie draw of the permuted data, so this is the copula of permuted samples.
        Deterministic for a given `seed` on a given device.

        Examples:
            >>> values = copula_values(torch.arange(12.0).reshape(4, 3))
            >>> surrogate = values.permuted(seed=0)
            >>> bool((surrogate.z.sort(0).values == values.z.sort(0).values).all())
            True
        """
        neurons = self.z[:, : self.n_variables]
        with one_cpu_thread(neurons.device):
            if neurons.device.type == "cpu":  # Fisher-Yates per column: no sort (7x faster)
                rows = np.random.default_rng(seed).permuted(neurons.numpy(), axis=0)
                shuffled = torch.from_numpy(rows)
            else:
                generator = torch.Generator(device=neurons.device).manual_seed(seed)
                keys = torch.rand(neurons.shape, generator=generator, device=neurons.device)
                shuffled = torch.gather(neurons, 0, torch.argsort(keys, dim=0))
            z = torch.cat([shuffled, self.z[:, self.n_variables :]], dim=1)
        return CopulaValues(z, self.n_variables, self.target, self.labels, self.ties, self.seed)


@dataclass(frozen=True)
class WideCopula(Measures):
    """The state of a layer wider than `WIDE_NEURONS`: its copula values, covariance blocks on demand.

    The N×N covariance (3.2 GB in float64 at 20,000 neurons, T·N² operations to form) is never
    formed unless asked for (`full`): measures of given multiplets use the block of their
    neurons, and the ``"auto"`` search screens the neurons and searches the block of those it
    keeps (`search.wide`). Blocks are float64 covariances of the same copula values, so they
    agree with the matching entries of the full covariance to rounding.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(200, 2100, generator=g, dtype=torch.float64)
        >>> wide = copula_values(x).state()
        >>> tuple(wide.block([0, 7, 9]).cov.shape), wide.n_variables
        ((3, 3), 2100)
        >>> full = copula_covariance(x).oinfo([[0, 7, 9]])
        >>> bool(torch.allclose(wide.oinfo([[0, 7, 9]]), full, atol=1e-12))
        True
    """

    values: CopulaValues
    bias_correct: bool

    @property
    def n_variables(self) -> int:
        """Number of neurons."""
        return self.values.n_variables

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return int(self.values.z.shape[0])

    @property
    def target(self) -> TargetModel:
        """The target's kind, as in `CopulaCovariance.target`."""
        return self.values.target

    def block(self, columns: list[int]) -> CopulaCovariance:
        """The covariance state of the neurons `columns` only (the target kept), renumbered 0..len-1."""
        return self.values.select(columns).dense_state(bias_correct=self.bias_correct)

    def full(self) -> CopulaCovariance:
        """The covariance state of every neuron: the N×N covariance, formed now."""
        return self.values.dense_state(bias_correct=self.bias_correct)

    def measure(self, measure: Measure, multiplets: MultipletsLike = None) -> Tensor:
        """Any of the four measures for `multiplets`, from the block of the neurons they hold."""
        device = self.values.z.device
        groups = parse_multiplets(multiplets, self.n_variables, device=device)
        columns = torch.unique(torch.cat([members.reshape(-1) for _, members in groups]))
        renumbered = [(p, torch.searchsorted(columns, members)) for p, members in groups]
        return self.block(columns.tolist()).measure_groups(measure, renumbered)


def copula_values(
    x: Any,
    *,
    y: Any = None,
    target_kind: TargetKind = "auto",
    ties: TiePolicy = "random",
    seed: int = 0,
) -> CopulaValues:
    """Copula-transform `x` [samples, neurons] and a continuous `y` (see `copula_covariance`).

    Examples:
        >>> values = copula_values(torch.randn(100, 3), y=torch.arange(100) % 2)
        >>> tuple(values.z.shape), values.target
        ((100, 3), 'discrete')
    """
    with one_cpu_thread(x.device if isinstance(x, Tensor) else None):
        data = check_samples(x)
        z = copnorm_checked(data, ties, seed)
        labels = None
        kind: TargetModel = "none"
        if y is not None:
            target, kind = check_target(y, data.shape[0], target_kind)
            target = target.to(z.device)
            if kind == "continuous":
                z = torch.cat([z, copnorm_checked(target[:, None], ties, seed + 1)], dim=1)
            else:
                labels = target
    return CopulaValues(z, data.shape[1], kind, labels, ties, seed)
