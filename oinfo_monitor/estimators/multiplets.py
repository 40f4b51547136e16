"""Multiplets (groups of variable indices): parsing, validation, enumeration and chunking."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from oinfo_monitor.estimators.validation import as_tensor

MultipletsLike = Any
"""A `[M, k]` integer tensor/array, a sequence of index tuples (sizes may differ), or None."""


def parse_multiplets(
    multiplets: MultipletsLike, n_variables: int, device: torch.device | None = None
) -> list[tuple[Tensor, Tensor]]:
    """Validate multiplets and group them by size as `(positions, members[M_k, k])` pairs.

    Grouping lets every size be scored as one batch while results are scattered back in the
    caller's order; `None` means one multiplet of all variables.
    """
    if multiplets is None:
        members = torch.arange(n_variables, device=device)[None, :]
        return [(torch.zeros(1, dtype=torch.long, device=device), members)]
    if isinstance(multiplets, (Tensor, np.ndarray)):
        groups = [_as_index_matrix(multiplets, device)]
        positions = [torch.arange(groups[0].shape[0], device=device)]
    else:
        rows = list(multiplets)
        if not rows:
            raise ValueError("multiplets is empty: pass at least one group of variable indices")
        by_size: dict[int, list[int]] = {}
        for position, row in enumerate(rows):
            by_size.setdefault(len(_as_row(row, position)), []).append(position)
        groups, positions = [], []
        for size_positions in by_size.values():
            matrix = [list(_as_row(rows[p], p)) for p in size_positions]
            groups.append(torch.tensor(matrix, dtype=torch.long, device=device))
            positions.append(torch.tensor(size_positions, dtype=torch.long, device=device))
    for members in groups:
        _check_members(members, n_variables)
    return list(zip(positions, groups, strict=True))


def _as_row(row: Any, position: int) -> Sequence[int]:
    """Return one multiplet of a list as a sequence of ints, or say which entry is malformed."""
    values = row.tolist() if isinstance(row, (Tensor, np.ndarray)) else row
    if isinstance(values, (int, np.integer)) or not isinstance(values, Sequence):
        raise TypeError(f"multiplet {position} must be a sequence of indices, got {row!r}")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"multiplet {position} has a non-integer index {value!r}")
    return [int(v) for v in values]


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
    out = (members < 0) | (members >= n_variables)
    if bool(out.any()):
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
    """
    total = math.comb(n, k)
    if total >= 1 << 62:
        raise ValueError(f"C({n}, {k}) = {total:.3g} multiplets: too many to enumerate")
    stop = total if stop is None else min(stop, total)
    if k < 1 or n < k or not 0 <= start <= stop:
        raise ValueError(f"no {k}-subsets of {n} variables in rank range [{start}, {stop})")
    ranks = torch.arange(start, stop, dtype=torch.long, device=device)
    members = torch.empty(k, stop - start, dtype=torch.long, device=device)
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
