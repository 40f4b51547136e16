"""What a search returns: `Multiplet`, `SearchResult` (with its dict and JSON forms), and `Outcome`.

`Outcome` is what one strategy hands back, in column indices, before `search_covariance` maps
its members to the caller's numbering and wraps it in a `SearchResult`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DIRECTIONS: tuple[str, ...] = ("synergy", "redundancy")
"""The two search directions: most synergistic (min Ω) and most redundant (max Ω)."""

SIGNS: dict[str, float] = {"synergy": 1.0, "redundancy": -1.0}
"""Sign turning each direction into a minimisation: synergy minimises Ω, redundancy maximises it."""


@dataclass(frozen=True)
class Multiplet:
    """One multiplet found by a search: its Ω in bits, members, and how it was found.

    `members` are sorted and in the caller's indices; `exact` is True only when the multiplet is
    the optimum of an exhaustive search over all multiplets of its size. Unpacks as
    ``value, members = multiplet``.

    Examples:
        >>> value, members = Multiplet(-0.25, (0, 2, 5), "exhaustive", True)
        >>> value, members
        (-0.25, (0, 2, 5))
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
    `searched_neurons` is how many of the `n_variables` neurons the search looked at (None: all)
    and `reduced` how they were chosen (empty unless a wide layer was screened, `search.wide`).

    Examples:
        >>> found = {3: Multiplet(-0.5, (0, 1, 2), "exhaustive", True)}
        >>> result = SearchResult(found, {3: Multiplet(0.75, (1, 3, 4), "exhaustive", True)},
        ...                       "exhaustive", "exhaustive: all 10 multiplets of sizes 3",
        ...                       n_variables=5, n_samples=100, target="none", ties="random",
        ...                       bias_correct=True)
        >>> result.most_synergistic().members
        (0, 1, 2)
        >>> SearchResult.from_json(result.to_json()) == result
        True
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
    searched_neurons: int | None = None
    reduced: str = ""

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
            "searched_neurons": self.searched_neurons,
            "reduced": self.reduced,
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
            searched_neurons=d.get("searched_neurons"),
            reduced=d.get("reduced", ""),
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
    sign = SIGNS[direction]
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


@dataclass
class Outcome:
    """What a strategy found, in column indices, before `search_covariance` maps it back."""

    strategy: str
    reason: str
    found: dict[str, dict[int, Multiplet]] = field(
        default_factory=lambda: {name: {} for name in DIRECTIONS}
    )
    evaluated: int = 0
    plateau: dict[str, list[int]] = field(default_factory=lambda: {name: [] for name in DIRECTIONS})
    bins: list[list[int]] = field(default_factory=list)
