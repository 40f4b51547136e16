"""The ``"auto"`` strategy: exhaustive when it fits the time budget, else greedy.

A layer wider than `search.wide.SEARCHED_NEURONS` reaches it already screened down to that many
neurons (`search.wide`), so greedy keeps to the budget at any width.
"""

from __future__ import annotations

import math

from oinfo_monitor.search.exhaustive import exhaustive_seconds, run_exhaustive
from oinfo_monitor.search.greedy import run_greedy
from oinfo_monitor.search.options import AutoOptions, ExhaustiveOptions, GreedyOptions
from oinfo_monitor.search.results import Outcome
from oinfo_monitor.search.scorer import Scorer
from oinfo_monitor.search.sizes import GREEDY_MAX, describe_sizes, resolve_sizes


def run_auto(scorer: Scorer, sizes: list[int] | None, opts: AutoOptions) -> Outcome:
    """Exhaustive if everything fits the time budget, else greedy with half of it for its seeds."""
    n, budget = scorer.n, opts.time_budget
    chosen = resolve_sizes(sizes, opts.max_size, scorer, GREEDY_MAX)
    estimate = exhaustive_seconds(n, chosen)
    everything = (
        f"all {sum(math.comb(n, k) for k in chosen):,} multiplets of sizes {describe_sizes(chosen)}"
    )
    if estimate <= budget:
        outcome = run_exhaustive(scorer, chosen, ExhaustiveOptions())
        why = f"{everything} fit the {budget:g} s budget (about {estimate:.2g} s)"
    else:
        outcome = run_greedy(scorer, chosen, GreedyOptions(), budget / 2)
        why = f"{everything} would take about {estimate:.2g} s > {budget:g} s"
    outcome.reason = f"auto -> {outcome.strategy} ({why}); {outcome.reason}"
    return outcome
