"""Tests for the multiplet search strategies against brute force on small, planted data."""

import dataclasses
import itertools
import json

import pytest
import torch

from oinfo_monitor.estimators import CopulaCovariance, copula_covariance
from oinfo_monitor.search import (
    STRATEGIES,
    Multiplet,
    SearchResult,
    search,
    search_covariance,
)
from oinfo_monitor.search.scorer import Scorer
from oinfo_monitor.search.sizes import default_exhaustive_max

SYNERGY = (1, 4, 6)  # x6 = x1 + x4 + noise
REDUNDANCY = (0, 3, 7)  # three noisy copies of one source


def planted(samples: int = 2000, neurons: int = 10, seed: int = 0) -> torch.Tensor:
    """Independent Gaussian neurons with one synergistic and one redundant triplet planted."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, neurons, generator=generator, dtype=torch.float64)
    noise = torch.randn(samples, 4, generator=generator, dtype=torch.float64)
    a, b, c = SYNERGY
    x[:, c] = x[:, a] + x[:, b] + 0.3 * noise[:, 0]
    source = torch.randn(samples, generator=generator, dtype=torch.float64)
    for column, j in zip(REDUNDANCY, (1, 2, 3), strict=True):
        x[:, column] = source + 0.4 * noise[:, j]
    return x


def correlated(samples: int = 600, neurons: int = 7, seed: int = 1) -> torch.Tensor:
    """Gaussian data with a random mixing, so every multiplet has a different Ω."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(samples, neurons, generator=generator, dtype=torch.float64)
    mixing = torch.randn(neurons, neurons, generator=generator, dtype=torch.float64)
    return base @ (torch.eye(neurons, dtype=torch.float64) + 0.5 * mixing)


def targets(x: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """No target, a continuous target and a three-class discrete target driven by x."""
    generator = torch.Generator().manual_seed(5)
    noise = torch.randn(len(x), generator=generator, dtype=torch.float64)
    return {
        "none": None,
        "continuous": x[:, 0] - x[:, 2] + noise,
        "discrete": (x[:, 1] > 0).long() + (x[:, 3] + noise > 0.5).long(),
    }


def brute_force(stats: CopulaCovariance, size: int) -> tuple[Multiplet, Multiplet]:
    """Min- and max-Ω multiplets of one size, one `stats.oinfo` call per multiplet."""
    scored = [
        (float(stats.oinfo([members])[0]), members)
        for members in itertools.combinations(range(stats.n_variables), size)
    ]
    low, high = min(scored), max(scored)
    return (
        Multiplet(low[0], low[1], "exhaustive", True),
        Multiplet(high[0], high[1], "exhaustive", True),
    )


def without_time(result: SearchResult) -> SearchResult:
    """The result with its wall time zeroed, for comparisons between runs."""
    return dataclasses.replace(result, seconds=0.0)


@pytest.mark.parametrize("target", ["none", "continuous", "discrete"])
def test_exhaustive_equals_brute_force(target: str) -> None:
    x = correlated()
    stats = copula_covariance(x, y=targets(x)[target])
    result = search_covariance(stats, strategy="exhaustive", sizes=5)
    assert sorted(result.synergy) == [3, 4, 5]
    for size in (3, 4, 5):
        low, high = brute_force(stats, size)
        assert result.synergy[size].members == low.members
        assert result.redundancy[size].members == high.members
        assert result.synergy[size].value == pytest.approx(low.value, abs=1e-12)
        assert result.redundancy[size].value == pytest.approx(high.value, abs=1e-12)
        assert result.synergy[size].exact and result.synergy[size].strategy == "exhaustive"
    assert result.evaluated == 35 + 35 + 21
    assert result.target == target


@pytest.mark.parametrize("beam", [1, 3])
def test_greedy_recovers_the_planted_multiplets(beam: int) -> None:
    result = search(planted(), strategy="greedy", sizes=6, start_size=3, beam=beam)
    assert result.synergy[3].members == SYNERGY
    assert result.redundancy[3].members == REDUNDANCY
    for size in (4, 5, 6):
        assert set(SYNERGY) <= set(result.synergy[size].members)
        assert set(REDUNDANCY) <= set(result.redundancy[size].members)
        assert result.synergy[size].strategy == "greedy" and not result.synergy[size].exact
    assert result.most_synergistic().value < -1.0 < 0.5 < result.most_redundant().value


def test_greedy_equals_exhaustive_when_the_seed_covers_every_size() -> None:
    stats = copula_covariance(correlated())
    greedy = search_covariance(stats, strategy="greedy", sizes=5, start_size=5, beam=2)
    exhaustive = search_covariance(stats, strategy="exhaustive", sizes=5)
    assert greedy.synergy == exhaustive.synergy
    assert greedy.redundancy == exhaustive.redundancy
    assert greedy.plateau == {"synergy": [], "redundancy": []}


@pytest.mark.parametrize("target", ["none", "continuous", "discrete"])
def test_incremental_growth_equals_direct_scores(target: str) -> None:
    x = correlated(neurons=8)
    stats = copula_covariance(x, y=targets(x)[target])
    parents = torch.tensor([[0, 2, 5], [1, 3, 4], [2, 6, 7]])
    grown = Scorer(stats).grow(parents)
    for row, parent in enumerate(parents.tolist()):
        for neuron in range(stats.n_variables):
            if neuron in parent:
                assert torch.isnan(grown[row, neuron])
                continue
            direct = stats.oinfo([sorted([*parent, neuron])])[0]
            assert float(grown[row, neuron]) == pytest.approx(float(direct), abs=1e-9)
    result = search_covariance(stats, strategy="greedy", sizes=8, start_size=3, beam=2)
    for found in (result.synergy, result.redundancy):
        for multiplet in found.values():
            direct = float(stats.oinfo([multiplet.members])[0])
            assert multiplet.value == pytest.approx(direct, abs=1e-9)


def test_greedy_seeds_from_correlated_pairs_when_triplets_are_too_many() -> None:
    x = planted(samples=1000, neurons=200)
    result = search(x, strategy="greedy", sizes=4)
    assert "most correlated pairs" in result.reason
    assert result.synergy[3] == Multiplet(result.synergy[3].value, SYNERGY, "greedy", False)
    assert result.redundancy[3].members == REDUNDANCY


def clustered(samples: int = 800, clusters: int = 10, per_cluster: int = 4) -> torch.Tensor:
    """Neurons in tight groups driven by shared factors, so Ward recovers the groups as bins."""
    generator = torch.Generator().manual_seed(3)
    factors = torch.randn(samples, clusters, generator=generator, dtype=torch.float64)
    noise = torch.randn(samples, clusters * per_cluster, generator=generator, dtype=torch.float64)
    return factors.repeat_interleave(per_cluster, dim=1) + 0.5 * noise


@pytest.mark.parametrize("target", ["none", "continuous", "discrete"])
def test_clusters_equal_direct_scores_of_every_union(target: str) -> None:
    x = clustered(clusters=5, per_cluster=3)
    stats = copula_covariance(x, y=targets(x)[target])
    result = search_covariance(stats, strategy="clusters", bins=5)
    assert sorted(map(len, result.bins)) == [3] * 5
    assert sorted(i for b in result.bins for i in b) == list(range(15))
    by_size: dict[int, list[tuple[int, ...]]] = {}
    for count in range(2, 6):
        for chosen in itertools.combinations(result.bins, count):
            union = tuple(sorted(i for b in chosen for i in b))
            by_size.setdefault(len(union), []).append(union)
    assert sorted(result.synergy) == sorted(by_size)
    for size, unions in by_size.items():
        values = stats.oinfo(unions)
        low, high = int(values.argmin()), int(values.argmax())
        assert result.synergy[size].value == pytest.approx(float(values[low]), abs=1e-9)
        assert result.redundancy[size].value == pytest.approx(float(values[high]), abs=1e-9)
        assert result.synergy[size].members == unions[low]
        assert result.redundancy[size].strategy == "clusters"
    assert result.evaluated == 26


def test_clusters_score_all_1013_unions_of_ten_bins() -> None:
    result = search(clustered(), strategy="clusters")
    assert len(result.bins) == 10
    assert result.evaluated == 1013
    assert sorted(result.synergy) == list(range(8, 41, 4))
    assert "1,013 unions" in result.reason


def test_anneal_finds_planted_multiplets_among_512_variables() -> None:
    x = planted(samples=1000, neurons=512)
    result = search(x, strategy="anneal", sizes=[3, 4], steps=20)
    assert result.synergy[3].members == SYNERGY
    assert result.redundancy[3].members == REDUNDANCY
    assert set(SYNERGY) <= set(result.synergy[4].members)
    assert set(REDUNDANCY) <= set(result.redundancy[4].members)
    assert result.synergy[3].strategy == "anneal" and not result.synergy[3].exact


@pytest.mark.parametrize("target", ["continuous", "discrete"])
def test_anneal_accepts_a_target(target: str) -> None:
    """Its pair seed ranks the neurons' pairs only, never a pair with the continuous target."""
    x = planted(samples=600, neurons=30)
    result = search(x, y=targets(x)[target], strategy="anneal", sizes=[3, 4], steps=5, chains=2)
    assert sorted(result.synergy) == [3, 4] and sorted(result.redundancy) == [3, 4]
    assert all(max(m.members) < 30 for m in result.synergy.values())


@pytest.mark.parametrize("strategy", ["anneal", "greedy", "clusters", "auto"])
def test_searches_are_deterministic_under_a_seed(strategy: str) -> None:
    x = planted(samples=500, neurons=40)
    options = {"steps": 10, "sizes": 5} if strategy == "anneal" else {"sizes": 6}
    if strategy == "clusters":
        options = {"bins": 5}
    first = search(x, strategy=strategy, seed=3, **options)
    second = search(x, strategy=strategy, seed=3, **options)
    assert without_time(first) == without_time(second)


def test_index_map_maps_members_and_bins_back() -> None:
    stats = copula_covariance(planted())
    index_map = [100 - 3 * i for i in range(10)]
    plain = search_covariance(stats, strategy="greedy", sizes=4)
    mapped = search_covariance(stats, strategy="greedy", sizes=4, index_map=index_map)
    for size, multiplet in plain.synergy.items():
        assert mapped.synergy[size].members == tuple(
            sorted(index_map[i] for i in multiplet.members)
        )
        assert mapped.synergy[size].value == multiplet.value
    clusters = search_covariance(stats, strategy="clusters", bins=3, index_map=index_map)
    assert sorted(i for b in clusters.bins for i in b) == sorted(index_map)


def test_round_trips_through_dict_and_json_are_exact() -> None:
    stats = copula_covariance(planted())
    for strategy, options in (("greedy", {"sizes": 6}), ("clusters", {"bins": 4})):
        result = search_covariance(stats, strategy=strategy, **options)
        assert SearchResult.from_dict(result.to_dict()) == result
        assert SearchResult.from_json(result.to_json()) == result
        assert json.loads(result.to_json())["synergy"]["3" if strategy == "greedy" else "6"]


def test_results_unpack_and_report_extremes() -> None:
    result = search(planted(), strategy="exhaustive", sizes=4)
    value, members = result.synergy[3]
    assert (value, members) == (result.synergy[3].value, SYNERGY)
    assert result.most_synergistic() in result.synergy.values()
    assert result.most_redundant().value == max(m.value for m in result.redundancy.values())
    assert result.units == "bits" and result.ties == "random" and result.bias_correct


def test_plateau_is_reported_when_an_independent_neuron_joins() -> None:
    synergy = torch.tensor([[1.0, 0.0, 0.6], [0.0, 1.0, 0.6], [0.6, 0.6, 1.0]], dtype=torch.float64)
    cov = torch.block_diag(synergy, torch.eye(3, dtype=torch.float64))
    stats = CopulaCovariance(cov, 500, 6, "none", None, 0, True, "random", 0)
    result = search_covariance(stats, strategy="greedy", sizes=5, start_size=3)
    assert result.synergy[3].members == (0, 1, 2)
    assert result.plateau["synergy"] == [4, 5]
    sampled = search(planted(), strategy="greedy", sizes=5, start_size=3, plateau_tol=1e-2)
    assert sampled.plateau["synergy"] == [4, 5]
    strict = search(planted(), strategy="greedy", sizes=5, start_size=3)
    assert strict.plateau == {"synergy": [], "redundancy": []}


def test_auto_explains_its_choice_and_screens_a_wide_layer() -> None:
    small = search(planted(), sizes=5)
    assert small.strategy == "exhaustive" and small.reason.startswith("auto -> exhaustive")
    medium = search(planted(samples=400, neurons=60), max_size=8)
    assert medium.strategy == "greedy" and "would take about" in medium.reason
    generator = torch.Generator().manual_seed(0)
    wide = torch.randn(60, 1100, generator=generator, dtype=torch.float64)
    result = search(wide, max_size=3, time_budget=0.5)
    assert result.strategy in {"greedy", "exhaustive"} and result.searched_neurons == 1024
    assert result.reason.startswith("screened 1,024 of 1,100 neurons")
    assert "auto -> " in result.reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "beam"}, "strategy must be one of 'auto', 'exhaustive'"),
        ({"strategy": "greedy", "beams": 2}, "unknown option(s) 'beams' for strategy 'greedy'"),
        ({"strategy": "exhaustive", "beam": 2}, "valid options are: max_size"),
        ({"sizes": 2}, "O-information of a pair is always 0"),
        ({"sizes": [3, 2]}, "O-information of a pair is always 0"),
        ({"sizes": [1]}, "must be >= 3"),
        ({"sizes": []}, "sizes is empty"),
        ({"sizes": [3.0]}, "sizes must hold integers"),
        ({"sizes": 11}, "exceed the number of neurons (10)"),
        ({"strategy": "greedy", "beam": 0}, "beam must be an integer >= 1, got 0"),
        ({"strategy": "greedy", "beam": True}, "beam must be an integer >= 1"),
        ({"strategy": "clusters", "bins": 3, "min_bins": 4}, "min_bins (4) must not exceed bins"),
        ({"strategy": "clusters", "bins": 11}, "bins (11) exceeds the number of neurons"),
        ({"strategy": "anneal", "temperature": (0.1, 1.0)}, "must cool"),
        ({"strategy": "auto", "time_budget": 0}, "time_budget must be a positive finite"),
        ({"strategy": "greedy", "sizes": 4, "max_size": 5}, "either sizes or the max_size"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as error:
        search(planted(samples=200), **kwargs)
    assert message in str(error.value)


def test_bad_index_maps_and_tiny_data_are_rejected() -> None:
    stats = copula_covariance(planted(samples=200))
    with pytest.raises(ValueError, match="index_map has 3 entries"):
        search_covariance(stats, index_map=[0, 1, 2])
    with pytest.raises(ValueError, match="repeats an index"):
        search_covariance(stats, index_map=[0] * 10)
    with pytest.raises(ValueError, match="at least 3 neurons"):
        search(planted(samples=200)[:, :2])
    with pytest.raises(ValueError, match="needs more than"):
        search(planted(samples=6), sizes=5, strategy="exhaustive")
    assert set(STRATEGIES) == {"auto", "exhaustive", "greedy", "clusters", "anneal"}


def test_default_sizes_respect_the_sample_count() -> None:
    """Default sizes stop at 5 samples per variable; explicit sizes may go up to full rank."""
    result = search(planted(samples=30), strategy="greedy")  # 30 // 5 = 6
    assert sorted(result.synergy) == [3, 4, 5, 6]
    for strategy in ("exhaustive", "clusters", "anneal", "auto"):
        options = {"bins": 8} if strategy == "clusters" else {}
        found = search(planted(samples=30), strategy=strategy, **options)
        assert max(found.synergy) <= 6, strategy
    assert max(search(planted(samples=30), sizes=[3, 7], strategy="greedy").synergy) == 7
    with pytest.raises(ValueError, match="support no multiplet of 3 neurons"):
        search(planted(samples=12))


def test_size_limit_caps_default_sizes_and_refuses_larger_explicit_ones() -> None:
    x = planted(samples=400)
    stats = copula_covariance(x)
    assert max(search_covariance(stats, strategy="greedy", size_limit=4).synergy) == 4
    with pytest.raises(ValueError, match="exceed the size limit 4"):
        search_covariance(stats, sizes=[3, 5], size_limit=4)


def test_options_are_checked_before_any_estimation() -> None:
    x = planted(samples=200)
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="strategy must be one of"):
        search(x, strategy="fast")
    with pytest.raises(ValueError, match="NaN"):
        search(x)


def test_default_exhaustive_sizes_stay_within_a_million_per_size() -> None:
    assert [default_exhaustive_max(n) for n in (8, 20, 30, 200)] == [8, 20, 6, 3]
