"""The tie-policy experiment's analysis: synergy peaks and leads per variant, tables, phase levels and the figure."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from oinfo_monitor.estimators import TIE_POLICIES
from oinfo_monitor.experiments.common import describe, difference
from oinfo_monitor.experiments.ties_scoring import GROKKED, VARIANTS
from oinfo_monitor.monitor.phases import detect_phases

COLOURS = {
    "post/random": "tab:blue",
    "post/stable": "tab:red",
    "post/average": "tab:purple",
    "pre": "tab:green",
    "pre/limited": "tab:olive",
}


def peaks(record: dict[str, Any], variant: str) -> dict[str, Any]:
    """Synergy peak of one variant (tracker and raw argmax) and its lead before grokking.

    The records hold no noise of the values (no ``synergy_sd``, no significance), so
    `detect_phases` runs on its relative fallback rule, not in units of the noise: its peak is
    labelled "relative rule" in the tables and the figure.
    """
    steps = record["curves"]["steps"]
    synergy = [-row["min_omega"] for row in record["curves"][variant]]
    redundancy = [row["max_omega"] for row in record["curves"][variant]]
    phases = detect_phases(steps, synergy, redundancy)
    raw = steps[int(np.argmax(synergy))]
    memorised = record["memorisation_step"]
    late = [i for i, step in enumerate(steps) if memorised is not None and step >= memorised]
    late_peak = steps[max(late, key=lambda i: synergy[i])] if late else None
    grokked = record["grokking_step"]
    tracked = phases["peak_step"]

    return {
        "peak_step": tracked,
        "peak_bits": phases["peak_synergy"],
        "emergence_onset_step": phases["emergence_onset_step"],
        "decoupling_step": phases["decoupling_step"],
        "raw_peak_step": raw,
        "raw_peak_bits": max(synergy),
        "late_peak_step": late_peak,
        "grokking_step": grokked,
        "memorisation_step": memorised,
        "lead": difference(grokked, tracked),
        "raw_lead": difference(grokked, raw),
        "late_lead": difference(grokked, late_peak),
    }


PEAK_KINDS = ("peak", "raw_peak", "late_peak")  # tracker, raw argmax, argmax after memorising


def in_window(step: int | None, row: dict[str, Any]) -> bool:
    """Whether a peak step lies after memorisation (inclusive) and before grokking."""
    memorised, grokked = row["memorisation_step"], row["grokking_step"]
    if step is None or memorised is None or grokked is None:
        return False
    return memorised <= step < grokked


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per variant: every seed's peaks and leads, and their median and range over seeds."""
    table: dict[str, Any] = {}
    for variant in VARIANTS:
        rows = {str(r["seed"]): peaks(r, variant) for r in records}
        keys = (
            "peak_step",
            "raw_peak_step",
            "late_peak_step",
            "grokking_step",
            "lead",
            "raw_lead",
            "late_lead",
        )
        table[variant] = {
            "per_seed": rows,
            "over_seeds": {key: describe([row[key] for row in rows.values()]) for key in keys},
            # The paper's claim: the peak falls after memorisation and before grokking.
            **{
                f"{kind}_in_window": sum(
                    in_window(row[f"{kind}_step"], row) for row in rows.values()
                )
                for kind in PEAK_KINDS
            },
            "seeds": len(rows),
        }
    return table


def phase_levels(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per variant, mean over seeds of -min Ω, max Ω and the Ω < 0 count in each phase of training.

    Phases per seed: the initialisation (step 0), [1, memorised), [memorised, grokking) and
    [grokking, end]; each seed's values are averaged over the evaluations in the phase first.
    """
    windows = {
        "init": lambda step, mem, grok: step == 0,
        "before_memorised": lambda step, mem, grok: 0 < step < mem,
        "memorised_to_grokking": lambda step, mem, grok: mem <= step < grok,
        "after_grokking": lambda step, mem, grok: step >= grok,
    }
    getters = {
        "synergy": lambda row: -row["min_omega"],
        "redundancy": lambda row: row["max_omega"],
        "negative": lambda row: row["negative"],
    }
    levels: dict[str, Any] = {}
    for variant in VARIANTS:
        levels[variant] = {}
        for name, inside in windows.items():
            per_seed: dict[str, list[float]] = {key: [] for key in getters}
            for record in records:
                mem, grok = record["memorisation_step"], record["grokking_step"]
                if mem is None or grok is None:
                    continue
                curves = record["curves"]
                pairs = zip(curves["steps"], curves[variant], strict=True)
                rows = [row for step, row in pairs if inside(step, mem, grok)]
                for key, get in getters.items():
                    values = [get(row) for row in rows if get(row) is not None]
                    if values:
                        per_seed[key].append(statistics.fmean(values))
            levels[variant][name] = {
                key: statistics.fmean(values) if values else None
                for key, values in per_seed.items()
            }
    return levels


def levels_table(levels: dict[str, Any]) -> str:
    """The phase levels as markdown: -min Ω (bits) and the Ω < 0 union count per phase."""
    phases = ("init", "before_memorised", "memorised_to_grokking", "after_grokking")
    lines = [
        "| variant | quantity | step 0 | (0, memorised) | [memorised, grokking) | [grokking, end] |",
        "|---|---|---|---|---|---|",
    ]
    for variant, rows in levels.items():
        for key, label, form in (
            ("synergy", "−min Ω (bits)", "{:.3g}"),
            ("redundancy", "max Ω (bits)", "{:.3g}"),
            ("negative", "unions with Ω < 0", "{:.0f}"),
        ):
            cells = [
                "–" if rows[phase][key] is None else form.format(rows[phase][key])
                for phase in phases
            ]
            lines.append(f"| {variant} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fmt(value: Any) -> str:
    """A table cell: integers plainly, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.1f}"
    return str(int(value))


def cell(stats: dict[str, Any]) -> str:
    """'median [min, max]' (and how many seeds lack a value)."""
    if stats["median"] is None:
        return "–"
    text = f"{fmt(stats['median'])} [{fmt(stats['min'])}, {fmt(stats['max'])}]"
    return text + (f" ({stats['missing']} none)" if stats["missing"] else "")


COLUMNS = (  # (heading, key of `peaks`) of the tables
    ("peak (relative rule)", "peak_step"),
    ("raw argmax", "raw_peak_step"),
    ("argmax ≥ memorised", "late_peak_step"),
    ("grokking", "grokking_step"),
    ("lead (relative rule)", "lead"),
    ("lead (raw)", "raw_lead"),
    ("lead (≥ memorised)", "late_lead"),
)


def window_counts(entry: dict[str, Any]) -> str:
    """Seeds whose peak lies in [memorised, grokking): relative rule / raw argmax / argmax after memorising."""
    return " / ".join(f"{entry[f'{kind}_in_window']}/{entry['seeds']}" for kind in PEAK_KINDS)


def markdown_tables(table: dict[str, Any]) -> str:
    """Per-seed and over-seed tables of peak step, grokking step and lead, as markdown."""
    headings = [heading for heading, _ in COLUMNS]
    lines = [
        "| variant | seed | memorised | " + " | ".join(headings) + " |",
        "|---|---|---|" + "---|" * len(COLUMNS),
    ]
    for variant, entry in table.items():
        for seed, row in entry["per_seed"].items():
            cells = [fmt(row[key]) for _, key in COLUMNS]
            memorised = fmt(row["memorisation_step"])
            lines.append(f"| {variant} | {seed} | {memorised} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| variant | "
        + " | ".join(headings)
        + " | peak in [memorised, grokking) (relative rule / raw / ≥ mem.) |",
        "|---|" + "---|" * (len(COLUMNS) + 1),
    ]
    for variant, entry in table.items():
        cells = [cell(entry["over_seeds"][key]) for _, key in COLUMNS]
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {window_counts(entry)} |")
    return "\n".join(lines)


def snapshot_lines(records: list[dict[str, Any]], step: int) -> str:
    """The snapshot's max Ω, min Ω and Ω < 0 union counts per policy, one block per seed."""
    lines = []
    for record in records:
        shot = record["snapshot"]
        if shot is None:
            continue
        lines.append(
            f"seed {record['seed']}, step {step}, post-ReLU zeros {100 * shot['zero_fraction']:.1f}%:"
        )
        rows = [("numpy default argsort", shot["post/numpy-default"])]
        rows += [(f"random (tie seed {s})", row) for s, row in shot["post/random"].items()]
        rows += [("stable", shot["post/stable"]), ("average", shot["post/average"])]
        rows += [("pre-activation", shot["pre"]), ("pre, unions <= rank", shot["pre"]["limited"])]
        for name, row in rows:
            lines.append(
                f"  {name:24s} max Ω {row['max_omega']:8.3f} bits  min Ω {row['min_omega']:+.4f} "
                f"bits  Ω < 0 in {row['negative']:4d} of {row['unions']} unions"
            )
    return "\n".join(lines)


def pre_policy_check(records: list[dict[str, Any]]) -> dict[str, Any]:
    """How far the three policies' pre-activation results differ: ties there are rare, not absent."""
    diffs: dict[str, float] = {}
    differing = []  # evaluations where the policies' extremes differ by more than 1e-3 bits
    for record in records:
        curves = record["curves"]
        for step, row in zip(curves["steps"], curves["pre_policies"], strict=True):
            worst = 0.0
            for key in ("min_omega", "max_omega", "limited_min_omega", "limited_max_omega"):
                values = [row[policy][key] for policy in TIE_POLICIES]
                diffs[key] = max(diffs.get(key, 0.0), max(values) - min(values))
                worst = max(worst, max(values) - min(values))
            if worst > 1e-3:
                differing.append({"seed": record["seed"], "step": step, "bits": round(worst, 4)})
    repeated = [n for r in records for n in r["curves"]["pre_repeated"]]
    identical = [flag for r in records for flag in r["curves"]["pre_identical"]]
    return {
        "steps": len(identical),
        "identical_steps": sum(identical),
        "entries": records[0]["config"]["hidden"] * records[0]["probe_samples"],
        "repeated_min": min(repeated),
        "repeated_max": max(repeated),
        "max_abs_diff": {key: round(value, 6) for key, value in diffs.items()},
        "differing": differing,
    }


# ---- figure -------------------------------------------------------------------------------------


def figure(records: list[dict[str, Any]], table: dict[str, Any], path: Path) -> None:
    """Per variant: synergy, redundancy and Ω < 0 unions over log steps (mean ± SD over seeds)."""
    steps = np.asarray(records[0]["curves"]["steps"])
    counted = all(row["negative"] is not None for r in records for row in r["curves"]["pre"])
    rows = 3 if counted else 2
    fig = Figure(figsize=(20, 3.2 * rows + 2.8), layout="constrained")
    grid = fig.add_gridspec(rows + 1, len(VARIANTS), height_ratios=[1] * rows + [0.75])
    quantities = [
        ("synergy  −min Ω (bits)", lambda row: -row["min_omega"]),
        ("redundancy  max Ω (bits)", lambda row: row["max_omega"]),
        (
            f"unions with Ω < 0\n(of {records[0]['curves']['pre'][0]['unions']})",
            lambda row: row["negative"],
        ),
    ][:rows]
    grokked = [r["grokking_step"] for r in records if r["grokking_step"] is not None]
    memorised = [r["memorisation_step"] for r in records if r["memorisation_step"] is not None]
    for column, variant in enumerate(VARIANTS):
        colour = COLOURS[variant]
        for line, (label, get) in enumerate(quantities):
            axis = fig.add_subplot(grid[line, column])
            values = np.array([[get(row) for row in r["curves"][variant]] for r in records], float)
            mean, sd = values.mean(0), values.std(0)
            for seed_values in values:
                axis.plot(steps, seed_values, color=colour, linewidth=0.5, alpha=0.35)
            axis.plot(steps, mean, color=colour, linewidth=1.8, label="mean over seeds")
            axis.fill_between(steps, mean - sd, mean + sd, color=colour, alpha=0.18, label="± SD")
            for step in memorised:
                axis.axvline(step, color="grey", linestyle=":", linewidth=0.8, alpha=0.6)
            for step in grokked:
                axis.axvline(step, color="black", linestyle="--", linewidth=0.6, alpha=0.5)
            if line == 0:
                marks = blended_transform_factory(axis.transData, axis.transAxes)
                for row in table[variant]["per_seed"].values():
                    if row["peak_step"] is not None:
                        axis.plot(row["peak_step"], 0.97, "v", color=colour, transform=marks)
                title = f"{variant} (unions ≤ {records[0]['input_rank']} neurons)"
                axis.set_title(title if variant == "pre/limited" else variant, color=colour)
            if column == 0:
                axis.set_ylabel(label)
            axis.set_xscale("symlog", linthresh=1)
            axis.set_xlim(0, steps[-1])
            axis.grid(alpha=0.3)
            if line == rows - 1:
                axis.set_xlabel("training step (symlog)")
    text = fig.add_subplot(grid[rows, :])
    text.axis("off")
    header = ["variant", *(heading for heading, _ in COLUMNS), "in [memorised, grokking)"]
    cells = []
    for variant in VARIANTS:
        spreads = (cell(table[variant]["over_seeds"][key]) for _, key in COLUMNS)
        cells.append([variant, *spreads, window_counts(table[variant])])
    shown = text.table(cellText=cells, colLabels=header, loc="center", cellLoc="center")
    shown.auto_set_font_size(False)
    shown.set_fontsize(10)
    shown.scale(1, 1.5)
    text.set_title(
        "median [min, max] over seeds; lead = grokking step − peak step", fontsize="medium"
    )
    seeds = ", ".join(str(r["seed"]) for r in records)
    fig.suptitle(
        f"(a+b) mod 97, MLP 194→250→97, wd 2.0; model seeds {seeds}, split seed "
        f"{records[0]['config']['data_seed']}; clusters search (10 Ward bins, all unions), training "
        f"set as probe.\nThin: one seed each; dashed black: grokking step (test acc > {GROKKED}) "
        "of each seed; dotted grey: memorisation (train acc ≥ 0.99); triangles: synergy peak "
        "of the phase tracker's relative rule (no noise recorded); band: mean ± SD over seeds",
        fontsize="medium",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
