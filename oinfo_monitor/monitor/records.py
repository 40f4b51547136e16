"""The monitor's history records: one flat, JSON-safe dict per (step, layer, size), and readers for them.

A record holds, for one evaluation step, one layer and one multiplet size, the most synergistic
(min Ω) and the most redundant (max Ω) multiplet found, in bits, plus how they were obtained. Flat
records load straight into a table (e.g. ``pandas.read_json(path, lines=True)``).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oinfo_monitor.monitor.phases import PhaseChange
from oinfo_monitor.search import SearchResult
from oinfo_monitor.search.uncertainty import ChanceLevels, Noise

TRUST_FIELDS: tuple[str, ...] = (
    "synergy_sd",
    "redundancy_sd",
    "synergy_chance",
    "redundancy_chance",
    "synergy_significant",
    "redundancy_significant",
    "headline_synergy_sd",
    "headline_redundancy_sd",
    "headline_synergy_chance",
    "headline_redundancy_chance",
    "noise_resamples",
    "surrogates",
    "chance_step",
)
"""The trust fields that end every record (see `RECORD_FIELDS`)."""

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
    "trust_seconds",
    "n_samples",
    "n_neurons",
    "dead_neurons",
    "duplicate_neurons",
    "searched_neurons",
    "reduced",
    "capture",
    "target",
    "ties",
    "bias_correct",
    "units",
    *TRUST_FIELDS,
)
"""Keys of every history record, in the order they are written.

The trust fields (see `search.uncertainty`) are in bits: ``*_sd`` the bootstrap SD of the value
(``noise_resamples`` resamples), ``*_chance`` its chance level (5% quantile of surrogate min Ω for
synergy, 95% of surrogate max Ω for redundancy, from ``surrogates`` surrogates computed at step
``chance_step``), ``*_significant`` whether the value is beyond its chance level. ``headline_*``
are the same for the layer's headline (the extreme over sizes). Each is None when turned off.
``searched_neurons`` is how many neurons the search looked at (all the distinct ones, unless a
wide layer was screened) and ``reduced`` how they were chosen (None when not screened; see
`search.wide`)."""


def records_from_result(
    step: int,
    layer: str,
    result: SearchResult,
    context: dict[str, Any],
    noise: Noise | None = None,
    chance: tuple[int, ChanceLevels] | None = None,
) -> list[dict[str, Any]]:
    """One record per searched size of a layer's `SearchResult` at `step`.

    `context` supplies the per-evaluation fields that the search does not know (capture mode,
    probe seconds, neuron counts, dead neurons); `noise` and `chance` (the step it was computed
    at, and the levels) the trust fields.
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
            "searched_neurons": result.searched_neurons or result.n_variables,
            "reduced": result.reduced or None,
            **context,
            **trust_fields(size, synergy.value, redundancy.value, noise, chance),
        }
        records.append({key: record[key] for key in RECORD_FIELDS})
    return records


def trust_fields(
    size: int,
    synergy: float,
    redundancy: float,
    noise: Noise | None,
    chance: tuple[int, ChanceLevels] | None,
) -> dict[str, Any]:
    """The trust fields of one record (see `RECORD_FIELDS`); None where noise or chance is off."""
    fields: dict[str, Any] = dict.fromkeys(TRUST_FIELDS)
    if noise is not None:
        fields["synergy_sd"] = noise.synergy_sd[size]
        fields["redundancy_sd"] = noise.redundancy_sd[size]
        fields["headline_synergy_sd"] = noise.headline_synergy_sd
        fields["headline_redundancy_sd"] = noise.headline_redundancy_sd
        fields["noise_resamples"] = noise.resamples
    if chance is not None:
        computed, levels = chance
        fields["synergy_chance"], fields["redundancy_chance"] = levels.at(size)
        fields["synergy_significant"] = bool(synergy < fields["synergy_chance"])
        fields["redundancy_significant"] = bool(redundancy > fields["redundancy_chance"])
        fields["headline_synergy_chance"] = levels.headline_synergy
        fields["headline_redundancy_chance"] = levels.headline_redundancy
        fields["surrogates"] = levels.surrogates
        fields["chance_step"] = int(computed)
    return fields


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


Curves = dict[str, dict[str, list[float]]]
"""layer -> {"steps", "synergy", "redundancy", "size", "synergy_sd", "redundancy_sd",
"synergy_chance", "redundancy_chance"}: one entry per evaluated step (NaN where not measured)."""

CURVE_KEYS = (
    "steps",
    "synergy",
    "redundancy",
    "size",
    "synergy_sd",
    "redundancy_sd",
    "synergy_chance",
    "redundancy_chance",
)


def history_curves(records: Iterable[dict[str, Any]]) -> Curves:
    """Per layer and evaluated step: the headline (min Ω and max Ω over sizes, bits, and the min-Ω
    multiplet's size) with its bootstrap SD and chance level.

    Examples:
        >>> rows = [{"step": 0, "layer": "fc1", "size": k, "synergy": -0.1 * k, "synergy_members": list(range(k)),
        ...          "redundancy": 0.2, "headline_synergy_sd": 0.05} for k in (3, 4)]
        >>> curve = history_curves(rows)["fc1"]
        >>> curve["synergy"], curve["size"], curve["synergy_sd"]
        ([-0.4], [4], [0.05])
    """
    by_step: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        by_step.setdefault(int(record["step"]), []).append(record)
    curves: Curves = {}
    for step in sorted(by_step):
        for layer, values in headline(by_step[step]).items():
            curve = curves.setdefault(layer, {key: [] for key in CURVE_KEYS})
            first = next(r for r in by_step[step] if r["layer"] == layer)
            trust = [first.get(f"headline_{key}") for key in CURVE_KEYS[4:]]
            row = (step, *values, *(math.nan if v is None else v for v in trust))
            for key, value in zip(CURVE_KEYS, row, strict=True):
                curve[key].append(value)
    return curves


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


def earlier_records(path: str | os.PathLike[str], resume: bool) -> list[dict[str, Any]]:
    """The records an earlier run left in a history file (none if there is no such file).

    A new monitor must not mix two runs in one file: without `resume` a file that holds records
    is refused, with a message that says what to pass.
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    records = list(read_records(path))
    if records and not resume:
        steps = sorted({int(record["step"]) for record in records})
        raise ValueError(
            f"the history file {path} already holds {len(records)} records (steps "
            f"{steps[0]}..{steps[-1]}) from an earlier run; pass resume=True to continue it "
            "(steps up to the last one are then not evaluated again), or write to a new "
            "logdir / history_path"
        )
    return records


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
