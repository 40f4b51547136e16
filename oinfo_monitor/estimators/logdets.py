"""Log-determinants of many small blocks of one covariance, the inner loop of every measure."""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Above this size a block is factorised by LAPACK; below it an unrolled, batch-last Cholesky is
# faster, but only for many blocks at once: its cost is about k³/3 tensor operations whatever
# the batch, so a few blocks (re-scoring chosen multiplets, one greedy growth step) go to LAPACK,
# which was 3-110x faster below a few hundred blocks and slower from about a thousand (measured
# on the 2-core development machine for k = 4..16).
_UNROLLED_MAX = 16
_UNROLLED_MIN_BLOCKS = 768
# Blocks per chunk on the unrolled path: small enough that its vectors stay in cache.
_UNROLLED_CHUNK = 8192
# Working memory per chunk of blocks, in float64 elements.
_CHUNK_ELEMENTS = 1 << 22
# A Cholesky pivot below this fraction of its variable's variance (1 - R² of that variable on the
# others) marks the block singular. Exactly dependent columns (duplicates, monotone copies after the
# copula) leave rounding-level pivots of about 1e-16 relative, often positive, so `> 0` misses them.
_PIVOT_RTOL = 1e-12


def block_logdets(
    cov: Tensor, members: Tensor, *, leave_one_out: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """Per multiplet S of `members` [M, k]: log det Σ_S, Σ_j log det Σ_{S∖j} and Σ_j log Σ_jj.

    These three sums are all the measures need. All leave-one-out terms come from one factorisation
    per block: log det Σ₋ⱼ = log det Σ + log (Σ⁻¹)ⱼⱼ; with `leave_one_out=False` the inverse is
    skipped and the second sum is NaN. Work is chunked and reduced inside each chunk, so memory
    stays bounded for any M; a singular block raises ValueError naming the multiplet. A stack of
    covariances `cov` [..., N, N] (bootstrap resamples) gives results of shape [..., M], every
    block of every covariance in one LAPACK batch.

    Examples:
        >>> cov = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        >>> logdet, _, _ = block_logdets(torch.stack([cov, 2 * cov]), torch.tensor([[0, 1]]))
        >>> [round(v, 4) for v in logdet[:, 0].tolist()]  # log 3, log 12
        [1.0986, 2.4849]
    """
    batch = cov.shape[:-2]
    covs = cov.reshape(-1, *cov.shape[-2:])
    stacked = covs.shape[0]
    count, size = members.shape
    unrolled = size <= _UNROLLED_MAX and count >= _UNROLLED_MIN_BLOCKS and not batch
    elements = 3 * size * size * stacked
    chunk = _UNROLLED_CHUNK if unrolled else max(1, _CHUNK_ELEMENTS // elements)
    out = torch.empty(3, stacked, count, dtype=torch.float64, device=cov.device)
    log_variances = torch.log(torch.diagonal(covs, dim1=-2, dim2=-1))
    for start in range(0, count, chunk):
        rows = members[start : start + chunk]
        if unrolled:
            logdet, invdiag = _unrolled_cholesky(cov, rows, leave_one_out)
        else:
            blocks = covs[:, rows[:, :, None], rows[:, None, :]].reshape(-1, size, size)
            logdet, invdiag = _lapack_cholesky(blocks, leave_one_out)
        logdet = logdet.view(stacked, -1)
        bad = ~torch.isfinite(logdet)
        if bool(bad.any()):
            first = rows[int(torch.nonzero(bad)[0, 1])].tolist()
            raise ValueError(
                f"the covariance of multiplet {first} is singular: its variables are linearly "
                "dependent (duplicated or derived columns)"
            )
        out[0, :, start : start + chunk] = logdet
        out[1, :, start : start + chunk] = (
            math.nan
            if invdiag is None
            else size * logdet + torch.log(invdiag).sum(0).view(stacked, -1)
        )
        columns = rows.T.reshape(-1)
        chosen = log_variances.index_select(1, columns).view(stacked, size, -1)
        out[2, :, start : start + chunk] = chosen.sum(1)
    out = out.view(3, *batch, count)
    return out[0], out[1], out[2]


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
