"""Which training steps the monitor evaluates: due under the schedule, integer-like, each once.

The rule (see docs/monitor.md): any integer-like step is accepted; each distinct step is evaluated
at most once and only beyond the last one evaluated. A repeated step is ignored silently, a lower
one (an epoch-local counter) and a non-integer one with a warning, once per kind.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

Schedule = int | Iterable[int] | Callable[[int], bool]
"""When to evaluate: every N steps, a collection of steps, or a predicate on the step."""


def as_step(step: Any) -> int | None:
    """A training step as an int: ints, numpy integers, integral floats and one-element integer
    (or integral float) tensors are accepted; anything else gives None.

    Examples:
        >>> as_step(torch.tensor(7)), as_step(3.0), as_step(2.5)
        (7, 3, None)
    """
    if isinstance(step, Tensor):
        if step.numel() != 1 or step.is_complex() or step.dtype == torch.bool:
            return None
        step = step.item()
    if isinstance(step, bool):
        return None
    if isinstance(step, numbers.Integral):
        return int(step)
    if isinstance(step, numbers.Real) and float(step).is_integer():
        return int(float(step))
    return None


def check_schedule(every: Any) -> Schedule:
    """Validate `every`: a positive int, a non-empty collection of integer steps, or a predicate."""
    if isinstance(every, bool):
        raise TypeError("every must be a positive int, an iterable of steps or a callable")
    if isinstance(every, numbers.Integral):
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        return int(every)
    if callable(every):
        return every
    if not isinstance(every, Iterable) or isinstance(every, str | bytes):
        raise TypeError(
            f"every must be a positive int, an iterable of steps or a callable, got {every!r}"
        )
    steps = [as_step(s) for s in every]
    if any(s is None for s in steps):
        raise ValueError(f"every holds a step that is not an integer: {every!r}")
    if not steps:
        raise ValueError("every is an empty collection of steps: the monitor would never run")
    return frozenset(s for s in steps if s is not None)


def is_due(schedule: Schedule, step: int) -> bool:
    """Whether `step` is an evaluation step of the schedule."""
    if isinstance(schedule, int):
        return step % schedule == 0
    if callable(schedule):
        return bool(schedule(step))
    assert isinstance(schedule, frozenset)
    return step in schedule


@dataclass
class StepGate:
    """Admits the steps to evaluate and remembers the last one; says why it refuses one.

    `resumed` is the last step of a history file being continued: steps up to it are already
    recorded. After `closed` is set, nothing is admitted.

    Examples:
        >>> gate = StepGate(every=10)
        >>> [gate.admit(s, scheduled=True)[0] for s in (0, 5, 10, 10, 3)]
        [0, None, 10, None, None]
        >>> gate.admit(3, scheduled=False)[1][0]  # a lower step, whatever the schedule
        'backwards'
    """

    every: Schedule
    last: int | None = None
    resumed: int | None = None
    closed: bool = False

    def admit(self, step: Any, scheduled: bool) -> tuple[int | None, tuple[str, str] | None]:
        """(the step as an int, None) if it is to be evaluated now, and then counts as the last;
        else (None, (kind, reason)) for a refusal worth a warning, or (None, None) for one that is
        not (a step not due, or the last step repeated)."""
        if self.closed:
            return None, ("closed", "step()/evaluate() after close() does nothing")
        number = as_step(step)
        if number is None:
            return None, (
                "type",
                f"step {step!r} ({type(step).__name__}) ignored: a step must be an integer "
                "(int, numpy integer, integral float or one-element tensor)",
            )
        if scheduled and not is_due(self.every, number):
            return None, None
        if self.last is None or number > self.last:
            self.last = number
            return number, None
        if self.resumed is not None and number <= self.resumed:
            return None, (
                "resumed",
                f"steps up to {self.resumed} are already in the history; they are not evaluated again",
            )
        if number < self.last:
            return None, (
                "backwards",
                f"step {number} came after step {self.last}: the monitor evaluates only steps "
                "beyond the last one evaluated, so it needs a global step counter (e.g. "
                "epoch * len(loader) + batch), not an epoch-local one",
            )
        return None, None
