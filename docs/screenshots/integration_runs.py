"""Tiny real Hugging Face Trainer and Lightning runs with the monitor, photographed in TensorBoard.

The images of the "Hugging Face Trainer" and "PyTorch Lightning" sections of docs/monitor.md:
each run trains a small model on an XOR-like task (the label needs two inputs together, so the
hidden layer has something to learn), with the integration's `OInfoCallback` measuring every
`--every` steps and the framework's own TensorBoard logging the loss:

- ``hf_trainer``: a `transformers.Trainer` with ``report_to=["tensorboard"]`` on a token model
  (embedding, hidden layer, head; keyword inputs and a dict probe, as text models take);
- ``lightning``: a `lightning.Trainer` with a `TensorBoardLogger` on an MLP of two hidden layers.

Then `take_tensorboard_screenshot.py` (same folder) serves the run on 127.0.0.1 and photographs
the scalars dashboard filtered to the loss and the headline curves, into
``docs/img/tensorboard_<run>.png``; the series shown are saved as ``docs/data/tensorboard_<run>.json``.
Runs go to ``runs/screenshots/<run>`` (replaced each time). From the repository root, with the
``[transformers]`` and ``[lightning]`` extras and Chromium installed (see that script)::

    .venv/bin/python docs/screenshots/integration_runs.py                 # both runs, both images
    .venv/bin/python docs/screenshots/integration_runs.py --runs lightning

This is documentation tooling, not a test: `make test` does not run it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Any

import take_tensorboard_screenshot as shots
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

REPO = shots.REPO
RUNS = REPO / "runs" / "screenshots"
DATA_DIR = REPO / "docs" / "data"
FILTERS = {
    "hf_trainer": r"^(train/loss|oinfo/hidden/(synergy|redundancy))$",
    "lightning": r"^(train_loss|oinfo/net\.[02]/synergy)$",
}
"""The scalars dashboard's tag filter of each run: its loss and headline curves."""

VOCAB, LENGTH, SAMPLES = 8, 4, 1024


def xor_tokens(seed: int = 0) -> dict[str, torch.Tensor]:
    """Token sequences whose label is whether exactly one of the first two tokens is high."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (SAMPLES, LENGTH), generator=generator)
    labels = ((ids[:, 0] >= VOCAB // 2) ^ (ids[:, 1] >= VOCAB // 2)).long()
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


class TokenModel(nn.Module):
    """Embeds each token, concatenates them, one hidden layer, a head; returns a dict with the
    loss, as Hugging Face models do."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 8)
        self.hidden = nn.Linear(8 * LENGTH, 24)
        self.head = nn.Linear(24, 2)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: Any = None
    ) -> dict[str, torch.Tensor]:
        tokens = self.embed(input_ids) * attention_mask[..., None]
        logits = self.head(torch.relu(self.hidden(tokens.flatten(1))))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


def hf_trainer_run(folder: Path, steps: int, every: int) -> Path:
    """Train `TokenModel` with a `transformers.Trainer`; return its TensorBoard run folder."""
    import transformers

    from oinfo_monitor.integrations.transformers import OInfoCallback

    data = xor_tokens()
    rows = [{key: value[i] for key, value in data.items()} for i in range(SAMPLES)]
    probe = {key: data[key][:512] for key in ("input_ids", "attention_mask")}
    callback = OInfoCallback(probe, every=every, layers=["hidden"])
    args = transformers.TrainingArguments(
        output_dir=str(folder), max_steps=steps, per_device_train_batch_size=64,
        learning_rate=0.01, report_to=["tensorboard"], logging_steps=5, save_strategy="no",
        use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    transformers.Trainer(
        model=TokenModel(), args=args, train_dataset=rows, callbacks=[callback]
    ).train()
    return next(p for p in (folder / "runs").iterdir() if p.is_dir())


def lightning_run(folder: Path, steps: int, every: int) -> Path:
    """Train an MLP with a `lightning.Trainer` and a `TensorBoardLogger`; return its run folder."""
    import lightning.pytorch as pl

    from oinfo_monitor.integrations.lightning import OInfoCallback

    class Classifier(pl.LightningModule):
        """Two hidden layers; logs ``train_loss`` as a Lightning module does."""

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(
                nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 24), nn.ReLU(), nn.Linear(24, 2)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=0.01)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(SAMPLES, 8, generator=generator)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True, generator=generator
    )
    logger = pl.loggers.TensorBoardLogger(str(folder), name="lightning_logs")
    trainer = pl.Trainer(
        default_root_dir=str(folder), logger=logger, max_steps=steps, log_every_n_steps=5,
        callbacks=[OInfoCallback(probe=x[:512], every=every, capture="post")],
        accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False,
    )  # fmt: skip
    trainer.fit(Classifier(), loader)
    return Path(logger.log_dir)


def save_series(run_folder: Path, tag_filter: str, path: Path) -> list[str]:
    """Write the scalar series the screenshot shows (the tags `tag_filter` matches) as JSON."""
    events = EventAccumulator(str(run_folder), size_guidance={"scalars": 0})
    events.Reload()
    shown = sorted(t for t in events.Tags()["scalars"] if re.search(tag_filter, t))
    series = {
        tag: {
            "steps": [e.step for e in events.Scalars(tag)],
            "values": [e.value for e in events.Scalars(tag)],
        }
        for tag in shown
    }
    document = {
        "source": "docs/screenshots/integration_runs.py",
        "tag_filter": tag_filter,
        "units": "bits for oinfo/*, nats for the loss",
        "series": series,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return shown


def main() -> None:
    """Run, save the shown series, photograph."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", choices=sorted(FILTERS), default=sorted(FILTERS))
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps of each run")
    parser.add_argument("--every", type=int, default=10, help="the monitor's cadence")
    parser.add_argument("--chromium", default=None, help="Chromium binary (default: on PATH)")
    args = parser.parse_args()
    makers = {"hf_trainer": hf_trainer_run, "lightning": lightning_run}
    for name in args.runs:
        folder = RUNS / name
        shutil.rmtree(folder, ignore_errors=True)
        run_folder = makers[name](folder, args.steps, args.every)
        shown = save_series(run_folder, FILTERS[name], DATA_DIR / f"tensorboard_{name}.json")
        print(f"{name}: {run_folder}, charts {shown}")
        options = ["--views", "scalars", "--tag-filter", FILTERS[name]]
        options += ["--scalars-png", f"tensorboard_{name}.png", "--height", "480"]
        options += ["--chromium", args.chromium] if args.chromium else []
        shots.main([str(run_folder), *options])


if __name__ == "__main__":
    main()
