"""The demos' progress bar: time left from measured costs, chance-level evaluations at their cadence."""

from __future__ import annotations

from oinfo_monitor.experiments.progress import Progress
from oinfo_monitor.monitor.records import Evaluation


def evaluation(step: int, seconds: float, chance_step: int) -> Evaluation:
    return Evaluation(step, [{"chance_step": chance_step}], {}, seconds=seconds)


def test_time_left_counts_the_costly_chance_evaluations_at_their_cadence() -> None:
    progress = Progress(100, 6, background=False, quiet=True, null_every=3)
    progress.evaluated(evaluation(0, 10.0, chance_step=0))  # computed its chance levels
    progress.evaluated(evaluation(5, 1.0, chance_step=0))  # reused them
    progress.training_seconds, progress.steps_done = 2.0, 20  # 0.1 s per step
    # evaluations 2..5 are left, of which 3 computes chance levels; 80 steps of 0.1 s
    assert progress.left() == 3 * 1.0 + 10.0 + 80 * 0.1
    progress.background = True  # training and scoring overlap: the longer of the two
    assert progress.left() == 13.0
    progress.close()


def test_before_any_plain_evaluation_every_evaluation_is_expected_to_cost_the_mean() -> None:
    progress = Progress(10, 3, background=False, quiet=True, null_every=0)
    progress.evaluated(evaluation(0, 4.0, chance_step=0))
    assert progress.left() == 2 * 4.0  # no steps done yet: no training estimate
    progress.stepped(0.0)
    assert progress.steps_done == 1
    progress.close()
