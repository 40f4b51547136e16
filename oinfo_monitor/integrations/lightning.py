"""`OInfoCallback`: the O-information monitor as a Lightning callback.

The model comes from the trainer, the writer from the trainer's TensorBoard logger (or a folder
under the trainer's log directory), and the step from ``trainer.global_step``; only global rank
zero computes and writes. The headline curves (with their SD, chance level and significance) also
go to every other logger of the trainer through ``logger.log_metrics`` (a ``CSVLogger``,
``MLFlowLogger`` or ``WandbLogger`` gets them as columns); TensorBoard additionally gets the
custom-scalars layout and the figures. Options are checked when the callback is built; the monitor itself is
built at the start of every fit (so a callback reused for a second fit measures the new module,
with an open writer), and its dry run of the probe fails that fit before its first step. The
initial state is measured when the schedule includes the fit's first step (0 for a new run). The
monitor's state travels in Lightning checkpoints, so a resumed run continues its curves without
writing a step twice. With gradient accumulation the global step repeats across micro-batches;
each step is measured once. With ``background=True`` an evaluation is published on the monitor's
worker thread, but the other loggers get its curves on the training thread, after the next step
(a logger is not safe to call while the training loop uses it: a ``CSVLogger`` saving its rows
meanwhile could drop them or fail on new columns), and all of them by the end of the fit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone distribution
    import pytorch_lightning as pl  # type: ignore[no-redef]

from oinfo_monitor.monitor.monitor import OInfoMonitor
from oinfo_monitor.monitor.options import check_monitor_options
from oinfo_monitor.monitor.records import Evaluation
from oinfo_monitor.monitor.sinks import headline_scalars
from oinfo_monitor.monitor.steps import Schedule


class OInfoCallback(pl.Callback):
    """Measure layerwise synergy and redundancy every `every` optimizer steps of a Lightning fit.

    `probe` and every other keyword are passed to `OInfoMonitor` (except `writer`/`logdir`, which
    come from the trainer unless given); they are validated here, before any fit. A module whose
    ``training_step`` calls a submodule and has no ``forward`` needs ``forward=``.

    Examples:
        >>> OInfoCallback(probe=None, every=50, strategy="greedy").every
        50
    """

    def __init__(self, probe: Any, every: Schedule = 100, **monitor_options: Any) -> None:
        super().__init__()
        check_monitor_options({"every": every, **monitor_options})
        self.probe = probe
        self.every = every
        self.monitor_options = monitor_options
        self.monitor: OInfoMonitor | None = None
        self._trainer: pl.Trainer | None = None
        self._pending_state: dict[str, Any] | None = None
        self._outbox: deque[tuple[int, dict[str, float]]] = deque()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Build a new monitor on the module being fitted, writing where the trainer logs."""
        if stage != "fit":
            return
        refit = self.monitor is not None and trainer is self._trainer
        if self.monitor is not None:
            self.monitor.close()
        options = dict(self.monitor_options)
        if "writer" not in options and "logdir" not in options and trainer.is_global_zero:
            writer = _tensorboard_writer(trainer)
            if writer is not None:
                options["writer"] = writer
            else:
                options["logdir"] = Path(trainer.default_root_dir) / "oinfo"
        options.setdefault("resume", refit or trainer.ckpt_path is not None)
        user_hook = options.pop("on_evaluation", None)
        self.monitor = OInfoMonitor(
            pl_module,
            self.probe,
            every=self.every,
            on_evaluation=_to_outbox(trainer, self._outbox, user_hook),
            **options,
        )
        self._trainer = trainer
        if self._pending_state is not None:
            self.monitor.load_state_dict(self._pending_state)
            self._pending_state = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Measure the state training starts from, if its step is due (step 0 for a new run)."""
        if self.monitor is not None:
            self.monitor.step(trainer.global_step)
            self._send(trainer, self.monitor)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Evaluate when the new global step is due (after the optimizer stepped)."""
        if self.monitor is not None:
            self.monitor.step(trainer.global_step)
            self._send(trainer, self.monitor)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Flush and close the monitor's output at the end of fitting."""
        if stage == "fit" and self.monitor is not None:
            self.monitor.close()
            self._send(trainer, self.monitor)

    def state_dict(self) -> dict[str, Any]:
        """The monitor's state, stored in Lightning checkpoints."""
        return self.monitor.state_dict() if self.monitor is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the monitor's state from a checkpoint (applied once the monitor exists)."""
        if not state_dict:
            return
        if self.monitor is not None:
            self.monitor.load_state_dict(state_dict)
        else:
            self._pending_state = state_dict

    def _send(self, trainer: pl.Trainer, monitor: OInfoMonitor) -> None:
        """Hand the published evaluations' headline scalars to every logger of the trainer that is
        not a TensorBoard logger (the monitor writes those itself, with the layout and figures),
        on the calling (training) thread; a logger's failure is the monitor's warning."""
        while self._outbox:
            step, scalars = self._outbox.popleft()
            for logger in _other_loggers(trainer):
                monitor.guard(
                    f"sending to {type(logger).__name__}", logger.log_metrics, scalars, step
                )


def _other_loggers(trainer: pl.Trainer) -> list[Any]:
    """The trainer's loggers that are not TensorBoard loggers."""
    return [lg for lg in trainer.loggers if not isinstance(lg, pl.loggers.TensorBoardLogger)]


def _to_outbox(
    trainer: pl.Trainer,
    outbox: deque[tuple[int, dict[str, float]]],
    user_hook: Callable[[Evaluation], None] | None,
) -> Callable[[Evaluation], None]:
    """An `on_evaluation` hook, called on whichever thread publishes: the headline scalars go into
    `outbox` (when the trainer has other loggers) for the training thread to send, then the
    user's own hook runs."""

    def hook(evaluation: Evaluation) -> None:
        if _other_loggers(trainer):
            outbox.append((evaluation.step, headline_scalars(evaluation)))
        if user_hook is not None:
            user_hook(evaluation)

    return hook


def _tensorboard_writer(trainer: pl.Trainer) -> Any:
    """The SummaryWriter of the trainer's first TensorBoard logger, or None."""
    for logger in trainer.loggers:
        if isinstance(logger, pl.loggers.TensorBoardLogger):
            return logger.experiment
    return None
