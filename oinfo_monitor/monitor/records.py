"""The monitor's history records: one flat, JSON-safe dict per (step, layer, size), and readers for them.

A record holds, for one evaluation step, one layer and one multiplet size, the most synergistic
(min Ω) and the most redundant (max Ω) multiplet found, in bits, plus how they were obtained. Flat
records load straight into a table (e.g. ``pandas.read_json(path, lines=True)``).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oinfo_monitor.monitor.phases import PhaseChange
from oinfo_monitor.search import SearchResult

RECORD_FIELDS: tuple[str, ...] = (
    "step",
    "layer",
    "size",
    "synergy",
    "synergy_members",
    "redundancy",
    "redundancy_members",
    "strategy",
    "exact",
    "probe_seconds",
    "search_seconds",
    "n_samples",
    "n_neurons",
    "dead_neurons",
    "duplicate_neurons",
    "capture",
    "target",
    "ties",
    "bias_correct",
    "units",
)
"""Keys of every history record, in the order they are written."""


def records_from_result(
    step: int, layer: str, result: SearchResult, context: dict[str, Any]
) -> list[dict[str, Any]]:
    """One record per searched size of a layer's `SearchResult` at `step`.

    `context` supplies the per-evaluation fields that the search does not know (capture mode,
    probe seconds, neuron counts, dead neurons).
    """
    records = []
    for size in sorted(result.synergy):
        synergy, redundancy = result.synergy[size], result.redundancy[size]
        record = {
            "step": int(step),
            "layer": layer,
            "size": int(size),
            "synergy": float(synergy.value),
            "synergy_members": list(synergy.members),
            "redundancy": float(redundancy.value),
            "redundancy_members": list(redundancy.members),
            "strategy": synergy.strategy,
            "exact": bool(synergy.exact and redundancy.exact),
            "search_seconds": float(result.seconds),
            "n_samples": int(result.n_samples),
            "target": result.target,
            "ties": result.ties,
            "bias_correct": bool(result.bias_correct),
            "units": result.units,
            **context,
        }
        records.append({key: record[key] for key in RECORD_FIELDS})
    return records


def headline(records: Iterable[dict[str, Any]]) -> dict[str, tuple[float, float, int]]:
    """Per layer of one evaluation: (min Ω over sizes, max Ω over sizes, size of the min-Ω multiplet)."""
    out: dict[str, tuple[float, float, int]] = {}
    for record in records:
        synergy, redundancy, size = out.get(record["layer"], (float("inf"), float("-inf"), 0))
        if record["synergy"] < synergy:
            synergy, size = record["synergy"], len(record["synergy_members"])
        out[record["layer"]] = (synergy, max(redundancy, record["redundancy"]), size)
    return out


@dataclass
class Evaluation:
    """What one evaluation produced: history records, search results and what was skipped and why.

    `summary` is each layer's headline (see `headline`), computed once when the evaluation is
    complete; sinks and the phase trackers read it from there.
    """

    step: int
    records: list[dict[str, Any]]
    results: dict[str, SearchResult]
    skipped: dict[str, str] = field(default_factory=dict)
    phase_changes: dict[str, PhaseChange] = field(default_factory=dict)
    probe_seconds: float = 0.0
    seconds: float = 0.0
    summary: dict[str, tuple[float, float, int]] = field(default_factory=dict)

    def headline(self) -> dict[str, tuple[float, float, int]]:
        """Per layer: (min Ω over sizes, max Ω over sizes, neurons in the min-Ω multiplet), bits."""
        return self.summary


def write_records(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> None:
    """Append records to a JSONL file, one JSON object per line, flushed before returning.

    A file whose last line was cut off (a crash mid-write) gets a line break first, so the new
    records start on a line of their own and the torn line stays the only damaged one.
    """
    path = Path(path)
    torn = path.exists() and path.stat().st_size > 0 and _last_byte(path) != b"\n"
    text = "".join(json.dumps(record) + "\n" for record in records)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(("\n" if torn else "") + text)


def _last_byte(path: Path) -> bytes:
    """The last byte of a non-empty file."""
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1)


class TornRecordWarning(UserWarning):
    """Warned when a history file holds a line cut off by a crash; the line is skipped."""


def read_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Read the records of a JSONL history file, naming the line of any malformed entry.

    A line cut off by a crash mid-write (not valid JSON, and either the last line or followed by
    the line break `write_records` adds before appending) is skipped with a `TornRecordWarning`;
    any other malformed line raises.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "history.jsonl"
        >>> write_records(path, [{"step": 0, "layer": "fc1", "size": 3, "synergy": -0.2}])
        >>> [record["synergy"] for record in read_records(path)]
        [-0.2]
    """
    with Path(path).open(encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines) or _is_torn(line):
                warnings.warn(
                    f"{path}:{number}: skipped a record cut off mid-write ({error.msg})",
                    TornRecordWarning,
                    stacklevel=2,
                )
                continue
            raise ValueError(f"{path}:{number}: not a JSON record ({error.msg})") from None
        missing = [key for key in ("step", "layer", "size", "synergy") if key not in record]
        if missing:
            raise ValueError(f"{path}:{number}: history record lacks {', '.join(missing)}")
        yield record


def _is_torn(line: str) -> bool:
    """Whether a malformed line is a record cut off mid-write: a JSON object that never closes."""
    return line.lstrip().startswith("{") and not line.rstrip().endswith("}")
