"""Beams, the best few multiplets of one size and direction: merging, one-neuron growth, pair seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from oinfo_monitor.estimators.state import CopulaCovariance
from oinfo_monitor.search.results import DIRECTIONS, SIGNS, Multiplet
from oinfo_monitor.search.scorer import Scorer

PAIR_SEED_TRIPLETS = 500_000
"""Triplets grown from the most correlated pairs when even all triplets are too many."""

# Rows of the squared correlation matrix per block when ranking pairs.
_PAIR_ROWS = 256


@dataclass(frozen=True)
class Beam:
    """The best multiplets of one size in one direction, best first."""

    values: Tensor
    members: Tensor

    def best(self, strategy: str, exact: bool) -> Multiplet:
        """The first (best) multiplet of the beam, in column indices."""
        members = tuple(int(i) for i in self.members[0].tolist())
        return Multiplet(float(self.values[0]), members, strategy, exact)


def best_rows(energy: Tensor, keep: int) -> Tensor:
    """Positions of the `keep` lowest finite energies, lowest first, earlier position first on ties."""
    take = min(keep, int((energy < math.inf).sum()))
    chosen = torch.topk(energy, take, largest=False).indices.sort().values
    return chosen[torch.sort(energy[chosen], stable=True).indices]


def merge(beam: Beam | None, values: Tensor, members: Tensor, sign: float, keep: int) -> Beam:
    """Fold a chunk of scored multiplets into a running beam of the `keep` best."""
    if beam is not None:
        values = torch.cat([beam.values, values])
        members = torch.cat([beam.members, members])
    rows = best_rows(sign * values, keep)
    return Beam(values[rows], members[rows])


def grow_beam(scorer: Scorer, beam: Beam, sign: float, keep: int) -> tuple[Beam, Tensor, int]:
    """The `keep` best distinct one-neuron extensions of a beam, their parents' Ω, and the count scored.

    A child of k+1 neurons has at most k+1 parents in the beam, so the best keep·(k+1)
    candidates always contain `keep` distinct children when that many exist.
    """
    omega = scorer.grow(beam.members)
    energy = torch.nan_to_num(sign * omega, nan=math.inf)
    rows = best_rows(energy.reshape(-1), keep * (beam.members.shape[1] + 1))
    if len(rows) == 0:
        raise ValueError(
            f"no neuron can extend the multiplets of size {beam.members.shape[1]}: every other "
            "neuron is linearly dependent on them (duplicated or derived columns)"
        )
    parent, neuron = rows // scorer.n, rows % scorer.n
    children = torch.cat([beam.members[parent], neuron[:, None]], dim=1).sort(dim=1).values
    chosen = _first_distinct(children, keep)
    grown = Beam(omega[parent, neuron][chosen], children[chosen])
    return grown, beam.values[parent][chosen], int(torch.isfinite(omega).sum())


def _first_distinct(rows: Tensor, keep: int) -> Tensor:
    """Positions of the first occurrence of each distinct row, in order, at most `keep` of them."""
    unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
    first = torch.full((len(unique),), len(rows), dtype=torch.long, device=rows.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(rows), device=rows.device), "amin")
    return first.sort().values[:keep]


def distinct_beam(values: Tensor, members: Tensor, sign: float, keep: int) -> Beam:
    """The `keep` best distinct multiplets among rows of sorted `members` with Ω `values`."""
    order = best_rows(sign * values, len(values))
    chosen = order[_first_distinct(members[order], keep)]
    return Beam(values[chosen], members[chosen])


def pair_seeds(scorer: Scorer, keep: int, cap: int) -> tuple[dict[str, Beam], int, int]:
    """The `keep` best distinct triplets per direction grown from the most correlated pairs.

    Ω of a triplet is a function of its three pairwise correlations and vanishes when all three
    do, so strong triplets contain a strongly dependent pair. About `cap` triplets are scored;
    returns the beams, that count and the number of pairs.
    """
    pairs = _top_pairs(scorer.stats, max(keep, cap // scorer.n))
    start = Beam(torch.zeros(len(pairs), dtype=torch.float64, device=pairs.device), pairs)
    beams, total = {}, 0
    for name in DIRECTIONS:
        beams[name], _, scored = grow_beam(scorer, start, SIGNS[name], keep)
        total += scored
    return beams, total, len(pairs)


def _top_pairs(stats: CopulaCovariance, count: int) -> Tensor:
    """The `count` neuron pairs with the largest absolute copula correlation, as [count, 2].

    Works through blocks of rows of ρ² so that a wide layer's N×N matrix is never formed.
    """
    n = stats.n_variables
    inverse_variance = torch.diagonal(stats.cov)[:n].reciprocal()
    count = min(count, n * (n - 1) // 2)
    columns = torch.arange(n, device=stats.cov.device)
    values, positions = [], []
    for start in range(0, n, _PAIR_ROWS):
        block = stats.cov[start : min(start + _PAIR_ROWS, n), :n].square()  # no target row
        block.mul_(inverse_variance[start : start + _PAIR_ROWS, None]).mul_(inverse_variance)
        lower = columns[None, :] <= columns[start : start + _PAIR_ROWS, None]
        top = torch.topk(block.masked_fill_(lower, -1.0).reshape(-1), min(count, block.numel()))
        values.append(top.values)
        positions.append(top.indices + start * n)
    best = torch.cat(positions)[torch.topk(torch.cat(values), count).indices]
    return torch.stack([best // n, best % n], dim=1)
