"""Tests for the causal grokking-phase tracker on synthetic synergy curves with known phases."""

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest

from oinfo_monitor.monitor.phases import Phase, PhaseChange, PhaseTracker, detect_phases

STEP = 100  # training steps between evaluations
RISE_START, TRUE_PEAK = 40, 70  # evaluation indices of the synthetic curve's landmarks
ORDER = [Phase.FEATURE_LEARNING, Phase.EMERGENCE, Phase.DECOUPLING]
SD = 0.08  # noise of the synthetic curves: the grokking layer's measured SD (bits)


def grokking_curve(seed: int, n: int = 160) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synergy flat at 0.2 bits, a smooth rise to 1 bit (10 SD) at TRUE_PEAK, then decay to 0.3,
    plus noise of the SD measured on the grokking layer (the regime the tracker must survive)."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    synergy = np.full(n, 0.2)
    ramp = (i >= RISE_START) & (i <= TRUE_PEAK)
    phase = np.pi * (i[ramp] - RISE_START) / (TRUE_PEAK - RISE_START)
    synergy[ramp] = 0.2 + 0.8 * (1 - np.cos(phase)) / 2
    after = i > TRUE_PEAK
    synergy[after] = 0.3 + 0.7 * np.exp(-(i[after] - TRUE_PEAK) / 15)
    synergy += rng.normal(0, SD, n)
    redundancy = 1.0 - 0.3 * synergy + rng.normal(0, SD, n)
    return STEP * i, synergy, redundancy


def run(steps: np.ndarray, synergy: np.ndarray, redundancy: np.ndarray) -> PhaseTracker:
    """Feed whole curves to a default tracker, with their SD as the monitor gives it."""
    tracker = PhaseTracker()
    for step, syn, red in zip(steps, synergy, redundancy, strict=True):
        tracker.update(int(step), float(syn), float(red), synergy_sd=SD)
    return tracker


def ema(values: np.ndarray, span: int) -> np.ndarray:
    """Reference causal EMA, written independently of the tracker."""
    alpha = 2 / (span + 1)
    out = np.empty_like(values)
    out[0] = values[0]
    for t in range(1, len(values)):
        out[t] = alpha * values[t] + (1 - alpha) * out[t - 1]
    return out


@pytest.mark.parametrize("seed", range(10))
def test_known_phases_are_found_in_order_and_on_time(seed: int) -> None:
    steps, synergy, redundancy = grokking_curve(seed)
    tracker = PhaseTracker()
    results = [
        tracker.update(int(s), float(x), float(r), synergy_sd=SD)
        for s, x, r in zip(steps, synergy, redundancy, strict=True)
    ]
    summary = tracker.summary()
    patience_steps = (3 - 1) * STEP

    # Emergence: onset after the rise begins and within 16 evaluations of it (4 SD = 0.32 bits of
    # a 0.8-bit rise, seen through the smoothing); decided at onset +
    # (patience - 1) evaluations, never before.
    assert RISE_START * STEP < summary["emergence_onset_step"] <= (RISE_START + 16) * STEP
    assert summary["emergence_step"] == summary["emergence_onset_step"] + patience_steps
    # Peak: within 3 evaluations of the true peak, and exactly the argmax of an independently
    # computed EMA between the Emergence onset and the Decoupling decision.
    assert abs(summary["peak_step"] - TRUE_PEAK * STEP) <= 3 * STEP
    window = (steps >= summary["emergence_onset_step"]) & (steps <= summary["decoupling_step"])
    smoothed = ema(synergy, span=5)
    assert summary["peak_step"] == steps[window][np.argmax(smoothed[window])]
    assert summary["peak_synergy"] == pytest.approx(smoothed[window].max())
    # Decoupling: onset after the peak, decided patience - 1 evaluations later, within 20
    # evaluations of the true peak.
    assert summary["decoupling_onset_step"] > summary["peak_step"]
    assert summary["decoupling_step"] == summary["decoupling_onset_step"] + patience_steps
    assert summary["decoupling_step"] <= (TRUE_PEAK + 20) * STEP
    # The changes returned by update are those recorded, stamped at their decision steps.
    returned = [r for r in results if r is not None]
    assert returned == tracker.changes
    assert [(c.previous, c.phase) for c in returned] == list(itertools.pairwise(ORDER))
    assert [c.step for c in returned] == [summary["emergence_step"], summary["decoupling_step"]]
    assert tracker.phase is Phase.DECOUPLING
    assert tracker.peak_step == summary["peak_step"]


def test_reason_names_the_numbers_and_the_onset() -> None:
    tracker = run(*grokking_curve(0))
    summary = tracker.summary()
    emergence, decoupling = tracker.changes
    assert f"first at step {summary['emergence_onset_step']}" in emergence.reason
    assert "running minimum" in emergence.reason and "bits" in emergence.reason
    assert f"at step {summary['peak_step']}" in decoupling.reason
    assert f"first at step {summary['decoupling_onset_step']}" in decoupling.reason
    assert "\n" not in emergence.reason + decoupling.reason
    with pytest.raises(dataclasses.FrozenInstanceError):
        emergence.step = 0  # type: ignore[misc]


def test_early_transient_is_not_taken_as_the_peak() -> None:
    steps, synergy, redundancy = grokking_curve(6)
    synergy = synergy + 1.5 * np.exp(-np.arange(len(steps)) / 5)  # 1.7 bits at start, > 1 bit peak
    summary = detect_phases(steps, synergy, redundancy, synergy_sd=[SD] * len(steps))
    assert abs(summary["peak_step"] - TRUE_PEAK * STEP) <= 3 * STEP
    assert summary["decoupling_onset_step"] > TRUE_PEAK * STEP


@pytest.mark.parametrize("level", [0.0, 0.3, 1.0])
def test_flat_noisy_curve_never_changes_phase(level: float) -> None:
    rng = np.random.default_rng(1)
    synergy = level + rng.normal(0, SD, 400)
    tracker = run(STEP * np.arange(400), synergy, np.ones(400))
    assert tracker.changes == []
    assert tracker.phase is Phase.FEATURE_LEARNING
    assert tracker.peak_step is None


def test_rise_smaller_than_the_threshold_in_sd_is_noise() -> None:
    synergy = np.linspace(0.0, 3 * SD, 100)  # an unbounded relative rise, but 3 SD (< 4 SD)
    tracker = run(STEP * np.arange(100), synergy, np.ones(100))
    assert tracker.phase is Phase.FEATURE_LEARNING


@pytest.mark.parametrize("seed", range(5))
def test_rising_curve_never_decouples(seed: int) -> None:
    rng = np.random.default_rng(seed)
    i = np.arange(300)
    synergy = 0.1 + 0.9 / (1 + np.exp(-(i - 100) / 15)) + rng.normal(0, SD, 300)
    tracker = run(STEP * i, synergy, np.ones(300))
    assert tracker.phase is Phase.EMERGENCE
    assert tracker.peak_step is None and tracker.peak_synergy is None
    assert tracker.running_peak_step is not None and tracker.running_peak_step > 100 * STEP


def test_phases_never_go_backwards() -> None:
    reached = set()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        synergy = np.abs(np.cumsum(rng.normal(0, 0.1, 200))) + rng.uniform(0, 0.5)
        tracker = PhaseTracker(patience=2)
        previous = Phase.FEATURE_LEARNING
        for t, value in enumerate(synergy):
            change = tracker.update(t, float(value), 0.0)
            assert ORDER.index(tracker.phase) >= ORDER.index(previous)
            if change is not None:
                assert change.previous is previous
                assert ORDER.index(change.phase) == ORDER.index(previous) + 1
            previous = tracker.phase
        reached.add(tracker.phase)
    assert {Phase.EMERGENCE, Phase.DECOUPLING} <= reached  # both moves were exercised


@pytest.mark.parametrize("cut", [30, 48, 50, 69, 75, 79, 80, 120])
def test_decisions_up_to_t_ignore_the_future(cut: int) -> None:
    steps, synergy, redundancy = grokking_curve(3)
    full, partial = PhaseTracker(), PhaseTracker()
    for t, (s, x, r) in enumerate(zip(steps, synergy, redundancy, strict=True)):
        full.update(int(s), float(x), float(r), synergy_sd=SD)
        if t < cut:
            partial.update(int(s), float(x), float(r), synergy_sd=SD)
    last_step = steps[cut - 1]
    assert partial.changes == [c for c in full.changes if c.step <= last_step]
    offline = detect_phases(steps[:cut], synergy[:cut], redundancy[:cut])
    whole = detect_phases(steps, synergy, redundancy)
    assert offline["changes"] == [c for c in whole["changes"] if c["step"] <= last_step]


@pytest.mark.parametrize(
    ("synergy", "redundancy"), [(math.nan, 0.5), (0.5, math.nan), (math.inf, 0.5), (0.5, -math.inf)]
)
def test_non_finite_evaluations_are_ignored(synergy: float, redundancy: float) -> None:
    steps, syn, red = grokking_curve(2)
    clean = run(steps, syn, red)
    tracker = PhaseTracker()
    for s, x, r in zip(steps, syn, red, strict=True):
        before = tracker.state_dict()
        assert tracker.update(int(s) - 50, synergy, redundancy, synergy_sd=SD) is None
        assert tracker.state_dict() == before
        tracker.update(int(s), float(x), float(r), synergy_sd=SD)
    assert tracker.changes == clean.changes
    assert tracker.summary() == clean.summary()


def test_steps_must_increase() -> None:
    tracker = PhaseTracker()
    tracker.update(10, 0.2, 0.1)
    with pytest.raises(ValueError, match="steps must increase"):
        tracker.update(10, 0.2, 0.1)
    with pytest.raises(ValueError, match="steps must increase"):
        tracker.update(5, math.nan, 0.1)
    with pytest.raises(TypeError):
        tracker.update(11.5, 0.2, 0.1)  # type: ignore[arg-type]
    assert tracker.summary()["evaluations"] == 1
    tracker.update(11, 0.2, 0.1)
    assert tracker.summary()["evaluations"] == 2


def test_state_dict_round_trip_resumes_identically() -> None:
    steps, synergy, redundancy = grokking_curve(4)
    whole = run(steps, synergy, redundancy)
    half = len(steps) // 2  # after Emergence, before Decoupling
    first = run(steps[:half], synergy[:half], redundancy[:half])
    assert first.phase is Phase.EMERGENCE
    resumed = PhaseTracker()
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    for s, x, r in zip(steps[half:], synergy[half:], redundancy[half:], strict=True):
        resumed.update(int(s), float(x), float(r), synergy_sd=SD)
    assert resumed.changes == whole.changes
    assert resumed.summary() == whole.summary()
    assert resumed.state_dict() == whole.state_dict()
    assert all(isinstance(c, PhaseChange) and isinstance(c.phase, Phase) for c in resumed.changes)


def test_load_state_dict_rejects_other_parameters() -> None:
    saved = PhaseTracker(patience=4).state_dict()
    with pytest.raises(ValueError, match="differ"):
        PhaseTracker().load_state_dict(saved)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"span": 0}, "span"),
        ({"span": 2.5}, "span"),
        ({"rise": 1.0}, "rise"),
        ({"rise": math.nan}, "rise"),
        ({"drop": 0.0}, "drop"),
        ({"drop": 1.0}, "drop"),
        ({"patience": 0}, "patience"),
        ({"patience": 1.5}, "patience"),
        ({"min_bits": -0.1}, "min_bits"),
        ({"min_bits": math.inf}, "min_bits"),
    ],
)
def test_bad_parameters_are_rejected(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        PhaseTracker(**kwargs)  # type: ignore[arg-type]


def test_detect_phases_matches_the_tracker_and_checks_lengths() -> None:
    steps, synergy, redundancy = grokking_curve(5)
    sds = [SD] * len(steps)
    offline = detect_phases(steps, synergy, redundancy, synergy_sd=sds)
    assert offline == run(steps, synergy, redundancy).summary()
    assert (
        detect_phases(steps, synergy, redundancy, synergy_sd=sds, patience=5)["emergence_step"]
        > offline["emergence_step"]
    )
    with pytest.raises(ValueError):
        detect_phases(steps, synergy[:-1], redundancy)


def _confirms_a_peak(curve: np.ndarray, sd: float, rng: np.random.Generator, bias: float) -> bool:
    """One simulated run: the curve plus N(0, sd) noise, fed with a noisy SD estimate (25%
    relative error, scaled by `bias`) as the monitor gives it; True if a peak is confirmed."""
    tracker = PhaseTracker()
    for step, value in enumerate(curve):
        estimate = sd * bias * max(0.3, 1 + 0.25 * rng.normal())
        tracker.update(step, value + rng.normal(0, sd), 1.0, synergy_sd=estimate, significant=True)
    return tracker.summary()["peak_confirmed_step"] is not None


@pytest.mark.parametrize("bias", [1.0, 0.7])
def test_rates_in_units_of_the_noise(bias: float) -> None:
    """81 evaluations, noise 0.08 bits (the grokking layer's measured SD). Flat plateau: at most 5%
    false alarms; a plateau that steps down: at most 5%; a peak of 10 SD: at least 90% confirmed,
    also when the SD handed to the tracker underestimates the true noise by 30%."""
    rng = np.random.default_rng(0)
    steps, sd, runs = np.arange(81), 0.08, 200
    flat = np.full(81, 0.5)
    step_down = np.where(steps < 40, 0.5, 0.3)
    peak = 0.5 + 10 * sd * np.exp(-0.5 * ((steps - 40) / 4) ** 2)
    rate = {
        name: np.mean([_confirms_a_peak(curve, sd, rng, bias) for _ in range(runs)])
        for name, curve in (("flat", flat), ("step", step_down), ("peak", peak))
    }
    assert rate["flat"] <= 0.05 and rate["step"] <= 0.05, rate
    assert rate["peak"] >= 0.90, rate


def test_a_value_that_is_not_significant_cannot_start_emergence() -> None:
    tracker = PhaseTracker()
    for step in range(40):
        value = 0.1 if step < 10 else 2.0
        tracker.update(step, value, 1.0, synergy_sd=0.05, significant=False)
    assert tracker.phase is Phase.FEATURE_LEARNING
    tracker = PhaseTracker()
    for step in range(40):
        value = 0.1 if step < 10 else (2.0 if step < 25 else 0.1)
        tracker.update(step, value, 1.0, synergy_sd=0.05, significant=True)
    summary = tracker.summary()
    assert tracker.phase is Phase.DECOUPLING
    assert summary["peak_step"] < summary["peak_confirmed_step"]
