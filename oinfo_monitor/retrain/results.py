"""The outcome of a retraining comparison: one `RunResult` per run, gathered in a `RetrainResult`.

A `RetrainResult` pools the draws ``name:i`` of a strategy (`RetrainResult.groups`), summarises
them (`RetrainResult.summary`, `RetrainResult.format_table`) and round-trips through JSON
(`RetrainResult.to_dict`, `RetrainResult.from_dict`, `RetrainResult.save`).
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RetrainResult", "RunResult"]


@dataclass(frozen=True)
class RunResult:
    """One training run of a comparison: its neurons, accuracy curves and final accuracies.

    ``final`` holds what the evaluation function returned (or the curves' last points),
    ``change`` the difference to the reference's ``final`` for every shared key, and
    ``steps_to_grok`` the first step with test accuracy above the threshold (None: never).
    """

    neurons: dict[str, list[int]]
    steps: list[int]
    train_acc: list[float]
    test_acc: list[float]
    final: dict[str, float]
    change: dict[str, float] = field(default_factory=dict)
    steps_to_grok: int | None = None


@dataclass(frozen=True)
class RetrainResult:
    """The outcome of `retrain`: the reference run and one `RunResult` per strategy label."""

    procedure: str
    seed: int
    reference: RunResult
    runs: dict[str, RunResult]
    options: dict[str, Any] = field(default_factory=dict)

    def groups(self) -> dict[str, list[str]]:
        """Labels per strategy, pooling the draws ``name:i`` of a strategy under ``name``."""
        out: dict[str, list[str]] = {}
        for label in self.runs:
            out.setdefault(label.split(":")[0], []).append(label)
        return out

    def summary(self, metric: str = "test") -> list[dict[str, Any]]:
        """Per strategy: runs, size, mean/std of the final `metric` and of its change, grokking counts."""
        return [self._summarise(name, labels, metric) for name, labels in self.groups().items()]

    def _summarise(self, name: str, labels: list[str], metric: str) -> dict[str, Any]:
        """One summary row over the runs `labels` of strategy `name`."""
        runs = [self.runs[label] for label in labels]
        grok = [run.steps_to_grok for run in runs if run.steps_to_grok is not None]
        final = [run.final[metric] for run in runs if metric in run.final]
        change = [run.change[metric] for run in runs if metric in run.change]
        return {
            "strategy": name,
            "runs": len(runs),
            "size": sum(len(v) for v in runs[0].neurons.values()),
            "final_mean": _mean(final),
            "final_std": _std(final),
            "change_mean": _mean(change),
            "change_std": _std(change),
            "grokked": len(grok),
            "steps_to_grok_mean": _mean([float(s) for s in grok]),
        }

    def format_table(self, metric: str = "test") -> str:
        """The summary as a text table, reference first; grokking columns for the mask procedure."""
        grok = self.procedure == "mask"
        ref = self.reference
        header = ["strategy", "runs", "size", f"{metric} acc", "change"]
        rows = [["reference", "1", "-", _fmt(ref.final.get(metric), None), "-"]]
        if grok:
            header += ["grokked", "grok step (mean)"]
            rows[0] += [f"{int(ref.steps_to_grok is not None)}/1", _fmt(ref.steps_to_grok, None, 0)]
        for row in self.summary(metric):
            cells = [row["strategy"], str(row["runs"]), str(row["size"])]
            cells += [_fmt(row["final_mean"], row["final_std"])]
            cells += [_fmt(row["change_mean"], row["change_std"], sign=True)]
            if grok:
                cells += [
                    f"{row['grokked']}/{row['runs']}",
                    _fmt(row["steps_to_grok_mean"], None, 0),
                ]
            rows.append(cells)
        widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
        return "\n".join(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
            for line in [header, *rows]
        )

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-safe nested dicts and lists."""
        return {
            "procedure": self.procedure,
            "seed": self.seed,
            "options": dict(self.options),
            "reference": asdict(self.reference),
            "runs": {label: asdict(run) for label, run in self.runs.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetrainResult:
        """Rebuild a result saved with `to_dict`."""
        return cls(
            procedure=data["procedure"],
            seed=int(data["seed"]),
            reference=RunResult(**data["reference"]),
            runs={label: RunResult(**run) for label, run in data["runs"].items()},
            options=dict(data.get("options", {})),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write `to_dict` as a JSON file."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")


def _mean(values: Sequence[float]) -> float | None:
    """Mean, or None for no values."""
    return statistics.fmean(values) if values else None


def _std(values: Sequence[float]) -> float | None:
    """Sample standard deviation, or None for fewer than two values."""
    return statistics.stdev(values) if len(values) > 1 else None


def _fmt(value: float | None, spread: float | None, digits: int = 3, sign: bool = False) -> str:
    """A number with optional ± spread, or '-' for None."""
    if value is None:
        return "-"
    text = f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"
    return text if spread is None else f"{text} ±{spread:.{digits}f}"
