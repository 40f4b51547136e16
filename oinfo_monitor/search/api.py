"""The entry points: `search` (from samples) and `search_covariance` (from one copula covariance)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from oinfo_monitor.estimators.copula import TiePolicy
from oinfo_monitor.estimators.state import CopulaCovariance, WideCopula, copula_values
from oinfo_monitor.estimators.threads import one_cpu_thread
from oinfo_monitor.estimators.validation import TargetKind
from oinfo_monitor.search.anneal import run_anneal
from oinfo_monitor.search.auto import run_auto
from oinfo_monitor.search.clusters import run_clusters
from oinfo_monitor.search.exhaustive import run_exhaustive
from oinfo_monitor.search.greedy import run_greedy
from oinfo_monitor.search.options import (
    AnnealOptions,
    ClustersOptions,
    ExhaustiveOptions,
    GreedyOptions,
    StrategyOptions,
    check_search,
    int_at_least,
    parse_sizes,
    strategy_options,
)
from oinfo_monitor.search.results import Multiplet, Outcome, SearchResult
from oinfo_monitor.search.scorer import Scorer
from oinfo_monitor.search.sizes import resolve_sizes
from oinfo_monitor.search.wide import narrowed


def search_covariance(
    stats: CopulaCovariance | WideCopula,
    *,
    sizes: int | Iterable[int] | None = None,
    strategy: str = "auto",
    index_map: Sequence[int] | None = None,
    seed: int = 0,
    size_limit: int | None = None,
    **options: Any,
) -> SearchResult:
    """Find the most synergistic and most redundant multiplets of each size from one copula covariance.

    `sizes` is an int K (sizes 3..K) or an iterable of sizes ≥ 3 (None: the strategy's default,
    see `oinfo_monitor.search`); `strategy` is one of `STRATEGIES` and `options` its keyword
    options (see `oinfo_monitor.search.options`). `index_map[i]` is the caller's index of column
    i, so that members come back in the caller's numbering. `size_limit` caps the multiplet size
    where the caller knows the variables' rank (e.g. a linear layer's input width): default sizes
    stop there and larger explicit sizes are refused. Deterministic for a given `seed`. A wide
    layer's `WideCopula` is searched, under ``"auto"``, over the neurons its screen keeps (see
    `search.wide`; the result's `searched_neurons` and `reduced` say which and how), and with
    any other strategy over its full covariance.

    Examples:
        >>> import torch
        >>> from oinfo_monitor.estimators import copula_covariance
        >>> x = torch.randn(300, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> x[:, 4] = x[:, 0] + x[:, 2] + 0.3 * x[:, 4]  # a synergistic triplet
        >>> stats = copula_covariance(x)
        >>> result = search_covariance(stats, strategy="greedy", sizes=4, index_map=range(10, 16))
        >>> result.synergy[3].members, sorted(result.synergy)
        ((10, 12, 14), [3, 4])
    """
    opts = strategy_options(strategy, options)
    parsed = parse_sizes(sizes)
    mapping = _check_index_map(index_map, stats.n_variables)
    seed = int_at_least("seed", seed, 0)
    if stats.n_variables < 3:
        raise ValueError(f"a search needs at least 3 neurons, got {stats.n_variables}")
    limit = int_at_least("size_limit", size_limit, 3) if size_limit else None
    began = time.perf_counter()
    dense, narrowing = narrowed(stats, opts)
    scorer = Scorer(dense, limit)
    if parsed is not None:
        resolve_sizes(parsed, None, scorer, 0)
    with one_cpu_thread(dense.cov.device):
        outcome = _run(scorer, opts, parsed, seed)
    seconds = time.perf_counter() - began
    if narrowing is not None:
        mapping = [mapping[c] if mapping else c for c in narrowing.columns]
        outcome.reason = f"{narrowing.how}; {outcome.reason}"
    bins = tuple(tuple(sorted(mapping[i] for i in b) if mapping else b) for b in outcome.bins)
    return SearchResult(
        synergy={k: _mapped(m, mapping) for k, m in outcome.found["synergy"].items()},
        redundancy={k: _mapped(m, mapping) for k, m in outcome.found["redundancy"].items()},
        strategy=outcome.strategy,
        reason=outcome.reason,
        n_variables=stats.n_variables,
        n_samples=dense.n_samples,
        target=dense.target,
        ties=dense.ties,
        bias_correct=dense.bias_correct,
        seconds=seconds,
        evaluated=outcome.evaluated,
        plateau=outcome.plateau,
        bins=bins,
        searched_neurons=dense.n_variables,
        reduced="" if narrowing is None else narrowing.how,
    )


def search(
    x: Any,
    *,
    y: Any = None,
    sizes: int | Iterable[int] | None = None,
    strategy: str = "auto",
    ties: TiePolicy = "random",
    seed: int = 0,
    bias_correct: bool = True,
    target_kind: TargetKind = "auto",
    **options: Any,
) -> SearchResult:
    """Copula-transform `x` [samples, neurons] once and search its multiplets (see `search_covariance`).

    `y`, `target_kind`, `bias_correct`, `ties` and `seed` are as in `copula_covariance` (the seed
    also drives the anneal strategy); options are checked before any estimation. A layer wider
    than `WIDE_NEURONS` is never given an N×N covariance under ``"auto"`` (`CopulaValues.state`).

    Examples:
        >>> import torch
        >>> x = torch.randn(300, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> x[:, 4] = x[:, 0] + x[:, 2] + 0.3 * x[:, 4]  # a synergistic triplet
        >>> result = search(x, sizes=3, strategy="exhaustive")
        >>> result.synergy[3].members, result.synergy[3].exact, result.synergy[3].value < 0
        ((0, 2, 4), True, True)
    """
    check_search(strategy, sizes, options)
    values = copula_values(x, y=y, target_kind=target_kind, ties=ties, seed=seed)
    stats = values.state(bias_correct=bias_correct)
    return search_covariance(stats, sizes=sizes, strategy=strategy, seed=seed, **options)


def _run(scorer: Scorer, opts: StrategyOptions, sizes: list[int] | None, seed: int) -> Outcome:
    """Dispatch to the strategy whose options `opts` are."""
    if isinstance(opts, ExhaustiveOptions):
        return run_exhaustive(scorer, sizes, opts)
    if isinstance(opts, GreedyOptions):
        return run_greedy(scorer, sizes, opts)
    if isinstance(opts, ClustersOptions):
        return run_clusters(scorer, sizes, opts)
    if isinstance(opts, AnnealOptions):
        return run_anneal(scorer, sizes, opts, seed)
    return run_auto(scorer, sizes, opts)


def _mapped(multiplet: Multiplet, mapping: list[int] | None) -> Multiplet:
    """A multiplet with its members translated to the caller's indices (and sorted)."""
    if mapping is None:
        return multiplet
    members = tuple(sorted(mapping[i] for i in multiplet.members))
    return Multiplet(multiplet.value, members, multiplet.strategy, multiplet.exact)


def _check_index_map(index_map: Sequence[int] | None, n: int) -> list[int] | None:
    """Validate the column → caller index map: one distinct integer per neuron."""
    if index_map is None:
        return None
    values = list(index_map.tolist() if isinstance(index_map, (Tensor, np.ndarray)) else index_map)
    if len(values) != n:
        raise ValueError(f"index_map has {len(values)} entries but the covariance has {n} neurons")
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in values):
        raise ValueError("index_map must hold integers (the caller's neuron indices)")
    if len(set(values)) != n:
        raise ValueError("index_map repeats an index: each column must map to a distinct neuron")
    return [int(v) for v in values]
