"""The ``"clusters"`` strategy (the 2024 grokking paper's): unions of Ward bins of the neurons.

The neurons are clustered into bins (Ward, on their copula-transformed, standardised profiles,
computed from the covariance alone), then every union of `min_bins`..`bins` bins is scored over
its member neurons, by Schur-complement updates along the subset tree of unions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from torch import Tensor

from oinfo_monitor.estimators.state import CopulaCovariance
from oinfo_monitor.search.beams import Beam, merge
from oinfo_monitor.search.options import ClustersOptions
from oinfo_monitor.search.results import DIRECTIONS, SIGNS, Outcome
from oinfo_monitor.search.scorer import LogDets, Scorer
from oinfo_monitor.search.sizes import resolve_sizes


def _ward_bins(stats: CopulaCovariance, count: int) -> list[list[int]]:
    """Ward clusters of the neurons' copula-transformed, standardised profiles, from the covariance.

    Standardised profiles z_i, z_j over T samples are sqrt(2 (T−1)(1 − ρ_ij)) apart, so the
    Euclidean distances Ward needs follow from the correlations alone.
    """
    n = stats.n_variables
    cov = stats.cov[:n, :n].cpu().numpy()
    scale = np.sqrt(np.diag(cov))
    corr = cov / np.outer(scale, scale)
    distance = np.sqrt(np.clip(2.0 * (stats.n_samples - 1) * (1.0 - corr), 0.0, None))
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="ward")
    labels = fcluster(tree, t=count, criterion="maxclust")
    bins = [np.flatnonzero(labels == label).tolist() for label in np.unique(labels)]
    return sorted(bins)


@dataclass(frozen=True)
class _Union:
    """A union of bins in the subset tree: its columns, the inverse and log-det of its block."""

    columns: Tensor
    inverse: Tensor
    logdet: Tensor
    last: int
    count: int


_Wanted = Callable[[int, int], bool]
"""Whether a union of (bins, neurons) is scored."""


def _union_logdets(
    cov: Tensor, bins: list[Tensor], base: Tensor, wanted: _Wanted
) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """Members, log-det and inverse diagonal of the block base ∪ U for each wanted union U of bins.

    Walks the subset tree (a union's children add one later bin) by Schur complements: with
    X = Σ_P⁻¹ Σ_PB and S = Σ_BB − Σ_BP X, log det(P∪B) = log det P + log det S and
    diag Σ_{P∪B}⁻¹ = (diag Σ_P⁻¹ + rowsums(X S⁻¹ ∘ X), diag S⁻¹); the full inverse is formed only for
    unions with children. This costs O(|P|²|B|) per union instead of a factorisation of the union,
    least when bins come largest first, so that unions grow by small bins.
    """
    order = torch.cat([base, *bins])
    cov = cov[order[:, None], order[None, :]]  # each bin's rows and columns now contiguous
    ends = torch.tensor([len(base), *(len(b) for b in bins)]).cumsum(0).tolist()
    spans = [torch.arange(ends[i], ends[i + 1], device=cov.device) for i in range(len(bins))]
    root = torch.arange(len(base), device=cov.device)
    block = cov[: len(base), : len(base)]
    pending = [_Union(root, torch.linalg.inv(block), torch.logdet(block), -1, 0)]
    members: list[Tensor] = []
    logdets: list[Tensor] = []
    diagonals: list[Tensor] = []
    while pending:
        node = pending.pop()
        first = ends[node.last + 1]
        cross_all = cov[first:].index_select(1, node.columns)
        x_all = node.inverse @ cross_all.T
        for index in range(node.last + 1, len(bins)):
            start, end = ends[index], ends[index + 1]
            cross, x = cross_all[start - first : end - first], x_all[:, start - first : end - first]
            columns = torch.cat([node.columns, spans[index]])
            try:
                log_schur, schur_inverse = _logdet_inverse(cov[start:end, start:end] - cross @ x)
            except torch.linalg.LinAlgError as error:
                union = order[columns].tolist()
                raise ValueError(f"the covariance of union {union} is singular") from error
            logdet = node.logdet + log_schur
            xs = x @ schur_inverse
            if wanted(node.count + 1, len(columns) - len(base)):
                inner = torch.diagonal(node.inverse) + (xs * x).sum(1)
                members.append(order[columns[len(base) :]])
                logdets.append(logdet)
                diagonals.append(torch.cat([inner, torch.diagonal(schur_inverse)]))
            if index < len(bins) - 1:
                top = torch.cat([node.inverse + xs @ x.T, -xs], dim=1)
                inverse = torch.cat([top, torch.cat([-xs.T, schur_inverse], dim=1)])
                pending.append(_Union(columns, inverse, logdet, index, node.count + 1))
    return members, logdets, diagonals


def _logdet_inverse(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """Log-determinant and inverse of a positive-definite matrix, from one Cholesky factor."""
    chol = torch.linalg.cholesky(matrix)
    return 2.0 * torch.log(torch.diagonal(chol)).sum(), torch.cholesky_inverse(chol)


def _score_unions(scorer: Scorer, bins: list[Tensor], wanted: _Wanted) -> dict[int, Beam]:
    """Ω of every wanted union of bins, grouped by its number of neurons (values, sorted members)."""
    stats = scorer.stats
    base = scorer.with_target(torch.zeros(1, 0, dtype=torch.long, device=stats.cov.device))[0]
    members, logdets, diagonals = _union_logdets(stats.cov, bins, base, wanted)
    within = None
    if stats.within_cov is not None:
        within = _union_logdets(stats.within_cov, bins, base, wanted)
    groups: dict[int, list[int]] = {}
    for position, row in enumerate(members):
        groups.setdefault(len(row), []).append(position)
    scored = {}
    for size, positions in sorted(groups.items()):
        rows = torch.stack([members[p] for p in positions]).sort(dim=1).values
        single_sum = scorer.singles[scorer.with_target(rows)].sum(1)
        raw = _union_terms(logdets, diagonals, positions)
        part = None if within is None else _union_terms(within[1], within[2], positions)
        scored[size] = Beam(scorer.terms(size, single_sum, raw, part).combine("oinfo"), rows)
    return scored


def _union_terms(logdets: list[Tensor], diagonals: list[Tensor], positions: list[int]) -> LogDets:
    """Joint and summed leave-one-out log-dets of equal-sized unions: log det Σ₋ⱼ = log det Σ + log (Σ⁻¹)ⱼⱼ."""
    logdet = torch.stack([logdets[p] for p in positions])
    inverse_diagonal = torch.stack([diagonals[p] for p in positions])
    return logdet, inverse_diagonal.shape[1] * logdet + torch.log(inverse_diagonal).sum(1)


def run_clusters(scorer: Scorer, sizes: list[int] | None, opts: ClustersOptions) -> Outcome:
    """Score every union of Ward bins; results keyed by the union's number of neurons."""
    if opts.bins > scorer.n:
        raise ValueError(f"bins ({opts.bins}) exceeds the number of neurons ({scorer.n})")
    bins = _ward_bins(scorer.stats, opts.bins)
    min_bins = min(opts.min_bins, len(bins))
    total = sum(math.comb(len(bins), count) for count in range(min_bins, len(bins) + 1))

    top = resolve_sizes(None, scorer.n, scorer, scorer.n)[-1] if sizes is None else sizes[-1]

    def wanted(count: int, neurons: int) -> bool:
        in_sizes = neurons <= top if sizes is None else neurons in sizes
        return count >= min_bins and neurons >= 3 and in_sizes

    device = scorer.stats.cov.device
    tree_order = sorted(bins, key=len, reverse=True)  # a union grows by its smallest bin last
    columns = [torch.tensor(b, dtype=torch.long, device=device) for b in tree_order]
    scored = _score_unions(scorer, columns, wanted)
    outcome = Outcome("clusters", "", bins=bins)
    for size, beam in scored.items():
        outcome.evaluated += len(beam.values)
        for name in DIRECTIONS:
            best = merge(None, beam.values, beam.members, SIGNS[name], 1)
            outcome.found[name][size] = best.best("clusters", False)
    skipped = total - outcome.evaluated
    outcome.reason = (
        f"clusters: Ward clustering of the copula-transformed, standardised neuron profiles into "
        f"{len(bins)} bins (sizes {sorted(len(b) for b in bins)}); {outcome.evaluated:,} unions of "
        f"{min_bins}..{len(bins)} bins scored by Schur-complement updates along the subset tree"
        + (
            f", {skipped:,} skipped (under 3 neurons, or not in sizes, or over {top} neurons)"
            if skipped
            else ""
        )
    )
    return outcome
