"""Which multiplet sizes a strategy searches: the caller's, checked, or defaults capped by the data."""

from __future__ import annotations

import math

from oinfo_monitor.estimators.entropy import SAMPLES_PER_VARIABLE
from oinfo_monitor.search.scorer import Scorer

GREEDY_MAX = 20
"""Largest default size of greedy (and of exhaustive and auto)."""

ANNEAL_MAX = 10
"""Largest default size of anneal (and of auto on wide layers)."""

# The per-size count of multiplets an exhaustive default allows.
_EXHAUSTIVE_PER_SIZE = 1_000_000


def default_exhaustive_max(n: int) -> int:
    """Largest K ≤ min(n, 20) with C(n, k) ≤ 10⁶ for every k in 3..K (at least 3)."""
    top = 3
    while top < min(n, GREEDY_MAX) and math.comb(n, top + 1) <= _EXHAUSTIVE_PER_SIZE:
        top += 1
    return top


def resolve_sizes(
    sizes: list[int] | None, max_size: int | None, scorer: Scorer, default_max: int
) -> list[int]:
    """The sizes to search: the caller's (checked), or 3..K with K the default capped by the data.

    Default sizes never exceed the number of neurons, the scorer's `limit`, nor the size the
    sample count supports (`CopulaCovariance.supported_size`); explicit sizes may go beyond the
    supported size, up to what a full-rank covariance allows, but never beyond `limit`.
    """
    stats, n = scorer.stats, scorer.stats.n_variables
    if sizes is not None and max_size is not None:
        raise ValueError("pass either sizes or the max_size option, not both")
    if sizes is not None:
        too_big = [k for k in sizes if k > n]
        if too_big:
            raise ValueError(f"sizes {too_big} exceed the number of neurons ({n})")
        if scorer.limit is not None and sizes[-1] > scorer.limit:
            raise ValueError(
                f"sizes {[k for k in sizes if k > scorer.limit]} exceed the size limit "
                f"{scorer.limit} (e.g. the rank of the layer's covariance)"
            )
        stats.check_sample_size(sizes[-1])
        return sizes
    top = min(n, default_max if max_size is None else max_size, stats.supported_size())
    if scorer.limit is not None:
        top = min(top, scorer.limit)
    if top < 3:
        raise ValueError(
            f"{stats.n_samples} samples support no multiplet of 3 neurons "
            f"(the default sizes need {SAMPLES_PER_VARIABLE} samples per variable); "
            "use a larger probe or pass sizes explicitly"
        )
    return list(range(3, top + 1))


def describe_sizes(sizes: list[int]) -> str:
    """Sizes as 'a..b' when contiguous, else a list.

    Examples:
        >>> describe_sizes([3, 4, 5]), describe_sizes([3, 5])
        ('3..5', '3, 5')
    """
    if sizes == list(range(sizes[0], sizes[-1] + 1)) and len(sizes) > 1:
        return f"{sizes[0]}..{sizes[-1]}"
    return ", ".join(map(str, sizes))
