"""The strategies' options and the multiplet sizes, validated up front, before any work.

Each strategy has one frozen dataclass of options that checks (and normalises) itself in
`__post_init__`; `strategy_options` builds the right one from a strategy name and a dict of
options, rejecting unknown names; `parse_sizes` reads the `sizes` argument. `check_search` runs
all of these checks at once, for callers that search later.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

STRATEGIES: tuple[str, ...] = ("auto", "exhaustive", "greedy", "clusters", "anneal")
"""The search strategies, ``"auto"`` (the default) first."""


def int_at_least(name: str, value: Any, low: int) -> int:
    """`value` as an int, raising unless it is an integer ≥ `low` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _optional_int(name: str, value: Any, low: int) -> int | None:
    """None, or `value` as an int checked by `int_at_least`."""
    return None if value is None else int_at_least(name, value, low)


def _positive_float(name: str, value: Any) -> float:
    """`value` as a float, raising unless it is a finite real number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _non_negative_float(name: str, value: Any) -> float:
    """`value` as a float, raising unless it is a finite real number ≥ 0."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and value == 0:
        return 0.0
    return _positive_float(name, value)


def _temperature(name: str, value: Any) -> tuple[float, float]:
    """`value` as a (start, end) pair of positive floats, raising unless start ≥ end."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a (start, end) pair of positive numbers, got {value!r}")
    start, end = (_positive_float(name, v) for v in value)
    if end > start:
        raise ValueError(f"{name} must cool: start {start} must be >= end {end}")
    return start, end


def _check(options: object, name: str, check: Callable[..., Any], *args: Any) -> None:
    """Replace option `name` of a frozen options object by `check(name, value, *args)`, its checked,
    normalised value (called from the object's `__post_init__`)."""
    object.__setattr__(options, name, check(name, getattr(options, name), *args))


@dataclass(frozen=True)
class ExhaustiveOptions:
    """Options of ``"exhaustive"``: `max_size`, the largest default size (None: see `sizes`)."""

    max_size: int | None = None

    def __post_init__(self) -> None:
        """Check that `max_size` is None or an integer ≥ 3."""
        _check(self, "max_size", _optional_int, 3)


@dataclass(frozen=True)
class GreedyOptions:
    """Options of ``"greedy"``: beam width, seed size, largest size and plateau tolerance.

    `start_size` None picks the largest size ≤ 6 whose exhaustive search takes about 0.25 s (or
    a pair seed when even all triplets would take longer); `plateau_tol` is relative to
    max(1 bit, |Ω|).

    Examples:
        >>> GreedyOptions(beam=2).beam
        2
        >>> GreedyOptions(beam=0)
        Traceback (most recent call last):
        ...
        ValueError: beam must be an integer >= 1, got 0
    """

    beam: int = 1
    start_size: int | None = None
    max_size: int | None = None
    plateau_tol: float = 1e-9

    def __post_init__(self) -> None:
        """Check `beam` ≥ 1, `start_size` and `max_size` None or ≥ 3, `plateau_tol` ≥ 0; first bad one raises."""
        _check(self, "beam", int_at_least, 1)
        _check(self, "start_size", _optional_int, 3)
        _check(self, "max_size", _optional_int, 3)
        _check(self, "plateau_tol", _non_negative_float)


@dataclass(frozen=True)
class ClustersOptions:
    """Options of ``"clusters"``: the number of Ward `bins` and the fewest bins of a union."""

    bins: int = 10
    min_bins: int = 2

    def __post_init__(self) -> None:
        """Check `bins` ≥ 2 and 1 ≤ `min_bins` ≤ `bins`; the first bad one raises."""
        _check(self, "bins", int_at_least, 2)
        _check(self, "min_bins", int_at_least, 1)
        if self.min_bins > self.bins:
            raise ValueError(f"min_bins ({self.min_bins}) must not exceed bins ({self.bins})")


@dataclass(frozen=True)
class AnnealOptions:
    """Options of ``"anneal"``: steps and chains per direction and size, largest size, cooling.

    `temperature` is (start, end), in units of the spread of the candidates' Ω.
    """

    steps: int = 50
    chains: int = 8
    max_size: int | None = None
    temperature: tuple[float, float] = (1.0, 0.01)

    def __post_init__(self) -> None:
        """Check `steps`, `chains` ≥ 1, `max_size` None or ≥ 3, a cooling `temperature`; first bad one raises."""
        _check(self, "steps", int_at_least, 1)
        _check(self, "chains", int_at_least, 1)
        _check(self, "max_size", _optional_int, 3)
        _check(self, "temperature", _temperature)


@dataclass(frozen=True)
class AutoOptions:
    """Options of ``"auto"``: the `time_budget` in seconds it plans for, and `max_size`."""

    time_budget: float = 1.0
    max_size: int | None = None

    def __post_init__(self) -> None:
        """Check `time_budget` > 0 and `max_size` None or ≥ 3; the first bad one raises."""
        _check(self, "time_budget", _positive_float)
        _check(self, "max_size", _optional_int, 3)


StrategyOptions = ExhaustiveOptions | GreedyOptions | ClustersOptions | AnnealOptions | AutoOptions
"""The validated options of any one strategy."""

OPTIONS: dict[str, type[StrategyOptions]] = {
    "auto": AutoOptions,
    "exhaustive": ExhaustiveOptions,
    "greedy": GreedyOptions,
    "clusters": ClustersOptions,
    "anneal": AnnealOptions,
}
"""The options class of each strategy."""


def strategy_options(strategy: Any, options: Mapping[str, Any]) -> StrategyOptions:
    """The validated options of `strategy` from a dict of them, defaults filled in.

    Examples:
        >>> strategy_options("clusters", {"bins": 4})
        ClustersOptions(bins=4, min_bins=2)
    """
    if strategy not in OPTIONS:
        valid = ", ".join(repr(s) for s in STRATEGIES)
        raise ValueError(f"strategy must be one of {valid}; got {strategy!r}")
    cls = OPTIONS[strategy]
    names = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for strategy {strategy!r}; "
            f"valid options are: {', '.join(names)}"
        )
    return cls(**options)


def parse_sizes(sizes: Any) -> list[int] | None:
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
    strategy_options(strategy, options)
    return parse_sizes(sizes)
