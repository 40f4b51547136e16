"""How sure a search's extremes are: their noise (bootstrap SD) and their chance level (a null).

A search reports, per multiplet size, the most synergistic (min Ω) and most redundant (max Ω)
multiplet. Two questions decide whether such a value can be trusted:

- **Noise.** How much would the value move with another probe set? `bootstrap_noise` copula-
  transforms the chosen multiplets' members once, resamples the rows of those copula values with
  replacement and re-scores the multiplets the search chose. It does not re-run the search: the
  SD is that of the reported multiplets' Ω, the quantity a curve follows from one evaluation to
  the next, and re-scoring costs their members only. Nor does it rank each resample again with a
  fresh tie draw: under ``ties="random"`` the tie-broken copula values are a jitter drawn for
  each sample independently, so resampling rows resamples the jitter too, and the SD already
  holds the tie noise. Measured on post-ReLU data whose truth is known (tests/test_trust.py), the
  SD over resampled rows matches the SD over fresh probes with fresh tie draws, while a fresh tie
  draw on top of the row resample counts the tie noise twice (20-30% too large).
- **Chance level.** An extreme over many candidates lies away from zero even on independent data,
  and the further the more candidates there are. `chance_levels` runs the same search (strategy,
  sizes, options, sample count, tie policy) on surrogates in which every neuron's samples are
  permuted independently: the marginals, ties included, are kept and every dependence is
  destroyed (permuting the tie-broken copula values is a copula of the permuted samples with a
  fresh tie draw, so the transform is done once). Its 5% quantile of surrogate min Ω (95% of max Ω) is the chance level: a synergy
  below it, or a redundancy above it, is *significant*. A size that a surrogate's search did not
  produce (the clusters strategy's union sizes depend on the data) takes that surrogate's
  extreme at the nearest size it did produce.

The headline of a layer (min Ω over sizes, max Ω over sizes) gets the same two numbers, computed
for the headline itself (the extreme over sizes of each resample or surrogate). All in bits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from oinfo_monitor.estimators import CopulaValues, TiePolicy, copula_values
from oinfo_monitor.estimators.state import CopulaCovariance, stacked_states
from oinfo_monitor.search.api import search_covariance
from oinfo_monitor.search.results import SearchResult


@dataclass(frozen=True)
class Noise:
    """Bootstrap SDs (bits) of a search's extremes, per size and for the headline."""

    synergy_sd: dict[int, float | None]
    redundancy_sd: dict[int, float | None]
    headline_synergy_sd: float
    headline_redundancy_sd: float
    resamples: int


@dataclass(frozen=True)
class ChanceLevels:
    """Chance levels (bits) of a search's extremes: a quantile of the same search on surrogates.

    `synergy[k]` is the `quantile` (5%) of surrogate min Ω at size k, `redundancy[k]` the
    1 − `quantile` (95%) of surrogate max Ω; `headline_*` the same for the extremes over sizes.
    """

    synergy: dict[int, float]
    redundancy: dict[int, float]
    headline_synergy: float
    headline_redundancy: float
    surrogates: int
    quantile: float

    def at(self, size: int) -> tuple[float, float]:
        """(synergy, redundancy) chance levels at `size`, from the nearest size surrogates produced."""
        nearest = min(self.synergy, key=lambda k: (abs(k - size), k))
        return self.synergy[nearest], self.redundancy[nearest]


def _copula_of(
    x: Tensor | CopulaValues,
    y: Tensor | None,
    ties: TiePolicy | None,
    seed: int,
    columns: list[int] | None = None,
) -> CopulaValues:
    """The copula values of `x` (of its `columns`), transformed here unless `x` already is them."""
    if isinstance(x, CopulaValues):
        if y is not None or ties is not None:
            raise ValueError(
                "x is already copula values, whose target and tie policy were fixed by "
                "copula_values: pass y and ties there, not here"
            )
        return x if columns is None else x.select(columns)
    data = x if columns is None else x[:, columns]
    return copula_values(data, y=y, ties=ties or "random", seed=seed)


def bootstrap_noise(
    x: Tensor | CopulaValues,
    result: SearchResult,
    *,
    index_map: Sequence[int] | None = None,
    resamples: int = 10,
    max_sizes: int | None = 8,
    y: Tensor | None = None,
    ties: TiePolicy | None = None,
    bias_correct: bool = True,
    seed: int = 0,
) -> Noise:
    """SD over bootstrap resamples of the Ω of each multiplet `result` chose, and of its headline.

    `x` [samples, neurons] holds the data the search ran on (`ties` default ``"random"``), or its
    copula values, which fixed `y` and `ties` (passing them as well is an error); column i is
    neuron `index_map[i]` of `result`'s members (default: neuron i). The members' columns are copula-transformed once; each resample
    draws the rows of those values with replacement and re-scores every chosen multiplet (see the
    module docstring for why that SD holds the tie noise). A resample in which a member is
    constant (under ``ties="average"``, a rarely active neuron drawn only at rest) cannot be
    scored; it is drawn again, up to `resamples` extra draws, and `Noise.resamples` counts the
    ones used (an SD from fewer than 2 is NaN). A search with more than `max_sizes` sizes (the
    clusters strategy reports one per union size, often a hundred or more) has its SD measured at
    `max_sizes` sizes spread evenly over its range, always including the sizes of the two
    headline multiplets; the other sizes get None (not measured), which keeps the cost to a fixed
    number of re-scored multiplets. Deterministic for a given `seed`.

    Examples:
        >>> from oinfo_monitor.search import search
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(500, 6, generator=g, dtype=torch.float64)
        >>> x[:, 2] = x[:, 0] + x[:, 1] + 0.5 * x[:, 2]
        >>> found = search(x, sizes=[3], strategy="exhaustive")
        >>> noise = bootstrap_noise(x, found, resamples=20)
        >>> 0 < noise.synergy_sd[3] < 0.2
        True
    """
    if resamples < 2:
        raise ValueError(f"resamples must be >= 2 to estimate an SD, got {resamples}")
    every = sorted(result.synergy)
    sizes = measured_sizes(result, max_sizes)
    chosen = [result.synergy[k].members for k in sizes] + [
        result.redundancy[k].members for k in sizes
    ]
    width = x.n_variables if isinstance(x, CopulaValues) else int(x.shape[1])
    column_of = {neuron: i for i, neuron in enumerate(index_map or range(width))}
    columns = sorted({column_of[member] for members in chosen for member in members})
    position = {column: i for i, column in enumerate(columns)}
    renumbered = [tuple(sorted(position[column_of[m]] for m in members)) for members in chosen]
    unique = sorted(set(renumbered))
    slot = [unique.index(members) for members in renumbered]
    values = _copula_of(x, y, ties, seed, columns)
    generator = torch.Generator().manual_seed(seed)
    states: list[CopulaCovariance] = []
    for _ in range(2 * resamples):
        if len(states) == resamples:
            break
        samples = values.z.shape[0]
        rows = torch.randint(0, samples, (samples,), generator=generator).to(values.z.device)
        stats = values.dense_state(rows, bias_correct=bias_correct)
        if bool((torch.diagonal(stats.cov) > 0).all()):
            states.append(stats)
    table = torch.full((1, len(chosen)), float("nan"), dtype=torch.float64)
    if len(states) >= 2 and len({state.n_classes for state in states}) == 1:
        table = stacked_states(states).oinfo(unique).cpu()[:, slot]
    elif len(states) >= 2:  # a class missing from a resample: its bias correction differs
        table = torch.stack([state.oinfo(unique).cpu()[slot] for state in states])
    synergy, redundancy = table[:, : len(sizes)], table[:, len(sizes) :]
    position_of = {k: i for i, k in enumerate(sizes)}

    def spread(column: Tensor, k: int) -> float | None:
        return float(column[:, position_of[k]].std()) if k in position_of else None

    return Noise(
        synergy_sd={k: spread(synergy, k) for k in every},
        redundancy_sd={k: spread(redundancy, k) for k in every},
        headline_synergy_sd=float(synergy.min(1).values.std()),
        headline_redundancy_sd=float(redundancy.max(1).values.std()),
        resamples=len(states),
    )


def measured_sizes(result: SearchResult, max_sizes: int | None) -> list[int]:
    """The sizes whose noise `bootstrap_noise` measures: all of them, or `max_sizes` spread evenly
    over the range plus the sizes of the two headline multiplets.

    Examples:
        >>> from oinfo_monitor.search import Multiplet
        >>> found = {k: Multiplet(-0.1 * (k == 40), tuple(range(k)), "clusters", False) for k in range(3, 101)}
        >>> result = SearchResult(found, found, "clusters", "", n_variables=100, n_samples=500,
        ...                       target="none", ties="random", bias_correct=True)
        >>> measured_sizes(result, 5)
        [3, 27, 40, 51, 76, 100]
    """
    sizes = sorted(result.synergy)
    if max_sizes is None or len(sizes) <= max_sizes:
        return sizes
    picks = {sizes[round(i * (len(sizes) - 1) / (max_sizes - 1))] for i in range(max_sizes)}
    picks.add(min(sizes, key=lambda k: result.synergy[k].value))
    picks.add(max(sizes, key=lambda k: result.redundancy[k].value))
    return sorted(picks)


@dataclass(frozen=True)
class SurrogateExtremes:
    """One surrogate search's extremes (bits): min Ω and max Ω at each size it produced."""

    synergy: dict[int, float]
    redundancy: dict[int, float]


def chance_levels(
    x: Tensor | CopulaValues,
    *,
    surrogates: int = 19,
    quantile: float = 0.05,
    y: Tensor | None = None,
    ties: TiePolicy | None = None,
    bias_correct: bool = True,
    seed: int = 0,
    search_options: Mapping[str, Any] | None = None,
) -> ChanceLevels:
    """The same search on `surrogates` column-permuted copies of `x`; quantiles of their extremes.

    `search_options` are the keyword options of `search_covariance` (``sizes``, ``strategy``,
    strategy options, ``size_limit``) exactly as the real search got them. Deterministic for a
    given `seed`. `x` may also be the copula values of the data, which spares the transform and
    fixed `y` and `ties` (passing them as well is an error; `ties` default ``"random"``). The
    same levels come from `levels_from` on the `surrogate_extremes` of every share.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(400, 8, generator=g, dtype=torch.float64)
        >>> levels = chance_levels(x, surrogates=9, search_options={"sizes": [3, 4], "strategy": "exhaustive"})
        >>> levels.synergy[3] < 0 < levels.redundancy[3]  # extremes of independent data
        True
    """
    _check_quantile(quantile)
    found = surrogate_extremes(
        x,
        surrogates=surrogates,
        y=y,
        ties=ties,
        bias_correct=bias_correct,
        seed=seed,
        search_options=search_options,
    )
    return levels_from(list(found.values()), quantile)


def surrogate_extremes(
    x: Tensor | CopulaValues,
    *,
    surrogates: int = 19,
    share: tuple[int, int] = (0, 1),
    y: Tensor | None = None,
    ties: TiePolicy | None = None,
    bias_correct: bool = True,
    seed: int = 0,
    search_options: Mapping[str, Any] | None = None,
) -> dict[int, SurrogateExtremes]:
    """The extremes of the surrogate searches of `chance_levels` whose index i has
    i % `share[1]` == `share[0]`, by index: the shares of several workers (DDP ranks) together
    are exactly the single call's surrogates, since surrogate i's permutation comes from the i-th
    of a sequence of seeds drawn from `seed` whatever the share.

    Examples:
        >>> x = torch.randn(300, 6, generator=torch.Generator().manual_seed(0))
        >>> options = {"sizes": [3], "strategy": "exhaustive"}
        >>> halves = [surrogate_extremes(x, surrogates=5, share=(r, 2), search_options=options)
        ...           for r in (0, 1)]
        >>> sorted(halves[0]), sorted(halves[1])
        ([0, 2, 4], [1, 3])
        >>> whole = surrogate_extremes(x, surrogates=5, search_options=options)
        >>> whole == {**halves[0], **halves[1]}
        True
    """
    if surrogates < 1:
        raise ValueError(f"surrogates must be >= 1, got {surrogates}")
    rank, ranks = share
    if not 0 <= rank < ranks:
        raise ValueError(f"share must be (index, count) with 0 <= index < count, got {share}")
    options = dict(search_options or {})
    generator = torch.Generator().manual_seed(seed)
    seeds = [int(torch.randint(0, 1 << 62, (1,), generator=generator)) for _ in range(surrogates)]
    values = _copula_of(x, y, ties, seed + 1)
    found: dict[int, SurrogateExtremes] = {}
    for index in range(rank, surrogates, ranks):
        stats = values.permuted(seeds[index]).state(bias_correct=bias_correct)
        result = search_covariance(stats, seed=seed, **options)
        found[index] = SurrogateExtremes(
            {k: m.value for k, m in result.synergy.items()},
            {k: m.value for k, m in result.redundancy.items()},
        )
    return found


def levels_from(extremes: Sequence[SurrogateExtremes], quantile: float = 0.05) -> ChanceLevels:
    """Chance levels from surrogate searches' extremes (see `chance_levels`): at every size any
    surrogate produced, the `quantile` of the surrogates' min Ω and the 1 − `quantile` of their
    max Ω, each surrogate taking its nearest size; the same for the extremes over sizes.

    Examples:
        >>> found = [SurrogateExtremes({3: -0.1 * i}, {3: 0.2 * i}) for i in range(1, 5)]
        >>> levels = levels_from(found, quantile=0.25)
        >>> round(levels.synergy[3], 3), round(levels.headline_redundancy, 3)
        (-0.325, 0.65)
    """
    _check_quantile(quantile)
    if not extremes:
        raise ValueError("levels_from needs the extremes of at least one surrogate")
    sizes = sorted({k for found in extremes for k in found.synergy})

    def nearest(found: SurrogateExtremes, size: int) -> int:
        return min(found.synergy, key=lambda k: (abs(k - size), k))

    def low(values: list[float]) -> float:
        return float(torch.quantile(torch.tensor(values, dtype=torch.float64), quantile))

    def high(values: list[float]) -> float:
        return float(torch.quantile(torch.tensor(values, dtype=torch.float64), 1 - quantile))

    return ChanceLevels(
        synergy={k: low([f.synergy[nearest(f, k)] for f in extremes]) for k in sizes},
        redundancy={k: high([f.redundancy[nearest(f, k)] for f in extremes]) for k in sizes},
        headline_synergy=low([min(f.synergy.values()) for f in extremes]),
        headline_redundancy=high([max(f.redundancy.values()) for f in extremes]),
        surrogates=len(extremes),
        quantile=quantile,
    )


def _check_quantile(quantile: float) -> None:
    """Raise unless 0 < `quantile` < 0.5 (a chance level's tail probability)."""
    if not 0 < quantile < 0.5:
        raise ValueError(f"quantile must lie strictly between 0 and 0.5, got {quantile!r}")
