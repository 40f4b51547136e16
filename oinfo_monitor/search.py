"""Search for the most synergistic (min Ω) and most redundant (max Ω) multiplets of each size.

Every strategy scores multiplets from one `CopulaCovariance`, so the samples are read once:

- ``"exhaustive"``: all C(N, k) multiplets of each size, streamed in chunks with a running top-m
  per size, so memory is bounded whatever the count; the only strategy whose results are exact.
- ``"greedy"``: exhaustive up to a start size, then each of the `beam` best multiplets grows by
  the neuron that lowers (synergy) or raises (redundancy) Ω most (the 2022 paper's procedure for
  ``beam=1``). Every candidate of one multiplet is scored at once from a single k×k inverse (see
  `_Scorer.grow`), so one growth step costs O(k² N), not one determinant per candidate.
- ``"clusters"``: the 2024 grokking paper's procedure: Ward clustering of the neurons into bins
  (of their copula-transformed, standardised profiles, computed from the covariance alone), then
  every union of `min_bins`..`bins` bins scored over its member neurons, by Schur-complement
  updates along the subset tree of unions.
- ``"anneal"``: for wide layers; per size, parallel chains start from greedily grown multiplets
  and make heat-bath swap moves under a cooling temperature, separately minimising and
  maximising Ω.
- ``"auto"``: exhaustive when all requested multiplets fit `time_budget` (by a rough cost model),
  else greedy up to 1,024 neurons, else anneal; `reason` says what it chose and why.

Options (keyword-only, checked before any work; unknown names are rejected):

- exhaustive: ``max_size``.
- greedy: ``beam=1``; ``start_size`` (default: the largest size ≤ 6 whose exhaustive search
  takes about 0.25 s; when even all triplets would take longer, seed triplets are grown from the
  most correlated pairs); ``max_size``; ``plateau_tol=1e-9``, relative to max(1 bit, |Ω|): a
  neuron independent in the covariance (after the known shift the bias correction adds) is a
  plateau; sampled data is never exactly independent, so pass e.g. 1e-2 to flag practical ones.
- clusters: ``bins=10``, ``min_bins=2``; `sizes`, if given, filters the union sizes.
- anneal: ``steps=50`` and ``chains=8`` (per direction and size), ``max_size``,
  ``temperature=(1.0, 0.01)`` (start, end), in units of the spread of the candidates' Ω.
- auto: ``time_budget=1.0`` seconds, ``max_size``.

Results are keyed by multiplet size k, the number of neurons (a target is not counted). Ω of a
pair is always 0, so sizes start at 3. Default sizes: exhaustive 3..K with K ≤ min(N, 20) the
largest size whose C(N, k) ≤ 10⁶ (at least 3); greedy 3..min(N, 20); anneal 3..min(N, 10);
clusters every union size; never more than the sample count can estimate.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from torch import Tensor

from oinfo_monitor.estimators.copula import TiePolicy
from oinfo_monitor.estimators.entropy import SAMPLES_PER_VARIABLE, entropy_bits
from oinfo_monitor.estimators.logdets import one_cpu_thread
from oinfo_monitor.estimators.multiplets import iter_combinations
from oinfo_monitor.estimators.state import CopulaCovariance, EntropyTerms, copula_covariance
from oinfo_monitor.estimators.validation import TargetKind

STRATEGIES: tuple[str, ...] = ("auto", "exhaustive", "greedy", "clusters", "anneal")
DIRECTIONS: tuple[str, ...] = ("synergy", "redundancy")

# Sign turning each direction into a minimisation: synergy minimises Ω, redundancy maximises it.
_SIGNS = {"synergy": 1.0, "redundancy": -1.0}
# Rows per chunk of an exhaustive enumeration.
_CHUNK_ROWS = 1 << 16
# Rows of the squared correlation matrix per block when ranking pairs.
_PAIR_ROWS = 256
# Working elements (parents × fixed set × candidates) per chunk of a growth step.
_GROW_ELEMENTS = 1 << 22
# A candidate whose residual variance given the set is below this fraction of its variance is
# linearly dependent on the set (or already in it) and is never chosen.
_DEPENDENT = 1e-10
# Default largest sizes of greedy and anneal, and the per-size count an exhaustive default allows.
_GREEDY_MAX = 20
_ANNEAL_MAX = 10
_EXHAUSTIVE_PER_SIZE = 1_000_000
# Rough seconds to score one multiplet of k neurons exhaustively: _COST_BASE + _COST_SQUARE·k²,
# doubled above 16 neurons where blocks go to batched LAPACK (one core of the 2-core development
# machine, measured while other jobs ran). `auto` and greedy's seed plan with it.
_COST_BASE = 2e-7
_COST_SQUARE = 3e-8
_UNROLLED_SIZES = 16
# Time greedy's exhaustive seed may take by default, and the largest seed size.
_SEED_SECONDS = 0.25
_SEED_MAX_SIZE = 6
# Triplets grown from the most correlated pairs when even all triplets are too many.
_PAIR_SEED_TRIPLETS = 500_000
# Above this width `auto` anneals: greedy's pair seed would then cover a small fraction of pairs.
_WIDE_LAYER = 1024


@dataclass(frozen=True)
class Multiplet:
    """One multiplet found by a search: its Ω in bits, members, and how it was found.

    `members` are sorted and in the caller's indices; `exact` is True only when the multiplet is
    the optimum of an exhaustive search over all multiplets of its size. Unpacks as
    ``value, members = multiplet``.
    """

    value: float
    members: tuple[int, ...]
    strategy: str
    exact: bool

    def __iter__(self) -> Iterator[Any]:
        """Yield `value` then `members`, so a multiplet unpacks like a pair."""
        yield self.value
        yield self.members


@dataclass(frozen=True)
class SearchResult:
    """Most synergistic and most redundant multiplet per size, with the provenance of the search.

    `synergy[k]` / `redundancy[k]` hold the min-Ω / max-Ω multiplet of k neurons found; `strategy`
    is the strategy run (``"auto"`` resolved) and `reason` says why and with which parameters.
    `plateau` lists, per direction, the sizes at which greedy growth left Ω unchanged (within
    tolerance), which happens when the best neuron to add is independent of the multiplet.
    `bins` holds the neurons of each cluster for the ``"clusters"`` strategy (else empty).
    """

    synergy: dict[int, Multiplet]
    redundancy: dict[int, Multiplet]
    strategy: str
    reason: str
    n_variables: int
    n_samples: int
    target: str
    ties: str
    bias_correct: bool
    units: str = "bits"
    seconds: float = 0.0
    evaluated: int = 0
    plateau: dict[str, list[int]] = field(default_factory=dict)
    bins: tuple[tuple[int, ...], ...] = ()

    def most_synergistic(self) -> Multiplet:
        """The multiplet with the lowest Ω over all sizes (on ties, the smaller size)."""
        return _extreme(self.synergy, "synergy")

    def most_redundant(self) -> Multiplet:
        """The multiplet with the highest Ω over all sizes (on ties, the smaller size)."""
        return _extreme(self.redundancy, "redundancy")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict from which `from_dict` rebuilds an equal result."""
        return {
            "synergy": {k: _multiplet_dict(m) for k, m in self.synergy.items()},
            "redundancy": {k: _multiplet_dict(m) for k, m in self.redundancy.items()},
            "strategy": self.strategy,
            "reason": self.reason,
            "n_variables": self.n_variables,
            "n_samples": self.n_samples,
            "target": self.target,
            "ties": self.ties,
            "bias_correct": self.bias_correct,
            "units": self.units,
            "seconds": self.seconds,
            "evaluated": self.evaluated,
            "plateau": {name: list(sizes) for name, sizes in self.plateau.items()},
            "bins": [list(members) for members in self.bins],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchResult:
        """Rebuild a result from `to_dict` output, also after a JSON round trip (str size keys)."""
        return cls(
            synergy=_multiplets_from(d["synergy"]),
            redundancy=_multiplets_from(d["redundancy"]),
            strategy=d["strategy"],
            reason=d["reason"],
            n_variables=int(d["n_variables"]),
            n_samples=int(d["n_samples"]),
            target=d["target"],
            ties=d["ties"],
            bias_correct=bool(d["bias_correct"]),
            units=d.get("units", "bits"),
            seconds=float(d.get("seconds", 0.0)),
            evaluated=int(d.get("evaluated", 0)),
            plateau={name: [int(k) for k in sizes] for name, sizes in d.get("plateau", {}).items()},
            bins=tuple(tuple(int(i) for i in members) for members in d.get("bins", ())),
        )

    def to_json(self) -> str:
        """The result as a JSON string (size keys become strings; `from_json` restores them)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, s: str) -> SearchResult:
        """Rebuild a result from `to_json` output."""
        return cls.from_dict(json.loads(s))


def _extreme(found: dict[int, Multiplet], direction: str) -> Multiplet:
    """The best multiplet of one direction over all sizes, smaller size first on ties."""
    if not found:
        raise ValueError(f"this result holds no {direction} multiplets (no size was searched)")
    sign = _SIGNS[direction]
    return min((found[k] for k in sorted(found)), key=lambda m: sign * m.value)


def _multiplet_dict(m: Multiplet) -> dict[str, Any]:
    """One multiplet as a JSON-serialisable dict."""
    return {"value": m.value, "members": list(m.members), "strategy": m.strategy, "exact": m.exact}


def _multiplets_from(d: dict[Any, dict[str, Any]]) -> dict[int, Multiplet]:
    """Size-keyed multiplets from their dict form, turning JSON's string keys back into ints."""
    return {
        int(k): Multiplet(
            value=float(m["value"]),
            members=tuple(int(i) for i in m["members"]),
            strategy=m["strategy"],
            exact=bool(m["exact"]),
        )
        for k, m in d.items()
    }


# ----------------------------------------------------------------------------------------------
# Options: validated up front, per strategy.

_Check = Callable[[str, Any], Any]


def _int_at_least(low: int) -> _Check:
    """A check accepting an integer ≥ `low` (bools rejected) and returning it as int."""

    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        return int(value)

    return check


def _optional(check: _Check) -> _Check:
    """A check that lets None through and applies `check` to anything else."""

    def optional(name: str, value: Any) -> Any:
        return None if value is None else check(name, value)

    return optional


def _positive_float(name: str, value: Any) -> float:
    """Accept a finite real number > 0, returned as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _non_negative_float(name: str, value: Any) -> float:
    """Accept a finite real number ≥ 0, returned as float."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and value == 0:
        return 0.0
    return _positive_float(name, value)


def _temperature(name: str, value: Any) -> tuple[float, float]:
    """Accept a (start, end) pair of positive numbers with start ≥ end."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a (start, end) pair of positive numbers, got {value!r}")
    start, end = (_positive_float(name, v) for v in value)
    if end > start:
        raise ValueError(f"{name} must cool: start {start} must be >= end {end}")
    return start, end


_MAX_SIZE = _optional(_int_at_least(3))
_OPTIONS: dict[str, dict[str, tuple[Any, _Check]]] = {
    "auto": {"time_budget": (1.0, _positive_float), "max_size": (None, _MAX_SIZE)},
    "exhaustive": {"max_size": (None, _MAX_SIZE)},
    "greedy": {
        "beam": (1, _int_at_least(1)),
        "start_size": (None, _optional(_int_at_least(3))),
        "max_size": (None, _MAX_SIZE),
        "plateau_tol": (1e-9, _non_negative_float),
    },
    "clusters": {"bins": (10, _int_at_least(2)), "min_bins": (2, _int_at_least(1))},
    "anneal": {
        "steps": (50, _int_at_least(1)),
        "chains": (8, _int_at_least(1)),
        "max_size": (None, _MAX_SIZE),
        "temperature": ((1.0, 0.01), _temperature),
    },
}


def _resolve_options(strategy: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Check the strategy name and its options; return every option of it with defaults filled."""
    if strategy not in _OPTIONS:
        valid = ", ".join(repr(s) for s in STRATEGIES)
        raise ValueError(f"strategy must be one of {valid}; got {strategy!r}")
    spec = _OPTIONS[strategy]
    unknown = sorted(set(options) - set(spec))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for strategy {strategy!r}; "
            f"valid options are: {', '.join(sorted(spec))}"
        )
    resolved = {
        name: check(name, options.get(name, default)) for name, (default, check) in spec.items()
    }
    if strategy == "clusters" and resolved["min_bins"] > resolved["bins"]:
        raise ValueError(
            f"min_bins ({resolved['min_bins']}) must not exceed bins ({resolved['bins']})"
        )
    return resolved


def check_search(strategy: Any, sizes: Any, options: dict[str, Any]) -> list[int] | None:
    """Validate a search's strategy, sizes and strategy options up front; return the parsed sizes.

    The same checks `search` and `search_covariance` run before any work, offered so that callers
    who search later (the monitor, at every evaluation) can reject bad input at construction.

    Examples:
        >>> check_search("greedy", 5, {"beam": 2})
        [3, 4, 5]
        >>> check_search("greedy", None, {"bins": 3})
        Traceback (most recent call last):
        ...
        ValueError: unknown option(s) 'bins' for strategy 'greedy'; valid options are: beam, max_size, plateau_tol, start_size
    """
    _resolve_options(strategy, options)
    return _parse_sizes(sizes)


def _parse_sizes(sizes: Any) -> list[int] | None:
    """Validate `sizes` (int K meaning 3..K, or an iterable of sizes ≥ 3) into a sorted list."""
    if sizes is None:
        return None
    if isinstance(sizes, (int, np.integer)) and not isinstance(sizes, bool):
        _check_size(int(sizes), "sizes")
        return list(range(3, int(sizes) + 1))
    if not isinstance(sizes, Iterable) or isinstance(sizes, (str, bytes)):
        raise ValueError(
            f"sizes must be an int K (sizes 3..K) or an iterable of ints, got {sizes!r}"
        )
    parsed = []
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise ValueError(f"sizes must hold integers, got {size!r}")
        _check_size(int(size), "every size")
        parsed.append(int(size))
    if not parsed:
        raise ValueError("sizes is empty: pass at least one multiplet size >= 3")
    return sorted(set(parsed))


def _check_size(size: int, what: str) -> None:
    """Raise if a multiplet size is below 3, explaining why pairs are excluded."""
    if size == 2:
        raise ValueError(
            f"{what} must be >= 3: the O-information of a pair is always 0, so size 2 carries "
            "no synergy or redundancy"
        )
    if size < 3:
        raise ValueError(f"{what} must be >= 3 (multiplets of at least 3 neurons), got {size}")


def _resolve_sizes(
    sizes: list[int] | None, max_size: int | None, scorer: _Scorer, default_max: int
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


# ----------------------------------------------------------------------------------------------
# Scoring: direct (one block per multiplet) and incremental (every one-neuron extension at once).


_LogDets = tuple[Tensor, Tensor]
"""Joint log-determinants and summed leave-one-out log-determinants of a batch of blocks."""


@dataclass(frozen=True)
class _Scorer:
    """Ω of multiplets from one copula covariance, scored directly or by one-neuron growth."""

    stats: CopulaCovariance
    limit: int | None = None

    @property
    def n(self) -> int:
        """Number of neurons (candidates)."""
        return self.stats.n_variables

    @functools.cached_property
    def singles(self) -> Tensor:
        """Single-variable entropies (bits) of every column of the covariance."""
        stats = self.stats
        log_variances = torch.log(torch.diagonal(stats.cov))
        return entropy_bits(log_variances, 1, 1, stats.n_samples, stats.bias_correct)

    def score(self, members: Tensor) -> Tensor:
        """Ω (bits) of the multiplets `members` [M, k], exactly as `CopulaCovariance.oinfo`."""
        return self.stats.entropy_terms(members).combine("oinfo")

    def grow(self, parents: Tensor) -> Tensor:
        """Ω (bits) of `parents` [B, k] plus each neuron v, as [B, N]; NaN where v is dependent.

        With the fixed set F (the parent, plus the continuous target), P = Σ_F⁻¹ and w = P Σ_{F,v}:
        the residual variance is d_v = Σ_vv − Σ_{vF} w, log det(F∪v) = log det F + log d_v and
        (Σ_{F∪v}⁻¹)_jj = P_jj + w_j²/d_v for j ∈ F, 1/d_v for v. So every candidate's joint and
        leave-one-out entropies come from one inverse and a matrix product, in O(k² N).
        """
        rows = max(1, _GROW_ELEMENTS // ((parents.shape[1] + 1) * self.n))
        return torch.cat([self._grow(parents[i : i + rows]) for i in range(0, len(parents), rows)])

    def terms(
        self, size: int, single_sum: Tensor, logdets: _LogDets, within: _LogDets | None
    ) -> EntropyTerms:
        """Entropy terms (bits) of multiplets of `size` neurons from raw log-determinants.

        `logdets` are the joint and summed leave-one-out log-dets of the blocks of `cov` (target
        column included when continuous); for a discrete target `within` holds those of the
        within-class covariance, combined as in `CopulaCovariance.entropy_terms`.
        """
        stats, correct = self.stats, self.stats.bias_correct
        dims = size + (stats.target == "continuous")
        joint = entropy_bits(logdets[0], dims, 1, stats.n_samples, correct)
        if within is None:
            loo = entropy_bits(logdets[1], dims - 1, dims, stats.n_samples, correct)
            return EntropyTerms(joint, single_sum, loo, dims)
        samples = stats.n_samples - stats.n_classes + 1
        cond_joint = entropy_bits(within[0], size, 1, samples, correct)
        cond_loo = entropy_bits(within[1], size - 1, size, samples, correct)
        return EntropyTerms(cond_joint, single_sum, cond_loo + joint, size + 1)

    def with_target(self, members: Tensor) -> Tensor:
        """`members` [M, k] with the continuous target's column appended (unchanged otherwise)."""
        if self.stats.target != "continuous":
            return members
        column = torch.full((len(members), 1), self.n, dtype=members.dtype, device=members.device)
        return torch.cat([members, column], dim=1)

    def _grow(self, parents: Tensor) -> Tensor:
        """`grow` for one chunk of parents."""
        stats = self.stats
        fixed = self.with_target(parents)
        logdet, loo, valid = self._extended(stats.cov, fixed)
        within = None
        if stats.within_cov is not None:
            within_logdet, within_loo, within_valid = self._extended(stats.within_cov, parents)
            within, valid = (within_logdet, within_loo), valid & within_valid
        single_sum = self.singles[fixed].sum(1, keepdim=True) + self.singles[None, : self.n]
        terms = self.terms(parents.shape[1] + 1, single_sum, (logdet, loo), within)
        omega = terms.combine("oinfo")
        valid = valid.scatter(1, parents, False)
        return torch.where(valid, omega, torch.full_like(omega, math.nan))

    def _extended(self, cov: Tensor, fixed: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log-det and summed leave-one-out log-dets of F ∪ v for every neuron v, and validity."""
        m = fixed.shape[1]
        block = cov[fixed[:, :, None], fixed[:, None, :]]
        chol, info = torch.linalg.cholesky_ex(block)
        if bool((info != 0).any()):
            bad = fixed[int(torch.nonzero(info)[0, 0])].tolist()
            raise ValueError(f"the covariance of multiplet {bad} is singular")
        inverse = torch.cholesky_inverse(chol)
        logdet_fixed = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        rows = cov.index_select(0, fixed.reshape(-1)).view(fixed.shape[0], m, -1)
        cross = rows[:, :, : self.n]
        weights = torch.einsum("bij,bjn->bin", inverse, cross)
        variances = torch.diagonal(cov)[: self.n]
        residual = variances - cross.mul_(weights).sum(1)
        valid = residual > _DEPENDENT * variances
        residual = torch.where(valid, residual, torch.ones_like(residual))
        log_residual = torch.log(residual)
        logdet = logdet_fixed[:, None] + log_residual
        pivots = torch.diagonal(inverse, dim1=-2, dim2=-1)[:, :, None]
        # (Σ_{F∪v}⁻¹)_jj = P_jj (1 + w_j² / (P_jj d_v)), computed in place on the weights.
        factors = weights.square_().div_(pivots).div_(residual[:, None]).add_(1.0)
        loo = (m + 1) * logdet + torch.log(pivots).sum(1) + _log_product(factors) - log_residual
        return logdet, loo, valid


def _log_product(factors: Tensor) -> Tensor:
    """Σ_j log factors[:, j, :] for factors ≥ 1: one log of the product, the sum of logs on overflow."""
    total = torch.log(factors.prod(1))
    overflow = ~torch.isfinite(total)
    if bool(overflow.any()):
        total = torch.where(overflow, torch.log(factors).sum(1), total)
    return total


# ----------------------------------------------------------------------------------------------
# Beams: the best few multiplets of one size and direction.


@dataclass(frozen=True)
class _Beam:
    """The best multiplets of one size in one direction, best first."""

    values: Tensor
    members: Tensor

    def best(self, strategy: str, exact: bool) -> Multiplet:
        """The first (best) multiplet of the beam, in column indices."""
        members = tuple(int(i) for i in self.members[0].tolist())
        return Multiplet(float(self.values[0]), members, strategy, exact)


def _best_rows(energy: Tensor, keep: int) -> Tensor:
    """Positions of the `keep` lowest finite energies, lowest first, earlier position first on ties."""
    take = min(keep, int((energy < math.inf).sum()))
    chosen = torch.topk(energy, take, largest=False).indices.sort().values
    return chosen[torch.sort(energy[chosen], stable=True).indices]


def _merge(beam: _Beam | None, values: Tensor, members: Tensor, sign: float, keep: int) -> _Beam:
    """Fold a chunk of scored multiplets into a running beam of the `keep` best."""
    if beam is not None:
        values = torch.cat([beam.values, values])
        members = torch.cat([beam.members, members])
    rows = _best_rows(sign * values, keep)
    return _Beam(values[rows], members[rows])


def _exhaustive_size(scorer: _Scorer, size: int, keep: int) -> dict[str, _Beam]:
    """The `keep` best multiplets of one size in each direction, over all C(N, size) of them."""
    beams: dict[str, _Beam | None] = dict.fromkeys(DIRECTIONS)
    device = scorer.stats.cov.device
    for chunk in iter_combinations(scorer.n, size, _CHUNK_ROWS, device=device):
        values = scorer.score(chunk)
        for name in DIRECTIONS:
            beams[name] = _merge(beams[name], values, chunk, _SIGNS[name], keep)
    return {name: beam for name, beam in beams.items() if beam is not None}


def _grow_beam(scorer: _Scorer, beam: _Beam, sign: float, keep: int) -> tuple[_Beam, Tensor, int]:
    """The `keep` best distinct one-neuron extensions of a beam, their parents' Ω, and the count scored.

    A child of k+1 neurons has at most k+1 parents in the beam, so the best keep·(k+1)
    candidates always contain `keep` distinct children when that many exist.
    """
    omega = scorer.grow(beam.members)
    energy = torch.nan_to_num(sign * omega, nan=math.inf)
    rows = _best_rows(energy.reshape(-1), keep * (beam.members.shape[1] + 1))
    if len(rows) == 0:
        raise ValueError(
            f"no neuron can extend the multiplets of size {beam.members.shape[1]}: every other "
            "neuron is linearly dependent on them (duplicated or derived columns)"
        )
    parent, neuron = rows // scorer.n, rows % scorer.n
    children = torch.cat([beam.members[parent], neuron[:, None]], dim=1).sort(dim=1).values
    chosen = _first_distinct(children, keep)
    grown = _Beam(omega[parent, neuron][chosen], children[chosen])
    return grown, beam.values[parent][chosen], int(torch.isfinite(omega).sum())


def _first_distinct(rows: Tensor, keep: int) -> Tensor:
    """Positions of the first occurrence of each distinct row, in order, at most `keep` of them."""
    unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
    first = torch.full((len(unique),), len(rows), dtype=torch.long, device=rows.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(rows), device=rows.device), "amin")
    return first.sort().values[:keep]


def _distinct_beam(values: Tensor, members: Tensor, sign: float, keep: int) -> _Beam:
    """The `keep` best distinct multiplets among rows of sorted `members` with Ω `values`."""
    order = _best_rows(sign * values, len(values))
    chosen = order[_first_distinct(members[order], keep)]
    return _Beam(values[chosen], members[chosen])


def _pair_seeds(scorer: _Scorer, keep: int, cap: int) -> tuple[dict[str, _Beam], int, int]:
    """The `keep` best distinct triplets per direction grown from the most correlated pairs.

    Ω of a triplet is a function of its three pairwise correlations and vanishes when all three
    do, so strong triplets contain a strongly dependent pair. About `cap` triplets are scored;
    returns the beams, that count and the number of pairs.
    """
    pairs = _top_pairs(scorer.stats, max(keep, cap // scorer.n))
    start = _Beam(torch.zeros(len(pairs), dtype=torch.float64, device=pairs.device), pairs)
    beams, total = {}, 0
    for name in DIRECTIONS:
        beams[name], _, scored = _grow_beam(scorer, start, _SIGNS[name], keep)
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
        block = stats.cov[start : start + _PAIR_ROWS, :n].square()
        block.mul_(inverse_variance[start : start + _PAIR_ROWS, None]).mul_(inverse_variance)
        lower = columns[None, :] <= columns[start : start + _PAIR_ROWS, None]
        top = torch.topk(block.masked_fill_(lower, -1.0).reshape(-1), min(count, block.numel()))
        values.append(top.values)
        positions.append(top.indices + start * n)
    best = torch.cat(positions)[torch.topk(torch.cat(values), count).indices]
    return torch.stack([best // n, best % n], dim=1)


# ----------------------------------------------------------------------------------------------
# Strategies. Each returns an _Outcome in column indices; `search_covariance` maps them back.


@dataclass
class _Outcome:
    """What a strategy found, before mapping to the caller's indices."""

    strategy: str
    reason: str
    found: dict[str, dict[int, Multiplet]] = field(
        default_factory=lambda: {name: {} for name in DIRECTIONS}
    )
    evaluated: int = 0
    plateau: dict[str, list[int]] = field(default_factory=lambda: {name: [] for name in DIRECTIONS})
    bins: list[list[int]] = field(default_factory=list)


def _describe(sizes: list[int]) -> str:
    """Sizes as 'a..b' when contiguous, else a list."""
    if sizes == list(range(sizes[0], sizes[-1] + 1)) and len(sizes) > 1:
        return f"{sizes[0]}..{sizes[-1]}"
    return ", ".join(map(str, sizes))


def _default_exhaustive_max(n: int) -> int:
    """Largest K ≤ min(n, 20) with C(n, k) ≤ 10⁶ for every k in 3..K (at least 3)."""
    top = 3
    while top < min(n, _GREEDY_MAX) and math.comb(n, top + 1) <= _EXHAUSTIVE_PER_SIZE:
        top += 1
    return top


def _run_exhaustive(scorer: _Scorer, sizes: list[int] | None, opts: dict[str, Any]) -> _Outcome:
    """All multiplets of every size, exact optima."""
    sizes = _resolve_sizes(sizes, opts["max_size"], scorer, _default_exhaustive_max(scorer.n))
    count = sum(math.comb(scorer.n, k) for k in sizes)
    outcome = _Outcome(
        "exhaustive", f"exhaustive: all {count:,} multiplets of sizes {_describe(sizes)}"
    )
    for size in sizes:
        beams = _exhaustive_size(scorer, size, 1)
        for name in DIRECTIONS:
            outcome.found[name][size] = beams[name].best("exhaustive", True)
    outcome.evaluated = count
    return outcome


def _exhaustive_seconds(n: int, sizes: Iterable[int]) -> float:
    """Rough time (s) to score every multiplet of the given sizes among n neurons."""
    return sum(
        math.comb(n, k) * (_COST_BASE + _COST_SQUARE * k * k) * (2 if k > _UNROLLED_SIZES else 1)
        for k in sizes
    )


def _default_start(n: int, top: int, seconds: float) -> int:
    """Largest seed size s ≤ min(6, top) whose exhaustive sizes 3..s fit `seconds`; 0 if even 3 does not."""
    start = 0
    for size in range(3, min(_SEED_MAX_SIZE, top) + 1):
        if _exhaustive_seconds(n, range(3, size + 1)) > seconds:
            break
        start = size
    return start


def _run_greedy(
    scorer: _Scorer,
    sizes: list[int] | None,
    opts: dict[str, Any],
    seed_seconds: float = _SEED_SECONDS,
) -> _Outcome:
    """Exhaustive seed (or pair seed for wide layers), then beam growth one neuron at a time."""
    sizes = _resolve_sizes(sizes, opts["max_size"], scorer, _GREEDY_MAX)
    top, beam_width = sizes[-1], opts["beam"]
    start = opts["start_size"] or _default_start(scorer.n, top, seed_seconds)
    start = min(start, top)
    outcome = _Outcome("greedy", "")
    if start:
        beams, seed_text = _exhaustive_seed(scorer, sizes, start, beam_width, outcome)
    else:
        start = 3
        beams, seed_text = _pair_seed(scorer, sizes, beam_width, seed_seconds, outcome)
    for size in range(start + 1, top + 1):
        shift = _independent_shift(scorer.stats, size)
        for name in DIRECTIONS:
            beams[name], parents, scored = _grow_beam(scorer, beams[name], _SIGNS[name], beam_width)
            outcome.evaluated += scored
            if size in sizes:
                outcome.found[name][size] = beams[name].best("greedy", False)
            change = float(beams[name].values[0]) - float(parents[0]) - shift
            if abs(change) <= opts["plateau_tol"] * max(1.0, abs(float(parents[0]))):
                outcome.plateau[name].append(size)
    growth = f", then beam-{beam_width} growth to size {top}" if top > start else ""
    outcome.reason = f"greedy: {seed_text}{growth}"
    return outcome


def _independent_shift(stats: CopulaCovariance, size: int) -> float:
    """Change of Ω (bits) when a neuron independent of everything joins a multiplet of size−1.

    It is 0 for plug-in estimates; the bias correction depends on set sizes only and moves it by
    a small, known amount, computed here as the Ω of all-independent (identity) covariances.
    """
    variables = size + (stats.target == "continuous")
    eye = torch.eye(variables, dtype=torch.float64, device=stats.cov.device)
    independent = dataclasses.replace(
        stats, cov=eye, within_cov=None if stats.within_cov is None else eye, n_variables=size
    )
    members = torch.arange(size, device=eye.device)
    values = independent.oinfo([members[:-1].tolist(), members.tolist()])
    return float(values[1] - values[0])


def _exhaustive_seed(
    scorer: _Scorer, sizes: list[int], start: int, beam_width: int, outcome: _Outcome
) -> tuple[dict[str, _Beam], str]:
    """Exhaustive results for requested sizes ≤ start, and the beams at `start` to grow from."""
    beams: dict[str, _Beam] = {}
    for size in sorted({k for k in sizes if k < start} | {start}):
        beams = _exhaustive_size(scorer, size, beam_width)
        outcome.evaluated += math.comb(scorer.n, size)
        if size in sizes:
            for name in DIRECTIONS:
                outcome.found[name][size] = beams[name].best("exhaustive", True)
    return beams, f"exhaustive up to size {start} ({outcome.evaluated:,} multiplets)"


def _pair_seed(
    scorer: _Scorer, sizes: list[int], beam_width: int, seed_seconds: float, outcome: _Outcome
) -> tuple[dict[str, _Beam], str]:
    """Greedy's seed when all triplets are too many: triplets grown from the most correlated pairs."""
    affordable = int(seed_seconds / _exhaustive_seconds(3, [3]))  # one triplet's cost
    triplets = max(scorer.n * beam_width, min(_PAIR_SEED_TRIPLETS, affordable))
    beams, scored, pairs = _pair_seeds(scorer, beam_width, triplets)
    outcome.evaluated += scored
    if 3 in sizes:
        for name in DIRECTIONS:
            outcome.found[name][3] = beams[name].best("greedy", False)
    text = (
        f"all C({scorer.n}, 3) = {math.comb(scorer.n, 3):,} triplets would take about "
        f"{_exhaustive_seconds(scorer.n, [3]):.1f} s (seed budget {seed_seconds:g} s), so seed "
        f"triplets grown from the {pairs:,} most correlated pairs"
    )
    return beams, text


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


def _score_unions(scorer: _Scorer, bins: list[Tensor], wanted: _Wanted) -> dict[int, _Beam]:
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
        scored[size] = _Beam(scorer.terms(size, single_sum, raw, part).combine("oinfo"), rows)
    return scored


def _union_terms(logdets: list[Tensor], diagonals: list[Tensor], positions: list[int]) -> _LogDets:
    """Joint and summed leave-one-out log-dets of equal-sized unions: log det Σ₋ⱼ = log det Σ + log (Σ⁻¹)ⱼⱼ."""
    logdet = torch.stack([logdets[p] for p in positions])
    inverse_diagonal = torch.stack([diagonals[p] for p in positions])
    return logdet, inverse_diagonal.shape[1] * logdet + torch.log(inverse_diagonal).sum(1)


def _run_clusters(scorer: _Scorer, sizes: list[int] | None, opts: dict[str, Any]) -> _Outcome:
    """Score every union of Ward bins; results keyed by the union's number of neurons."""
    if opts["bins"] > scorer.n:
        raise ValueError(f"bins ({opts['bins']}) exceeds the number of neurons ({scorer.n})")
    bins = _ward_bins(scorer.stats, opts["bins"])
    min_bins = min(opts["min_bins"], len(bins))
    total = sum(math.comb(len(bins), count) for count in range(min_bins, len(bins) + 1))

    top = _resolve_sizes(None, scorer.n, scorer, scorer.n)[-1] if sizes is None else sizes[-1]

    def wanted(count: int, neurons: int) -> bool:
        in_sizes = neurons <= top if sizes is None else neurons in sizes
        return count >= min_bins and neurons >= 3 and in_sizes

    device = scorer.stats.cov.device
    tree_order = sorted(bins, key=len, reverse=True)  # a union grows by its smallest bin last
    columns = [torch.tensor(b, dtype=torch.long, device=device) for b in tree_order]
    scored = _score_unions(scorer, columns, wanted)
    outcome = _Outcome("clusters", "", bins=bins)
    for size, beam in scored.items():
        outcome.evaluated += len(beam.values)
        for name in DIRECTIONS:
            best = _merge(None, beam.values, beam.members, _SIGNS[name], 1)
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


def _boltzmann_pick(energy: Tensor, temperature: float, generator: torch.Generator) -> Tensor:
    """Sample one candidate per row with probability ∝ exp(−E / (T·spread)), by the Gumbel trick.

    The spread is the row's standard deviation of finite energies, so the temperature is in units
    of how much the candidates differ; infinite energies are never picked.
    """
    valid = energy < math.inf
    count = valid.sum(1, keepdim=True).clamp_min(1)
    zero = torch.zeros_like(energy)
    mean = torch.where(valid, energy, zero).sum(1, keepdim=True) / count
    spread = (torch.where(valid, energy - mean, zero).square().sum(1, keepdim=True) / count).sqrt()
    scale = spread.clamp_min(1e-300).mul_(temperature)
    logits = (energy.amin(1, keepdim=True) - energy).div_(scale)
    uniform = torch.rand(energy.shape, generator=generator, dtype=torch.float64)
    gumbel = uniform.clamp_(1e-300, 1.0 - 1e-16).log_().neg_().log_().neg_()
    return torch.argmax(logits.add_(gumbel.to(energy.device)), dim=1)


def _run_chains(
    scorer: _Scorer, state: Tensor, signs: Tensor, schedule: list[float], generator: torch.Generator
) -> tuple[Tensor, Tensor, int]:
    """Run every chain through the schedule; return each chain's best Ω, members and the count scored.

    A step removes one random member and re-adds a neuron drawn from the Boltzmann distribution over
    all candidates (a heat-bath swap: a Metropolis–Hastings move whose acceptance is always 1).
    """
    chains, size = state.shape
    best_values, best_members = scorer.score(state), state
    positions = torch.arange(size, device=state.device)
    rows = torch.arange(chains, device=state.device)
    scored = 0
    for temperature in schedule:
        drop = torch.randint(size, (chains,), generator=generator).to(state.device)
        rest = state[positions[None, :] != drop[:, None]].view(chains, size - 1)
        omega = scorer.grow(rest)
        scored += int(torch.isfinite(omega).sum())
        energy = torch.nan_to_num(signs[:, None] * omega, nan=math.inf)
        choice = _boltzmann_pick(energy, temperature, generator)
        state = torch.cat([rest, choice[:, None]], dim=1).sort(dim=1).values
        current = omega[rows, choice]
        better = signs * current < signs * best_values
        best_values = torch.where(better, current, best_values)
        best_members = torch.where(better[:, None], state, best_members)
    return best_values, best_members, scored


def _anneal_beams(
    scorer: _Scorer,
    beams: dict[str, _Beam],
    chains: int,
    schedule: list[float],
    generator: torch.Generator,
) -> tuple[dict[str, _Beam], int]:
    """Anneal `chains` chains per direction started from the beams; the best distinct states return."""
    device = scorer.stats.cov.device
    rows = torch.arange(chains, device=device)
    state = torch.cat([beams[name].members[rows % len(beams[name].values)] for name in DIRECTIONS])
    signs = torch.tensor([_SIGNS[name] for name in DIRECTIONS], dtype=torch.float64, device=device)
    values, state, scored = _run_chains(
        scorer, state, signs.repeat_interleave(chains), schedule, generator
    )
    annealed = {}
    for index, name in enumerate(DIRECTIONS):
        part = slice(index * chains, (index + 1) * chains)
        annealed[name] = _distinct_beam(values[part], state[part], _SIGNS[name], chains)
    return annealed, scored


def _run_anneal(
    scorer: _Scorer, sizes: list[int] | None, opts: dict[str, Any], seed: int
) -> _Outcome:
    """Parallel heat-bath chains per size, started from greedily grown multiplets."""
    sizes = _resolve_sizes(sizes, opts["max_size"], scorer, _ANNEAL_MAX)
    chains, steps = opts["chains"], opts["steps"]
    hot, cold = opts["temperature"]
    schedule = [hot * (cold / hot) ** (t / max(1, steps - 1)) for t in range(steps)]
    generator = torch.Generator().manual_seed(seed)
    outcome = _Outcome("anneal", "")
    beams, outcome.evaluated, pairs = _pair_seeds(scorer, chains, _PAIR_SEED_TRIPLETS)
    current = 3
    for size in sizes:
        for name in DIRECTIONS:
            for _ in range(current, size):
                beams[name], _, scored = _grow_beam(scorer, beams[name], _SIGNS[name], chains)
                outcome.evaluated += scored
        current = size
        beams, scored = _anneal_beams(scorer, beams, chains, schedule, generator)
        outcome.evaluated += scored
        for name in DIRECTIONS:
            outcome.found[name][size] = beams[name].best("anneal", False)
    outcome.reason = (
        f"anneal: per size, {chains} chains per direction start from the best distinct multiplets "
        f"grown greedily (triplets from the {pairs:,} most correlated pairs, later sizes from the "
        f"previous size's annealed states), then {steps} heat-bath swap steps each (temperature "
        f"{hot:g} -> {cold:g} x candidate spread); sizes {_describe(sizes)}, seed {seed}"
    )
    return outcome


def _run_auto(
    scorer: _Scorer, sizes: list[int] | None, opts: dict[str, Any], seed: int
) -> _Outcome:
    """Exhaustive if everything fits the time budget, else greedy, else (wide layers) anneal."""
    n, budget = scorer.n, opts["time_budget"]
    wide = n > _WIDE_LAYER
    chosen = _resolve_sizes(sizes, opts["max_size"], scorer, _ANNEAL_MAX if wide else _GREEDY_MAX)
    estimate = _exhaustive_seconds(n, chosen)
    everything = (
        f"all {sum(math.comb(n, k) for k in chosen):,} multiplets of sizes {_describe(chosen)}"
    )
    if estimate <= budget:
        outcome = _run_exhaustive(scorer, chosen, {"max_size": None})
        why = f"{everything} fit the {budget:g} s budget (about {estimate:.2g} s)"
    elif not wide:
        outcome = _run_greedy(scorer, chosen, _resolve_options("greedy", {}), budget / 2)
        why = f"{everything} would take about {estimate:.2g} s > {budget:g} s; N = {n} <= {_WIDE_LAYER}"
    else:
        outcome = _run_anneal(scorer, chosen, _resolve_options("anneal", {}), seed)
        why = f"N = {n} > {_WIDE_LAYER} neurons: a wide layer"
    outcome.reason = f"auto -> {outcome.strategy} ({why}); {outcome.reason}"
    return outcome


# ----------------------------------------------------------------------------------------------
# Entry points.


def _mapped(multiplet: Multiplet, mapping: list[int] | None) -> Multiplet:
    """A multiplet with its members translated to the caller's indices (and sorted)."""
    if mapping is None:
        return multiplet
    members = tuple(sorted(mapping[i] for i in multiplet.members))
    return Multiplet(multiplet.value, members, multiplet.strategy, multiplet.exact)


def search_covariance(
    stats: CopulaCovariance,
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
    see the module docstring); `strategy` is one of `STRATEGIES` and `options` its keyword
    options (see the module docstring). `index_map[i]` is the caller's index of column i, so that
    members come back in the caller's numbering. `size_limit` caps the multiplet size where the
    caller knows the variables' rank (e.g. a linear layer's input width): default sizes stop there
    and larger explicit sizes are refused. Deterministic for a given `seed`.
    """
    opts = _resolve_options(strategy, options)
    parsed = _parse_sizes(sizes)
    mapping = _check_index_map(index_map, stats.n_variables)
    seed = _int_at_least(0)("seed", seed)
    if stats.n_variables < 3:
        raise ValueError(f"a search needs at least 3 neurons, got {stats.n_variables}")
    scorer = _Scorer(stats, _int_at_least(3)("size_limit", size_limit) if size_limit else None)
    if parsed is not None:
        _resolve_sizes(parsed, None, scorer, 0)
    began = time.perf_counter()
    with one_cpu_thread(stats.cov.device):
        outcome = _run(scorer, strategy, parsed, opts, seed)
    seconds = time.perf_counter() - began
    bins = tuple(tuple(sorted(mapping[i] for i in b) if mapping else b) for b in outcome.bins)
    return SearchResult(
        synergy={k: _mapped(m, mapping) for k, m in outcome.found["synergy"].items()},
        redundancy={k: _mapped(m, mapping) for k, m in outcome.found["redundancy"].items()},
        strategy=outcome.strategy,
        reason=outcome.reason,
        n_variables=stats.n_variables,
        n_samples=stats.n_samples,
        target=stats.target,
        ties=stats.ties,
        bias_correct=stats.bias_correct,
        seconds=seconds,
        evaluated=outcome.evaluated,
        plateau=outcome.plateau,
        bins=bins,
    )


def _run(
    scorer: _Scorer, strategy: str, sizes: list[int] | None, opts: dict[str, Any], seed: int
) -> _Outcome:
    """Dispatch to one strategy."""
    if strategy == "exhaustive":
        return _run_exhaustive(scorer, sizes, opts)
    if strategy == "greedy":
        return _run_greedy(scorer, sizes, opts)
    if strategy == "clusters":
        return _run_clusters(scorer, sizes, opts)
    if strategy == "anneal":
        return _run_anneal(scorer, sizes, opts, seed)
    return _run_auto(scorer, sizes, opts, seed)


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
    also drives the anneal strategy); options are checked before any estimation.
    """
    _resolve_options(strategy, options)
    _parse_sizes(sizes)
    stats = copula_covariance(
        x, y=y, target_kind=target_kind, bias_correct=bias_correct, ties=ties, seed=seed
    )
    return search_covariance(stats, sizes=sizes, strategy=strategy, seed=seed, **options)
