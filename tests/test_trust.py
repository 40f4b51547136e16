"""Every reported value carries its noise and its chance level: calibration on data whose truth is
known, and the fields in the history file and TensorBoard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from oinfo_monitor import OInfoMonitor, search
from oinfo_monitor.estimators import copula_covariance, copula_values
from oinfo_monitor.estimators.state import stacked_states
from oinfo_monitor.monitor.records import RECORD_FIELDS, read_records
from oinfo_monitor.monitor.trust import Trust
from oinfo_monitor.search.uncertainty import (
    bootstrap_noise,
    chance_levels,
    levels_from,
    surrogate_extremes,
)

NEURONS, SAMPLES = 8, 300
OPTIONS = {"sizes": [3, 4], "strategy": "exhaustive"}


def gaussian_oinfo_bits(cov: np.ndarray) -> float:
    """Population Ω (bits) of a Gaussian with covariance `cov`, written from the definition."""

    def entropy(indices: list[int]) -> float:
        block = cov[np.ix_(indices, indices)]
        return 0.5 * (len(indices) * np.log(2 * np.pi * np.e) + np.linalg.slogdet(block)[1])

    n = cov.shape[0]
    every = list(range(n))
    value = (n - 2) * entropy(every)
    for j in every:
        value += entropy([j]) - entropy([i for i in every if i != j])
    return value / np.log(2)


def test_independent_neurons_are_called_significant_in_about_5_percent_of_seeds() -> None:
    """The search's extremes on independent data lie well away from 0, yet beyond the chance
    level in only about 5% of seeds (binomial: 60 seeds at 5% give at most 7 with 95% odds)."""
    calls = 0
    for seed in range(60):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(SAMPLES, NEURONS, generator=g, dtype=torch.float64)
        found = search(x, seed=seed, **OPTIONS)  # type: ignore[arg-type]
        levels = chance_levels(x, surrogates=19, seed=1000 + seed, search_options=OPTIONS)
        calls += found.synergy[3].value < levels.synergy[3]
    assert calls <= 7, calls


def test_planted_synergy_is_significant_and_its_band_covers_the_truth() -> None:
    """x2 = x0 + x1 + noise among independent neurons: significant in every seed; the population
    Ω lies within ±2 bootstrap SD of the reported value in at least 80% of seeds."""
    noise_scale = 1.0
    cov = np.array(
        [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 2.0 + noise_scale**2]], dtype=np.float64
    )
    truth = gaussian_oinfo_bits(cov)
    assert truth < -0.1
    covered = 0
    seeds = 20
    for seed in range(seeds):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(SAMPLES, NEURONS, generator=g, dtype=torch.float64)
        x[:, 2] = x[:, 0] + x[:, 1] + noise_scale * x[:, 2]
        found = search(x, seed=seed, **OPTIONS)  # type: ignore[arg-type]
        assert set(found.synergy[3].members) == {0, 1, 2}
        levels = chance_levels(x, surrogates=19, seed=1000 + seed, search_options=OPTIONS)
        assert found.synergy[3].value < levels.synergy[3], seed
        noise = bootstrap_noise(x, found, resamples=30, seed=seed)
        covered += abs(found.synergy[3].value - truth) <= 2 * noise.synergy_sd[3]
    assert covered >= 0.8 * seeds, covered


def test_bootstrap_sd_matches_the_spread_over_fresh_probes() -> None:
    """The SD from resampling one probe is close to the SD of the value over independent probes."""

    def planted(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(SAMPLES, 5, generator=g, dtype=torch.float64)
        x[:, 2] = x[:, 0] + x[:, 1] + x[:, 2]
        return x

    values = [
        float(search(planted(s), sizes=[3], strategy="exhaustive").synergy[3].value)
        for s in range(40)
    ]
    true_sd = float(np.std(values, ddof=1))
    x = planted(100)
    estimates = [
        bootstrap_noise(
            x, search(x, sizes=[3], strategy="exhaustive"), resamples=40, seed=s
        ).synergy_sd[3]
        for s in range(3)
    ]
    assert 0.6 * true_sd < float(np.mean(estimates)) < 1.6 * true_sd, (true_sd, estimates)


def post_relu(seed: int, samples: int = 600) -> torch.Tensor:
    """ReLU of correlated Gaussians (about half of every column tied at 0), stored as float32
    values like activations: a synergistic triplet (0, 1, 2) and a redundant one (3, 4, 5)."""
    g = torch.Generator().manual_seed(seed)
    pre = torch.randn(samples, 6, generator=g, dtype=torch.float64)
    pre[:, 2] = pre[:, 0] + pre[:, 1] + 0.7 * pre[:, 2]
    pre[:, 4] = pre[:, 3] + 0.5 * pre[:, 4]
    pre[:, 5] = pre[:, 3] + 0.5 * pre[:, 5]
    return torch.relu(pre).float().double()


def test_post_relu_bootstrap_sd_holds_the_tie_noise() -> None:
    """After a ReLU half the ranks are a random tie draw. The SD over resampled rows of one
    probe's copula values must match the SD over fresh probes, each with a fresh tie draw. The
    tie draw alone moves the synergy by an SD of 0.012 bits of the 0.017 here, so an SD without
    it would be about 30% short and one counting it twice about 23% long: both fail."""
    found = search(post_relu(0), sizes=[3], strategy="exhaustive")
    members = [found.synergy[3].members, found.redundancy[3].members]
    assert set(members[0]) == {0, 1, 2} and set(members[1]) == {3, 4, 5}
    fresh = torch.stack(
        [copula_covariance(post_relu(s), seed=7 + s).oinfo(members) for s in range(1, 81)]
    )
    true_sd = fresh.std(0)
    estimates = torch.tensor(
        [
            [noise.synergy_sd[3], noise.redundancy_sd[3]]
            for noise in (
                bootstrap_noise(post_relu(100 + s), found, resamples=40, seed=s) for s in range(4)
            )
        ]
    ).mean(0)
    assert (0.8 * true_sd < estimates).all() and (estimates < 1.18 * true_sd).all(), (
        true_sd,
        estimates,
    )


def test_a_rarely_active_neuron_does_not_break_the_noise() -> None:
    """Under ties="average" a neuron active on 2 samples is constant in many resamples: those
    are drawn again."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=g, dtype=torch.float64)
    x[:, 4] = 0.0
    x[:2, 4] = 1.0
    found = search(x, sizes=[3], strategy="exhaustive", ties="average")
    noise = bootstrap_noise(x, found, resamples=10, ties="average")
    assert 2 <= noise.resamples <= 10 and np.isfinite(noise.synergy_sd[3])


def test_the_monitor_records_noise_and_chance_and_tensorboard_draws_them(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 2))
    probe = torch.randn(300, 6, generator=torch.Generator().manual_seed(1))
    monitor = OInfoMonitor(
        model,
        probe,
        every=1,
        logdir=tmp_path,
        null_every=2,
        noise_resamples=5,
        surrogates=5,
        **OPTIONS,
    )
    for step in range(3):
        monitor.step(step)
    monitor.close()
    records = list(read_records(tmp_path / "oinfo_history.jsonl"))
    assert all(list(r) == list(RECORD_FIELDS) for r in records)
    for record in records:
        assert record["synergy_sd"] > 0 and record["noise_resamples"] == 5
        assert record["synergy_significant"] == (record["synergy"] < record["synergy_chance"])
        assert record["redundancy_significant"] == (
            record["redundancy"] > record["redundancy_chance"]
        )
    assert [r["chance_step"] for r in records if r["size"] == 3] == [0, 0, 2]  # reused in between
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    value = {e.step: e.value for e in events.Scalars("oinfo/0/synergy")}
    lower = {e.step: e.value for e in events.Scalars("oinfo/0/synergy_lower")}
    chance = {e.step: e.value for e in events.Scalars("oinfo/0/synergy_chance")}
    for record in (r for r in records if r["size"] == 3):
        step = record["step"]
        assert lower[step] == pytest.approx(
            value[step] - 2 * record["headline_synergy_sd"], abs=1e-5
        )
        assert chance[step] == pytest.approx(record["headline_synergy_chance"], abs=1e-5)


def test_noise_and_chance_can_be_turned_off() -> None:
    model = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 2))
    monitor = OInfoMonitor(model, torch.randn(200, 6), noise_resamples=0, surrogates=0, **OPTIONS)
    evaluation = monitor.evaluate(0)
    assert evaluation is not None
    assert {r["synergy_sd"] for r in evaluation.records} == {None}
    assert {r["synergy_significant"] for r in evaluation.records} == {None}
    with pytest.raises(ValueError, match="noise_resamples"):
        OInfoMonitor(model, torch.randn(200, 6), noise_resamples=1, **OPTIONS)


def test_the_chance_level_is_reused_until_due_or_the_neuron_count_drifts() -> None:
    """Reused for `null_every` evaluations; recomputed sooner when a tenth of the neurons die."""
    g = torch.Generator().manual_seed(0)
    wide = copula_values(torch.randn(SAMPLES, 20, generator=g, dtype=torch.float64))
    trust = Trust(resamples=0, surrogates=3, null_every=3)
    steps = [trust.chance("h", step, wide, OPTIONS) for step in range(4)]
    assert [s[0] for s in steps if s is not None] == [0, 0, 0, 3]
    same_count = wide.select(list(range(19)))  # 1 of 20 gone: within the drift allowed
    drifted = wide.select(list(range(17)))  # 3 of 20 gone: beyond it
    assert trust.chance("h", 4, same_count, OPTIONS)[0] == 3  # type: ignore[index]
    assert trust.chance("h", 5, drifted, OPTIONS)[0] == 5  # type: ignore[index]


def test_copula_values_refuse_a_second_target_or_tie_policy() -> None:
    """Copula values fixed their target and ties; a y or ties given beside them is an error,
    not silently ignored."""
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    values = copula_values(x)
    found = search(x, sizes=[3], strategy="exhaustive")
    with pytest.raises(ValueError, match="already copula values"):
        bootstrap_noise(values, found, ties="average")
    with pytest.raises(ValueError, match="already copula values"):
        chance_levels(values, surrogates=2, y=torch.zeros(300), search_options={"sizes": [3]})
    # the same values without them give what the raw data gives
    assert bootstrap_noise(values, found).synergy_sd == bootstrap_noise(x, found).synergy_sd


def test_surrogates_run_in_shares_give_the_levels_of_one_call() -> None:
    """Three workers' shares of the clusters search's surrogates (whose union sizes differ from
    surrogate to surrogate) put together equal one call's chance levels exactly."""
    g = torch.Generator().manual_seed(8)
    x = torch.relu(torch.randn(600, 6, generator=g) @ torch.randn(6, 40, generator=g))
    values = copula_values(x, seed=2)
    options = {"strategy": "clusters", "bins": 5}
    whole = chance_levels(values, surrogates=7, seed=3, search_options=options)
    found: dict = {}
    for share in range(3):
        part = surrogate_extremes(
            values, surrogates=7, share=(share, 3), seed=3, search_options=options
        )
        assert sorted(part) == list(range(share, 7, 3))
        found.update(part)
    assert levels_from([found[i] for i in range(7)]) == whole
    assert whole.surrogates == 7
    with pytest.raises(ValueError, match="share must be"):
        surrogate_extremes(values, share=(3, 3))


@pytest.mark.parametrize("labels", [False, True])
def test_stacked_states_measure_each_state_exactly(labels: bool) -> None:
    """Bootstrap resamples scored in one batch give each resample's own values, bit for bit, for
    small and large multiplets, with or without a discrete target."""
    g = torch.Generator().manual_seed(9)
    x = torch.randn(500, 30, generator=g)
    x[:, 1] += x[:, 0]
    y = torch.randint(0, 3, (500,), generator=g) if labels else None
    values = copula_values(x, y=y)
    states = [values.dense_state(torch.randint(0, 500, (500,), generator=g)) for _ in range(4)]
    multiplets = [(0, 1, 2), (3, 4, 5), tuple(range(20)), tuple(range(5, 30))]
    stacked = stacked_states(states).oinfo(multiplets)
    assert torch.equal(stacked, torch.stack([state.oinfo(multiplets) for state in states]))


def test_a_class_missing_from_some_resamples_is_scored_resample_by_resample() -> None:
    """A class of one sample is absent from about a third of the resamples, whose bias correction
    then counts one class fewer: those states cannot be stacked, and the noise is still measured
    from every resample."""
    g = torch.Generator().manual_seed(10)
    x = torch.randn(400, 8, generator=g)
    y = torch.randint(0, 2, (400,), generator=g)
    y[0] = 2
    values = copula_values(x, y=y)
    rows = [torch.randint(0, 400, (400,), generator=g) for _ in range(6)]
    states = [values.dense_state(r) for r in rows]
    assert len({state.n_classes for state in states}) == 2
    with pytest.raises(ValueError, match="differ in their covariances alone"):
        stacked_states(states)
    found = search(x, y=y, strategy="exhaustive", sizes=[3])
    noise = bootstrap_noise(x, found, y=y, resamples=20)
    assert noise.resamples == 20 and 0 < noise.synergy_sd[3] < 0.1
