"""Online, causal detection of the grokking phases from the synergy curve of a training run.

Clauw, Stramaglia & Marinazzo (2024, arXiv:2408.08944) follow the synergy and redundancy of the
hidden neurons of an MLP learning modular addition and describe, by eye, three phases: Feature
Learning (the network memorises the training set while features form), Emergence (synergy among
the neurons rises to a peak that comes before the jump in test accuracy) and Decoupling (after the
peak synergy falls while the model generalises). The paper gives no precise rule, so this module
fixes one. It uses only the evaluations seen so far, so it can run during training, and it stamps a
phase change at the evaluation where the change is *decided*, never earlier; the evaluation where
the deciding condition first held (the onset) is reported next to it.

Rule. ``x_t`` is the synergy (bits, as the positive magnitude −min Ω) of the t-th evaluation used;
an evaluation whose synergy or redundancy is not finite is skipped and changes nothing.

1. Smoothing: ``s_t = a·x_t + (1 − a)·s_(t−1)`` with ``a = 2 / (span + 1)`` and ``s_1 = x_1``.
   Redundancy is smoothed the same way; it is reported but does not drive the decisions.
2. Running minimum: ``m_t = min(s_1, ..., s_t)``.
3. Rise condition (checked only in Feature Learning): ``s_t > min_bits`` and
   ``s_t − m_t > max((rise − 1)·|m_t|, min_bits)``; for a non-negative minimum this reads: at least
   ``rise`` times the running minimum and more than ``min_bits`` above it.
4. Feature Learning → Emergence when the rise condition holds at ``patience`` consecutive
   evaluations; the onset is the first of them and the change is stamped at the last.
5. Running peak ``M_t``: the maximum of ``s`` (with its step) since the onset of the latest run of
   evaluations meeting the rise condition, or since the first evaluation while there is none. In
   Emergence and Decoupling this is the argmax of smoothed synergy since the Emergence onset.
6. Drop condition (checked only in Emergence): ``M_t − s_t > max(drop·M_t, min_bits)``.
7. Emergence → Decoupling when the drop condition holds at ``patience`` consecutive evaluations;
   the change is stamped at the last of them and the running peak at that moment becomes the
   confirmed peak (``peak_step``, ``peak_synergy``).
8. Phases only move forward: Feature Learning → Emergence → Decoupling.

The peak is that of the smoothed curve, so it lags a peak of the raw curve by about
``(span − 1) / 2`` evaluations; each decision comes ``patience − 1`` evaluations after its onset.

Defaults: ``span=5``, ``rise=1.5``, ``drop=0.2``, ``patience=3``, ``min_bits=0.05``. Set
``min_bits`` to a few times the noise of the synergy estimate.

In units of the noise. When each evaluation comes with the SD of its synergy (the monitor always
passes the bootstrap SD of the headline, see `search.uncertainty`), rules 3 and 6 become:

3′. Rise condition: ``s_t − m_t > rise_sd · sd_t`` and the value is significant (beyond its chance
    level; a value that is not cannot start emergence).
6′. Drop condition: ``M_t − s_t > drop_sd · sd_t``.

Defaults ``rise_sd=4``, ``drop_sd=4``. Measured on simulated curves of 81 evaluations with the
demo's schedule and noise (tests/test_phases.py::test_rates_in_units_of_the_noise): a flat plateau
plus noise gives a confirmed peak in at most 5% of runs, a plateau that steps down in none, and a
peak of 10 SD is confirmed in at least 90%. The peak's *confirmation step* (the decoupling
decision, ``peak_confirmed_step`` in `summary`) is when the tracker knew; the causal lead of a peak
over grokking is the grokking step minus that step (negative: the tracker only knew after).
"""

import copy
import math
import operator
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Phase(str, Enum):
    """Phase of training in the grokking picture, listed in the order training moves through."""

    FEATURE_LEARNING = "feature_learning"
    EMERGENCE = "emergence"
    DECOUPLING = "decoupling"


@dataclass(frozen=True)
class PhaseChange:
    """A decided move to the next phase, kept so that callers can log and plot the boundaries."""

    step: int
    previous: Phase
    phase: Phase
    reason: str


@dataclass
class _State:
    """Everything the tracker remembers between evaluations; plain values so it serialises."""

    phase: Phase = Phase.FEATURE_LEARNING
    evaluations: int = 0
    last_step: int | None = None
    synergy: float | None = None
    redundancy: float | None = None
    running_min: float | None = None
    running_peak_step: int | None = None
    running_peak: float | None = None
    running_peak_redundancy: float | None = None
    streak: int = 0
    streak_onset: int | None = None
    onsets: dict[str, int] = field(default_factory=dict)
    peak_step: int | None = None
    peak_synergy: float | None = None
    peak_redundancy: float | None = None


def _change_to_dict(change: PhaseChange) -> dict[str, Any]:
    """Turn a phase change into a JSON-serialisable dict."""
    return {**asdict(change), "previous": change.previous.value, "phase": change.phase.value}


class PhaseTracker:
    """Decide online, from the synergy seen so far, which grokking phase training is in."""

    def __init__(
        self,
        span: int = 5,
        rise: float = 1.5,
        drop: float = 0.2,
        patience: int = 3,
        min_bits: float = 0.05,
        rise_sd: float = 4.0,
        drop_sd: float = 4.0,
    ) -> None:
        """Set the rule's parameters (see the module docstring) after checking them."""
        if not isinstance(span, int) or span < 1:
            raise ValueError(f"span must be an integer >= 1 (evaluations), got {span!r}")
        if not 1 < rise < math.inf:
            raise ValueError(f"rise must be a finite number > 1, got {rise!r}")
        if not 0 < drop < 1:
            raise ValueError(f"drop must lie strictly between 0 and 1, got {drop!r}")
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1 (evaluations), got {patience!r}")
        if not 0 <= min_bits < math.inf:
            raise ValueError(f"min_bits must be a finite number >= 0, got {min_bits!r}")
        for name, value in (("rise_sd", rise_sd), ("drop_sd", drop_sd)):
            if not 0 < value < math.inf:
                raise ValueError(f"{name} must be a finite number > 0 (SDs), got {value!r}")
        self._params: dict[str, Any] = {
            "span": span,
            "rise": rise,
            "drop": drop,
            "patience": patience,
            "min_bits": min_bits,
            "rise_sd": rise_sd,
            "drop_sd": drop_sd,
        }
        self._alpha = 2.0 / (span + 1)
        self._rise = rise
        self._drop = drop
        self._patience = patience
        self._min_bits = min_bits
        self._rise_sd = rise_sd
        self._drop_sd = drop_sd
        self._s = _State()
        self._changes: list[PhaseChange] = []

    @property
    def phase(self) -> Phase:
        """The current phase."""
        return self._s.phase

    @property
    def changes(self) -> list[PhaseChange]:
        """The phase changes decided so far, oldest first."""
        return list(self._changes)

    @property
    def peak_step(self) -> int | None:
        """Step of the confirmed peak of smoothed synergy; None before Decoupling."""
        return self._s.peak_step

    @property
    def peak_synergy(self) -> float | None:
        """Smoothed synergy (bits) at the confirmed peak; None before Decoupling."""
        return self._s.peak_synergy

    @property
    def running_peak_step(self) -> int | None:
        """Step of the running peak of smoothed synergy (rule 5); None before any evaluation."""
        return self._s.running_peak_step

    @property
    def smoothed_synergy(self) -> float | None:
        """The latest smoothed synergy (bits), for logging next to the raw value."""
        return self._s.synergy

    @property
    def smoothed_redundancy(self) -> float | None:
        """The latest smoothed redundancy (bits), for logging next to the raw value."""
        return self._s.redundancy

    def update(
        self,
        step: int,
        synergy: float,
        redundancy: float,
        synergy_sd: float | None = None,
        significant: bool | None = None,
    ) -> PhaseChange | None:
        """Feed one evaluation (skipped if not finite) and return the phase change it decides.

        With `synergy_sd` (the noise of this synergy value, bits) the rise and drop thresholds are
        `rise_sd` and `drop_sd` times it (rule 3′ and 6′ of the module docstring); `significant`
        False (the value is not beyond its chance level) keeps emergence from starting.
        """
        step = operator.index(step)
        if synergy_sd is not None and not (math.isfinite(synergy_sd) and synergy_sd >= 0):
            synergy_sd = None
        s = self._s
        if s.last_step is not None and step <= s.last_step:
            raise ValueError(f"steps must increase: got {step} after {s.last_step}")
        synergy, redundancy = float(synergy), float(redundancy)
        if not (math.isfinite(synergy) and math.isfinite(redundancy)):
            return None
        s.last_step = step
        s.evaluations += 1
        s.synergy = self._smooth(s.synergy, synergy)
        s.redundancy = self._smooth(s.redundancy, redundancy)
        s.running_min = s.synergy if s.running_min is None else min(s.running_min, s.synergy)
        if s.phase is Phase.FEATURE_LEARNING:
            if synergy_sd is None:
                need = max((self._rise - 1) * abs(s.running_min), self._min_bits)
                rises = s.synergy > self._min_bits and s.synergy - s.running_min > need
            else:
                need = self._rise_sd * synergy_sd
                rises = significant is not False and s.synergy - s.running_min > need
            self._raise_peak(step, restart=rises and s.streak == 0)
            if self._confirmed(rises, step):
                return self._move(
                    Phase.EMERGENCE,
                    step,
                    f"smoothed synergy {s.synergy:.4g} bits is {s.synergy - s.running_min:.4g} "
                    f"bits above its running minimum {s.running_min:.4g} bits "
                    f"(threshold {need:.4g} bits)",
                )
            return None
        self._raise_peak(step, restart=False)
        if s.phase is Phase.EMERGENCE:
            assert s.running_peak is not None
            if synergy_sd is None:
                need = max(self._drop * s.running_peak, self._min_bits)
            else:
                need = self._drop_sd * synergy_sd
            if self._confirmed(s.running_peak - s.synergy > need, step):
                s.peak_step = s.running_peak_step
                s.peak_synergy = s.running_peak
                s.peak_redundancy = s.running_peak_redundancy
                return self._move(
                    Phase.DECOUPLING,
                    step,
                    f"smoothed synergy {s.synergy:.4g} bits is {s.running_peak - s.synergy:.4g} "
                    f"bits below its peak {s.running_peak:.4g} bits at step {s.peak_step} "
                    f"(threshold {need:.4g} bits)",
                )
        return None

    def _smooth(self, previous: float | None, value: float) -> float:
        """Advance the causal EMA of rule 1 by one value."""
        return value if previous is None else self._alpha * value + (1 - self._alpha) * previous

    def _raise_peak(self, step: int, restart: bool) -> None:
        """Move the running peak (rule 5) to this evaluation if it is higher or a new run starts."""
        s = self._s
        assert s.synergy is not None
        if restart or s.running_peak is None or s.synergy > s.running_peak:
            s.running_peak_step = step
            s.running_peak = s.synergy
            s.running_peak_redundancy = s.redundancy

    def _confirmed(self, holds: bool, step: int) -> bool:
        """Count consecutive evaluations meeting a condition; True once there are `patience`."""
        s = self._s
        if not holds:
            s.streak = 0
            return False
        if s.streak == 0:
            s.streak_onset = step
        s.streak += 1
        return s.streak >= self._patience

    def _move(self, phase: Phase, step: int, evidence: str) -> PhaseChange:
        """Enter the next phase, record why, and reset the consecutive-evaluation count."""
        s = self._s
        assert s.streak_onset is not None
        change = PhaseChange(
            step=step,
            previous=s.phase,
            phase=phase,
            reason=f"{evidence} at {s.streak} consecutive evaluations, first at step "
            f"{s.streak_onset}; smoothed redundancy {s.redundancy:.4g} bits",
        )
        s.onsets[phase.value] = s.streak_onset
        s.phase = phase
        s.streak = 0
        s.streak_onset = None
        self._changes.append(change)
        return change

    def summary(self) -> dict[str, Any]:
        """Phase boundaries (decision and onset steps) and the peak, as a JSON-serialisable dict."""
        s = self._s
        decided = {c.phase.value: c.step for c in self._changes}
        return {
            "phase": s.phase.value,
            "evaluations": s.evaluations,
            "emergence_step": decided.get(Phase.EMERGENCE.value),
            "emergence_onset_step": s.onsets.get(Phase.EMERGENCE.value),
            "decoupling_step": decided.get(Phase.DECOUPLING.value),
            "decoupling_onset_step": s.onsets.get(Phase.DECOUPLING.value),
            "peak_step": s.peak_step,
            "peak_confirmed_step": decided.get(Phase.DECOUPLING.value),
            "peak_synergy": s.peak_synergy,
            "peak_redundancy": s.peak_redundancy,
            "changes": [_change_to_dict(c) for c in self._changes],
        }

    def state_dict(self) -> dict[str, Any]:
        """The parameters and full state as a JSON-serialisable dict, for resuming a run."""
        return {
            "params": dict(self._params),
            "state": {**asdict(self._s), "phase": self._s.phase.value},
            "changes": [_change_to_dict(c) for c in self._changes],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from `state_dict`; the tracker's parameters must match the saved ones."""
        state = copy.deepcopy(state)
        if state["params"] != self._params:
            raise ValueError(
                f"saved parameters {state['params']} differ from this tracker's {self._params}"
            )
        self._s = _State(**{**state["state"], "phase": Phase(state["state"]["phase"])})
        self._changes = [
            PhaseChange(
                step=c["step"],
                previous=Phase(c["previous"]),
                phase=Phase(c["phase"]),
                reason=c["reason"],
            )
            for c in state["changes"]
        ]


def detect_phases(
    steps: Iterable[int],
    synergy: Iterable[float],
    redundancy: Iterable[float],
    synergy_sd: Iterable[float | None] | None = None,
    significant: Iterable[bool | None] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Run a `PhaseTracker` over recorded curves and return its summary, for offline analysis.

    Give `synergy_sd` (and `significant`) from the history records, as the monitor does live:
    without them the tracker falls back to its relative thresholds, which the estimator's noise
    defeats (see the module docstring).

    Examples:
        >>> steps = list(range(60))
        >>> synergy = [0.2] * 20 + [1.2] * 15 + [0.3] * 25
        >>> detect_phases(steps, synergy, [1.0] * 60, synergy_sd=[0.05] * 60)["phase"]
        'decoupling'
    """
    steps, synergy, redundancy = list(steps), list(synergy), list(redundancy)
    sds = [None] * len(steps) if synergy_sd is None else list(synergy_sd)
    calls = [None] * len(steps) if significant is None else list(significant)
    tracker = PhaseTracker(**params)
    for step, syn, red, sd, call in zip(steps, synergy, redundancy, sds, calls, strict=True):
        tracker.update(step, syn, red, synergy_sd=sd, significant=call)
    return tracker.summary()
