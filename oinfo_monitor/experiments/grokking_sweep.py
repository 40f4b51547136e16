"""Does the synergy peak come before grokking, whatever delays grokking? A sweep over seeds and settings.

Clauw, Stramaglia & Marinazzo (2024) report that synergy among the hidden neurons peaks before the
jump in test accuracy, and compare settings that change when grokking happens (their Figure 5):
weight decay 0.1, 2 or 10, and no weight decay with the weights starting α = 8 times larger
(output layer zeroed, weight norm held constant). This script repeats every setting over several
model seeds (the train/test split stays fixed) with the grokking demo and tabulates per run:

- memorisation: first step with train accuracy >= 0.99
- test > 0.5: first step with test accuracy > 0.5, half-way up the jump
- grokking: first step with test accuracy > 0.98 ("none" = no grokking within --steps)
- peak: the synergy peak confirmed by the causal `PhaseTracker` (the peak of smoothed synergy
  after which it dropped; it need not be the largest value of the run)
- peak confirmed: the step at which the tracker confirmed that peak (its decoupling decision);
  peak significant: whether the headline synergy at the peak was beyond its chance level
- lead: grokking - peak confirmed, the causal lead (positive: the tracker knew of the peak before
  grokking); peak lead: grokking - peak (what an observer with the whole curve would say)

with the median and range per setting, a figure (the Figure 5 analogue) and a JSON of every
number, all in --runs-dir. Each run lives in ``<runs-dir>/<setting>-seed<k>/``; a run whose
``summary.json`` exists is read back instead of rerun, so an interrupted sweep resumes where it
stopped (a run folder without one, left by an interruption, is deleted and rerun). The runs go
to a local process pool by default (``--workers`` at a time, CPU count ÷ ``--threads``), to Ray
with ``--backend ray`` (``--ray-address`` for a cluster), or one after the other with
``--backend serial``; every backend gives the same per-run results. The full sweep took 80
minutes on a busy 2-core CPU before noise and chance levels; with them, one 2,000-step run took
175-229 s (median 181 s, docs/data/grokking_sweep.json); run it in the background::

    mkdir -p runs/sweep && nohup python -m oinfo_monitor.experiments.grokking_sweep \
        > runs/sweep/sweep.log 2>&1 &
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from oinfo_monitor.cli.options import HelpFormatter
from oinfo_monitor.experiments import grokking as demo
from oinfo_monitor.experiments.common import add_schedule, add_threads, describe
from oinfo_monitor.experiments.grokking_setup import GrokkingLog, grokking_step
from oinfo_monitor.experiments.trials import add_backend, run_trials

SETTINGS: dict[str, list[str]] = {
    "wd0.1": ["--weight-decay", "0.1"],
    "wd2": ["--weight-decay", "2"],
    "wd10": ["--weight-decay", "10"],
    "alpha8": ["--alpha", "8"],
}
"""Demo flags of each setting; everything else is the paper's default."""

COLUMNS = (
    "memorisation_step",
    "rise_step",
    "grokking_step",
    "synergy_peak_step",
    "peak_confirmed_step",
    "lead",
    "peak_lead",
)
HEADERS = (
    "memorised",
    "test > 0.5",
    "grokked",
    "peak",
    "peak confirmed",
    "lead (causal)",
    "peak lead",
)
LEADS = {"lead": "confirmed_before_grokking", "peak_lead": "peak_before_grokking"}
"""Each lead column and the statistic counting the runs where it is positive."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument(
        "--settings",
        nargs="+",
        choices=list(SETTINGS),
        default=list(SETTINGS),
        help="settings to run: weight decay 0.1 / 2 / 10, or the α = 8 initialisation experiment",
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="model seeds per setting"
    )
    parser.add_argument("--steps", type=int, default=4000, help="training steps per run")
    add_schedule(parser, log_points=100, every=250)
    add_threads(parser, "per run; see the grokking demo")
    add_backend(parser)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 2 seeds, 1,500 steps, 40 log-spaced evaluations (overrides those flags)",
    )
    parser.add_argument(
        "--runs-dir",
        default=None,
        help="folder of the runs and results (default: runs/sweep, or runs/sweep-quick)",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="DIR",
        default=None,
        help="run nothing: combine the sweep.json of finished sweeps (settings run with different "
        "--steps, say) into one table, figure and sweep.json in --runs-dir",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.log_points, args.every = args.seeds[:2], 1500, 40, 0
    args.runs_dir = args.runs_dir or ("runs/sweep-quick" if args.quick else "runs/sweep")
    return args


def run_one(args: argparse.Namespace, setting: str, seed: int) -> dict[str, Any]:
    """Run one setting and seed with the demo, or read back its summary if it already finished."""
    run_dir = Path(args.runs_dir) / f"{setting}-seed{seed}"
    if run_dir.exists() and not (run_dir / "summary.json").exists():
        shutil.rmtree(run_dir)  # left by an interrupted sweep: redo it
    if not run_dir.exists():
        flags = [*SETTINGS[setting], "--seed", str(seed), "--steps", str(args.steps)]
        flags += ["--log-points", str(args.log_points), "--every", str(args.every)]
        flags += ["--threads", str(args.threads), "--runs-dir", str(args.runs_dir)]
        return demo.main([*flags, "--name", run_dir.name, "--quiet"])
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    if summary["config"]["steps"] != args.steps:
        raise SystemExit(
            f"{run_dir} ran {summary['config']['steps']} steps; use another --runs-dir"
        )
    return summary


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run (or read back) every setting × seed on ``--backend``; return one row of results per run, in order."""
    rows = []

    def add_row(trial: tuple[str, int], summary: dict[str, Any]) -> None:
        """Turn one run's summary into its row, and print it."""
        setting, seed = trial
        row = {"setting": setting, "seed": seed, **{k: summary.get(k) for k in COLUMNS}}
        log = GrokkingLog(**summary["curves"]["training"])
        row["rise_step"] = grokking_step(log, threshold=0.5)
        row["peak_significant"] = summary.get("peak_significant")
        row["grokked_step"], row["peak_step"] = row["grokking_step"], row["synergy_peak_step"]
        row["steps"], row["wall_seconds"] = summary["config"]["steps"], summary["wall_seconds"]
        row["summary"] = summary["paths"]["summary"]
        rows.append(row)
        results = ", ".join(f"{h} {row[k]}" for h, k in zip(HEADERS, COLUMNS, strict=True))
        print(f"{setting} seed {seed}: {results}", flush=True)

    run_trials(
        functools.partial(run_one, args),
        [(setting, seed) for setting in args.settings for seed in args.seeds],
        backend=args.backend,
        workers=args.workers,
        threads=args.threads,
        address=args.ray_address,
        on_result=add_row,
    )
    return rows


def recorded_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The flags that sweep.json records: all but where the runs ran, which does not change them."""
    return {
        key: value
        for key, value in vars(args).items()
        if key not in {"backend", "workers", "ray_address", "merge"}
    }


def statistics_by_setting(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per setting and column: `describe` over the seeds, plus how often the peak came first."""
    out: dict[str, dict[str, Any]] = {}
    for setting in dict.fromkeys(row["setting"] for row in rows):
        runs = [row for row in rows if row["setting"] == setting]
        out[setting] = {column: describe([row[column] for row in runs]) for column in COLUMNS}
        for column, name in LEADS.items():
            out[setting][name] = sum(row[column] > 0 for row in runs if row[column] is not None)
        out[setting]["significant_peaks"] = sum(row["peak_significant"] is True for row in runs)
        out[setting]["runs"] = len(runs)
    return out


def missing_text(column: str, steps: int) -> str:
    """What an undefined value of `column` means."""
    return {
        "memorisation_step": f"no memorisation within {steps} steps",
        "grokking_step": f"no grokking within {steps} steps",
        "lead": "n/a",
        "rise_step": f"test accuracy <= 0.5 for {steps} steps",
        "peak_lead": "n/a",
    }.get(column, "no confirmed synergy peak")


def cell(stats: dict[str, Any], missing: str) -> str:
    """``median [min, max]``, and how many runs lacked the value, said with `missing`."""
    if stats["n"] == 0:
        return missing
    text = f"{stats['median']:g} [{stats['min']}, {stats['max']}]"
    return text + (f" ({stats['missing']}: {missing})" if stats["missing"] else "")


def table(rows: list[dict[str, Any]], stats: dict[str, dict[str, Any]]) -> str:
    """The per-run table and the per-setting medians, as Markdown tables."""
    steps = {row["setting"]: row["steps"] for row in rows}
    lines = [
        "| setting | seed | " + " | ".join(HEADERS) + " | peak significant |",
        "|---" * (3 + len(HEADERS)) + "|",
    ]
    for row in rows:
        values = ["none" if row[k] is None else str(row[k]) for k in COLUMNS]
        values.append(str(row["peak_significant"]).lower())
        lines.append(f"| {row['setting']} | {row['seed']} | " + " | ".join(values) + " |")
    lines += [
        "\nnone: no memorisation / no grokking within the run's steps, or no synergy peak "
        "confirmed by the PhaseTracker; medians are over the runs that have a value [min, max]",
        "",
        "| setting | " + " | ".join(HEADERS) + " | confirmed before grokking | peak before "
        "grokking | significant peaks |",
        "|---" * (4 + len(HEADERS)) + "|",
    ]
    for setting, s in stats.items():
        cells = " | ".join(cell(s[k], missing_text(k, steps[setting])) for k in COLUMNS)
        firsts = " | ".join(f"{s[name]}/{s[column]['n']}" for column, name in LEADS.items())
        firsts += f" | {s['significant_peaks']}/{s['runs']}"
        lines.append(f"| {setting} | {cells} | {firsts} |")
    return "\n".join(lines)


COLORS = {"wd0.1": "tab:purple", "wd2": "tab:blue", "wd10": "tab:orange", "alpha8": "tab:red"}


def curves_panel(axis: Any, rows: list[dict[str, Any]], steps: int) -> None:
    """Test accuracy (green) and synergy ÷ its max (blue) of every run of one setting, with events."""
    for row in rows:
        curves = json.loads(Path(row["summary"]).read_text(encoding="utf-8"))["curves"]
        train, oinfo = curves["training"], curves["oinfo"]
        axis.plot(train["steps"], train["test_acc"], color="tab:green", lw=1, alpha=0.7)
        synergy = demo.normalised([-value for value in oinfo["synergy"]])
        axis.plot(oinfo["steps"], synergy, color="tab:blue", lw=0.8, alpha=0.6)
        for key, style in (("synergy_peak_step", ":"), ("grokking_step", "--")):
            if row[key] is not None:
                axis.axvline(row[key], color="black", ls=style, lw=0.8, alpha=0.6)
    grokked = sum(row["grokking_step"] is not None for row in rows)
    axis.set_title(f"{rows[0]['setting']}: {grokked}/{len(rows)} runs grokked")
    axis.set_xscale("symlog", linthresh=1)
    axis.set_xlim(0, steps)
    axis.set_xlabel("training step (symlog)")
    axis.grid(alpha=0.3)


def sweep_figure(rows: list[dict[str, Any]]) -> Figure:
    """Curves per setting; peak vs grokking step per run; lead per run by setting (the step axes
    run to the longest run's steps)."""
    steps = max(row["steps"] for row in rows)
    settings = list(dict.fromkeys(row["setting"] for row in rows))
    figure = Figure(figsize=(15, 8), layout="constrained")
    grid = figure.add_gridspec(2, 3)
    for index, setting in enumerate(settings):
        axis = figure.add_subplot(grid[index // 2, index % 2])
        curves_panel(axis, [row for row in rows if row["setting"] == setting], steps)
        if index % 2 == 0:
            axis.set_ylabel("green: test accuracy\nblue: synergy (−min Ω) ÷ its max |value|")
    figure.suptitle("dotted: synergy peak (PhaseTracker); dashed: grokking (test accuracy > 0.98)")
    scatter, leads = figure.add_subplot(grid[0, 2]), figure.add_subplot(grid[1, 2])
    for position, setting in enumerate(settings):
        runs, color = [r for r in rows if r["setting"] == setting], COLORS[setting]
        for peak, lead, offset, face in (
            ("peak_confirmed_step", "lead", -0.15, color),
            ("synergy_peak_step", "peak_lead", 0.15, "none"),
        ):
            done = [r for r in runs if r[lead] is not None]
            x, y = [r[peak] for r in done], [r["grokking_step"] for r in done]
            label = f"{setting} ({len(done)} runs)" if face == color else None
            scatter.scatter(x, y, s=30, edgecolors=color, facecolors=face, label=label)
            values, where = [r[lead] for r in done], position + offset
            leads.scatter([where] * len(values), values, s=30, edgecolors=color, facecolors=face)
            if values:
                leads.hlines(statistics.median(values), where - 0.12, where + 0.12, color=color)
    scatter.plot([1, steps], [1, steps], color="grey", lw=0.8, label="above: peak first")
    scatter.set_xscale("log")
    scatter.set_yscale("log")
    scatter.set_xlabel("synergy peak step (filled: when confirmed, open: the peak itself)")
    scatter.set_ylabel("grokking step")
    scatter.set_title("above the line: before grokking")
    scatter.legend(fontsize="small")
    scatter.grid(alpha=0.3)
    leads.axhline(0, color="grey", lw=0.8)
    leads.set_xticks(range(len(settings)), settings)
    leads.set_ylabel("lead = grokking − confirmation (filled) / − peak (open), steps")
    leads.set_title("lead per run (bar: median)")
    leads.grid(alpha=0.3)
    return figure


def merged(folders: Sequence[str]) -> dict[str, Any]:
    """The runs of several finished sweeps as one result, each source's flags kept beside them.

    Each run keeps its own ``wall_seconds``; a sweep's total is not summed, since a sweep that
    read its runs back measured only the reading.
    """
    sweeps = [json.loads((Path(f) / "sweep.json").read_text(encoding="utf-8")) for f in folders]
    rows = [row for sweep in sweeps for row in sweep["runs"]]
    return {
        "sources": [
            {"runs_dir": f, "flags": s["flags"]} for f, s in zip(folders, sweeps, strict=True)
        ],
        "runs": rows,
        "by_setting": statistics_by_setting(rows),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the sweep (or merge finished ones), then write the table, the figure and the JSON."""
    args = parse_args(argv)
    started = time.perf_counter()
    out = Path(args.runs_dir)
    if args.merge:
        results = merged(args.merge)
        out.mkdir(parents=True, exist_ok=True)
    else:
        rows = run_all(args)
        results = {
            "flags": recorded_flags(args),
            "runs": rows,
            "by_setting": statistics_by_setting(rows),
            "wall_seconds": time.perf_counter() - started,
        }
    rows, stats = results["runs"], results["by_setting"]
    (out / "sweep.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    text = table(rows, stats)
    (out / "sweep.md").write_text(text + "\n", encoding="utf-8")
    sweep_figure(rows).savefig(out / "sweep.png", dpi=110)
    print(text)
    print(f"\nwrote {out / 'sweep.json'}, {out / 'sweep.md'}, {out / 'sweep.png'}")
    return results


if __name__ == "__main__":
    main()
