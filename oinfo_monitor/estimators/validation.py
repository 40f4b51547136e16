"""Input checks for the math layer: turn user arrays into float64 tensors or fail with a precise message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

TargetKind = Literal["auto", "discrete", "continuous"]
"""How the caller asks for a target to be read: from its values (``"auto"``), or as given."""

TargetModel = Literal["none", "continuous", "discrete"]
"""How a resolved target joins the multiplets: not at all, as one more copula variable, or as
class labels."""


def as_tensor(data: Any, name: str) -> Tensor:
    """Convert a torch tensor or array-like to a tensor without copying when possible, rejecting non-numbers."""
    if isinstance(data, Tensor):
        tensor = data.detach()
    else:
        array = np.asarray(data)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got numpy dtype {array.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_complex() or tensor.dtype in (torch.quint8, torch.qint8, torch.qint32):
        raise TypeError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    return tensor


def check_samples(x: Any, name: str = "x") -> Tensor:
    """Return `x` as a float64 [samples, variables] tensor on its own device, after checking it is usable.

    Rejects the wrong number of dimensions, NaN/inf and constant (dead) columns, naming the column,
    because each of these would otherwise give a silently wrong or undefined O-information.
    """
    tensor = as_tensor(x, name)
    if tensor.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D [samples, variables], got shape {tuple(tensor.shape)}"
        )
    samples, variables = tensor.shape
    if samples < 2 or variables < 1:
        raise ValueError(
            f"{name} needs at least 2 samples and 1 variable, got shape {tuple(tensor.shape)}"
        )
    tensor = tensor.to(torch.float64)
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = (~finite).sum(0)
        column = int(torch.nonzero(bad)[0, 0])
        raise ValueError(
            f"{name} has {int(bad[column])} NaN/inf value(s) in column {column} "
            f"({int((bad > 0).sum())} column(s) affected); remove or fix them before estimating"
        )
    constant = (tensor == tensor[:1]).all(0)
    if bool(constant.any()):
        columns = torch.nonzero(constant)[:, 0].tolist()
        shown = ", ".join(str(c) for c in columns[:10]) + (" ..." if len(columns) > 10 else "")
        raise ValueError(
            f"{name} has {len(columns)} constant (dead) column(s): {shown}; a constant variable "
            "has no entropy: drop it before estimating"
        )
    return tensor


def check_target(
    y: Any, samples: int, kind: TargetKind
) -> tuple[Tensor, Literal["discrete", "continuous"]]:
    """Return the target as a 1-D tensor and its resolved kind (integer/bool dtype means discrete labels)."""
    tensor = as_tensor(y, "y")
    if tensor.ndim == 2 and tensor.shape[1] == 1:
        tensor = tensor[:, 0]
    if tensor.ndim != 1:
        raise ValueError(f"y must be 1-D [samples], got shape {tuple(tensor.shape)}")
    if tensor.shape[0] != samples:
        raise ValueError(f"y has {tensor.shape[0]} samples but x has {samples}")
    if kind not in ("auto", "discrete", "continuous"):
        raise ValueError(f"target kind must be 'auto', 'discrete' or 'continuous', got {kind!r}")
    resolved: Literal["discrete", "continuous"]
    if kind == "auto":
        resolved = "continuous" if tensor.is_floating_point() else "discrete"
    else:
        resolved = kind
    if resolved == "continuous":
        tensor = check_samples(tensor[:, None], name="y")[:, 0]
    elif tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise ValueError("y has NaN/inf labels")
    return tensor, resolved


@dataclass(frozen=True)
class NeuronFilter:
    """Which columns of a [samples, neurons] matrix carry a copula variable of their own.

    Attributes:
        kept: indices of the kept columns, in the matrix's own numbering (ascending).
        dead: indices of the constant columns (no entropy).
        duplicates: indices of the columns whose rank order equals, or exactly reverses, that of
            an earlier kept column: after the copula transform they are the same variable (up to
            sign), so any multiplet holding both has a singular covariance.
    """

    kept: Tensor
    dead: list[int]
    duplicates: list[int]

    def columns(self, values: Tensor) -> Tensor:
        """The kept columns of `values` (the matrix this filter was built from): `values` itself,
        uncopied, when every column is kept (a wide layer's largest array).

        Examples:
            >>> x = torch.tensor([[1.0, 5.0, 2.0], [2.0, 5.0, 1.0], [3.0, 5.0, 0.0]])
            >>> distinct_neurons(x).columns(x).tolist()  # column 1 is dead, 2 reverses 0
            [[1.0], [2.0], [3.0]]
        """
        return values if self.kept.numel() == values.shape[-1] else values[:, self.kept]

    @property
    def alive(self) -> Tensor:
        """Indices of every non-constant column, duplicates included (ascending)."""
        extra = torch.tensor(self.duplicates, dtype=torch.long, device=self.kept.device)
        return torch.sort(torch.cat([self.kept, extra])).values


def distinct_neurons(values: Tensor) -> NeuronFilter:
    """Split the columns of `values` into kept, dead (constant) and duplicated neurons.

    Dead and duplicated columns would make every covariance that holds them singular, so they are
    dropped, counted and reported, and the kept columns keep the caller's numbering. A duplicate
    is any strictly monotone function of an earlier column (an exact copy, a tied weight, a scaled
    copy, two units saturated the same way), found by comparing dense ranks, which a monotone map
    preserves (a decreasing one reverses them). Such a map also carries the set of samples at a
    column's minimum and the set at its maximum onto the other's (swapped, when decreasing), so
    only columns whose two extreme sets hash alike are ranked and compared in full: a layer
    without duplicates costs a few passes over its values and no sort.

    Examples:
        >>> x = torch.tensor([[0.0, 1.0, 2.0, 5.0], [1.0, 1.0, 4.0, 3.0], [2.0, 1.0, 0.0, 1.0]])
        >>> found = distinct_neurons(torch.cat([x, 2 * x[:, :1]], dim=1))
        >>> found.kept.tolist(), found.dead, found.duplicates
        ([0, 2], [1], [3, 4])
    """
    if values.ndim != 2:
        raise ValueError(
            f"expected a 2-D [samples, neurons] matrix, got shape {tuple(values.shape)}"
        )
    low, high = values.amin(0), values.amax(0)
    dead = low == high
    suspects = torch.nonzero(_shares_extreme_sets(values, low, high) & ~dead)[:, 0]
    duplicate = torch.zeros_like(dead)
    if suspects.numel():
        duplicate[suspects] = _rank_twins(values[:, suspects].T.contiguous())
    kept = torch.nonzero(~dead & ~duplicate)[:, 0]
    return NeuronFilter(
        kept=kept,
        dead=torch.nonzero(dead)[:, 0].tolist(),
        duplicates=torch.nonzero(duplicate)[:, 0].tolist(),
    )


def _shares_extreme_sets(values: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Which columns may be a monotone function of another: those whose unordered pair of hashes
    of the samples at the column minimum `low` and at its maximum `high` another column shares.

    Necessary for a duplicate, not sufficient: a hash collision only sends a column to the exact
    comparison of `_rank_twins`.
    """
    weights = _hash_weights(values.shape[0], values.device)[:, None]
    at_low = torch.where(values == low, weights, 0).sum(0)
    at_high = torch.where(values == high, weights, 0).sum(0)
    keys = torch.minimum(at_low, at_high) * _hash_weights(1, values.device) + torch.maximum(
        at_low, at_high
    )
    _, by_key, counts = torch.unique(keys, return_inverse=True, return_counts=True)
    return counts[by_key] > 1


def _rank_twins(rows: Tensor) -> Tensor:
    """Which rows of a matrix of non-constant rows have dense ranks equal to, or the mirror image
    of, those of an earlier row."""
    order = _argsort_each_row(rows)
    ordered = torch.gather(rows, 1, order)
    new_value = torch.ones_like(ordered, dtype=torch.long)
    new_value[:, 1:] = (ordered[:, 1:] != ordered[:, :-1]).long()
    sorted_ranks = torch.cumsum(new_value, dim=1) - 1
    ranks = torch.empty_like(sorted_ranks).scatter_(1, order, sorted_ranks)
    distinct = sorted_ranks[:, -1:] + 1  # distinct values per row
    # A decreasing map turns dense rank r into (distinct - 1 - r): flip each row to the
    # orientation whose first rank that differs from its mirror image is the smaller one.
    mirror = distinct - 1 - ranks
    first = (ranks != mirror).long().argmax(1, keepdim=True)
    flip = torch.gather(ranks, 1, first) > torch.gather(mirror, 1, first)
    group = _equal_rows(torch.where(flip, mirror, ranks)).cpu()
    rows_index = torch.arange(rows.shape[0])
    first_of_group = torch.full((int(group.max()) + 1,), rows.shape[0], dtype=torch.long)
    first_of_group = first_of_group.scatter_reduce(0, group, rows_index, reduce="amin")
    return (first_of_group[group] != rows_index).to(rows.device)


# Seed of the hashes' multipliers (fixed odd 63-bit integers, one per sample).
_HASH_SEED = 0x5EED


def _hash_weights(n: int, device: torch.device) -> Tensor:
    """`n` fixed odd int64 multipliers: a wrapping dot product with them hashes an integer vector."""
    generator = torch.Generator().manual_seed(_HASH_SEED)
    return (torch.randint(1, 1 << 62, (n,), generator=generator) * 2 + 1).to(device)


def _equal_rows(rows: Tensor) -> Tensor:
    """A group label per row of an integer matrix, equal exactly when two rows are equal.

    Rows are hashed (a wrapping int64 dot product with fixed random multipliers) and only rows
    whose hash another row shares are compared element by element, so distinct rows cost one
    pass. The labels are those of the exact comparison; only their values, not the grouping,
    depend on the hash.
    """
    hashes = (rows * _hash_weights(rows.shape[1], rows.device)).sum(1)
    _, by_hash, counts = torch.unique(hashes, return_inverse=True, return_counts=True)
    shared = torch.nonzero(counts[by_hash] > 1)[:, 0]
    group = by_hash.clone()
    if shared.numel():
        _, exact = torch.unique(rows[shared], dim=0, return_inverse=True)
        group[shared] = counts.numel() + exact  # labels past every hash label
    return group


def _argsort_each_row(rows: Tensor) -> Tensor:
    """Argsort of every row (unstable: only the sorted values are used); numpy's on the CPU."""
    if rows.device.type != "cpu" or rows.dtype == torch.bfloat16:  # numpy has no bfloat16
        return torch.argsort(rows, dim=1)
    return torch.from_numpy(np.argsort(rows.numpy(), axis=1).astype(np.int64, copy=False))
