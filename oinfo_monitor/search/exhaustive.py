"""The ``"exhaustive"`` strategy: every multiplet of each size, streamed in chunks; exact optima.

Also the cost model (`exhaustive_seconds`) that ``"auto"`` and greedy's seed plan with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from oinfo_monitor.estimators.multiplets import iter_combinations
from oinfo_monitor.search.beams import Beam, merge
from oinfo_monitor.search.options import ExhaustiveOptions
from oinfo_monitor.search.results import DIRECTIONS, SIGNS, Outcome
from oinfo_monitor.search.scorer import Scorer
from oinfo_monitor.search.sizes import default_exhaustive_max, describe_sizes, resolve_sizes

# Rows per chunk of an exhaustive enumeration.
_CHUNK_ROWS = 1 << 16
# Rough seconds to score one multiplet of k neurons exhaustively: _COST_BASE + _COST_SQUARE·k²,
# doubled above 16 neurons where blocks go to batched LAPACK (one core of the 2-core development
# machine, measured while other jobs ran).
_COST_BASE = 2e-7
_COST_SQUARE = 3e-8
_UNROLLED_SIZES = 16


def exhaustive_seconds(n: int, sizes: Iterable[int]) -> float:
    """Rough time (s) to score every multiplet of the given sizes among n neurons."""
    return sum(
        math.comb(n, k) * (_COST_BASE + _COST_SQUARE * k * k) * (2 if k > _UNROLLED_SIZES else 1)
        for k in sizes
    )


def exhaustive_beams(scorer: Scorer, size: int, keep: int) -> dict[str, Beam]:
    """The `keep` best multiplets of one size in each direction, over all C(N, size) of them."""
    beams: dict[str, Beam | None] = dict.fromkeys(DIRECTIONS)
    device = scorer.stats.cov.device
    for chunk in iter_combinations(scorer.n, size, _CHUNK_ROWS, device=device):
        values = scorer.score(chunk)
        for name in DIRECTIONS:
            beams[name] = merge(beams[name], values, chunk, SIGNS[name], keep)
    return {name: beam for name, beam in beams.items() if beam is not None}


def run_exhaustive(scorer: Scorer, sizes: list[int] | None, opts: ExhaustiveOptions) -> Outcome:
    """All multiplets of every size, exact optima."""
    sizes = resolve_sizes(sizes, opts.max_size, scorer, default_exhaustive_max(scorer.n))
    count = sum(math.comb(scorer.n, k) for k in sizes)
    outcome = Outcome(
        "exhaustive", f"exhaustive: all {count:,} multiplets of sizes {describe_sizes(sizes)}"
    )
    for size in sizes:
        beams = exhaustive_beams(scorer, size, 1)
        for name in DIRECTIONS:
            outcome.found[name][size] = beams[name].best("exhaustive", True)
    outcome.evaluated = count
    return outcome
