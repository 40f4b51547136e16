"""Single-neuron importance baselines of the 2022 paper: MI in bits between one neuron and discrete labels.

Both model each class as a Gaussian and compute I(X;Y) = H(X) − Σ_c p_c H(X | Y=c); they differ in
what is Gaussian:

- `mi_model` (class-conditional, ANOVA-style Gaussian-copula model): the neuron is copula-transformed
  over all samples, so its marginal is exactly Gaussian; H(X) is that Gaussian's entropy and each
  class is a Gaussian with its own mean and variance in copula space. A lower bound on the MI.
- `mi_mixture`: each class is a Gaussian fitted to the neuron's raw values in that class (its mean
  and variance), and H(X) is the entropy of the resulting mixture Σ_c p_c N(μ_c, σ_c²), integrated
  numerically. Exact, in the large-sample limit, when the classes are Gaussian.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from oinfo_monitor.estimators.copula import TiePolicy, copnorm_checked
from oinfo_monitor.estimators.covariance import class_means
from oinfo_monitor.estimators.entropy import LN2, TWO_PI_E, entropy_bias
from oinfo_monitor.estimators.validation import check_samples, check_target

_QUADRATURE_POINTS = 4001
_NEURON_CHUNK = 64


def _class_moments(z: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per class of `labels`: weight, count, and the mean and unbiased variance of each column of z."""
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    if counts.numel() < 2 or bool((counts < 3).any()):
        raise ValueError("y needs at least 2 classes with at least 3 samples each")
    means = class_means(z, inverse, counts)
    residual = z - means[inverse]
    variances = class_means(residual * residual, inverse, counts)
    variances = variances * counts[:, None] / (counts[:, None] - 1)
    constant = variances == 0
    if bool(constant.any()):
        label, column = (int(v) for v in torch.nonzero(constant)[0])
        raise ValueError(f"column {column} is constant within class index {label} of y")
    return counts.to(z.dtype) / z.shape[0], counts, means, variances


def mi_model(
    x: Any, y: Any, *, bias_correct: bool = True, ties: TiePolicy = "random", seed: int = 0
) -> Tensor:
    """MI in bits between each neuron (column of x) and discrete labels y, class-conditional model.

    I = H(pooled Gaussian) − Σ_c p_c H(class Gaussian), each entropy bias-corrected when asked.
    """
    data = check_samples(x)
    labels, _ = check_target(y, data.shape[0], "discrete")
    z = copnorm_checked(data, ties, seed)
    weights, counts, _, variances = _class_moments(z, labels.to(z.device))
    pooled = 0.5 * torch.log(z.var(0))
    conditional = 0.5 * (weights[:, None] * torch.log(variances)).sum(0)
    nats = pooled - conditional
    if bias_correct:
        class_bias = (weights * entropy_bias(1, counts).to(weights.device)).sum()
        nats = nats - entropy_bias(1, z.shape[0]).item() + class_bias
    return nats / LN2


def mi_mixture(x: Any, y: Any) -> Tensor:
    """MI in bits between each neuron and discrete labels y under a Gaussian mixture (one per class).

    Each class is a Gaussian with the neuron's raw mean and variance in that class; the mixture's
    entropy is integrated on a fine grid spanning every class Gaussian to ±10 σ.
    """
    data = check_samples(x)
    labels, _ = check_target(y, data.shape[0], "discrete")
    weights, _, means, variances = _class_moments(data, labels.to(data.device))
    entropy = torch.cat(
        [
            _mixture_entropy(weights, means[:, cols], variances[:, cols].sqrt())
            for cols in torch.arange(means.shape[1], device=means.device).split(_NEURON_CHUNK)
        ]
    )
    conditional = (weights[:, None] * 0.5 * torch.log(TWO_PI_E * variances)).sum(0)
    return (entropy - conditional) / LN2


def _mixture_entropy(weights: Tensor, means: Tensor, stds: Tensor) -> Tensor:
    """Entropy in nats of 1-D Gaussian mixtures (one per column of `means` [C, N]) by quadrature."""
    low = (means - 10 * stds).min(0).values
    high = (means + 10 * stds).max(0).values
    steps = torch.linspace(0.0, 1.0, _QUADRATURE_POINTS, dtype=torch.float64, device=means.device)
    grid = low[None, :] + steps[:, None] * (high - low)[None, :]
    densities = torch.exp(-0.5 * ((grid[:, None, :] - means) / stds) ** 2) / (
        stds * math.sqrt(2 * math.pi)
    )
    mixture = (densities * weights[None, :, None]).sum(1)
    integrand = torch.where(mixture > 0, -mixture * torch.log(mixture), torch.zeros_like(mixture))
    return torch.trapezoid(integrand, grid, dim=0)
