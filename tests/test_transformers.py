"""The Hugging Face Trainer callback: a real (tiny) Trainer run whose TensorBoard logs hold the
monitor's curves next to the loss, keyword probes, and a resume that continues the curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

transformers = pytest.importorskip(
    "transformers", reason="the [transformers] extra is not installed"
)
pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate")

from oinfo_monitor.integrations.transformers import STATE_FILE, OInfoCallback  # noqa: E402
from oinfo_monitor.monitor.records import read_records  # noqa: E402

VOCAB, LENGTH, SAMPLES = 12, 6, 256


class TinyTextModel(nn.Module):
    """Embeds tokens, averages them under the attention mask, classifies: a text model's calling
    convention (keyword inputs, a dict with the loss) in a few lines."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 8)
        self.hidden = nn.Linear(8, 10)
        self.head = nn.Linear(10, 2)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: Any = None
    ) -> dict[str, torch.Tensor]:
        mask = attention_mask[..., None].float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1)
        logits = self.head(torch.relu(self.hidden(pooled)))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


def dataset() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (SAMPLES, LENGTH), generator=g)
    mask = torch.ones(SAMPLES, LENGTH, dtype=torch.long)
    labels = (ids[:, 0] > VOCAB // 2).long()
    return [
        {"input_ids": i, "attention_mask": m, "labels": y}
        for i, m, y in zip(ids, mask, labels, strict=True)
    ]


def run(out: Path, callback: OInfoCallback, steps: int, resume: bool = False, save: int = 0) -> Any:
    args = transformers.TrainingArguments(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=32, learning_rate=0.05,
        report_to=["tensorboard"], logging_steps=2, save_strategy="steps" if save else "no",
        save_steps=save or 500, use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    trainer = transformers.Trainer(
        model=TinyTextModel(), args=args, train_dataset=dataset(), callbacks=[callback]
    )
    trainer.train(resume_from_checkpoint=resume or None)
    return trainer


def probe() -> dict[str, torch.Tensor]:
    rows = dataset()[:200]
    return {key: torch.stack([r[key] for r in rows]) for key in ("input_ids", "attention_mask")}


SEARCH: dict[str, Any] = {"strategy": "exhaustive", "sizes": [3, 4], "layers": ["hidden"]}


def test_a_trainer_run_writes_the_curves_next_to_the_loss(tmp_path: Path) -> None:
    callback = OInfoCallback(probe(), every=2, **SEARCH)
    run(tmp_path, callback, steps=6)
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1  # one run folder: the Trainer's own
    events = EventAccumulator(str(runs[0]))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "train/loss" in tags and "oinfo/hidden/synergy" in tags
    assert [e.step for e in events.Scalars("oinfo/hidden/synergy")] == [0, 2, 4, 6]
    steps = [r["step"] for r in read_records(runs[0] / "oinfo_history.jsonl") if r["size"] == 3]
    assert steps == [0, 2, 4, 6]


def test_resume_from_checkpoint_continues_the_curves(tmp_path: Path) -> None:
    first = OInfoCallback(probe(), every=2, **SEARCH)
    run(tmp_path, first, steps=4, save=4)
    assert (tmp_path / "checkpoint-4" / STATE_FILE).exists()
    second = OInfoCallback(probe(), every=2, **SEARCH)
    run(tmp_path, second, steps=8, resume=True)
    assert second.monitor is not None
    steps = sorted({r["step"] for r in second.monitor.history})
    assert steps == [0, 2, 4, 6, 8]  # step 4 not measured twice


def test_bad_options_fail_when_the_callback_is_built() -> None:
    with pytest.raises(ValueError, match="strategy must be one of"):
        OInfoCallback(probe(), strategy="fastest")
