"""Wide layers: which neurons the ``"auto"`` search looks at when a layer has too many to search.

Under ``"auto"`` a layer of more than `SEARCHED_NEURONS` neurons is screened down to that many,
and the search runs on the float64 covariance block of those alone (its time budget then holds
at any width); every other strategy gets the full covariance, as it always did. A layer wider
than `estimators.state.WIDE_NEURONS` comes as a `WideCopula` (its copula values, no N×N
covariance), which the screen reads in float32 (it only ranks; every Ω is scored in float64);
a narrower one comes with its covariance, whose correlations the screen reads. The screen ranks
neurons by how strongly they depend on the rest of the layer:

- the strength of neuron i is s_i = Σ_{j≠i} ρ_ij², its summed squared copula correlation with
  every other neuron; for a `WideCopula` with T samples and N > T neurons all of them come from
  the T×T Gram matrix G = Z Zᵀ of the standardised copula values, s_i = z_iᵀ G z_i − 1, in
  O(T² N);
- a quarter of the places go to the strongest neurons ("seeds"), then each seed brings its
  `PARTNERS` most correlated neurons (exact correlations of the seeds with all N), then the
  remaining places go to the next strongest. Ω of a triplet is a function of its pairwise
  correlations, so a synergistic or redundant group holds strongly correlated pairs; a strength
  summed over N neurons blurs one strong pair into the noise of the N others (its SD is about
  √(2N)/T), which is why the partners of the seeds are taken by their own correlation;
- a `WideCopula` with a large probe is screened on as many evenly spaced samples as its T²N
  products can cost within half the time budget (`screen_samples`; at least `SCREEN_SAMPLES`),
  so that the screen's cost does not grow with the probe; the block searched is formed from
  every sample.

`Narrowing` says what was kept: it becomes the result's `searched_neurons` and `reduced` text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from oinfo_monitor.estimators.covariance import gram
from oinfo_monitor.estimators.state import CopulaCovariance, WideCopula
from oinfo_monitor.estimators.threads import one_cpu_thread
from oinfo_monitor.search.options import AutoOptions, StrategyOptions

SEARCHED_NEURONS = 1024
"""Neurons the ``"auto"`` search keeps of a wider layer: the widest it searches greedily within
its budget (greedy's pair seed covers a small fraction of the pairs of a wider one)."""

SCREEN_SAMPLES = 500
"""Samples the screen of a `WideCopula` reads at least (all, if it has fewer), whatever the
budget: with fewer, the noise of a strength (its SD is about √(2N)/T) swamps a strong pair."""

PARTNERS = 3
"""Most correlated neurons each seed of the screen brings along."""

# Seconds per multiply-add of the screen's T²N products, one thread, on the 2-core development
# machine: its screen took 0.47, 0.92 and 1.79 s for T²N = 1.6e10, 4.0e10 and 8.0e10 (2,000
# samples at 4,096, 10,000 and 20,000 neurons; docs/data/wide_probe2000_before.json), 2.2-2.9e-11.
_SCREEN_COST = 2.5e-11
# One seed per this many searched places.
_SEED_SHARE = 4
# Rows of the correlation matrix per block where it is formed row by row.
_BLOCK_ROWS = 512
# Rows per band of the triangular product of the screen's strength.
_TRIANGLE_ROWS = 64


@dataclass(frozen=True)
class Narrowing:
    """The neurons a search ran on, out of a wide layer's, and how they were chosen.

    `columns` are ascending indices into the layer's neurons; column i of the searched block is
    neuron `columns[i]`.
    """

    columns: list[int]
    n_variables: int
    how: str


def narrowed(
    stats: CopulaCovariance | WideCopula, opts: StrategyOptions
) -> tuple[CopulaCovariance, Narrowing | None]:
    """The covariance state a search runs on: under ``"auto"``, for a layer of more than
    `SEARCHED_NEURONS` neurons, the block of the neurons `screen` keeps; otherwise `stats`
    itself, or a wide layer's full covariance (an explicit strategy).

    Examples:
        >>> from oinfo_monitor.estimators import copula_values
        >>> x = torch.randn(100, 2100, generator=torch.Generator().manual_seed(0))
        >>> block, narrowing = narrowed(copula_values(x).state(), AutoOptions())
        >>> tuple(block.cov.shape), len(narrowing.columns), narrowing.n_variables
        ((1024, 1024), 1024, 2100)
    """
    if not isinstance(opts, AutoOptions) or stats.n_variables <= SEARCHED_NEURONS:
        return (stats.full() if isinstance(stats, WideCopula) else stats), None
    device = stats.values.z.device if isinstance(stats, WideCopula) else stats.cov.device
    with one_cpu_thread(device):
        columns, how = screen(stats, SEARCHED_NEURONS, opts.time_budget)
    block = stats.block(columns)
    return block, Narrowing(columns, stats.n_variables, how)


def screen(
    stats: CopulaCovariance | WideCopula, count: int, time_budget: float
) -> tuple[list[int], str]:
    """The `count` neurons a wide layer's search keeps (ascending), and a sentence saying how.

    See the module docstring for the rule: the same for a `WideCopula` (from its copula values,
    never forming N×N, on `screen_samples` of its samples for `time_budget`) and a covariance
    state (from its correlations). Deterministic: ties in strength go to the lower index.

    Examples:
        >>> from oinfo_monitor.estimators import copula_values
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(300, 2100, generator=g)
        >>> x[:, 1500] = x[:, 10] + x[:, 800] + 0.3 * x[:, 1500]  # a synergistic triplet
        >>> kept, how = screen(copula_values(x).state(), 64, time_budget=0.1)
        >>> len(kept), {10, 800, 1500} <= set(kept)
        (64, True)
    """
    n = stats.n_variables
    if isinstance(stats, WideCopula):
        strength, squared, read = _from_values(stats, time_budget)
    else:
        (strength, squared), read = _from_covariance(stats), ""
    by_strength = torch.sort(strength, descending=True, stable=True).indices
    seeds = by_strength[: max(1, count // _SEED_SHARE)]
    paired = squared(seeds)
    own = torch.arange(len(seeds), device=seeds.device)
    paired[own, seeds] = -1.0  # a neuron is not its own partner
    partners = torch.topk(paired, min(PARTNERS, n - 1), dim=1).indices
    candidates = torch.cat([seeds, partners.T.reshape(-1), by_strength])
    kept = _first_occurrences(candidates, count)
    how = (
        f"screened {len(kept):,} of {n:,} neurons: the {len(seeds):,} with the largest summed "
        f"squared copula correlation with all others, the {partners.shape[1]} most correlated "
        f"partners of each, then the next largest by that sum{read}"
    )
    return sorted(kept), how


def _from_values(
    stats: WideCopula, time_budget: float
) -> tuple[Tensor, Callable[[Tensor], Tensor], str]:
    """Every neuron's strength and the squared correlations of given neurons with all, from a
    `WideCopula`'s copula values in float32 (on `screen_samples` of its samples), and the words
    that say how many samples were read ("" when all were)."""
    z = stats.values.z[:, : stats.n_variables]
    samples = screen_samples(z.shape[0], stats.n_variables, time_budget)
    read = ""
    if samples < z.shape[0]:
        read = f" (read on {samples:,} evenly spaced of its {z.shape[0]:,} samples)"
        z = z[torch.arange(samples, device=z.device) * z.shape[0] // samples]
    z = z.to(torch.float32, copy=True)  # normalised in place below
    z.sub_(z.mean(0, keepdim=True))
    # A neuron constant on the samples read (tied values, "average" ties) stays all zeros:
    # strength -1, ranked last, where a zero norm would make it NaN and rank it first.
    norm = torch.linalg.vector_norm(z, dim=0, keepdim=True)
    z.div_(norm.clamp_min_(torch.finfo(torch.float32).tiny))
    return strengths(z), lambda rows: (z[:, rows].T @ z).square_(), read


def _from_covariance(stats: CopulaCovariance) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """Every neuron's strength and the squared correlations of given neurons with all, from a
    covariance state's correlations (float64, O(N²))."""
    n = stats.n_variables
    cov = stats.cov[:n, :n]
    scale = cov.diagonal().rsqrt()
    correlation = cov * scale[:, None] * scale[None, :]
    return correlation.square().sum(1).sub_(1.0), lambda rows: correlation[rows].square()


def screen_samples(samples: int, neurons: int, time_budget: float) -> int:
    """How many of a `WideCopula`'s `samples` its screen reads: as many as its T²N products can
    cost within half of `time_budget` (the rest is the search's), at least `SCREEN_SAMPLES`.

    A fixed rule of the sizes and the budget, never of a timing, so that a run repeats exactly.

    Examples:
        >>> screen_samples(400, 20_000, 0.1), screen_samples(5000, 20_000, 0.1)
        (400, 500)
        >>> screen_samples(5000, 4096, 0.1), screen_samples(5000, 4096, 1.0)
        (698, 2209)
    """
    fit = math.isqrt(int(time_budget / 2 / (_SCREEN_COST * neurons)))
    return min(samples, max(SCREEN_SAMPLES, fit))


def strengths(z: Tensor) -> Tensor:
    """Σ_{j≠i} ρ_ij² for every column of unit-norm, centred `z` [T, N], never forming N×N.

    With N > T it is z_iᵀ G z_i − 1 for the Gram matrix G = Z Zᵀ. Centred columns make G
    singular along the all-ones vector 1, to which every z_i is orthogonal, so z_iᵀ G z_i =
    z_iᵀ G' z_i with G' = G + (N/T) 11ᵀ = UᵀU, positive definite when Z has rank T − 1: the
    squared norm of U z_i. Both T²N products are done on triangles only (`covariance.gram`,
    `_triangular_square_sums`), about 60% of two full products; a G' that Cholesky cannot
    factor (repeated samples lower the rank) takes the full product G Z instead.

    Examples:
        >>> z = torch.tensor([[1.0, 1.0, 0.0], [-1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
        >>> z = z[:, [0, 1, 2, 2]] + torch.tensor([0.0, 0.0, 0.0, 1.0])
        >>> z = z - z.mean(0)
        >>> [round(v, 3) for v in strengths(z / z.norm(dim=0)).tolist()]
        [1.0, 1.0, 1.0, 1.0]
    """
    samples, n = z.shape
    if samples < n:
        product = gram(z.T)  # Z Zᵀ
        upper, info = torch.linalg.cholesky_ex(product + n / samples, upper=True)
        if int(info) == 0:
            return _triangular_square_sums(upper, z).sub_(1.0)
        return (product @ z).mul_(z).sum(0).sub_(1.0)
    rows = [(z[:, i : i + _BLOCK_ROWS].T @ z).square_().sum(1) for i in range(0, n, _BLOCK_ROWS)]
    return torch.cat(rows).sub_(1.0)


def _triangular_square_sums(upper: Tensor, z: Tensor) -> Tensor:
    """The squared norm of every column of `upper @ z` for an upper-triangular `upper`, skipping
    the products with its zeros (a band of `_TRIANGLE_ROWS` rows at a time)."""
    sums = torch.zeros(z.shape[1], dtype=z.dtype, device=z.device)
    for i in range(0, z.shape[0], _TRIANGLE_ROWS):
        sums += (upper[i : i + _TRIANGLE_ROWS, i:] @ z[i:]).square_().sum(0)
    return sums


def _first_occurrences(candidates: Tensor, count: int) -> list[int]:
    """The first `count` distinct values of `candidates`, in order of first occurrence."""
    _, first = np.unique(candidates.cpu().numpy(), return_index=True)
    return candidates.cpu()[np.sort(first)[:count]].tolist()
