"""Multiplets (groups of variable indices): parsing, validation, enumeration and chunking."""

from __future__ import annotations

import array
import functools
import math
import operator
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from oinfo_monitor.estimators.threads import one_cpu_thread
from oinfo_monitor.estimators.validation import as_tensor

MultipletsLike = Any
"""A `[M, k]` integer tensor/array, a sequence of index tuples (sizes may differ), or None."""


def parse_multiplets(
    multiplets: MultipletsLike, n_variables: int, device: torch.device | None = None
) -> list[tuple[Tensor, Tensor]]:
    """Validate multiplets and group them by size as `(positions, members[M_k, k])` pairs.

    Grouping lets every size be scored as one batch while results are scattered back in the
    caller's order; `None` means one multiplet of all variables. Sizes come in the order of their
    first multiplet, and positions ascend within each size. Runs on one CPU thread (`threads`).

    Examples:
        >>> [(p.tolist(), m.tolist()) for p, m in parse_multiplets([(0, 1, 2), (3, 4), (2, 4, 1)], 5)]
        [([0, 2], [[0, 1, 2], [2, 4, 1]]), ([1], [[3, 4]])]
    """
    if multiplets is None:
        members = torch.arange(n_variables, device=device)[None, :]
        return [(torch.zeros(1, dtype=torch.long, device=device), members)]
    with one_cpu_thread(device):
        groups = _index_groups(multiplets, device)
        for _, members in groups:
            _check_members(members, n_variables)
    return groups


def _index_groups(
    multiplets: MultipletsLike, device: torch.device | None
) -> list[tuple[Tensor, Tensor]]:
    """`(positions, members)` per size of an index array or a list of index rows, unchecked."""
    if isinstance(multiplets, (Tensor, np.ndarray)):
        members = _as_index_matrix(multiplets, device)
        return [(torch.arange(members.shape[0], device=device), members)]
    rows = list(multiplets)
    if not rows:
        raise ValueError("multiplets is empty: pass at least one group of variable indices")
    flat = _flat_indices(rows)
    pairs = _group_rows(rows) if flat is None else _group_flat(*flat)
    return [
        (p.to(device=device, dtype=torch.long), m.to(device=device, dtype=torch.long))
        for p, m in pairs
    ]


def _flat_indices(rows: list[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """Row lengths and all indices, row after row, of plain index rows, converted in bulk.

    Rows must be lists, tuples or 1-D arrays, and their entries integers (`_as_index` says which).
    A list of tuples costs a few C-level passes instead of a Python loop per row: `bytes` (indices
    below 256) or `array` converts every entry through `__index__`, which rejects floats and
    strings, and only the entries valued 0 or 1 are looked at for bools, which have `__index__`
    but mark masks rather than positions. None when anything else is found: `_group_rows` then
    checks row by row, names the malformed entry, or accepts what is only unusual (a 0-d tensor).
    """
    row_kinds = set(map(type, rows))
    if any(issubclass(kind, (Tensor, np.ndarray)) for kind in row_kinds):
        rows = [row.tolist() if isinstance(row, (Tensor, np.ndarray)) else row for row in rows]
        row_kinds = set(map(type, rows))
    if not all(issubclass(kind, (tuple, list)) for kind in row_kinds):
        return None
    flat: list[Any] = functools.reduce(operator.iconcat, rows, [])
    lengths, values = _small_or_long(map(len, rows)), _small_or_long(flat)
    if lengths is None or values is None:
        return None
    zeros_and_ones = np.flatnonzero((values >= 0) & (values <= 1)).tolist()
    kinds = set(map(type, map(flat.__getitem__, zeros_and_ones)))
    if not all(issubclass(k, (int, np.integer)) and not issubclass(k, bool) for k in kinds):
        return None
    return lengths, values


def _small_or_long(entries: Iterable[Any]) -> np.ndarray | None:
    """Integers as uint8 (all in [0, 256)) or int64, converted through `__index__` at C speed.

    None when an entry has no `__index__` (a float, a string, a nested row) or overflows int64.
    """
    entries = entries if isinstance(entries, list) else list(entries)
    try:
        return np.frombuffer(bytes(entries), dtype=np.uint8)
    except TypeError:
        return None
    except ValueError:
        pass
    try:
        return np.frombuffer(array.array("q", entries), dtype=np.int64)
    except (TypeError, OverflowError):
        return None


def _group_flat(lengths: np.ndarray, values: np.ndarray) -> list[tuple[Tensor, Tensor]]:
    """(positions, members [M_k, k]) per row length, from `_flat_indices`'s lengths and values.

    Rows of one size that follow each other (as a list built size by size has them) are one slice.
    """
    lengths = lengths.astype(np.int64)
    sizes, first = np.unique(lengths, return_index=True)
    starts = np.cumsum(lengths) - lengths
    pairs = []
    for size in sizes[np.argsort(first)]:
        positions = np.flatnonzero(lengths == size)
        start = starts[positions[0]]
        if positions[-1] - positions[0] + 1 == len(positions):
            members = values[start : start + size * len(positions)].reshape(-1, size)
        else:
            members = values[starts[positions, None] + np.arange(size)]
        pairs.append((torch.from_numpy(positions), torch.from_numpy(members.astype(np.int64))))
    return pairs


def _group_rows(rows: list[Any]) -> list[tuple[Tensor, Tensor]]:
    """(positions, members [M_k, k]) per row length, checking each row: `_flat_indices`'s
    fallback, which names the first malformed row or entry."""
    by_size: dict[int, list[int]] = {}
    for position, row in enumerate(rows):
        by_size.setdefault(len(_as_row(row, position)), []).append(position)
    return [
        (torch.tensor(positions), torch.tensor([_as_row(rows[p], p) for p in positions]))
        for positions in by_size.values()
    ]


def _as_row(row: Any, position: int) -> list[int]:
    """Return one multiplet of a list as a list of ints, or say which entry is malformed."""
    values = row.tolist() if isinstance(row, (Tensor, np.ndarray)) else row
    if isinstance(values, (int, np.integer)) or not isinstance(values, Sequence):
        raise TypeError(f"multiplet {position} must be a sequence of indices, got {row!r}")
    return [_as_index(value, position) for value in values]


def _as_index(value: Any, position: int) -> int:
    """An entry as an int: anything with `__index__` (ints, numpy integers, one-element integer
    arrays and tensors) except bools, which index masks rather than positions."""
    dtype = value.dtype if isinstance(value, (Tensor, np.ndarray)) else None
    if not isinstance(value, (bool, np.bool_)) and dtype not in (torch.bool, np.dtype(bool)):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise TypeError(f"multiplet {position} has a non-integer index {value!r}")


def _as_index_matrix(multiplets: Tensor | np.ndarray, device: torch.device | None) -> Tensor:
    """Return a `[M, k]` array of indices as a long tensor, rejecting other shapes and float dtypes."""
    tensor = as_tensor(multiplets, "multiplets")
    if tensor.is_floating_point() or tensor.dtype == torch.bool:
        raise TypeError(f"multiplets must be integers, got dtype {tensor.dtype}")
    if tensor.ndim != 2 or tensor.shape[0] == 0:
        raise ValueError(
            f"multiplets must be a non-empty [M, k] index array, got shape {tuple(tensor.shape)}"
        )
    return tensor.to(device=device, dtype=torch.long)


def _check_members(members: Tensor, n_variables: int) -> None:
    """Raise if any multiplet is too small, indexes out of range, or repeats a variable."""
    size = members.shape[1]
    if size < 2:
        raise ValueError(f"multiplets need at least 2 variables, got a multiplet of size {size}")
    lowest, highest = (int(v) for v in torch.aminmax(members))
    if lowest < 0 or highest >= n_variables:
        out = (members < 0) | (members >= n_variables)
        row, col = (int(v) for v in torch.nonzero(out)[0])
        raise ValueError(
            f"multiplet {members[row].tolist()} has index {int(members[row, col])} out of range "
            f"for {n_variables} variables"
        )
    repeated = _repeats(members)
    if bool(repeated.any()):
        row = int(torch.nonzero(repeated)[0, 0])
        raise ValueError(f"multiplet {members[row].tolist()} repeats a variable")


def _repeats(members: Tensor) -> Tensor:
    """Which rows repeat an index; pairwise column comparisons for small k avoid sorting [M, k].

    Rows in increasing order (as `combinations` makes them) are cleared by one comparison first.
    """
    size = members.shape[1]
    if bool((members[:, 1:] > members[:, :-1]).all()):
        return torch.zeros(members.shape[0], dtype=torch.bool, device=members.device)
    if size > 16:
        ordered = members.sort(dim=1).values
        return (ordered[:, 1:] == ordered[:, :-1]).any(1)
    repeated = torch.zeros(members.shape[0], dtype=torch.bool, device=members.device)
    for i in range(size):
        for j in range(i + 1, size):
            repeated |= members[:, i] == members[:, j]
    return repeated


def n_combinations(n: int, k: int) -> int:
    """Number of k-subsets of n variables."""
    return math.comb(n, k)


def combinations(
    n: int, k: int, start: int = 0, stop: int | None = None, device: torch.device | None = None
) -> Tensor:
    """The k-subsets of range(n) with colexicographic ranks in [start, stop), as a `[M, k]` tensor.

    Subsets are unranked directly (combinatorial number system), so any slice of a huge
    enumeration is produced without generating what comes before it. The result is the transpose
    of a `[k, M]` buffer: each member position is one contiguous vector, as the scorer reads it.
    Runs on one CPU thread (`threads`).
    """
    total = math.comb(n, k)
    if total >= 1 << 62:
        raise ValueError(f"C({n}, {k}) = {total:.3g} multiplets: too many to enumerate")
    stop = total if stop is None else min(stop, total)
    if k < 1 or n < k or not 0 <= start <= stop:
        raise ValueError(f"no {k}-subsets of {n} variables in rank range [{start}, {stop})")
    ranks = torch.arange(start, stop, dtype=torch.long, device=device)
    members = torch.empty(k, stop - start, dtype=torch.long, device=device)
    with one_cpu_thread(device):
        for position in range(k, 0, -1):
            table = torch.tensor([math.comb(v, position) for v in range(n)], device=device)
            chosen = members[position - 1]
            torch.searchsorted(table, ranks, right=True, out=chosen).sub_(1)
            ranks = ranks - table.index_select(0, chosen)
    return members.T


def iter_combinations(
    n: int, k: int, chunk_size: int, device: torch.device | None = None
) -> Iterator[Tensor]:
    """Yield all k-subsets of range(n) in chunks of at most `chunk_size` rows, memory bounded."""
    total = math.comb(n, k)
    for start in range(0, total, chunk_size):
        yield combinations(n, k, start, start + chunk_size, device=device)
