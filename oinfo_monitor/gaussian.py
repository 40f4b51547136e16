"""Gaussian-copula building blocks: rank transform, covariance, log-determinants and their bias.

Everything here works on float64 tensors on the caller's device and knows nothing of neural
networks; entropies are assembled from these pieces in `measures.py`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from oinfo_monitor.validation import check_samples

TiePolicy = Literal["random", "stable", "average"]
TIE_POLICIES: tuple[str, ...] = ("random", "stable", "average")

LN2 = math.log(2.0)
"""Natural log of 2: divide nats by it to get bits."""

# Above this size a block is factorised by LAPACK; below it an unrolled, batch-last Cholesky is faster.
_UNROLLED_MAX = 16
# Blocks per chunk on the unrolled path: small enough that its vectors stay in cache.
_UNROLLED_CHUNK = 8192
# Working memory per chunk of blocks, in float64 elements.
_CHUNK_ELEMENTS = 1 << 22
# A Cholesky pivot below this fraction of its variable's variance (1 - R² of that variable on the
# others) marks the block singular. Exactly dependent columns (duplicates, monotone copies after the
# copula) leave rounding-level pivots of about 1e-16 relative, often positive, so `> 0` misses them.
_PIVOT_RTOL = 1e-12


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

    On data without ties all three policies give identical results.
    """
    z = check_samples(x)
    return _copnorm_checked(z, ties, seed)


def _copnorm_checked(x: Tensor, ties: str, seed: int) -> Tensor:
    """Copula transform of an already validated float64 matrix.

    Works on the transpose, one contiguous row per column of `x`, so that sorts and gathers run
    along contiguous memory. Every sort is unstable (several times faster than a stable one); ties
    are ordered by sorting an int64 key whose high bits order the values and whose 31 low bits break
    ties: random bits for "random", the sample index for "stable". Float32-valued data (activations)
    need one such sort. Other data are sorted by value first, and only the columns holding ties are
    sorted again, by (tie-run index, low bits); "average" needs no second sort. Integer ranks map
    through a table of T quantiles instead of one normal quantile per entry.
    """
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be one of {TIE_POLICIES}, got {ties!r}")
    samples = x.shape[0]
    if samples >= 1 << 31:
        raise ValueError(f"the copula transform takes fewer than 2**31 samples, got {samples}")
    rows = x.T.contiguous()
    single = rows.to(torch.float32) if ties != "average" else None
    if single is not None and torch.equal(single.to(torch.float64), rows):
        index = torch.arange(samples, device=x.device).expand(rows.shape)
        order = _argsort_rows((_float32_order_bits(single) << 31) | _tie_bits(index, ties, seed))
    else:
        order = _argsort_rows(rows)
        values = torch.gather(rows, 1, order)
        starts = torch.ones_like(values, dtype=torch.bool)
        starts[:, 1:] = values[:, 1:] != values[:, :-1]
        tied = torch.nonzero(~starts.all(1)).flatten()
        if tied.numel() and ties == "average":
            ranks = _mid_ranks(order, starts)
            return torch.special.ndtri((ranks + 1.0) / (samples + 1.0)).T.contiguous()
        if tied.numel():
            index = order[tied]
            keys = (starts[tied].to(torch.int64).cumsum(1) << 31) | _tie_bits(index, ties, seed)
            order[tied] = torch.gather(index, 1, _argsort_rows(keys))
    steps = torch.arange(1, samples + 1, dtype=torch.float64, device=x.device)
    quantiles = torch.special.ndtri(steps / (samples + 1.0)).expand(rows.shape)
    return torch.empty_like(rows).scatter_(1, order, quantiles).T.contiguous()


def _float32_order_bits(x: Tensor) -> Tensor:
    """Int64 images of float32 entries that sort as the values do (negatives' magnitude bits flipped).

    Adding +0.0 turns -0.0 into +0.0 first, so that the two zeros, equal as values, tie.
    """
    bits = (x + 0.0).view(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)


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


def covariance(z: Tensor) -> Tensor:
    """Unbiased (T-1 normalised) covariance of the columns of a [T, N] matrix, in float64.

    The T-1 normalisation is the one the Wishart-based bias correction of `entropy_bias` assumes.
    """
    z = z.to(torch.float64)
    centred = z - z.mean(0, keepdim=True)
    return centred.T @ centred / (z.shape[0] - 1)


def class_means(z: Tensor, labels: Tensor, counts: Tensor) -> Tensor:
    """Per-class column means [C, N] of `z` for class indices `labels` in 0..C-1 with sizes `counts`."""
    sums = torch.zeros(counts.numel(), z.shape[1], dtype=z.dtype, device=z.device)
    return sums.index_add_(0, labels, z) / counts[:, None].to(z.dtype)


def entropy_bias(dims: int, n_samples: int | Tensor) -> Tensor:
    """Expected small-sample bias, in nats, of the plug-in Gaussian entropy of `dims` variables.

    For T samples and the T-1 normalised covariance it is
    ½ [dims · ln(2/(T-1)) + Σ_{i=1..dims} ψ((T-i)/2)] (Ince et al. 2017); subtract it to correct.
    """
    t = torch.as_tensor(n_samples, dtype=torch.float64)
    offsets = torch.arange(1, dims + 1, dtype=torch.float64, device=t.device)
    digammas = torch.special.digamma((t[..., None] - offsets) / 2.0).sum(-1)
    return 0.5 * (dims * torch.log(2.0 / (t - 1.0)) + digammas)


def gaussian_entropy(cov: Tensor, n_samples: int | None = None) -> Tensor:
    """Entropy in bits of Gaussians with covariance(s) `cov` [..., k, k]: ½ log det(2πe Σ).

    With `n_samples` the small-sample bias of `entropy_bias` is subtracted.
    """
    dims = cov.shape[-1]
    logdet = torch.linalg.slogdet(cov.to(torch.float64)).logabsdet
    nats = 0.5 * (dims * math.log(2 * math.pi * math.e) + logdet)
    if n_samples is not None:
        nats = nats - entropy_bias(dims, n_samples).to(nats.device)
    return nats / LN2


def block_logdets(
    cov: Tensor, members: Tensor, *, leave_one_out: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """Per multiplet S of `members` [M, k]: log det Σ_S, Σ_j log det Σ_{S∖j} and Σ_j log Σ_jj.

    These three sums are all the measures need. All leave-one-out terms come from one factorisation
    per block: log det Σ₋ⱼ = log det Σ + log (Σ⁻¹)ⱼⱼ; with `leave_one_out=False` the inverse is
    skipped and the second sum is NaN. Work is chunked and reduced inside each chunk, so memory
    stays bounded for any M; a singular block raises ValueError naming the multiplet.
    """
    count, size = members.shape
    unrolled = size <= _UNROLLED_MAX
    chunk = _UNROLLED_CHUNK if unrolled else max(1, _CHUNK_ELEMENTS // (3 * size * size))
    out = torch.empty(3, count, dtype=torch.float64, device=cov.device)
    log_variances = torch.log(torch.diagonal(cov))
    for start in range(0, count, chunk):
        rows = members[start : start + chunk]
        if unrolled:
            logdet, invdiag = _unrolled_cholesky(cov, rows, leave_one_out)
        else:
            blocks = cov[rows[:, :, None], rows[:, None, :]]
            logdet, invdiag = _lapack_cholesky(blocks, leave_one_out)
        bad = ~torch.isfinite(logdet)
        if bool(bad.any()):
            first = rows[int(torch.nonzero(bad)[0, 0])].tolist()
            raise ValueError(
                f"the covariance of multiplet {first} is singular: its variables are linearly "
                "dependent (duplicated or derived columns)"
            )
        out[0, start : start + chunk] = logdet
        out[1, start : start + chunk] = (
            math.nan if invdiag is None else size * logdet + torch.log(invdiag).sum(0)
        )
        columns = rows.T.reshape(-1)
        out[2, start : start + chunk] = log_variances.index_select(0, columns).view(size, -1).sum(0)
    return out[0], out[1], out[2]


@contextlib.contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Score multiplets on one intra-op thread (CPU only), restoring the caller's setting after.

    Scoring is many small vector operations that gain nothing from threads; on a loaded machine,
    waiting intra-op threads made them 5-40x slower (benchmarks/bench_oinfo.py).
    """
    threads = torch.get_num_threads()
    if device.type == "cpu" and threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _unrolled_cholesky(cov: Tensor, rows: Tensor, invert: bool) -> tuple[Tensor, Tensor | None]:
    """Log-determinant [M] and inverse diagonal [k, M] (if `invert`) of the blocks `cov[S, S]`.

    One contiguous vector per matrix entry and fused multiply-adds over the whole batch: scoring
    many small blocks this way is several times faster than one LAPACK call per block. Only the
    lower triangle is gathered, each entry by one `index_select` into the flattened covariance.
    """
    size = rows.shape[1]
    flat = cov.reshape(-1)
    columns = rows.T.to(torch.int32 if flat.numel() < 1 << 31 else torch.int64)
    offsets = columns * cov.shape[0]
    chol: list[list[Tensor]] = [[] for _ in range(size)]
    inv_pivot: list[Tensor] = []
    variances = torch.stack([flat.index_select(0, offsets[j] + columns[j]) for j in range(size)])
    for j in range(size):
        for i in range(j, size):
            entry = (
                variances[j].clone() if i == j else flat.index_select(0, offsets[i] + columns[j])
            )
            for p in range(j):
                entry.addcmul_(chol[i][p], chol[j][p], value=-1.0)
            if i == j:
                entry.sqrt_()  # NaN for a negative pivot, caught below
                inv_pivot.append(entry.reciprocal())
            else:
                entry.mul_(inv_pivot[j])
            chol[i].append(entry)
    pivots = torch.stack([chol[j][j] for j in range(size)])
    regular = (pivots.square() > _PIVOT_RTOL * variances).all(0)
    logdet = torch.where(regular, 2.0 * torch.log(pivots).sum(0), math.nan)
    if not invert:
        return logdet, None
    # inverse[i][c] = (L^-1)_{ic} for c <= i, by forward substitution.
    inverse: list[list[Tensor]] = [[] for _ in range(size)]
    for i in range(size):
        for c in range(i):
            entry = chol[i][c] * inverse[c][c]
            for p in range(c + 1, i):
                entry.addcmul_(chol[i][p], inverse[p][c])
            inverse[i].append(entry.mul_(inv_pivot[i]).neg_())
        inverse[i].append(inv_pivot[i])
    invdiag = []
    for j in range(size):
        total = inverse[j][j] * inverse[j][j]
        for i in range(j + 1, size):
            total.addcmul_(inverse[i][j], inverse[i][j])
        invdiag.append(total)
    return logdet, torch.stack(invdiag)


def _lapack_cholesky(blocks: Tensor, invert: bool) -> tuple[Tensor, Tensor | None]:
    """Log-determinant [M] and inverse diagonal [k, M] (if `invert`) of `[M, k, k]` blocks, by LAPACK."""
    chol, info = torch.linalg.cholesky_ex(blocks)
    diagonal = torch.diagonal(chol, dim1=-2, dim2=-1)
    logdet = 2.0 * torch.log(diagonal).sum(-1)
    variances = torch.diagonal(blocks, dim1=-2, dim2=-1)
    regular = (info == 0) & (diagonal.square() > _PIVOT_RTOL * variances).all(-1)
    logdet = torch.where(regular, logdet, torch.full_like(logdet, math.nan))
    if not invert:
        return logdet, None
    eye = torch.eye(blocks.shape[-1], dtype=blocks.dtype, device=blocks.device).expand_as(blocks)
    inverse = torch.linalg.solve_triangular(chol, eye, upper=False)
    return logdet, (inverse * inverse).sum(-2).T
