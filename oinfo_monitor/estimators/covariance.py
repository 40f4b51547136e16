"""Covariances of copula-transformed data: the one statistic every measure is computed from."""

from __future__ import annotations

import torch
from torch import Tensor


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


def within_class_covariance(z: Tensor, labels: Tensor) -> tuple[Tensor, int]:
    """Pooled within-class covariance (T − C normalised) of the copula-transformed neurons."""
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    if classes.numel() < 2:
        raise ValueError("y has a single class: a constant target carries no information")
    means = class_means(z, inverse, counts)
    residual = z - means[inverse]
    dof = z.shape[0] - classes.numel()
    return residual.T @ residual / dof, int(classes.numel())
