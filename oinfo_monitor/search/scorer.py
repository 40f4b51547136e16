"""Ω of multiplets from one copula covariance: scored directly, or every one-neuron extension at once.

Every entropy goes through `oinfo_monitor.estimators.entropy.entropy_bits` (directly, or via
`CopulaCovariance.entropy_terms`), so the search scores exactly as the measures do.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from oinfo_monitor.estimators.entropy import entropy_bits
from oinfo_monitor.estimators.state import CopulaCovariance, EntropyTerms

# Working elements (parents × fixed set × candidates) per chunk of a growth step.
_GROW_ELEMENTS = 1 << 22
# A candidate whose residual variance given the set is below this fraction of its variance is
# linearly dependent on the set (or already in it) and is never chosen.
_DEPENDENT = 1e-10


LogDets = tuple[Tensor, Tensor]
"""Joint log-determinants and summed leave-one-out log-determinants of a batch of blocks."""


@dataclass(frozen=True)
class Scorer:
    """Ω of multiplets from one copula covariance, scored directly or by one-neuron growth."""

    stats: CopulaCovariance
    limit: int | None = None

    @property
    def n(self) -> int:
        """Number of neurons (candidates)."""
        return self.stats.n_variables

    @functools.cached_property
    def singles(self) -> Tensor:
        """Single-variable entropies (bits) of every column of the covariance."""
        stats = self.stats
        log_variances = torch.log(torch.diagonal(stats.cov))
        return entropy_bits(log_variances, 1, 1, stats.n_samples, stats.bias_correct)

    def score(self, members: Tensor) -> Tensor:
        """Ω (bits) of the multiplets `members` [M, k], exactly as `CopulaCovariance.oinfo`."""
        return self.stats.entropy_terms(members).combine("oinfo")

    def grow(self, parents: Tensor) -> Tensor:
        """Ω (bits) of `parents` [B, k] plus each neuron v, as [B, N]; NaN where v is dependent.

        With the fixed set F (the parent, plus the continuous target), P = Σ_F⁻¹ and w = P Σ_{F,v}:
        the residual variance is d_v = Σ_vv − Σ_{vF} w, log det(F∪v) = log det F + log d_v and
        (Σ_{F∪v}⁻¹)_jj = P_jj + w_j²/d_v for j ∈ F, 1/d_v for v. So every candidate's joint and
        leave-one-out entropies come from one inverse and a matrix product, in O(k² N).
        """
        rows = max(1, _GROW_ELEMENTS // ((parents.shape[1] + 1) * self.n))
        return torch.cat([self._grow(parents[i : i + rows]) for i in range(0, len(parents), rows)])

    def terms(
        self, size: int, single_sum: Tensor, logdets: LogDets, within: LogDets | None
    ) -> EntropyTerms:
        """Entropy terms (bits) of multiplets of `size` neurons from raw log-determinants.

        `logdets` are the joint and summed leave-one-out log-dets of the blocks of `cov` (target
        column included when continuous); for a discrete target `within` holds those of the
        within-class covariance, combined as in `CopulaCovariance.entropy_terms`.
        """
        stats, correct = self.stats, self.stats.bias_correct
        dims = size + (stats.target == "continuous")
        joint = entropy_bits(logdets[0], dims, 1, stats.n_samples, correct)
        if within is None:
            loo = entropy_bits(logdets[1], dims - 1, dims, stats.n_samples, correct)
            return EntropyTerms(joint, single_sum, loo, dims)
        samples = stats.n_samples - stats.n_classes + 1
        cond_joint = entropy_bits(within[0], size, 1, samples, correct)
        cond_loo = entropy_bits(within[1], size - 1, size, samples, correct)
        return EntropyTerms(cond_joint, single_sum, cond_loo + joint, size + 1)

    def with_target(self, members: Tensor) -> Tensor:
        """`members` [M, k] with the continuous target's column appended (unchanged otherwise)."""
        if self.stats.target != "continuous":
            return members
        column = torch.full((len(members), 1), self.n, dtype=members.dtype, device=members.device)
        return torch.cat([members, column], dim=1)

    def _grow(self, parents: Tensor) -> Tensor:
        """`grow` for one chunk of parents."""
        stats = self.stats
        fixed = self.with_target(parents)
        logdet, loo, valid = self._extended(stats.cov, fixed)
        within = None
        if stats.within_cov is not None:
            within_logdet, within_loo, within_valid = self._extended(stats.within_cov, parents)
            within, valid = (within_logdet, within_loo), valid & within_valid
        single_sum = self.singles[fixed].sum(1, keepdim=True) + self.singles[None, : self.n]
        terms = self.terms(parents.shape[1] + 1, single_sum, (logdet, loo), within)
        omega = terms.combine("oinfo")
        valid = valid.scatter(1, parents, False)
        return torch.where(valid, omega, torch.full_like(omega, math.nan))

    def _extended(self, cov: Tensor, fixed: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log-det and summed leave-one-out log-dets of F ∪ v for every neuron v, and validity."""
        m = fixed.shape[1]
        block = cov[fixed[:, :, None], fixed[:, None, :]]
        chol, info = torch.linalg.cholesky_ex(block)
        if bool((info != 0).any()):
            bad = fixed[int(torch.nonzero(info)[0, 0])].tolist()
            raise ValueError(f"the covariance of multiplet {bad} is singular")
        inverse = torch.cholesky_inverse(chol)
        logdet_fixed = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        rows = cov.index_select(0, fixed.reshape(-1)).view(fixed.shape[0], m, -1)
        cross = rows[:, :, : self.n]
        weights = torch.einsum("bij,bjn->bin", inverse, cross)
        variances = torch.diagonal(cov)[: self.n]
        residual = variances - cross.mul_(weights).sum(1)
        valid = residual > _DEPENDENT * variances
        residual = torch.where(valid, residual, torch.ones_like(residual))
        log_residual = torch.log(residual)
        logdet = logdet_fixed[:, None] + log_residual
        pivots = torch.diagonal(inverse, dim1=-2, dim2=-1)[:, :, None]
        # (Σ_{F∪v}⁻¹)_jj = P_jj (1 + w_j² / (P_jj d_v)), computed in place on the weights.
        factors = weights.square_().div_(pivots).div_(residual[:, None]).add_(1.0)
        loo = (m + 1) * logdet + torch.log(pivots).sum(1) + _log_product(factors) - log_residual
        return logdet, loo, valid


def _log_product(factors: Tensor) -> Tensor:
    """Σ_j log factors[:, j, :] for factors ≥ 1: one log of the product, the sum of logs on overflow."""
    total = torch.log(factors.prod(1))
    overflow = ~torch.isfinite(total)
    if bool(overflow.any()):
        total = torch.where(overflow, torch.log(factors).sum(1), total)
    return total
