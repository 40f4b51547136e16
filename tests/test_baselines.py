"""Tests for oinfo_monitor.estimators.baselines: single-neuron Gaussian-copula MI with discrete labels, in bits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference import (
    LN2,
    chi2_mi_bound,
    global_copula_limits,
    two_class_mi_sd,
    two_class_mixture_mi,
)

from oinfo_monitor.estimators.baselines import mi_mixture, mi_model

ESTIMATORS = {"model": mi_model, "mixture": mi_mixture}


def two_class_neurons(deltas, samples, seed=0):
    """Labels y ~ Bernoulli(½) and one neuron per delta with X | y ~ N(±delta, 1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, samples)
    signs = np.where(y == 1, 1.0, -1.0)[:, None]
    return signs * np.asarray(deltas)[None, :] + rng.standard_normal((samples, len(deltas))), y


def null_bound(samples, classes):
    """Bound (bits) on either estimate for a neuron independent of C classes.

    Both are at most the Gaussian likelihood-ratio statistic for "same mean and variance in every
    class" (the mixture because a Gaussian has the largest entropy for its variance), with
    2T·I ~ χ²(2(C − 1)); C/(2T) nats more covers the (n_c − 1) normalisations.
    """
    return chi2_mi_bound(samples, dof=2 * (classes - 1)) + classes / (2 * samples * LN2)


# --- limits -----------------------------------------------------------------------------------------


def test_both_estimators_reach_the_analytic_mi_for_weakly_separated_classes():
    """Two classes N(±0.25, 1): both estimates equal the true mixture MI, in bits, within sampling error.

    The true MI is integrated with scipy.quad, independently of the engine's grid. At this separation
    the global copula barely bends the class Gaussians (the estimators' limits differ from the
    truth by < 1e-5 bits, computed below), so the tolerance is sampling error: 6 sd of a plug-in MI.
    The same MI in nats (0.69× the value) would be 17 sd away.
    """
    delta, samples = 0.25, 200_000
    truth = two_class_mixture_mi(delta)
    limits = global_copula_limits(delta)
    assert max(abs(v - truth) for v in limits.values()) < 1e-5
    x, y = two_class_neurons([delta], samples)
    tolerance = 6 * two_class_mi_sd(delta, samples)
    assert truth * (1 - LN2) > 2.5 * tolerance
    for name, estimator in ESTIMATORS.items():
        assert estimator(x, y).item() == pytest.approx(truth, abs=tolerance), name


def test_model_converges_to_its_own_limit_for_well_separated_classes():
    """Two classes N(±1.5, 1): the model estimate equals the large-sample limit of its definition.

    It copula-transforms the neuron over all samples and fits one Gaussian per class; its limit is
    computed here by quadrature from the population copula. The model value is a lower bound
    on the true MI (the copula makes X exactly Gaussian, while the classes are not), well below it.
    """
    delta, samples = 1.5, 100_000
    truth = two_class_mixture_mi(delta)
    limits = global_copula_limits(delta)
    x, y = two_class_neurons([delta], samples, seed=1)
    tolerance = 6 * two_class_mi_sd(delta, samples)
    model = mi_model(x, y).item()
    assert model == pytest.approx(limits["model"], abs=tolerance)
    assert model < truth - 3 * tolerance


def test_mixture_reaches_the_analytic_mi_for_well_separated_classes():
    """Two classes N(±1.5, 1): the mixture estimate (Gaussian classes) equals the true MI in the limit."""
    delta, samples = 1.5, 100_000
    x, y = two_class_neurons([delta], samples, seed=1)
    tolerance = 6 * two_class_mi_sd(delta, samples)
    assert mi_mixture(x, y).item() == pytest.approx(two_class_mixture_mi(delta), abs=tolerance)


# --- independence, sign, ranking --------------------------------------------------------------------


@pytest.mark.parametrize("classes", [2, 5])
def test_independent_neurons_give_about_zero(classes):
    """Neurons independent of the labels: both estimates within the null bound; the mixture one ≥ 0.

    The bias-corrected model value is an unbiased-style estimate of 0, so it may dip below 0; the
    mixture value cannot (a mixture's entropy is at least its components' average entropy).
    """
    samples = 20_000
    rng = np.random.default_rng(classes)
    x = rng.standard_normal((samples, 6))
    x[:, 3] = np.maximum(x[:, 3], 0.0)  # ties, broken at random
    y = rng.integers(0, classes, samples)
    bound = null_bound(samples, classes)
    model = mi_model(x, y).numpy()
    mixture = mi_mixture(x, y).numpy()
    assert (np.abs(model) < bound).all(), (model, bound)
    assert (mixture >= 0).all()
    assert (mixture < bound).all(), (mixture, bound)


def test_more_informative_neurons_rank_higher():
    """Neurons with growing class separation get strictly growing, non-negative MI from both estimators."""
    deltas = [0.0, 0.1, 0.3, 0.6, 1.0, 2.0, 3.0]
    x, y = two_class_neurons(deltas, 20_000, seed=2)
    for name, estimator in ESTIMATORS.items():
        values = estimator(x, y).numpy()
        assert (np.diff(values) > 0).all(), (name, values)
        assert (values[1:] > 0).all(), name
        assert values[-1] < 1.0 + 1e-9, name  # a binary label carries at most 1 bit


def test_model_bias_correction_reduces_small_sample_bias():
    """At T = 40 the plug-in model MI of independent neurons is biased upwards; the correction removes most of it.

    600 independent neurons serve as replicates. Under the copula the Gaussian correction is not
    exact (the ranks fix the total variance), so this asserts a large reduction, not zero bias.
    """
    samples, reps = 40, 600
    rng = np.random.default_rng(4)
    x = rng.standard_normal((samples, reps))
    y = np.repeat([0, 1], samples // 2)
    corrected = mi_model(x, y).numpy()
    plug_in = mi_model(x, y, bias_correct=False).numpy()
    stderr = plug_in.std(ddof=1) / math.sqrt(reps)
    assert plug_in.mean() > 10 * stderr
    assert abs(corrected.mean()) < 0.5 * plug_in.mean()


# --- types, devices, errors -------------------------------------------------------------------------


def test_numpy_and_torch_inputs_agree_as_float64_on_cpu():
    x, y = two_class_neurons([0.0, 0.5, 1.0], 2_000, seed=5)
    for name, estimator in ESTIMATORS.items():
        from_numpy = estimator(x, y)
        from_torch = estimator(torch.from_numpy(x), torch.from_numpy(y))
        assert from_numpy.dtype == torch.float64, name
        assert from_numpy.device == torch.device("cpu"), name
        assert from_numpy.shape == (3,), name
        assert torch.equal(from_numpy, from_torch), name
        renamed = estimator(x, np.where(y == 1, 7, -2))
        torch.testing.assert_close(renamed, from_numpy, rtol=0, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_results_stay_on_the_device():
    x, y = two_class_neurons([0.0, 0.5, 1.0], 2_000, seed=5)
    for estimator in ESTIMATORS.values():
        result = estimator(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda())
        assert result.device.type == "cuda"
        torch.testing.assert_close(result.cpu(), estimator(x, y), rtol=0, atol=1e-9)


@pytest.mark.parametrize("estimator", [mi_model, mi_mixture])
def test_bad_inputs_raise(estimator):
    x, y = two_class_neurons([0.5, 1.0], 100)
    with pytest.raises(ValueError, match="y has 99 samples but x has 100"):
        estimator(x, y[:99])
    with pytest.raises(ValueError, match="at least 2 classes with at least 3 samples each"):
        estimator(x, np.zeros(100, dtype=int))
    few = y.copy()
    few[:2] = 2  # a third class with only two samples
    with pytest.raises(ValueError, match="at least 2 classes with at least 3 samples each"):
        estimator(x, few)
    bad = x.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf value\(s\) in column 1"):
        estimator(bad, y)
    with pytest.raises(ValueError, match="y has NaN/inf labels"):
        estimator(x, np.where(y == 1, np.nan, 0.0))
    if estimator is mi_mixture:  # a zero-variance class Gaussian has no density
        flat = x.copy()
        flat[y == 0, 0] = 1.5
        with pytest.raises(ValueError, match="column 0 is constant within class"):
            estimator(flat, y)
    else:
        with pytest.raises(ValueError, match="ties must be one of"):
            estimator(x, y, ties="first")
