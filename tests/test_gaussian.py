"""Tests for oinfo_monitor.gaussian: the copula transform and its tie policies, covariance, entropies and their bias."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from reference import (
    LN2,
    bias_nats,
    chi2_mi_bound,
    copula,
    entropy_of_cov,
    independence_omega_bound,
    random_covariance,
)
from scipy.special import ndtri
from scipy.stats import rankdata

from oinfo_monitor.estimators import (
    TIE_POLICIES,
    copnorm,
    covariance,
    entropy_bias,
    gaussian_entropy,
    oinfo,
    tc,
)
from oinfo_monitor.estimators.covariance import within_class_covariance
from oinfo_monitor.estimators.logdets import block_logdets

POLICIES = ("random", "stable", "average")


def continuous(samples=500, variables=4, seed=0):
    """Gaussian data without ties."""
    return np.random.default_rng(seed).standard_normal((samples, variables))


def tied(samples=400, variables=3, seed=0):
    """Data with heavy ties: ReLU outputs rounded to one decimal (half exact zeros, many repeats)."""
    x = np.random.default_rng(seed).standard_normal((samples, variables))
    return np.round(np.maximum(x, 0.0), 1)


def tie_mask(x):
    """True where an entry's value occurs more than once in its column."""
    mask = np.zeros(x.shape, dtype=bool)
    for j in range(x.shape[1]):
        _, inverse, counts = np.unique(x[:, j], return_inverse=True, return_counts=True)
        mask[:, j] = counts[inverse] > 1
    return mask


# --- copula transform -----------------------------------------------------------------------------


def test_policies_listed():
    assert set(TIE_POLICIES) == set(POLICIES)


@pytest.mark.parametrize("ties", POLICIES)
def test_copnorm_matches_reference_without_ties(ties):
    """On continuous data every policy gives the reference's quantiles of rank / (T + 1)."""
    x = continuous()
    got = copnorm(x, ties=ties)
    np.testing.assert_allclose(got.numpy(), copula(x), rtol=0, atol=1e-12)


def test_all_policies_identical_without_ties():
    """Without ties the policies coincide bit for bit, whatever the seed."""
    x = continuous(variables=6)
    results = [copnorm(x, ties=t, seed=s) for t in POLICIES for s in (0, 7)]
    for other in results[1:]:
        assert torch.equal(results[0], other)


@pytest.mark.parametrize("ties", POLICIES)
def test_copnorm_deterministic_under_seed(ties):
    """The same data, policy and seed give the same transform, also on heavily tied data."""
    x = tied()
    assert torch.equal(copnorm(x, ties=ties, seed=3), copnorm(x, ties=ties, seed=3))


def mixed(dtype=np.float64):
    """Tied columns beside tie-free ones, in float64 or float32 (each takes its own sorting path)."""
    return np.column_stack([tied(), continuous(400, 2, seed=4)]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_random_seeds_differ_only_on_ties(dtype):
    """Two seeds of "random" agree on untied entries and permute values within each tie group."""
    x = mixed(dtype)
    a = copnorm(x, ties="random", seed=0).numpy()
    b = copnorm(x, ties="random", seed=1).numpy()
    mask = tie_mask(x)
    np.testing.assert_array_equal(a[~mask], b[~mask])
    assert (a[mask] != b[mask]).any()
    for j in range(x.shape[1]):
        for value in np.unique(x[mask[:, j], j]):
            group = x[:, j] == value
            np.testing.assert_array_equal(np.sort(a[group, j]), np.sort(b[group, j]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_average_shares_one_value_per_tie_and_matches_scipy(dtype):
    """ "average" maps tied values to one quantile: Φ⁻¹ of scipy's average rank / (T + 1)."""
    x = mixed(dtype)
    got = copnorm(x, ties="average").numpy()
    expected = ndtri(np.stack([rankdata(c, method="average") for c in x.T], 1) / (len(x) + 1))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    for j in range(x.shape[1]):
        for value in np.unique(x[:, j]):
            assert np.unique(got[x[:, j] == value, j]).size == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stable_equals_stable_argsort_ranks(dtype):
    """ "stable" ranks tied values by sample order, as a stable argsort does."""
    x = mixed(dtype)
    ranks = np.empty(x.shape)
    for j in range(x.shape[1]):
        ranks[np.argsort(x[:, j], kind="stable"), j] = np.arange(len(x))
    expected = ndtri((ranks + 1.0) / (len(x) + 1.0))
    np.testing.assert_allclose(copnorm(x, ties="stable").numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(copula(x, "stable"), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_negative_and_positive_zero_tie(dtype):
    """-0.0 equals +0.0, so the two zeros are one tie group under every policy and dtype path."""
    x = tied(seed=3)
    x[::3] *= -1.0  # a third of the zeros become -0.0, the rest of those rows negative
    x = x.astype(dtype)
    assert np.signbit(x[x == 0]).any() and not np.signbit(x[x == 0]).all()
    ranks = np.empty(x.shape)
    for j in range(x.shape[1]):
        ranks[np.argsort(x[:, j], kind="stable"), j] = np.arange(len(x))
    stable = ndtri((ranks + 1.0) / (len(x) + 1.0))
    np.testing.assert_allclose(copnorm(x, ties="stable").numpy(), stable, rtol=0, atol=1e-12)
    average = copnorm(x, ties="average").numpy()
    for j in range(x.shape[1]):
        assert np.unique(average[x[:, j] == 0, j]).size == 1


@pytest.mark.parametrize("ties", POLICIES)
def test_copnorm_preserves_order(ties):
    """Whatever the policy, a larger value never gets a smaller copula value."""
    x = tied()
    z = copnorm(x, ties=ties, seed=5).numpy()
    for j in range(x.shape[1]):
        order = np.argsort(x[:, j], kind="stable")
        strict = np.diff(x[order, j]) > 0
        assert (np.diff(z[order, j])[strict] > 0).all()


@pytest.mark.parametrize("ties", POLICIES)
@pytest.mark.parametrize(
    "transform",
    [np.exp, lambda v: v**3, lambda v: 2.5 * v - 7.0, np.arctan],
    ids=["exp", "cube", "affine", "arctan"],
)
def test_copnorm_invariant_to_strictly_monotone_transforms(ties, transform):
    """A strictly increasing map of a column leaves its ranks, hence its copula values, unchanged."""
    x = tied(seed=2) + continuous(400, 3, seed=3) * (tied(seed=2) > 0)  # ties at zero only
    assert torch.equal(copnorm(x, ties=ties, seed=1), copnorm(transform(x), ties=ties, seed=1))


def test_copnorm_dtype_device_and_input_types():
    """Float64 on the input's device; numpy, float32 torch and float64 torch inputs agree."""
    x = continuous()
    from_numpy = copnorm(x)
    from_torch = copnorm(torch.from_numpy(x))
    from_float32 = copnorm(torch.from_numpy(x).float())
    for result in (from_numpy, from_torch, from_float32):
        assert result.dtype == torch.float64
        assert result.device == torch.device("cpu")
    assert torch.equal(from_numpy, from_torch)
    assert torch.equal(from_float32, from_torch)  # float32 rounding keeps the ranks here


def test_unknown_tie_policy_raises():
    with pytest.raises(ValueError, match=r"ties must be one of .*'mean'"):
        copnorm(continuous(), ties="mean")


# --- why "random" is the default -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_random_ties_create_no_dependence_but_stable_ties_do(dtype):
    """Demonstration: three independent ReLU-like columns, each about half exact zeros.

    "random" breaks the zeros' ties independently per column, like infinitesimal jitter, so the
    columns stay independent: every pairwise MI and the triple's Ω stay inside their null bounds.
    "stable" breaks them by sample order in every column alike, so the samples that are zero in two
    columns get rank-correlated values there: dependence manufactured from nothing, many times the
    null bound. This is why "random" is the default and "stable" (HOI's convention) is not.
    """
    samples = 20_000
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((samples, 3)), 0.0).astype(dtype)
    assert 0.45 < (x == 0).mean() < 0.55
    pairs = [(0, 1), (0, 2), (1, 2)]
    mi_bound = chi2_mi_bound(samples, dof=1)  # plug-in Gaussian MI of a pair: 2T·I ~ χ²(1)
    omega_bound = independence_omega_bound(3, samples)

    random_mi = tc(x, pairs, ties="random", bias_correct=False)
    random_omega = oinfo(x, ties="random").item()
    assert (random_mi.abs() < mi_bound).all(), (random_mi, mi_bound)
    assert abs(random_omega) < omega_bound, (random_omega, omega_bound)

    stable_mi = tc(x, pairs, ties="stable", bias_correct=False)
    stable_omega = oinfo(x, ties="stable").item()
    assert (stable_mi > 3 * mi_bound).all(), (stable_mi, mi_bound)
    assert stable_omega > 3 * omega_bound, (stable_omega, omega_bound)


# --- covariance, entropy, bias ---------------------------------------------------------------------


@pytest.mark.parametrize("width", [5, 127, 128, 300])  # the full product, then by bands
def test_covariance_matches_numpy(width):
    x = continuous(300, width)
    found = covariance(torch.from_numpy(x))
    np.testing.assert_allclose(found.numpy(), np.cov(x, rowvar=False), rtol=1e-13, atol=1e-14)
    assert torch.equal(found, found.T)


@pytest.mark.parametrize("width", [5, 300])  # the full product, then by bands
def test_within_class_covariance_matches_numpy(width):
    x = continuous(400, width)
    labels = np.random.default_rng(1).integers(0, 3, 400)
    residual = x - np.stack([x[labels == c].mean(0) for c in range(3)])[labels]
    found, classes = within_class_covariance(torch.from_numpy(x), torch.from_numpy(labels))
    np.testing.assert_allclose(
        found.numpy(), residual.T @ residual / (400 - 3), rtol=1e-12, atol=1e-14
    )
    assert classes == 3 and torch.equal(found, found.T)


@pytest.mark.parametrize("samples", [5, 30, 61, 10_000])
@pytest.mark.parametrize("dims", [1, 3, 6])
def test_entropy_bias_matches_formula(samples, dims):
    assert entropy_bias(dims, samples).item() == pytest.approx(bias_nats(dims, samples), rel=1e-12)


def test_gaussian_entropy_matches_closed_form_batched():
    """½ log det(2πe Σ) in bits, for a batch of covariances, with and without the bias term."""
    rng = np.random.default_rng(0)
    covs = np.stack([random_covariance(4, rng) * s for s in (0.5, 1.0, 3.0)])
    got = gaussian_entropy(torch.from_numpy(covs))
    assert got.dtype == torch.float64
    expected = [entropy_of_cov(c) for c in covs]
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    corrected = gaussian_entropy(torch.from_numpy(covs), n_samples=40)
    np.testing.assert_allclose(corrected.numpy(), [entropy_of_cov(c, 40) for c in covs], atol=1e-12)
    sd1 = gaussian_entropy(torch.ones(1, 1)).item()
    assert sd1 == pytest.approx(0.5 * math.log2(2 * math.pi * math.e), abs=1e-14)


@pytest.mark.parametrize("samples", [30, 45, 60])
@pytest.mark.parametrize("dims", [4, 5, 6])
def test_bias_correction_removes_small_sample_bias(samples, dims):
    """Over many small samples of a known Gaussian the corrected entropy is unbiased, the plug-in is not.

    The correction is the exact Wishart expectation, so the corrected mean must sit within sampling
    error (4.5 standard errors) of the true entropy, while the plug-in mean is off by the predicted
    bias, which is tens of standard errors here.
    """
    reps = 3000
    rng = np.random.default_rng(samples * 10 + dims)
    cov = random_covariance(dims, rng, strength=2.0) * rng.uniform(0.5, 2.0, dims)[:, None] ** 0.5
    cov = (cov + cov.T) / 2 + np.eye(dims) * 0.1
    chol = np.linalg.cholesky(cov)
    data = rng.standard_normal((reps, samples, dims)) @ chol.T
    centred = data - data.mean(1, keepdims=True)
    estimates = torch.from_numpy(np.einsum("rti,rtj->rij", centred, centred) / (samples - 1))
    truth = entropy_of_cov(cov)

    plug_in = gaussian_entropy(estimates).numpy()
    corrected = gaussian_entropy(estimates, n_samples=samples).numpy()
    stderr = corrected.std(ddof=1) / math.sqrt(reps)
    assert abs(corrected.mean() - truth) < 4.5 * stderr, (corrected.mean(), truth, stderr)
    predicted_bias = bias_nats(dims, samples) / LN2
    assert abs(plug_in.mean() - (truth + predicted_bias)) < 4.5 * stderr
    assert abs(plug_in.mean() - truth) > 10 * stderr


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 17, 24])
def test_block_logdets_match_slogdet(size):
    """Joint, summed leave-one-out and summed diagonal log-determinants, unrolled and LAPACK paths."""
    rng = np.random.default_rng(size)
    cov = random_covariance(30, rng, strength=2.0) * 1.7
    members = np.stack([rng.choice(30, size, replace=False) for _ in range(20)])
    logdet, loo, diag = block_logdets(torch.from_numpy(cov), torch.from_numpy(members))
    for row, joint, rest, singles in zip(
        members, logdet.numpy(), loo.numpy(), diag.numpy(), strict=True
    ):
        assert joint == pytest.approx(np.linalg.slogdet(cov[np.ix_(row, row)])[1], abs=1e-10)
        expected = sum(
            np.linalg.slogdet(cov[np.ix_(np.delete(row, j), np.delete(row, j))])[1]
            if size > 1
            else 0.0
            for j in range(size)
        )
        assert rest == pytest.approx(expected, abs=1e-9)
        assert singles == pytest.approx(np.log(np.diag(cov)[row]).sum(), abs=1e-10)


@pytest.mark.parametrize("size", [3, 16, 17])
def test_block_logdets_without_leave_one_out(size):
    """Skipping the inverse leaves log det and the diagonal sum unchanged and marks the rest NaN."""
    rng = np.random.default_rng(size)
    cov = torch.from_numpy(random_covariance(30, rng, strength=2.0))
    members = torch.from_numpy(np.stack([rng.choice(30, size, replace=False) for _ in range(50)]))
    full = block_logdets(cov, members)
    joint_only = block_logdets(cov, members, leave_one_out=False)
    assert torch.equal(joint_only[0], full[0])
    assert torch.equal(joint_only[2], full[2])
    assert torch.isnan(joint_only[1]).all()


@pytest.mark.parametrize(("variables", "size", "count"), [(40, 3, 9880), (30, 17, 5000)])
def test_block_logdets_across_chunk_boundaries(variables, size, count):
    """More blocks than one chunk holds (8192 unrolled; about 4800 of size 17 on LAPACK) still all match."""
    rng = np.random.default_rng(size)
    cov = random_covariance(variables, rng, strength=2.0)
    members = np.stack([rng.choice(variables, size, replace=False) for _ in range(count)])
    logdet, loo, _ = block_logdets(torch.from_numpy(cov), torch.from_numpy(members))
    blocks = cov[members[:, :, None], members[:, None, :]]
    np.testing.assert_allclose(logdet.numpy(), np.linalg.slogdet(blocks)[1], rtol=0, atol=1e-10)
    expected = sum(
        np.linalg.slogdet(np.delete(np.delete(blocks, j, axis=1), j, axis=2))[1]
        for j in range(size)
    )
    np.testing.assert_allclose(loo.numpy(), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("size", [3, 20])
def test_singular_block_names_the_multiplet(size):
    """Linearly dependent variables give a ValueError naming the singular multiplet (both paths)."""
    x = continuous(200, 25)
    x[:, 4] = x[:, 1] + x[:, 2]
    cov = torch.from_numpy(np.cov(x, rowvar=False))
    regular = [0, 3, *range(5, 5 + size - 2)]
    singular = [1, 2, 4, *range(5, 5 + size - 3)]
    with pytest.raises(ValueError, match=re.escape(f"multiplet {singular} is singular")):
        block_logdets(cov, torch.tensor([regular, singular]))


# --- input validation (through copnorm) ----------------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_name_the_column(value):
    with pytest.raises(ValueError, match=r"NaN/inf value\(s\) in column 2"):
        x = continuous()
        x[7, 2] = value
        copnorm(x)


def test_constant_column_is_named():
    x = continuous()
    x[:, 3] = 1.5
    with pytest.raises(ValueError, match=r"constant \(dead\) column\(s\): 3"):
        copnorm(x)


@pytest.mark.parametrize("shape", [(10,), (4, 5, 6)])
def test_wrong_dimensions_raise(shape):
    with pytest.raises(
        ValueError, match=rf"2-D \[samples, variables\], got shape {re.escape(str(shape))}"
    ):
        copnorm(np.ones(shape))


def test_too_few_samples_raise():
    with pytest.raises(ValueError, match=r"at least 2 samples.*\(1, 3\)"):
        copnorm(np.ones((1, 3)))


@pytest.mark.parametrize(
    ("data", "dtype"),
    [
        (np.array([["a", "b"], ["c", "d"]]), "<U1"),
        (np.array([[1.0, "x"], [2.0, 3.0]], dtype=object), "object"),
        (np.ones((5, 2), dtype=complex), "complex128"),
        (torch.ones(5, 2, dtype=torch.complex64), "torch.complex64"),
    ],
    ids=["strings", "objects", "numpy-complex", "torch-complex"],
)
def test_non_numeric_dtypes_raise_type_error(data, dtype):
    with pytest.raises(TypeError, match=rf"x must hold real numbers, got .*{re.escape(dtype)}"):
        copnorm(data)
