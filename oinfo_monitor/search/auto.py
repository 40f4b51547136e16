"""The ``"auto"`` strategy: exhaustive when it fits the time budget, else greedy, else anneal.

A layer wider than `estimators.state.WIDE_NEURONS` reaches it already screened down to
`WIDE_LAYER` neurons (`search.wide`), so it plans greedy or exhaustive over those.
"""

from __future__ import annotations

import math

from oinfo_monitor.search.anneal import run_anneal
from oinfo_monitor.search.exhaustive import exhaustive_seconds, run_exhaustive
from oinfo_monitor.search.greedy import run_greedy
from oinfo_monitor.search.options import (
    AnnealOptions,
    AutoOptions,
    ExhaustiveOptions,
    GreedyOptions,
)
from oinfo_monitor.search.results import Outcome
from oinfo_monitor.search.scorer import Scorer
from oinfo_monitor.search.sizes import ANNEAL_MAX, GREEDY_MAX, describe_sizes, resolve_sizes

WIDE_LAYER = 1024
"""Above this width `auto` anneals: greedy's pair seed would then cover a small fraction of pairs."""


def run_auto(scorer: Scorer, sizes: list[int] | None, opts: AutoOptions, seed: int) -> Outcome:
    """Exhaustive if everything fits the time budget, else greedy, else (wide layers) anneal."""
    n, budget = scorer.n, opts.time_budget
    wide = n > WIDE_LAYER
    chosen = resolve_sizes(sizes, opts.max_size, scorer, ANNEAL_MAX if wide else GREEDY_MAX)
    estimate = exhaustive_seconds(n, chosen)
    everything = (
        f"all {sum(math.comb(n, k) for k in chosen):,} multiplets of sizes {describe_sizes(chosen)}"
    )
    if estimate <= budget:
        outcome = run_exhaustive(scorer, chosen, ExhaustiveOptions())
        why = f"{everything} fit the {budget:g} s budget (about {estimate:.2g} s)"
    elif not wide:
        outcome = run_greedy(scorer, chosen, GreedyOptions(), budget / 2)
        why = f"{everything} would take about {estimate:.2g} s > {budget:g} s; N = {n} <= {WIDE_LAYER}"
    else:
        outcome = run_anneal(scorer, chosen, AnnealOptions(), seed)
        why = f"N = {n} > {WIDE_LAYER} neurons: a wide layer"
    outcome.reason = f"auto -> {outcome.strategy} ({why}); {outcome.reason}"
    return outcome
