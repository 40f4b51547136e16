"""A deliberately naive reference for the Gaussian-copula measures, plus analytic values and error bars.

Written from the formulas (docs/concepts.md, the `estimators/measures.py` docstring), not from the engine's code:
numpy and scipy only, one multiplet at a time, and the entropy of every subset computed directly
from the samples with `np.cov` and `np.linalg.slogdet`. Slow on purpose: its only job is to be
obviously right, so the tests can hold the fast engine to it.

Everything returned is in bits unless a name says nats.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Sequence

import numpy as np
from scipy import integrate, stats
from scipy.special import ndtri, psi
from scipy.stats import rankdata

LN2 = math.log(2.0)
MEASURES = ("oinfo", "sinfo", "tc", "dtc")
TARGET = "y"
"""The name of the target variable inside a reference multiplet."""


# --- copula --------------------------------------------------------------------------------------


def copula(x: np.ndarray, ties: str = "stable") -> np.ndarray:
    """Per column: 1-based ranks r → standard-normal quantile of r / (T + 1).

    `ties="stable"` ranks tied values in order of appearance (scipy's "ordinal" method);
    `ties="average"` gives them their mean rank.
    """
    method = {"stable": "ordinal", "average": "average"}[ties]
    x = np.asarray(x, dtype=np.float64)
    samples = x.shape[0]
    columns = [rankdata(x[:, j], method=method) for j in range(x.shape[1])]
    return ndtri(np.stack(columns, axis=1) / (samples + 1.0))


# --- Gaussian entropies --------------------------------------------------------------------------


def bias_nats(dims: int, samples: int) -> float:
    """Expected bias of the plug-in Gaussian entropy from a (T−1)-normalised covariance (Ince 2017).

    E[ln det Σ̂] − ln det Σ = Σ_{i=1..d} ψ((T−i)/2) + d ln(2/(T−1)); the entropy carries half of it.
    """
    total = sum(psi((samples - i) / 2.0) for i in range(1, dims + 1))
    return 0.5 * (total + dims * math.log(2.0 / (samples - 1.0)))


def entropy_of_cov(cov: np.ndarray, bias_samples: int | None = None) -> float:
    """Gaussian entropy ½ ln det(2πe Σ) in bits; minus the bias for `bias_samples` samples if given."""
    cov = np.atleast_2d(cov)
    dims = cov.shape[0]
    sign, logdet = np.linalg.slogdet(cov)
    assert sign > 0, "covariance is not positive definite"
    nats = 0.5 * (dims * math.log(2 * math.pi * math.e) + logdet)
    if bias_samples is not None:
        nats -= bias_nats(dims, bias_samples)
    return nats / LN2


def sample_entropy(z: np.ndarray, columns: Sequence[int], bias_correct: bool) -> float:
    """Entropy (bits) of the columns of z, from their own (T−1)-normalised sample covariance."""
    cov = np.cov(z[:, list(columns)], rowvar=False)
    return entropy_of_cov(cov, z.shape[0] if bias_correct else None)


def within_class_entropy(
    z: np.ndarray, labels: np.ndarray, columns: Sequence[int], bias_correct: bool
) -> float:
    """H(columns | y) in bits under the one-hot Gaussian model: the pooled within-class covariance.

    The pool is Σ_c (n_c − 1) cov_c / (T − C); its bias is that of T − C + 1 samples.
    """
    classes = np.unique(labels)
    data = z[:, list(columns)]
    scatter = np.zeros((data.shape[1], data.shape[1]))
    for label in classes:
        members = data[labels == label]
        if members.shape[0] > 1:
            scatter += (members.shape[0] - 1) * np.atleast_2d(np.cov(members, rowvar=False))
    dof = data.shape[0] - classes.size
    return entropy_of_cov(scatter / dof, dof + 1 if bias_correct else None)


def discrete_entropy(labels: np.ndarray) -> float:
    """Plug-in entropy (bits) of discrete labels; it must cancel from every measure."""
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


# --- the measures, literally ----------------------------------------------------------------------


def measures_from_entropy(
    entropy: Callable[[frozenset], float], variables: Sequence[Hashable]
) -> dict[str, float]:
    """Ω, Σ, TC and DTC of a set of variables from an entropy oracle H(subset), by their definitions.

    TC = Σ_j H(j) − H(V);  DTC = H(V) − Σ_j [H(V) − H(V∖j)];
    Ω = (n−2) H(V) + Σ_j [H(j) − H(V∖j)];  Σ = −n H(V) + Σ_j [H(j) + H(V∖j)].
    The oracle may return anything linear (numbers or gradient matrices).
    """
    full = frozenset(variables)
    n = len(full)
    joint = entropy(full)
    singles = [entropy(frozenset([v])) for v in variables]
    rests = [entropy(full - {v}) for v in variables]
    return {
        "tc": sum(singles) - joint,
        "dtc": joint - sum(joint - rest for rest in rests),
        "oinfo": (n - 2) * joint + sum(s - r for s, r in zip(singles, rests, strict=True)),
        "sinfo": -n * joint + sum(s + r for s, r in zip(singles, rests, strict=True)),
    }


def reference_measures(
    x: np.ndarray,
    multiplet: Sequence[int],
    *,
    y: np.ndarray | None = None,
    target: str = "none",
    bias_correct: bool = True,
    ties: str = "stable",
) -> dict[str, float]:
    """The four measures of one multiplet of the columns of x, with an optional target y.

    `target="continuous"`: y is copula-transformed and joins the multiplet as one more variable.
    `target="discrete"`: y joins as a label variable; H(S ∪ {y}) = H(y) + H(S | y) with H(S | y) the
    pooled within-class entropy and H(y) the labels' plug-in entropy (which must cancel).
    """
    z = copula(x, ties)
    members = [int(m) for m in multiplet]
    cache: dict[frozenset, float] = {}

    if target == "continuous":
        z = np.concatenate([z, copula(np.asarray(y, dtype=np.float64)[:, None], ties)], axis=1)
        members = [*members, z.shape[1] - 1]

    def entropy(subset: frozenset) -> float:
        if subset not in cache:
            columns = sorted(v for v in subset if v != TARGET)
            if TARGET not in subset:
                cache[subset] = sample_entropy(z, columns, bias_correct)
            elif not columns:
                cache[subset] = discrete_entropy(y)
            else:
                cache[subset] = discrete_entropy(y) + within_class_entropy(
                    z, np.asarray(y), columns, bias_correct
                )
        return cache[subset]

    variables: list[Hashable] = list(members)
    if target == "discrete":
        variables.append(TARGET)
    return measures_from_entropy(entropy, variables)


# --- analytic values and sampling error -----------------------------------------------------------


def analytic_measures(cov: np.ndarray, multiplet: Sequence[int]) -> dict[str, float]:
    """The four measures (bits) of a Gaussian with covariance `cov`, restricted to `multiplet`."""

    def entropy(subset: frozenset) -> float:
        columns = sorted(subset)
        return entropy_of_cov(cov[np.ix_(columns, columns)])

    return measures_from_entropy(entropy, list(multiplet))


def delta_method_sd(cov: np.ndarray, multiplet: Sequence[int], samples: int) -> dict[str, float]:
    """Asymptotic standard deviation (bits) of each plug-in measure from `samples` Gaussian samples.

    Each measure is a linear combination of ½ ln det Σ_A, whose gradient in Σ is ½ Σ_A⁻¹ (padded);
    for a symmetric gradient G the Wishart delta method gives Var f(Σ̂) ≈ 2 tr(GΣGΣ) / T. The measures
    are scale invariant, so this is also the error of the correlation-based (copula) estimate, whose
    normal-score correlations are asymptotically as efficient as Pearson's on Gaussian data.
    """
    members = list(multiplet)
    sub = cov[np.ix_(members, members)]
    position = {m: i for i, m in enumerate(members)}

    def gradient(subset: frozenset) -> np.ndarray:
        rows = [position[v] for v in sorted(subset)]
        padded = np.zeros_like(sub)
        padded[np.ix_(rows, rows)] = 0.5 * np.linalg.inv(sub[np.ix_(rows, rows)])
        return padded / LN2

    grads = measures_from_entropy(gradient, members)
    return {
        name: math.sqrt(2.0 * np.trace(g @ sub @ g @ sub) / samples) for name, g in grads.items()
    }


def independence_omega_bound(n: int, samples: int, z: float = 5.5) -> float:
    """A bound (bits) on |Ω̂| of n independent variables from `samples` samples.

    At independence Ω's first and second-order terms vanish: Ω ≈ Σ_{i<j<k} r_ij r_jk r_ik (nats),
    checked numerically. Each sample correlation is ≈ N(0, 1/T); bounding every |r| by z/√T (z = 5.5:
    a two-sided tail of 4e-8 per pair) and doubling for the quartic remainder gives the bound.
    """
    return 2.0 * math.comb(n, 3) * (z / math.sqrt(samples)) ** 3 / LN2


def chi2_mi_bound(samples: int, dof: int, alpha: float = 1e-6) -> float:
    """Null bound (bits) on a plug-in Gaussian MI/TC: 2T·I(nats) ~ χ²(dof) under independence."""
    return stats.chi2.isf(alpha, dof) / (2.0 * samples * LN2)


def random_covariance(n: int, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A random, well-conditioned covariance with unit variances (a correlation matrix)."""
    factor = rng.standard_normal((n, n)) * strength / math.sqrt(n)
    cov = factor @ factor.T + np.eye(n)
    scale = 1.0 / np.sqrt(np.diag(cov))
    return cov * scale[:, None] * scale[None, :]


# --- one neuron and two classes: the mixture MI by quadrature ---------------------------------------


def _normal_pdf(x: float, mean: float, sd: float = 1.0) -> float:
    return math.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def mixture_entropy_nats(means: Sequence[float], sds: Sequence[float]) -> float:
    """Entropy (nats) of the equal-weight Gaussian mixture, by adaptive quadrature (scipy.quad)."""
    weight = 1.0 / len(means)

    def density(x: float) -> float:
        return weight * sum(_normal_pdf(x, m, s) for m, s in zip(means, sds, strict=True))

    def integrand(x: float) -> float:
        p = density(x)
        return -p * math.log(p) if p > 0 else 0.0

    low = min(m - 12 * s for m, s in zip(means, sds, strict=True))
    high = max(m + 12 * s for m, s in zip(means, sds, strict=True))
    points = sorted(means)
    return integrate.quad(integrand, low, high, points=points, limit=400)[0]


def two_class_mixture_mi(delta: float) -> float:
    """True I(X; Y) in bits for Y ~ Bernoulli(½), X | Y ~ N(±delta, 1): H(mixture) − H(N(0, 1))."""
    return (mixture_entropy_nats([-delta, delta], [1.0, 1.0]) - _gaussian_nats(1.0)) / LN2


def _gaussian_nats(variance: float) -> float:
    return 0.5 * math.log(2 * math.pi * math.e * variance)


def global_copula_limits(delta: float) -> dict[str, float]:
    """Large-sample limits (bits) of class-Gaussian MI estimators applied after ONE global copula.

    The population copula is g = Φ⁻¹ ∘ F with F the mixture CDF, so g(X) ~ N(0, 1) exactly while
    each class of g(X) is no longer Gaussian. With per-class moments (m_c, v_c) of g(X):
    model = H(N(0, 1)) − mean_c H(N(m_c, v_c)) (a lower bound on the true MI);
    mixture = H(½N(m_0, v_0) + ½N(m_1, v_1)) − mean_c H(N(m_c, v_c)).
    """

    def g(x: float) -> float:
        if x <= 0:
            return float(ndtri(0.5 * stats.norm.cdf(x + delta) + 0.5 * stats.norm.cdf(x - delta)))
        return -float(ndtri(0.5 * stats.norm.sf(x + delta) + 0.5 * stats.norm.sf(x - delta)))

    means, variances = [], []
    for mu in (-delta, delta):
        mean = integrate.quad(lambda x, mu=mu: g(x) * _normal_pdf(x, mu), mu - 10, mu + 10)[0]
        var = integrate.quad(
            lambda x, mu=mu, mean=mean: (g(x) - mean) ** 2 * _normal_pdf(x, mu), mu - 10, mu + 10
        )[0]
        means.append(mean)
        variances.append(var)
    conditional = sum(_gaussian_nats(v) for v in variances) / 2.0
    mixture = mixture_entropy_nats(means, [math.sqrt(v) for v in variances])
    return {
        "model": (_gaussian_nats(1.0) - conditional) / LN2,
        "mixture": (mixture - conditional) / LN2,
    }


def two_class_mi_sd(delta: float, samples: int) -> float:
    """Sampling sd (bits) of a plug-in MI estimate: √(Var[i(X;Y)] / T), i the pointwise MI.

    The pointwise MI's variance is the first-order variance of the nonparametric plug-in MI, and an
    upper bound for an efficient parametric one.
    """

    def pointwise(x: float, mu: float) -> float:
        mixture = 0.5 * (_normal_pdf(x, -delta) + _normal_pdf(x, delta))
        return math.log(_normal_pdf(x, mu) / mixture)

    moments = [0.0, 0.0]
    for mu in (-delta, delta):
        for power in (1, 2):
            moments[power - 1] += (
                0.5
                * integrate.quad(
                    lambda x, mu=mu, power=power: pointwise(x, mu) ** power * _normal_pdf(x, mu),
                    mu - 12,
                    mu + 12,
                )[0]
            )
    return math.sqrt(max(moments[1] - moments[0] ** 2, 0.0) / samples) / LN2


def colex(n: int, k: int) -> list[tuple[int, ...]]:
    """All k-subsets of range(n) in colexicographic order (by their largest element first)."""
    return sorted(itertools.combinations(range(n), k), key=lambda c: c[::-1])
