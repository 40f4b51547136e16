"""The Gaussian entropy algebra: the 2πe constant, log-determinants to bits, the small-sample bias.

This module is the only home of these formulas; every measure and every search scores through
`entropy_bits`, so a k-variable Gaussian entropy is always

    H = ½ [k · ln(2πe) + log det Σ] − bias(k, T)   (nats; divided by ln 2 for bits)

with the bias of Ince et al. (2017) subtracted when bias correction is on.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from oinfo_monitor.estimators.validation import TargetModel

LN2 = math.log(2.0)
"""Natural log of 2: divide nats by it to get bits."""

TWO_PI_E = 2 * math.pi * math.e
"""2πe, the constant of the Gaussian entropy ½ log det(2πe Σ)."""

LOG_2PIE = math.log(TWO_PI_E)
"""ln(2πe): each variable's share of a Gaussian entropy, in nats, beyond its log-variance."""

SAMPLES_PER_VARIABLE = 5
"""Samples per variable below which default multiplet sizes stop (see `supported_size`)."""


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
    nats = 0.5 * (dims * LOG_2PIE + logdet)
    if n_samples is not None:
        nats = nats - entropy_bias(dims, n_samples).to(nats.device)
    return nats / LN2


@functools.lru_cache(maxsize=1024)
def bias_nats(dims: int, samples: int) -> float:
    """`entropy_bias` as a float, cached: scoring asks for the same few values many times.

    Examples:
        >>> round(bias_nats(3, 100), 4)
        -0.0306
    """
    return float(entropy_bias(dims, samples))


def entropy_bits(logdet: Tensor, dims: int, count: int, samples: int, bias_correct: bool) -> Tensor:
    """Sum of `count` Gaussian entropies (bits) of `dims` variables each, from the sum of their
    log-determinants: ½ [count · dims · ln(2πe) + Σ log det] − count · bias(dims, samples).

    Examples:
        >>> zero = torch.tensor(0.0, dtype=torch.float64)  # log-variance of a unit Gaussian
        >>> round(float(entropy_bits(zero, 1, 1, 1000, False)), 4)  # ½ log₂(2πe)
        2.0471
    """
    nats = 0.5 * (count * dims * LOG_2PIE + logdet)
    if bias_correct:
        nats = nats - count * bias_nats(dims, samples)
    return nats / LN2


def supported_size(samples: int, target: TargetModel = "none", classes: int = 0) -> int:
    """Largest multiplet (neurons) whose Ω `samples` estimate reliably: `SAMPLES_PER_VARIABLE`
    samples per variable.

    A continuous target counts as one more variable; a discrete target's `classes` use up one
    sample each. Measured on independent Gaussian data (10 variables), the SD of one multiplet's
    bias-corrected Ω stays below 0.1 bits at that ratio and grows more than threefold when it halves
    (tests/test_measures.py::test_supported_size_bounds_the_noise); the extreme over a search of
    many multiplets is further out still.

    Examples:
        >>> supported_size(100), supported_size(100, "continuous"), supported_size(100, "discrete", 10)
        (20, 19, 18)
    """
    return (samples - classes) // SAMPLES_PER_VARIABLE - (target == "continuous")
