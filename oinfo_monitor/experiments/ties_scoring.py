"""Scoring one set of activations for the tie-policy experiment: the paper's search over all unions of Ward bins."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from oinfo_monitor.estimators import TIE_POLICIES, TiePolicy, copnorm, copula_covariance
from oinfo_monitor.search import SearchResult, search_covariance

LAYER = "hidden"  # GrokkingMLP's Linear(194 -> 250); "post" reads it after its ReLU
VARIANTS = ("post/random", "post/stable", "post/average", "pre", "pre/limited")
PRE_POLICY = "random"  # the policy of the pre-activation curves (the others are only compared)
GROKKED = 0.98  # test accuracy above which the run has grokked (the paper's code)
MIN_BINS = 2  # the clusters strategy's default: unions of 2..bins bins


def bin_unions(bins: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Every union of MIN_BINS or more bins with at least 3 neurons: the multiplets the search scores."""
    unions = []
    for count in range(MIN_BINS, len(bins) + 1):
        for chosen in itertools.combinations(bins, count):
            members = tuple(sorted(itertools.chain.from_iterable(chosen)))
            if len(members) >= 3:
                unions.append(members)
    return unions


def extremes(
    result: SearchResult, unions: list[tuple[int, ...]], values: Tensor | None, limit: int | None
) -> dict[str, Any]:
    """min Ω and max Ω (bits) over the unions of at most `limit` neurons, and how many have Ω < 0."""
    keep = [k for k in result.synergy if limit is None or k <= limit]
    synergy = min((result.synergy[k] for k in keep), key=lambda m: m.value)
    redundancy = max((result.redundancy[k] for k in keep), key=lambda m: m.value)
    mask = torch.tensor([limit is None or len(u) <= limit for u in unions])
    row: dict[str, Any] = {
        "min_omega": synergy.value,
        "min_size": len(synergy.members),
        "max_omega": redundancy.value,
        "max_size": len(redundancy.members),
        "negative": None,
        "unions": int(mask.sum()),
    }
    if values is not None:
        kept = values[mask]
        # The same unions scored one by one must reproduce the search's extremes.
        for found, extreme in ((synergy.value, kept.min()), (redundancy.value, kept.max())):
            if not math.isclose(found, float(extreme), rel_tol=1e-8, abs_tol=1e-8):
                raise RuntimeError(f"union scores disagree with the search: {found} vs {extreme}")
        row["negative"] = int((kept < 0).sum())
    return row


def score(
    x: Tensor, *, ties: str, seed: int, bins: int, count_unions: bool, limit: int | None = None
) -> dict[str, Any]:
    """The paper's search on `x`: its extremes over all unions, and over unions of ≤ `limit` neurons.

    With `count_unions` every union is scored once more (`stats.oinfo`) to count those with Ω < 0.
    """
    began = time.perf_counter()
    stats = copula_covariance(x, ties=cast(TiePolicy, ties), seed=seed)
    result = search_covariance(stats, strategy="clusters", bins=bins)
    unions = bin_unions(result.bins)
    if len(unions) != result.evaluated:
        raise RuntimeError(f"{len(unions)} unions enumerated, the search scored {result.evaluated}")
    values = stats.oinfo(unions) if count_unions else None
    row = extremes(result, unions, values, None)
    if limit is not None:
        row["limited"] = extremes(result, unions, values, limit)
    row["seconds"] = time.perf_counter() - began
    return row


def repeated_entries(x: Tensor) -> int:
    """Entries equal to another entry of their column (counted once per extra copy)."""
    ordered = x.sort(dim=0).values
    return int((ordered[1:] == ordered[:-1]).sum())


def policies_coincide(x: Tensor, seed: int) -> bool:
    """Whether the three tie policies give bit-identical copula transforms of `x`."""
    first, *others = (
        copnorm(x, ties=cast(TiePolicy, policy), seed=seed) for policy in TIE_POLICIES
    )
    return all(torch.equal(first, other) for other in others)


def numpy_default_ranks(x: Tensor) -> Tensor:
    """Tie-free ranks from numpy's default argsort along the samples, as the paper's code ranked.

    ``np.argsort(np.argsort(v))`` with the default kind (an introsort, SIMD-dispatched on some
    CPUs) leaves tied values in whatever order the sort happens to produce. The ranks are distinct,
    so every tie policy of the package transforms them identically.
    """
    columns = np.ascontiguousarray(x.numpy().T)
    ranks = np.argsort(np.argsort(columns, axis=-1), axis=-1)
    return torch.from_numpy(ranks.T.astype(np.float64))
