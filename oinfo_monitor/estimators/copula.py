"""The Gaussian-copula transform: each column's ranks mapped to standard-normal quantiles.

Works on float64 tensors on the caller's device; the tie policy is a named option because after a
ReLU about half of all activations are exact zeros and their ranks decide the estimate.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from oinfo_monitor.estimators.threads import one_cpu_thread
from oinfo_monitor.estimators.validation import check_samples

TiePolicy = Literal["random", "stable", "average"]
TIE_POLICIES: tuple[str, ...] = ("random", "stable", "average")


def copnorm(x: Any, *, ties: TiePolicy = "random", seed: int = 0) -> Tensor:
    """Gaussian-copula transform of each column: ranks r -> standard-normal quantile of (r+1)/(T+1).

    The result is float64 on the input's device. Tied values need a policy, because after a ReLU
    about half of all activations are exact zeros and their ranks decide the estimate:

    - ``"random"`` (default): ties broken by a random permutation drawn independently per column
      from a generator seeded with `seed`; equivalent to infinitesimal jitter, so it creates no
      dependence between columns, and deterministic for a given seed.
    - ``"stable"``: ties broken by sample order (a stable sort). This is the convention of HOI and
      is kept for comparison; it makes the tied samples of different columns rank alike and so
      manufactures redundancy.
    - ``"average"``: tied values share their mid-rank, so they map to one quantile.

    On data without ties all three policies give identical results. On the CPU the transform runs
    on one thread (see `copnorm_checked`).

    Examples:
        >>> [round(v, 3) for v in copnorm(torch.tensor([[0.5], [2.0], [-1.0]]))[:, 0].tolist()]
        [0.0, 0.674, -0.674]
    """
    with one_cpu_thread(x.device if isinstance(x, Tensor) else None):
        return copnorm_checked(check_samples(x), ties, seed)


def copnorm_checked(x: Tensor, ties: str, seed: int) -> Tensor:
    """Copula transform of an already validated float64 matrix (see `copnorm`), for callers that
    have run `validation.check_samples` themselves.

    Works on the transpose, one contiguous row per column of `x`, so that sorts and gathers run
    along contiguous memory. Every sort is unstable (several times faster than a stable one); ties
    are ordered by sorting an int64 key whose high bits order the values and whose 31 low bits break
    ties: random bits for "random", the sample index for "stable". Float32-valued data (activations)
    need one such sort. Other data are sorted by value first, and only the columns holding ties are
    sorted again, by (tie-run index, low bits); "average" needs no second sort. Integer ranks map
    through a table of T quantiles instead of one normal quantile per entry. On the CPU it runs on
    one thread (`threads.one_cpu_thread`), which keeps its speed when other work holds a core.
    """
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be one of {TIE_POLICIES}, got {ties!r}")
    if x.shape[0] >= 1 << 31:
        raise ValueError(f"the copula transform takes fewer than 2**31 samples, got {x.shape[0]}")
    with one_cpu_thread(x.device):
        return _copnorm_rows(x, ties, seed).T.contiguous()


def _copnorm_rows(x: Tensor, ties: str, seed: int) -> Tensor:
    """The copula transform of each column of `x`, as a row of a [variables, samples] result
    (see `copnorm_checked`). Float32-valued data build their sort keys in `x`'s own layout, where
    the tie bits are drawn, and transpose the keys once."""
    samples = x.shape[0]
    rows = x.T
    single = _as_float32(x) if ties != "average" else None
    if single is not None:
        # Built in place, each large temporary released as soon as it is used: on a wide layer
        # with a large probe these [samples, neurons] int64 arrays set the peak memory.
        index = torch.arange(samples, device=x.device)[:, None].expand(x.shape)
        keys = _float32_order_bits(single)
        del single
        keys <<= 31
        keys |= _tie_bits(index.T, ties, seed).T
        keys = keys.T.contiguous()
        order = _argsort_rows(keys)
        del keys
    else:
        rows = rows.contiguous()
        order = _argsort_rows(rows)
        values = torch.gather(rows, 1, order)
        starts = torch.ones_like(values, dtype=torch.bool)
        starts[:, 1:] = values[:, 1:] != values[:, :-1]
        tied = torch.nonzero(~starts.all(1)).flatten()
        if tied.numel() and ties == "average":
            ranks = _mid_ranks(order, starts)
            return torch.special.ndtri((ranks + 1.0) / (samples + 1.0))
        if tied.numel():
            index = order[tied]
            keys = (starts[tied].to(torch.int64).cumsum(1) << 31) | _tie_bits(index, ties, seed)
            order[tied] = torch.gather(index, 1, _argsort_rows(keys))
    steps = torch.arange(1, samples + 1, dtype=torch.float64, device=rows.device)
    quantiles = torch.special.ndtri(steps / (samples + 1.0)).expand(rows.shape)
    result = torch.empty(rows.shape, dtype=torch.float64, device=rows.device)
    return result.scatter_(1, order, quantiles)


def _as_float32(x: Tensor) -> Tensor | None:
    """Float64 `x` as float32 if every entry is a float32 value (as activations are), else None."""
    single = x.to(torch.float32)
    return single if torch.equal(single.to(torch.float64), x) else None


def _float32_order_bits(x: Tensor) -> Tensor:
    """Int64 images of float32 entries that sort as the values do (negatives' magnitude bits flipped).

    Adding +0.0 turns -0.0 into +0.0 first, so that the two zeros, equal as values, tie. The
    arithmetic shift makes the flip mask all ones for a negative entry and zero otherwise.
    """
    bits = (x + 0.0).view(torch.int32)
    bits ^= (bits >> 31) & 0x7FFFFFFF
    return bits.to(torch.int64)


def _tie_bits(index: Tensor, ties: str, seed: int) -> Tensor:
    """The 31 low key bits that order tied entries of rows `index`: the sample index itself, or
    seeded random bits, drawn in the [samples, columns] order of the caller's matrix, so that a
    seed's tie-breaks do not depend on the transposed layout used inside."""
    if ties == "stable":
        return index
    generator = torch.Generator(device=index.device).manual_seed(seed)
    shape = (index.shape[1], index.shape[0])
    return torch.randint(0, 1 << 31, shape, generator=generator, device=index.device).T


def _mid_ranks(order: Tensor, starts: Tensor) -> Tensor:
    """Zero-based ranks along each row, a run of tied values sharing its mid-rank, from a sort and
    its run starts."""
    samples = order.shape[1]
    positions = torch.arange(samples, device=order.device, dtype=torch.float64).expand(order.shape)
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, positions, 0.0).cummax(1).values
    last = torch.where(ends, positions, float(samples)).flip(1).cummin(1).values.flip(1)
    ranks = torch.empty(order.shape, dtype=torch.float64, device=order.device)
    return ranks.scatter_(1, order, (first + last) / 2.0)


def _argsort_rows(x: Tensor) -> Tensor:
    """Unstable argsort of every row; on the CPU through numpy, whose row sorts are faster."""
    if x.device.type != "cpu":
        return torch.argsort(x, dim=1)
    return torch.from_numpy(np.argsort(x.numpy(), axis=1).astype(np.int64, copy=False))
