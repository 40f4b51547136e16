"""Wide layers: no N×N covariance, a screened ``"auto"`` search that says so, and values that
agree with the full-covariance path where both can run."""

from __future__ import annotations

import warnings

import pytest
import torch
from scipy.stats import rankdata
from torch import nn

from oinfo_monitor import OInfoMonitor
from oinfo_monitor.estimators import copula_covariance, copula_values, distinct_neurons
from oinfo_monitor.estimators.state import WIDE_NEURONS, CopulaCovariance, WideCopula
from oinfo_monitor.search import search, search_covariance
from oinfo_monitor.search.options import AutoOptions
from oinfo_monitor.search.uncertainty import chance_levels
from oinfo_monitor.search.wide import (
    SCREEN_SAMPLES,
    SEARCHED_NEURONS,
    narrowed,
    screen,
    screen_samples,
    strengths,
)


def triplet(neurons: int) -> tuple[int, int, int]:
    """Where `planted` puts its synergistic triplet among `neurons` neurons."""
    return 17, neurons // 2 + 3, neurons - 9


def planted(samples: int = 500, neurons: int = 3000, seed: int = 0) -> torch.Tensor:
    """Independent neurons, one synergistic triplet x_c = x_a + x_b + noise at `triplet`."""
    x = torch.randn(samples, neurons, generator=torch.Generator().manual_seed(seed))
    a, b, c = triplet(neurons)
    x[:, c] = x[:, a] + x[:, b] + 0.3 * x[:, c]
    return x


def test_the_wide_path_starts_just_above_its_threshold() -> None:
    g = torch.Generator().manual_seed(0)
    at = copula_values(torch.randn(40, WIDE_NEURONS, generator=g)).state()
    above = copula_values(torch.randn(40, WIDE_NEURONS + 1, generator=g)).state()
    assert isinstance(at, CopulaCovariance) and at.cov.shape == (WIDE_NEURONS, WIDE_NEURONS)
    assert isinstance(above, WideCopula) and not hasattr(above, "cov")


def test_auto_searches_a_screened_block_and_records_it() -> None:
    x = planted(neurons=2100)
    stats = copula_values(x).state()
    block, narrowing = narrowed(stats, AutoOptions())
    assert narrowing is not None and block.cov.shape == (SEARCHED_NEURONS, SEARCHED_NEURONS)
    assert block.cov.dtype == torch.float64
    index_map = list(range(5000, 7100))
    result = search_covariance(stats, index_map=index_map, sizes=[3, 4])
    assert result.n_variables == 2100 and result.searched_neurons == SEARCHED_NEURONS
    assert result.reduced.startswith("screened 1,024 of 2,100 neurons")
    assert result.reason.startswith(result.reduced)
    members = {
        m
        for found in (result.synergy, result.redundancy)
        for v in found.values()
        for m in v.members
    }
    assert members <= {index_map[c] for c in narrowing.columns}


def test_a_large_probe_is_screened_on_a_share_of_its_samples_and_scored_on_all() -> None:
    samples, neurons = 4 * SCREEN_SAMPLES, 2100
    x = planted(samples=samples, neurons=neurons, seed=9)
    stats = copula_values(x).state()
    read = screen_samples(samples, neurons, 0.1)
    assert SCREEN_SAMPLES <= read < samples
    result = search_covariance(stats, sizes=[3], time_budget=0.1)
    assert result.reduced.endswith(f"(read on {read:,} evenly spaced of its {samples:,} samples)")
    assert result.synergy[3].members == triplet(neurons)
    # the value is that of every sample: the block searched is formed from all of them
    expected = stats.full().oinfo([triplet(neurons)])
    torch.testing.assert_close(
        torch.tensor([result.synergy[3].value], dtype=torch.float64), expected, rtol=0, atol=1e-12
    )
    # a budget that affords every sample reads them all
    assert screen_samples(samples, neurons, 2.0) == samples
    roomy = search_covariance(stats, sizes=[3], time_budget=2.0)
    assert roomy.reduced.endswith("then the next largest by that sum")
    assert roomy.synergy[3].members == triplet(neurons)


def test_auto_screens_a_layer_between_the_search_and_the_wide_thresholds() -> None:
    neurons = 1500  # above the 1,024 searched, below WIDE_NEURONS: it comes with its covariance
    x = planted(neurons=neurons, seed=4)
    stats = copula_values(x).state()
    assert isinstance(stats, CopulaCovariance) and SEARCHED_NEURONS < neurons <= WIDE_NEURONS
    result = search_covariance(stats, sizes=[3, 4])
    assert result.n_variables == neurons and result.searched_neurons == SEARCHED_NEURONS
    assert result.reduced.startswith("screened 1,024 of 1,500 neurons")
    assert result.strategy == "greedy" and result.synergy[3].members == triplet(neurons)
    chosen = [m.members for found in (result.synergy, result.redundancy) for m in found.values()]
    values = [m.value for found in (result.synergy, result.redundancy) for m in found.values()]
    expected = torch.tensor(values, dtype=torch.float64)
    torch.testing.assert_close(stats.oinfo(chosen), expected, rtol=0, atol=1e-12)
    explicit = search_covariance(stats, strategy="anneal", sizes=[3])
    assert explicit.searched_neurons == neurons and explicit.reduced == ""


def test_the_screen_reads_a_covariance_as_it_reads_copula_values() -> None:
    x = planted(neurons=1500, seed=5)
    values = copula_values(x)
    from_values = screen(WideCopula(values, True), SEARCHED_NEURONS, 0.1)
    from_covariance = screen(values.state(), SEARCHED_NEURONS, 0.1)
    assert from_values[1] == from_covariance[1]
    # float32 ranks (copula values) and float64 ranks (covariance) may swap near-equal strengths
    # at the edge of the kept set; the planted triplet and all but a handful agree.
    shared = set(from_values[0]) & set(from_covariance[0])
    assert set(triplet(1500)) <= shared and len(shared) >= SEARCHED_NEURONS - 8


def test_a_block_of_a_covariance_state_measures_as_the_whole() -> None:
    x = planted(samples=300, neurons=40, seed=6)
    columns = [3, 17, 20, 29, 39]
    for y in (None, x[:, 4] + x[:, 9], (x[:, 4] > 0).long() + (x[:, 9] > 0).long()):
        stats = copula_covariance(x, y=y)
        block = stats.block(columns)
        assert block.n_variables == len(columns)
        for name in ("oinfo", "sinfo", "tc", "dtc"):
            whole = stats.measure(name, [[3, 20, 39], [17, 29, 20, 3]])
            torch.testing.assert_close(
                block.measure(name, [[0, 2, 4], [1, 3, 2, 0]]), whole, rtol=0, atol=0
            )


def test_found_values_equal_exact_scoring_on_the_full_covariance() -> None:
    x = planted(samples=400, neurons=2100, seed=1)
    result = search_covariance(copula_values(x).state(), sizes=[3, 5])
    full = copula_covariance(x)  # the N×N covariance: affordable at this width
    chosen = [m.members for found in (result.synergy, result.redundancy) for m in found.values()]
    values = [m.value for found in (result.synergy, result.redundancy) for m in found.values()]
    expected = torch.tensor(values, dtype=torch.float64)
    torch.testing.assert_close(full.oinfo(chosen), expected, rtol=0, atol=1e-12)


def test_explicit_strategies_get_the_full_covariance_unchanged() -> None:
    x = planted(samples=300, neurons=2100, seed=2)
    wide = search_covariance(copula_values(x).state(), strategy="greedy", sizes=4)
    dense = search_covariance(copula_covariance(x), strategy="greedy", sizes=4)
    assert wide.searched_neurons == 2100 and wide.reduced == ""
    for size in (3, 4):
        assert wide.synergy[size] == dense.synergy[size]
        assert wide.redundancy[size] == dense.redundancy[size]


def test_a_planted_synergistic_triplet_survives_the_screen_and_is_significant() -> None:
    x = planted()
    result = search(x, sizes=[3])
    assert result.searched_neurons == SEARCHED_NEURONS
    assert result.synergy[3].members == triplet(3000)
    levels = chance_levels(copula_values(x), surrogates=4, search_options={"sizes": [3]})
    assert result.synergy[3].value < levels.synergy[3] < 0


def test_measures_of_a_wide_state_use_blocks_and_match_the_full_covariance() -> None:
    x = planted(samples=300, neurons=2100, seed=3)
    multiplets = [[0, 5, 2099], [17, 1034, 2099, 3], list(triplet(2100))]
    for y in (x[:, 4] + x[:, 9], (x[:, 4] > 0).long() + (x[:, 9] > 0).long()):
        wide = copula_values(x, y=y).state()
        dense = copula_covariance(x, y=y)
        for name in ("oinfo", "sinfo", "tc", "dtc"):
            torch.testing.assert_close(
                wide.measure(name, multiplets), dense.measure(name, multiplets), rtol=0, atol=1e-9
            )


def test_the_monitor_records_what_it_searched() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(8, 2100), nn.ReLU(), nn.Linear(2100, 12), nn.ReLU(), nn.Linear(12, 2)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the size cap at the input width is expected
        monitor = OInfoMonitor(model, torch.randn(300, 8), noise_resamples=0, surrogates=0)
    evaluation = monitor.evaluate(0)
    assert evaluation is not None and not evaluation.skipped
    wide = [r for r in evaluation.records if r["layer"] == "0"]
    small = [r for r in evaluation.records if r["layer"] == "2"]
    assert {r["searched_neurons"] for r in wide} == {SEARCHED_NEURONS}
    assert all(r["reduced"].startswith("screened 1,024 of 2,100") for r in wide)
    assert {r["searched_neurons"] for r in small} == {12} and {r["reduced"] for r in small} == {
        None
    }


def reference_filter(x: torch.Tensor) -> tuple[list[int], list[int], list[int]]:
    """Dead and duplicated columns by the definition: constant, or dense ranks equal to (or the
    mirror image of) an earlier kept column's."""
    kept: list[int] = []
    dead: list[int] = []
    duplicates: list[int] = []
    seen: set[tuple[int, ...]] = set()
    for j in range(x.shape[1]):
        ranks = rankdata(x[:, j].numpy(), method="dense").astype(int)
        if ranks.max() == 1:
            dead.append(j)
            continue
        mirror = tuple(int(ranks.max() + 1 - r) for r in ranks)
        if tuple(ranks) in seen or mirror in seen:
            duplicates.append(j)
        else:
            kept.append(j)
            seen.add(tuple(int(r) for r in ranks))
    return kept, dead, duplicates


@pytest.mark.parametrize("ties", [False, True])
def test_the_neuron_filter_matches_its_definition(ties: bool) -> None:
    """Copies, monotone maps and constants are found; columns that share a source's extreme
    samples but not its order (which the filter's pre-screen cannot tell apart) are kept."""
    g = torch.Generator().manual_seed(4)
    for _ in range(20):
        x = torch.randn(30, 40, generator=g)
        if ties:
            x = torch.relu(x).round()
        sources = torch.randint(0, 40, (40,), generator=g)
        kinds = torch.randint(0, 5, (40,), generator=g)
        for j, (source, kind) in enumerate(zip(sources.tolist(), kinds.tolist(), strict=True)):
            if kind == 0:
                x[:, j] = 3 * x[:, source] - 1
            elif kind == 1:
                x[:, j] = -torch.exp(x[:, source])
            elif kind == 2:
                x[:, j] = 2.5
            elif kind == 3:  # the source's extremes, its interior reversed: not a monotone map
                column = x[:, source].clone()
                low, high = column.min(), column.max()
                inside = (column > low) & (column < high)
                column[inside] = low + high - column[inside]
                x[:, j] = column
        found = distinct_neurons(x)
        assert (found.kept.tolist(), found.dead, found.duplicates) == reference_filter(x)


@pytest.mark.parametrize("repeated", [False, True])
def test_neuron_strengths_match_the_summed_squared_correlations(repeated: bool) -> None:
    """The screen's strengths against the N×N correlation matrix in float64, on a layer wider
    than its sample count; repeated samples lower the Gram matrix's rank (the full-product
    path)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(120, 40, generator=g) @ torch.randn(40, 600, generator=g)
    x += 0.5 * torch.randn(120, 600, generator=g)
    if repeated:
        x[60:] = x[:60]
    z = x - x.mean(0)
    z /= z.norm(dim=0)
    correlations = torch.corrcoef(x.double().T)
    expected = correlations.square().sum(0) - 1.0
    found = strengths(z).double()
    assert torch.allclose(found, expected, rtol=1e-4, atol=1e-3)
    assert found.std() > 1.0  # the neurons differ: a ranking to get right


def test_an_explicit_strategy_on_a_wide_layer_warns_at_construction() -> None:
    model = nn.Sequential(
        nn.Linear(8, WIDE_NEURONS + 52), nn.ReLU(), nn.Linear(WIDE_NEURONS + 52, 2)
    )
    probe = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    with pytest.warns(Warning, match=r"layer '0' has 2,100 neurons: strategy 'greedy' forms"):
        OInfoMonitor(model, probe, layers=["0"], strategy="greedy", track_phases=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        OInfoMonitor(model, probe, layers=["0"], track_phases=False)  # auto: screened
    assert not [w for w in caught if "covariance" in str(w.message)]


def test_a_neuron_constant_on_the_samples_the_screen_reads_is_ranked_last() -> None:
    """With tied values sharing a rank ("average"), a sparse neuron can be constant on the
    evenly spaced samples a large probe is screened on; it must not rank first (as NaN would)."""
    samples, neurons = 4 * SCREEN_SAMPLES, 2100
    x = planted(samples=samples, neurons=neurons, seed=10)
    read = screen_samples(samples, neurons, 0.1)
    unread = sorted(set(range(samples)) - set((torch.arange(read) * samples // read).tolist()))
    sparse = 5
    x[:, sparse] = 0.0
    x[unread[:3], sparse] = 1.0  # non-zero only where the screen does not look
    stats = copula_values(x, ties="average").state()
    kept, how = screen(stats, SEARCHED_NEURONS, 0.1)
    assert how.endswith(f"(read on {read:,} evenly spaced of its {samples:,} samples)")
    assert sparse not in kept and set(triplet(neurons)) <= set(kept)
