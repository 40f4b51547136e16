"""`OInfoCallback`: the O-information monitor as a Hugging Face `transformers.TrainerCallback`.

Install with ``pip install "oinfo-monitor[transformers]"``. The model comes from the callback
arguments (a DDP or compile wrapper is unwrapped), the step is ``state.global_step``, and only the
world's process zero computes and writes. The curves go into the run folder of the Trainer's own
TensorBoard reporting (``report_to=["tensorboard"]``), so they sit next to the loss; without it
they go to ``<output_dir>/oinfo``. The monitor's state is saved into every checkpoint folder
(``oinfo_monitor_state.json``) and read back when training resumes from one, so a resumed run
continues its curves without writing a step twice.

A text model takes keyword inputs: pass the probe as a dict of tensors, which the monitor feeds as
keywords (``model(**batch)``), or give ``forward=`` to say how::

    probe = {"input_ids": ids[:512], "attention_mask": mask[:512]}
    callback = OInfoCallback(probe, every=50, layers=["encoder.layer.0.output.dense"], token=0)
    Trainer(model=model, args=args, train_dataset=train, callbacks=[callback]).train()
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from oinfo_monitor.monitor.monitor import OInfoMonitor
from oinfo_monitor.monitor.options import check_monitor_options
from oinfo_monitor.monitor.steps import Schedule

STATE_FILE = "oinfo_monitor_state.json"
"""Name of the monitor's state in each checkpoint folder."""


class OInfoCallback(TrainerCallback):
    """Measure layerwise synergy and redundancy every `every` optimizer steps of a `Trainer` run.

    `probe` (a tensor, a tuple of forward arguments, or a dict of keyword inputs) and every other
    keyword are passed to `OInfoMonitor`; they are validated here, before training.

    Examples:
        >>> OInfoCallback(probe=None, every=25, strategy="greedy").every
        25
    """

    def __init__(self, probe: Any, every: Schedule = 100, **monitor_options: Any) -> None:
        super().__init__()
        check_monitor_options({"every": every, **monitor_options})
        self.probe = probe
        self.every = every
        self.monitor_options = monitor_options
        self.monitor: OInfoMonitor | None = None

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        **kwargs: Any,
    ) -> None:
        """Build the monitor on the model being trained; resume its state from the checkpoint."""
        if not state.is_world_process_zero or model is None:
            return
        options = dict(self.monitor_options)
        saved = _checkpoint_state(args, state)
        if "writer" not in options and "logdir" not in options:
            options["logdir"] = _trainer_logdir(args)
        options.setdefault("resume", saved is not None)
        if self.monitor is not None:
            self.monitor.close()
        self.monitor = OInfoMonitor(model, self.probe, every=self.every, **options)
        if saved is not None:
            self.monitor.load_state_dict(saved)
        self.monitor.step(state.global_step)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Evaluate when the new global step is due (after the optimizer stepped)."""
        if self.monitor is not None:
            self.monitor.step(state.global_step)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Write the monitor's state into the checkpoint folder the Trainer just saved."""
        folder = Path(str(args.output_dir)) / f"checkpoint-{state.global_step}"
        if self.monitor is not None and folder.is_dir():
            (folder / STATE_FILE).write_text(json.dumps(self.monitor.state_dict()), "utf-8")

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Flush and close the monitor's output."""
        if self.monitor is not None:
            self.monitor.close()


def _trainer_logdir(args: TrainingArguments) -> Path:
    """The Trainer's TensorBoard run folder (its TensorBoard callback runs first and creates the
    newest folder under ``<output_dir>/runs``), or ``<output_dir>/oinfo`` without one."""
    runs = Path(str(args.output_dir)) / "runs"
    reports = args.report_to or []
    if "tensorboard" in reports and runs.is_dir():
        folders = [p for p in runs.iterdir() if p.is_dir()]
        if folders:
            return max(folders, key=lambda p: p.stat().st_mtime)
    return Path(str(args.output_dir)) / "oinfo"


def _checkpoint_state(args: TrainingArguments, state: TrainerState) -> dict[str, Any] | None:
    """The monitor state saved in the checkpoint training resumes from, if any."""
    if state.global_step == 0:
        return None
    path = Path(str(args.output_dir)) / f"checkpoint-{state.global_step}" / STATE_FILE
    if not os.path.exists(path):
        return None
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return loaded
