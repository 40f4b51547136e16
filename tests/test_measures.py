"""Tests for oinfo_monitor.measures: O-, S-information, TC and DTC against a naive reference and closed forms."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from reference import (
    LN2,
    MEASURES,
    analytic_measures,
    bias_nats,
    delta_method_sd,
    independence_omega_bound,
    measures_from_entropy,
    random_covariance,
    reference_measures,
)

from oinfo_monitor.estimators import (
    CopulaCovariance,
    copula_covariance,
    dtc,
    oinfo,
    sinfo,
    tc,
)

FUNCTIONS = {"oinfo": oinfo, "sinfo": sinfo, "tc": tc, "dtc": dtc}
VARIABLES = 20
# Mixed sizes in one list, in no particular order: 17 and 18 exercise the LAPACK path (> 16).
MULTIPLETS = [
    (0, 1, 2),
    (4, 1, 9, 7),
    (3, 11),
    (2, 5, 8, 13, 19),
    (6, 0, 3),
    tuple(range(17)),
    (19, 18, 17, 16, 15, 14),
    tuple(range(2, 20)),
]


def dependent_data(samples=400, variables=VARIABLES, seed=0):
    """Non-Gaussian, correlated, tie-free columns: monotone maps of a random Gaussian mixture."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((variables, variables)) / math.sqrt(variables)
    latent = rng.standard_normal((samples, variables)) @ (np.eye(variables) + 1.5 * mixing).T
    latent[:, ::3] = np.exp(latent[:, ::3])
    latent[:, 1::3] = latent[:, 1::3] ** 3
    return latent, rng


def continuous_target(x, rng):
    return np.tanh(x[:, :5].sum(1)) + 0.3 * rng.standard_normal(x.shape[0])


def discrete_target(x, rng, classes=4):
    score = x[:, 2] - x[:, 7] + rng.standard_normal(x.shape[0])
    return np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))


def targets(x, rng):
    """The three target modes: none, a continuous target, integer labels."""
    return {
        "none": None,
        "continuous": continuous_target(x, rng),
        "discrete": discrete_target(x, rng),
    }


def engine(x, multiplets, **kwargs):
    """All four measures from the engine (one copula covariance, as the functions build), as numpy."""
    stats = copula_covariance(x, **kwargs)
    return {name: stats.measure(name, multiplets).numpy() for name in MEASURES}


def reference(x, multiplets, **kwargs):
    rows = [reference_measures(x, m, **kwargs) for m in multiplets]
    return {name: np.array([row[name] for row in rows]) for name in MEASURES}


# --- agreement with the naive reference -----------------------------------------------------------


@pytest.mark.parametrize("bias_correct", [True, False])
@pytest.mark.parametrize("target", ["none", "continuous", "discrete"])
def test_engine_matches_reference(target, bias_correct):
    """All four measures, mixed sizes in one call, agree with the reference to 1e-9 bits."""
    x, rng = dependent_data()
    y = targets(x, rng)[target]
    got = engine(x, MULTIPLETS, y=y, bias_correct=bias_correct, ties="stable")
    expected = reference(x, MULTIPLETS, y=y, target=target, bias_correct=bias_correct)
    for name in MEASURES:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("target", ["none", "continuous", "discrete"])
def test_default_random_policy_matches_reference_without_ties(target):
    """On tie-free data the default "random" policy ranks exactly like the reference."""
    x, rng = dependent_data(seed=1)
    y = targets(x, rng)[target]
    got = engine(x, MULTIPLETS[:5], y=y, seed=123)
    expected = reference(x, MULTIPLETS[:5], y=y, target=target)
    for name in MEASURES:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("ties", ["stable", "average"])
@pytest.mark.parametrize("target", ["none", "continuous", "discrete"])
def test_engine_matches_reference_on_tied_data(ties, target):
    """With heavy ties (ReLU zeros, rounding) the deterministic policies match the reference's ranking."""
    x, rng = dependent_data(seed=2)
    x = np.round(np.maximum(x, 0.0), 2)
    y = targets(x + 0.001 * rng.standard_normal(x.shape), rng)[target]
    if target == "continuous":
        y = np.round(y, 1)
    multiplets = MULTIPLETS[:5]
    got = engine(x, multiplets, y=y, ties=ties)
    expected = reference(x, multiplets, y=y, target=target, ties=ties)
    for name in MEASURES:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-9, err_msg=name)


def test_all_variables_by_default():
    """`multiplets=None` scores one multiplet of every column."""
    x, _ = dependent_data(variables=6)
    got = oinfo(x, ties="stable")
    assert got.shape == (1,)
    assert got.item() == pytest.approx(reference_measures(x, range(6))["oinfo"], abs=1e-9)


def test_copula_covariance_reuse_equals_functions():
    """Scoring from one `CopulaCovariance` equals the one-call functions and records its settings."""
    x, rng = dependent_data()
    y = discrete_target(x, rng)
    stats = copula_covariance(x, y=y, bias_correct=False, ties="average", seed=4)
    assert (stats.target, stats.n_classes, stats.n_samples, stats.n_variables) == (
        "discrete",
        4,
        400,
        VARIABLES,
    )
    assert (stats.ties, stats.seed, stats.bias_correct) == ("average", 4, False)
    for name, function in FUNCTIONS.items():
        expected = function(x, MULTIPLETS, y=y, bias_correct=False, ties="average", seed=4)
        assert torch.equal(getattr(stats, name)(MULTIPLETS), expected)
        assert torch.equal(stats.measure(name, MULTIPLETS), expected)
    with pytest.raises(ValueError, match="unknown measure 'mi'"):
        stats.measure("mi", MULTIPLETS)


# --- closed forms ---------------------------------------------------------------------------------


def gaussian_samples(cov, samples, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((samples, cov.shape[0])) @ np.linalg.cholesky(cov).T


def assert_converges(x, cov, multiplets, samples):
    """Each estimate is within 5 delta-method standard deviations (+1e-4 bits) of its analytic value."""
    got = engine(x, multiplets)
    for i, multiplet in enumerate(multiplets):
        truth = analytic_measures(cov, multiplet)
        sd = delta_method_sd(cov, multiplet, samples)
        for name in MEASURES:
            tolerance = 5.0 * sd[name] + 1e-4
            assert abs(got[name][i] - truth[name]) < tolerance, (multiplet, name, truth[name])


def test_converges_to_analytic_values():
    """For Gaussian data with a known covariance (unit variances), T = 200k recovers the analytic measures.

    The copula transform of such data recovers its correlation structure, so the Gaussian formulas
    evaluated on the true covariance are the limit.
    """
    samples = 200_000
    cov = random_covariance(6, np.random.default_rng(11), strength=1.5)
    multiplets = [(0, 1, 2), (1, 3, 5), (0, 2, 3, 4), (4, 0, 1, 5, 2), tuple(range(6))]
    assert_converges(gaussian_samples(cov, samples, 0), cov, multiplets, samples)


def test_converges_with_nonunit_variances_and_monotone_marginals():
    """Scale and strictly monotone marginals do not change the limit: it depends on the correlations only."""
    samples = 200_000
    correlation = random_covariance(5, np.random.default_rng(5), strength=1.0)
    x = gaussian_samples(correlation, samples, 1)
    x = x * np.array([0.1, 1.0, 7.0, 2.0, 30.0])
    x[:, 1] = np.exp(x[:, 1])
    x[:, 3] = x[:, 3] ** 3
    assert_converges(x, correlation, [(0, 1, 2), (1, 2, 3, 4), (0, 1, 2, 3, 4)], samples)


def test_bias_correction_makes_measures_unbiased():
    """From small Gaussian samples the corrected measures are unbiased; the plug-in ones carry the predicted bias.

    Each replicate's own sample covariance (no copula, whose rank marginals would change the
    small-sample distribution) is one diagonal block of a `CopulaCovariance`, and each replicate is
    one multiplet of it, so the engine scores them all in one call. Every entropy is then a plug-in
    Gaussian entropy whose expectation the correction makes exact. The plug-in TC, DTC and
    S-information are off by many standard errors; Ω's bias mostly cancels between its terms.
    """
    reps, n, samples = 600, 5, 40
    rng = np.random.default_rng(samples)
    cov = random_covariance(n, rng, strength=2.0)
    truth = analytic_measures(cov, range(n))
    predicted = measures_from_entropy(lambda s: bias_nats(len(s), samples) / LN2, range(n))
    data = rng.standard_normal((reps, samples, n)) @ np.linalg.cholesky(cov).T
    centred = data - data.mean(1, keepdims=True)
    sample_covs = np.einsum("rti,rtj->rij", centred, centred) / (samples - 1)
    members = np.arange(reps * n).reshape(reps, n)
    blocks = np.zeros((reps * n, reps * n))
    blocks[members[:, :, None], members[:, None, :]] = sample_covs
    blocks = torch.from_numpy(blocks)
    members = torch.from_numpy(members)
    for correct in (True, False):
        stats = CopulaCovariance(blocks, samples, reps * n, "none", None, 0, correct, "stable", 0)
        for name in MEASURES:
            values = stats.measure(name, members).numpy()
            stderr = values.std(ddof=1) / math.sqrt(reps)
            expected = truth[name] + (0.0 if correct else predicted[name])
            assert abs(values.mean() - expected) < 4.5 * stderr, (name, correct)
            if not correct and name != "oinfo":
                assert abs(values.mean() - truth[name]) > 8 * stderr, name


# --- structure ------------------------------------------------------------------------------------


def test_redundancy_gives_positive_omega_growing_with_n():
    """Noisy copies of one source: Ω > 0, increasing with the number of copies, at its analytic value."""
    samples, noise = 50_000, 0.8
    rng = np.random.default_rng(0)
    source = rng.standard_normal((samples, 1))
    x = source + noise * rng.standard_normal((samples, 6))
    multiplets = [tuple(range(n)) for n in range(3, 7)]
    got = oinfo(x, multiplets).numpy()
    assert (got > 0).all()
    assert (np.diff(got) > 0).all()
    cov = np.full((6, 6), 1.0) + noise**2 * np.eye(6)
    for value, multiplet in zip(got, multiplets, strict=True):
        truth = analytic_measures(cov, multiplet)["oinfo"]
        assert value == pytest.approx(
            truth, abs=5 * delta_method_sd(cov, multiplet, samples)["oinfo"]
        )


def test_sum_with_small_noise_gives_negative_omega():
    """x3 = x1 + x2 + small noise is synergy-dominated: Ω < 0, at its analytic value."""
    samples, noise = 50_000, 0.1
    rng = np.random.default_rng(1)
    x = rng.standard_normal((samples, 3))
    x[:, 2] = x[:, 0] + x[:, 1] + noise * x[:, 2]
    got = oinfo(x).item()
    cov = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 2.0 + noise**2]])
    truth = analytic_measures(cov, (0, 1, 2))["oinfo"]
    assert truth < -2.0
    assert got == pytest.approx(truth, abs=5 * delta_method_sd(cov, (0, 1, 2), samples)["oinfo"])


@pytest.mark.parametrize("n", [3, 4, 6])
def test_independent_variables_give_zero_omega(n):
    """Independent columns: |Ω| within the independence bound (Ω's error is third order there)."""
    samples = 20_000
    x = np.random.default_rng(n).standard_normal((samples, n))
    for bias_correct in (True, False):
        got = oinfo(x, bias_correct=bias_correct).item()
        assert abs(got) < independence_omega_bound(n, samples), got


def test_omega_of_a_pair_is_exactly_zero():
    """Ω of two variables is 0 by definition, to 1e-12, also when mixed with larger multiplets."""
    x, _ = dependent_data()
    pairs = [(0, 1), (3, 11), (19, 2), (5, 6)]
    for bias_correct in (True, False):
        got = oinfo(x, [*pairs, (0, 1, 2)], bias_correct=bias_correct).numpy()
        np.testing.assert_array_less(np.abs(got[:4]), 1e-12)


# --- invariances ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["none", "continuous", "discrete"])
def test_strictly_monotone_column_transforms_change_nothing(target):
    """exp, cube and positive affine maps of columns (and of a continuous y) leave every value bit-identical."""
    x, rng = dependent_data(seed=4)
    x = np.round(np.maximum(x, 0), 1)  # ties, so the policy's tie-breaking must be reproduced too
    y = targets(x + 0.01 * rng.standard_normal(x.shape), rng)[target]
    transformed = x.copy()
    transformed[:, 0] = np.exp(x[:, 0])
    transformed[:, 1] = x[:, 1] ** 3
    transformed[:, 4] = 3.0 * x[:, 4] + 11.0
    transformed[:, 9] = np.log1p(x[:, 9])
    y2 = np.exp(y) if target == "continuous" else y
    for ties in ("random", "stable", "average"):
        before = engine(x, MULTIPLETS, y=y, ties=ties)
        after = engine(transformed, MULTIPLETS, y=y2, ties=ties)
        for name in MEASURES:
            np.testing.assert_array_equal(before[name], after[name])


@pytest.mark.parametrize("target", ["none", "continuous", "discrete"])
def test_member_order_within_a_multiplet_does_not_matter(target):
    """Permuting the members of each multiplet changes no measure beyond rounding (1e-12)."""
    x, rng = dependent_data(seed=5)
    y = targets(x, rng)[target]
    shuffled = [tuple(rng.permutation(m)) for m in MULTIPLETS]
    before, after = engine(x, MULTIPLETS, y=y), engine(x, shuffled, y=y)
    for name in MEASURES:
        np.testing.assert_allclose(before[name], after[name], rtol=0, atol=1e-12)


@pytest.mark.parametrize("target", ["none", "continuous", "discrete"])
def test_permuting_samples_without_ties_changes_nothing(target):
    """Shuffling the rows of tie-free x (and y with them) leaves every measure equal to 1e-12."""
    x, rng = dependent_data(seed=6)
    y = targets(x, rng)[target]
    order = rng.permutation(len(x))
    for ties in ("random", "stable", "average"):
        before = engine(x, MULTIPLETS, y=y, ties=ties)
        after = engine(x[order], MULTIPLETS, y=None if y is None else y[order], ties=ties)
        for name in MEASURES:
            np.testing.assert_allclose(before[name], after[name], rtol=0, atol=1e-12)


def test_permuting_samples_with_ties_changes_values_only_by_tie_breaking():
    """With ties, "average" ignores row order (1e-12); "random" moves only within its tie-breaking spread."""
    x, rng = dependent_data(samples=600, seed=7)
    x = np.round(np.maximum(x, 0), 1)
    order = rng.permutation(len(x))
    before = oinfo(x, MULTIPLETS, ties="average").numpy()
    after = oinfo(x[order], MULTIPLETS, ties="average").numpy()
    np.testing.assert_allclose(before, after, rtol=0, atol=1e-12)

    seeds = np.stack([oinfo(x, MULTIPLETS, seed=s).numpy() for s in range(12)])
    spread = seeds.max(0) - seeds.min(0)
    pairs = np.array([len(m) == 2 for m in MULTIPLETS])
    assert (spread[~pairs] > 0).all()
    assert (np.abs(seeds[:, pairs]) < 1e-12).all()  # Ω of a pair is 0, whatever the tie-breaking
    permuted = oinfo(x[order], MULTIPLETS).numpy()
    assert (np.abs(permuted - seeds.mean(0))[~pairs] < 2 * spread[~pairs]).all()


# --- discrete targets -----------------------------------------------------------------------------


def test_discrete_target_ignores_label_names_and_encodings():
    """Relabelled classes, a [T, 1] label column and float labels with target_kind="discrete" agree."""
    x, rng = dependent_data()
    labels = discrete_target(x, rng)
    renamed = np.array([7, -3, 100, 5])[labels]
    expected = oinfo(x, MULTIPLETS, y=labels)
    for variant in (
        oinfo(x, MULTIPLETS, y=renamed),
        oinfo(x, MULTIPLETS, y=torch.from_numpy(labels)[:, None]),
        oinfo(x, MULTIPLETS, y=labels.astype(float), target_kind="discrete"),
    ):
        torch.testing.assert_close(variant, expected, rtol=0, atol=1e-12)
    as_bool = oinfo(x, MULTIPLETS, y=labels > 1)
    as_int = oinfo(x, MULTIPLETS, y=(labels > 1).astype(np.int64))
    torch.testing.assert_close(as_bool, as_int, rtol=0, atol=1e-12)


def test_float_target_is_continuous_unless_told():
    """A float y is a copula variable by default; target_kind="continuous" forces that on integer y."""
    x, rng = dependent_data()
    y = continuous_target(x, rng)
    ranks = np.argsort(np.argsort(y))  # integer y with the same ranks as y
    torch.testing.assert_close(
        oinfo(x, MULTIPLETS, y=y),
        oinfo(x, MULTIPLETS, y=ranks, target_kind="continuous"),
        rtol=0,
        atol=1e-12,
    )


# --- device and dtype -----------------------------------------------------------------------------


DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("target", ["none", "continuous", "discrete"])
def test_results_are_float64_on_the_input_device(device, target):
    """Numpy, float32 and float64 tensors give float64 results on x's device, all equal."""
    x, rng = dependent_data()
    y = targets(x, rng)[target]
    from_numpy = engine(x, MULTIPLETS, y=y)
    y_tensor = None if y is None else torch.from_numpy(y).to(device)
    for data in (torch.from_numpy(x).to(device), torch.from_numpy(x).float().to(device)):
        for name, function in FUNCTIONS.items():
            result = function(data, MULTIPLETS, y=y_tensor)
            assert result.dtype == torch.float64
            assert result.device.type == device
            assert result.shape == (len(MULTIPLETS),)
            if data.dtype == torch.float64:
                np.testing.assert_allclose(
                    result.cpu().numpy(), from_numpy[name], rtol=0, atol=1e-10
                )


# --- bad input ------------------------------------------------------------------------------------


@pytest.fixture
def x():
    return dependent_data(samples=50, variables=6)[0]


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_x_names_the_column(x, value):
    x[10, 4] = value
    with pytest.raises(ValueError, match=r"x has 1 NaN/inf value\(s\) in column 4"):
        oinfo(x, [(0, 1, 2)])


def test_constant_column_is_named(x):
    x[:, 5] = 0.0
    with pytest.raises(ValueError, match=r"constant \(dead\) column\(s\): 5"):
        oinfo(x, [(0, 1, 2)])


@pytest.mark.parametrize("shape", [(30,), (30, 4, 2)])
def test_wrong_number_of_dimensions(shape):
    data = np.random.default_rng(0).standard_normal(shape)
    with pytest.raises(
        ValueError, match=re.escape(f"x must be 2-D [samples, variables], got shape {shape}")
    ):
        oinfo(data)


@pytest.mark.parametrize(
    "data",
    [np.full((10, 3), "a"), np.ones((10, 3), dtype=object), np.ones((10, 3), dtype=np.complex64)],
    ids=["strings", "objects", "complex"],
)
def test_non_numeric_x_is_a_type_error(data):
    with pytest.raises(TypeError, match="x must hold real numbers, got numpy dtype"):
        oinfo(data)


def test_too_few_samples_for_the_multiplet_size(x):
    """A multiplet needs more samples than variables + 1; the message gives both numbers."""
    few = x[:5]
    with pytest.raises(
        ValueError, match=r"multiplet of 4 variables needs more than 5 samples, got 5"
    ):
        oinfo(few, [(0, 1, 2), (0, 1, 2, 3)])
    with pytest.raises(
        ValueError, match=r"multiplet of 4 variables needs more than 5 samples, got 5"
    ):
        oinfo(few, [(0, 1, 2)], y=np.linspace(0, 1, 5))
    with pytest.raises(
        ValueError, match=r"3 neurons with a 3-class target needs more than 7 samples, got 7"
    ):
        oinfo(x[:7], [(0, 1, 2)], y=np.array([0, 1, 2, 0, 1, 2, 0]))


def test_target_length_mismatch(x):
    with pytest.raises(ValueError, match="y has 49 samples but x has 50"):
        oinfo(x, [(0, 1, 2)], y=np.arange(49) % 2)


def test_single_class_target(x):
    with pytest.raises(ValueError, match="y has a single class"):
        oinfo(x, [(0, 1, 2)], y=np.zeros(50, dtype=int))


def test_bad_continuous_target(x):
    y = np.linspace(0.0, 1.0, 50)
    y[3] = np.nan
    with pytest.raises(ValueError, match=r"y has 1 NaN/inf value\(s\) in column 0"):
        oinfo(x, [(0, 1, 2)], y=y)
    with pytest.raises(ValueError, match=r"y has 1 constant \(dead\) column"):
        oinfo(x, [(0, 1, 2)], y=np.ones(50))
    with pytest.raises(ValueError, match="y has NaN/inf labels"):
        oinfo(x, [(0, 1, 2)], y=y, target_kind="discrete")
    with pytest.raises(ValueError, match=r"y must be 1-D \[samples\], got shape \(50, 2\)"):
        oinfo(x, [(0, 1, 2)], y=np.ones((50, 2)))
    with pytest.raises(TypeError, match="y must hold real numbers"):
        oinfo(x, [(0, 1, 2)], y=np.array(["a", "b"] * 25))
    with pytest.raises(ValueError, match=r"target kind must be .*got 'labels'"):
        oinfo(x, [(0, 1, 2)], y=np.arange(50) % 2, target_kind="labels")


def test_unknown_tie_policy(x):
    with pytest.raises(ValueError, match=r"ties must be one of .*got 'first'"):
        oinfo(x, [(0, 1, 2)], ties="first")


def test_duplicated_column_is_singular(x):
    """An exact copy (or a monotone copy, identical after the copula) makes the block singular: named."""
    x[:, 5] = np.exp(x[:, 1])
    for multiplet in ([0, 1, 5], [1, 2, 3, 5], [5, 4, 3, 2, 1]):
        with pytest.raises(ValueError, match=re.escape(f"multiplet {multiplet} is singular")):
            oinfo(x, [(0, 2, 3), multiplet])


def test_scoring_restores_the_callers_thread_count():
    """Scoring runs on one intra-op thread and gives the caller's setting back, also after an error."""
    x, _ = dependent_data(seed=3)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        oinfo(x, MULTIPLETS)
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="out of range"):
            oinfo(x, [(0, 1, 99)])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_supported_size_bounds_the_noise() -> None:
    """At 5 samples per variable one multiplet's Ω on independent data has SD under 0.1 bits;
    at half that ratio it is several times larger: the rule behind `supported_size`."""
    generator = torch.Generator().manual_seed(0)

    def spread(samples: int, size: int) -> float:
        values = [
            float(oinfo(torch.randn(samples, size, generator=generator, dtype=torch.float64))[0])
            for _ in range(200)
        ]
        return float(torch.tensor(values).std())

    at_rule, below = spread(50, 10), spread(25, 10)
    assert at_rule < 0.1
    assert below > 3 * at_rule
    stats = copula_covariance(torch.randn(50, 12, generator=generator))
    assert stats.supported_size() == 10
    labelled = copula_covariance(torch.randn(50, 12), y=torch.arange(50) % 5)
    assert labelled.supported_size() == 9
