"""The Lightning callback on the fits people run: gradient accumulation, a second fit, a module
without `forward`, the initial state."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

lightning = pytest.importorskip("lightning.pytorch")

from oinfo_monitor.integrations.lightning import OInfoCallback  # noqa: E402
from oinfo_monitor.monitor.records import read_records  # noqa: E402

SEARCH: dict[str, Any] = {"strategy": "exhaustive", "sizes": [3, 4]}


class Module(lightning.LightningModule):
    """A classifier whose training_step calls `self.net`; `forward` only when asked for."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 2)
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class WithForward(Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def data() -> tuple[torch.Tensor, torch.utils.data.DataLoader]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=generator)
    y = (x[:, 0] > 0).long()
    dataset = torch.utils.data.TensorDataset(x, y)
    return x, torch.utils.data.DataLoader(dataset, batch_size=32)


def trainer(root: Path, callback: OInfoCallback, logger: Any = None, **options: Any) -> Any:
    """A CPU trainer with `logger` (a TensorBoard logger under `root` by default)."""
    return lightning.Trainer(
        default_root_dir=str(root), logger=logger or lightning.loggers.TensorBoardLogger(str(root)),
        callbacks=[callback], accelerator="cpu", devices=1, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, **options,
    )  # fmt: skip


def history_steps(callback: OInfoCallback) -> list[int]:
    assert callback.monitor is not None and callback.monitor.history_path is not None
    records = read_records(callback.monitor.history_path)
    return [r["step"] for r in records if r["size"] == 3 and r["layer"] == "net.0"]


def test_gradient_accumulation_does_not_crash_and_measures_each_step_once(tmp_path: Path) -> None:
    x, loader = data()
    callback = OInfoCallback(probe=x[:200], every=2, **SEARCH)
    fit = trainer(tmp_path, callback, max_steps=6, accumulate_grad_batches=2)
    fit.fit(WithForward(), loader)
    assert history_steps(callback) == [0, 2, 4, 6]


def test_a_module_without_forward_fails_at_setup_naming_the_option(tmp_path: Path) -> None:
    x, loader = data()
    callback = OInfoCallback(probe=x[:200], every=2, **SEARCH)
    module = Module()
    before = [p.clone() for p in module.parameters()]
    with pytest.raises(ValueError, match="forward="):
        trainer(tmp_path, callback, max_steps=4).fit(module, loader)
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_forward_option_runs_the_probe_through_a_module_without_forward(tmp_path: Path) -> None:
    x, loader = data()
    callback = OInfoCallback(
        probe=x[:200], every=2, forward=lambda module, batch: module.net(batch), **SEARCH
    )
    trainer(tmp_path, callback, max_steps=4).fit(Module(), loader)
    assert history_steps(callback) == [0, 2, 4]


def test_a_callback_reused_for_a_second_fit_measures_the_new_module(tmp_path: Path) -> None:
    x, loader = data()
    callback = OInfoCallback(probe=x[:200], every=2, **SEARCH)
    trainer(tmp_path / "a", callback, max_steps=4).fit(WithForward(seed=0), loader)
    first = callback.monitor
    second_module = WithForward(seed=1)
    trainer(tmp_path / "b", callback, max_steps=4).fit(second_module, loader)
    assert callback.monitor is not first
    assert callback.monitor is not None and callback.monitor.model is second_module
    assert history_steps(callback) == [0, 2, 4]
    assert str(callback.monitor.history_path).startswith(str(tmp_path / "b"))


def test_a_csv_logger_alone_receives_the_curves(tmp_path: Path) -> None:
    """With only a CSVLogger, metrics.csv gets the synergy columns (value, band, chance)."""
    import csv

    x, loader = data()
    seen: list[int] = []
    callback = OInfoCallback(
        probe=x[:200], every=2, on_evaluation=lambda e: seen.append(e.step), **SEARCH
    )
    logger = lightning.loggers.CSVLogger(str(tmp_path), name="csv")
    fit = trainer(tmp_path, callback, logger=logger, max_steps=4)
    fit.fit(WithForward(), loader)
    text = (Path(logger.log_dir) / "metrics.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    measured = [r for r in rows if r.get("oinfo/net.0/synergy")]
    assert [int(r["step"]) for r in measured] == [0, 2, 4]
    for column in (
        "oinfo/net.0/synergy_lower",
        "oinfo/net.0/synergy_chance",
        "oinfo/net.2/redundancy",
    ):
        assert all(r[column] for r in measured), column
    assert seen == [0, 2, 4]  # the user's own hook still runs


class ThreadRecordingCSVLogger(lightning.loggers.CSVLogger):
    """A CSVLogger that notes the thread of every `log_metrics` call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threads: set[int] = set()

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.threads.add(threading.get_ident())
        super().log_metrics(metrics, step)


def test_background_evaluations_reach_the_other_loggers_on_the_training_thread(
    tmp_path: Path,
) -> None:
    """The worker publishes, but a logger the training loop uses is only called from the
    training thread (a CSVLogger saving meanwhile could drop rows or fail on new columns), and
    every evaluation gets there by the end of the fit, each step once."""
    import csv

    x, loader = data()
    callback = OInfoCallback(probe=x[:200], every=1, background=True, **SEARCH)
    logger = ThreadRecordingCSVLogger(str(tmp_path), name="csv", flush_logs_every_n_steps=1)
    fit = trainer(tmp_path, callback, logger=logger, max_steps=8)
    fit.fit(WithForward(), loader)
    assert logger.threads == {threading.get_ident()}
    rows = list(csv.DictReader((Path(logger.log_dir) / "metrics.csv").open(encoding="utf-8")))
    measured = [int(r["step"]) for r in rows if r.get("oinfo/net.0/synergy")]
    assert measured == list(range(9)) == history_steps(callback)


class BrokenCSVLogger(lightning.loggers.CSVLogger):
    """A CSVLogger whose `log_metrics` fails on the monitor's curves."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if any(name.startswith("oinfo/") for name in metrics):
            raise OSError("disk full")
        super().log_metrics(metrics, step)


def test_a_failing_logger_is_a_warning_and_training_goes_on(tmp_path: Path) -> None:
    x, loader = data()
    callback = OInfoCallback(probe=x[:200], every=2, **SEARCH)
    logger = BrokenCSVLogger(str(tmp_path), name="csv")
    fit = trainer(tmp_path, callback, logger=logger, max_steps=4)
    with pytest.warns(Warning, match="sending to BrokenCSVLogger failed: OSError: disk full"):
        fit.fit(WithForward(), loader)
    assert fit.global_step == 4 and history_steps(callback) == [0, 2, 4]
