"""How the copula's tie policy changes the synergy/redundancy curves of a grokking run (issue 9).

After a ReLU about half of the grokking MLP's hidden activations are exact zeros, and the Gaussian
copula must rank those ties somehow (`copnorm(x, ties=...)`). This script trains the 2024 grokking
paper's setting ((a + b) mod 97, MLP 194 -> 250 -> 97, AdamW lr 0.03, betas (0.9, 0.98), weight
decay 2.0, full batch; `GrokkingConfig()`) once per model seed, and at every evaluation step
captures the hidden layer once before and once after its ReLU and scores five variants from those
same activations with the paper's search (10 Ward bins, all unions of 2..10 bins, no target, the
training set as probe):

- ``post/random``, ``post/stable``, ``post/average``: post-ReLU activations under each tie policy;
- ``pre``: pre-activations, which have no zeros to tie. The script scores them under all three
  policies at every step, reports how far apart the results are (float32 sums of the one-hot
  inputs' weights do collide now and then, so a few repeated values exist) and plots "random";
- ``pre/limited``: the same search on pre-activations, its extremes taken only over unions of at
  most rank(centred inputs) = 192 neurons. A larger union of pre-activations is linearly dependent
  (each pre-activation is an affine function of the 194 one-hot inputs, whose centred rank is
  192), so its copula covariance is near-singular and its Ω is a large negative artefact.

Per variant and seed it reports the synergy peak (`detect_phases` on -min Ω and max Ω, the
monitor's causal rule with its default parameters), the raw argmax of -min Ω over the run and its
argmax from memorisation on, the memorisation and grokking steps (train accuracy >= 0.99, test
accuracy > 0.98, from metrics at every step), the lead (grokking step - peak step; positive: the
peak came first) and how many seeds have their peak in [memorisation, grokking), the paper's
picture. It also counts, at every evaluation, how many of the scored unions have Ω < 0, and
averages the curves over the phases of training (step 0, before memorisation, memorisation to
grokking, after grokking).

At the snapshot step (default 1000, the issue's) it adds, for the post-ReLU activations, four more
tie seeds of "random" and the ranks of numpy's default argsort (``np.argsort(np.argsort(x))``, the
rank transform of the paper's code), to set the issue's figures next to ours.

Outputs (under --out): ``seed<N>.json`` per seed (reused on a rerun with the same settings, so an
interrupted run resumes), ``ties_grokking.json`` (settings, per-seed curves, table, snapshot),
``ties_grokking.png`` and ``ties_grokking.md`` (the tables). ``--publish`` also writes the figure
and the JSON without the per-step curves to docs/img/. Seeds can run as separate processes
(``--seeds 1 2`` in one, ``--seeds 3 4`` in another); a final call with all seeds then only
aggregates their files.

Run:
    .venv/bin/python benchmarks/ties_grokking.py --quick      # seed 0, 600 steps: about 1.5 min
    .venv/bin/python benchmarks/ties_grokking.py --publish    # seeds 0-4, 2000 steps: 13-27 min per seed

On a busy machine keep --threads 1: torch's intra-op threads wait on each other and these small
operations get many times slower.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory
from torch import Tensor, nn

from oinfo_monitor.estimators import TIE_POLICIES, copnorm, copula_covariance
from oinfo_monitor.grokking import (
    GrokkingConfig,
    StepMetrics,
    build_model,
    evaluation_steps,
    grokking_data,
    grokking_step,
    memorisation_step,
    train_grokking,
)
from oinfo_monitor.monitor.capture import capture_activations
from oinfo_monitor.monitor.phases import detect_phases
from oinfo_monitor.search import SearchResult, search_covariance

LAYER = "hidden"  # GrokkingMLP's Linear(194 -> 250); "post" reads it after its ReLU
VARIANTS = ("post/random", "post/stable", "post/average", "pre", "pre/limited")
PRE_POLICY = "random"  # the policy of the pre-activation curves (the others are only compared)
GROKKED = 0.98  # test accuracy above which the run has grokked (the paper's code)
MIN_BINS = 2  # the clusters strategy's default: unions of 2..bins bins
COLOURS = {
    "post/random": "tab:blue",
    "post/stable": "tab:red",
    "post/average": "tab:purple",
    "pre": "tab:green",
    "pre/limited": "tab:olive",
}
ISSUE_SNAPSHOT = {  # the issue's figures at step 1000 (post-ReLU, seed 0), for the printout
    "numpy": "max Ω 8.4 bits, 24 negative unions",
    "stable": "max Ω 15.8 bits",
    "random": "max Ω ~6.0 bits, ~180 negative unions",
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; --quick overrides the run length and the seeds."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="model seeds (default 0 1 2 3 4)",
    )
    parser.add_argument(
        "--data-seed",
        type=int,
        default=0,
        help="train/test split seed, fixed as in the paper (default 0)",
    )
    parser.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    parser.add_argument(
        "--log-points",
        type=int,
        default=100,
        help="evaluations spread log-uniformly over 1..steps before rounding merges (default 100)",
    )
    parser.add_argument(
        "--snapshot-step",
        type=int,
        default=1000,
        help="step of the tie-policy snapshot, added to the schedule (default 1000, the issue's)",
    )
    parser.add_argument("--bins", type=int, default=10, help="Ward bins (default 10, the paper's)")
    parser.add_argument(
        "--tie-seed", type=int, default=0, help="seed of random tie-breaking (default 0)"
    )
    parser.add_argument(
        "--snapshot-tie-seeds",
        type=int,
        default=5,
        help="tie seeds of 'random' at the snapshot, starting at --tie-seed (default 5)",
    )
    parser.add_argument(
        "--no-union-counts",
        action="store_true",
        help="count Ω < 0 unions at the snapshot only, not at every evaluation (faster)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default runs/ties, quick: runs/ties-quick)",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="also write docs/img/ties_grokking.png and docs/img/ties_grokking.json",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: seed 0, 600 steps, 30 log points, snapshot at 400, union counts at the "
        "snapshot only, output runs/ties-quick",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.log_points = [0], 600, 30
        args.snapshot_step, args.no_union_counts = 400, True
    if args.out is None:
        args.out = Path("runs/ties-quick" if args.quick else "runs/ties")
    if not 0 <= args.snapshot_step <= args.steps:
        parser.error(f"--snapshot-step must lie in 0..--steps ({args.steps})")
    return args


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """Everything that decides a seed's results; a cached seed file is reused only if it matches."""
    return {
        "steps": args.steps,
        "log_points": args.log_points,
        "snapshot_step": args.snapshot_step,
        "bins": args.bins,
        "data_seed": args.data_seed,
        "tie_seed": args.tie_seed,
        "snapshot_tie_seeds": args.snapshot_tie_seeds,
        "union_counts": not args.no_union_counts,
    }


# ---- scoring one set of activations ------------------------------------------------------------


def bin_unions(bins: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Every union of MIN_BINS or more bins with at least 3 neurons: the multiplets the search scores."""
    unions = []
    for count in range(MIN_BINS, len(bins) + 1):
        for chosen in itertools.combinations(bins, count):
            members = tuple(sorted(itertools.chain.from_iterable(chosen)))
            if len(members) >= 3:
                unions.append(members)
    return unions


def extremes(
    result: SearchResult, unions: list[tuple[int, ...]], values: Tensor | None, limit: int | None
) -> dict[str, Any]:
    """min Ω and max Ω (bits) over the unions of at most `limit` neurons, and how many have Ω < 0."""
    keep = [k for k in result.synergy if limit is None or k <= limit]
    synergy = min((result.synergy[k] for k in keep), key=lambda m: m.value)
    redundancy = max((result.redundancy[k] for k in keep), key=lambda m: m.value)
    mask = torch.tensor([limit is None or len(u) <= limit for u in unions])
    row: dict[str, Any] = {
        "min_omega": synergy.value,
        "min_size": len(synergy.members),
        "max_omega": redundancy.value,
        "max_size": len(redundancy.members),
        "negative": None,
        "unions": int(mask.sum()),
    }
    if values is not None:
        kept = values[mask]
        # The same unions scored one by one must reproduce the search's extremes.
        for found, extreme in ((synergy.value, kept.min()), (redundancy.value, kept.max())):
            if not math.isclose(found, float(extreme), rel_tol=1e-8, abs_tol=1e-8):
                raise RuntimeError(f"union scores disagree with the search: {found} vs {extreme}")
        row["negative"] = int((kept < 0).sum())
    return row


def score(
    x: Tensor, *, ties: str, seed: int, bins: int, count_unions: bool, limit: int | None = None
) -> dict[str, Any]:
    """The paper's search on `x`: its extremes over all unions, and over unions of ≤ `limit` neurons.

    With `count_unions` every union is scored once more (`stats.oinfo`) to count those with Ω < 0.
    """
    began = time.perf_counter()
    stats = copula_covariance(x, ties=ties, seed=seed)
    result = search_covariance(stats, strategy="clusters", bins=bins)
    unions = bin_unions(result.bins)
    if len(unions) != result.evaluated:
        raise RuntimeError(f"{len(unions)} unions enumerated, the search scored {result.evaluated}")
    values = stats.oinfo(unions) if count_unions else None
    row = extremes(result, unions, values, None)
    if limit is not None:
        row["limited"] = extremes(result, unions, values, limit)
    row["seconds"] = time.perf_counter() - began
    return row


def repeated_entries(x: Tensor) -> int:
    """Entries equal to another entry of their column (counted once per extra copy)."""
    ordered = x.sort(dim=0).values
    return int((ordered[1:] == ordered[:-1]).sum())


def policies_coincide(x: Tensor, seed: int) -> bool:
    """Whether the three tie policies give bit-identical copula transforms of `x`."""
    first, *others = (copnorm(x, ties=policy, seed=seed) for policy in TIE_POLICIES)
    return all(torch.equal(first, other) for other in others)


def numpy_default_ranks(x: Tensor) -> Tensor:
    """Tie-free ranks from numpy's default argsort along the samples, as the paper's code ranked.

    ``np.argsort(np.argsort(v))`` with the default kind (an introsort, SIMD-dispatched on some
    CPUs) leaves tied values in whatever order the sort happens to produce. The ranks are distinct,
    so every tie policy of the package transforms them identically.
    """
    columns = np.ascontiguousarray(x.numpy().T)
    ranks = np.argsort(np.argsort(columns, axis=-1), axis=-1)
    return torch.from_numpy(ranks.T.astype(np.float64))


# ---- one training run --------------------------------------------------------------------------


def capture_both(model: nn.Module, probe: Tensor) -> dict[str, Tensor]:
    """The hidden layer's activations on the probe before ("pre") and after ("post") its ReLU."""
    layers = {LAYER: getattr(model, LAYER)}
    return {
        mode: capture_activations(model, probe, layers, capture=mode)[LAYER]
        for mode in ("pre", "post")
    }


def snapshot(acts: dict[str, Tensor], scores: dict[str, Any], args: argparse.Namespace) -> dict:
    """The tie-policy comparison at one step: extra random tie seeds and numpy's default ranks."""
    post = acts["post"]
    rows: dict[str, Any] = {
        "zero_fraction": float((post == 0).double().mean()),
        "post/stable": scores["post/stable"],
        "post/average": scores["post/average"],
        "pre": scores["pre"],
        "post/random": {str(args.tie_seed): scores["post/random"]},
    }
    for offset in range(1, args.snapshot_tie_seeds):
        seed = args.tie_seed + offset
        rows["post/random"][str(seed)] = score(
            post, ties="random", seed=seed, bins=args.bins, count_unions=True
        )
    rows["post/numpy-default"] = score(
        numpy_default_ranks(post), ties="stable", seed=0, bins=args.bins, count_unions=True
    )
    return rows


def input_rank(x: Tensor) -> int:
    """Rank of the centred probe inputs: no more pre-activations than this are linearly independent."""
    centred = x.double() - x.double().mean(0)
    return int(torch.linalg.matrix_rank(centred))


def run_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Train one model seed, scoring every variant at every scheduled step."""
    config = GrokkingConfig(steps=args.steps, seed=seed, data_seed=args.data_seed)
    data = grokking_data(config)
    rank = input_rank(data.x_train)
    schedule = sorted({*evaluation_steps(args.steps, args.log_points), args.snapshot_step})
    wanted = set(schedule)
    curves: dict[str, list[Any]] = {
        "steps": [],
        "zero_fraction": [],
        "pre_repeated": [],
        "pre_identical": [],
        "pre_policies": [],
    }
    curves.update({variant: [] for variant in VARIANTS})
    found: dict[str, Any] = {}
    began = time.perf_counter()

    def on_step(step: int, model: nn.Module, metrics: StepMetrics | None) -> None:
        if step not in wanted:
            return
        acts = capture_both(model, data.x_train)
        at_snapshot = step == args.snapshot_step
        options = {"seed": args.tie_seed, "bins": args.bins}
        count = not args.no_union_counts or at_snapshot
        scores = {
            f"post/{policy}": score(acts["post"], ties=policy, count_unions=count, **options)
            for policy in TIE_POLICIES
        }
        pre = {}
        for policy in TIE_POLICIES:  # counting "random"'s unions is enough: it is the one plotted
            counted = count and policy == PRE_POLICY
            pre[policy] = score(
                acts["pre"], ties=policy, count_unions=counted, limit=rank, **options
            )
        scores["pre"] = pre[PRE_POLICY]
        scores["pre/limited"] = pre[PRE_POLICY]["limited"]
        curves["steps"].append(step)
        curves["zero_fraction"].append(float((acts["post"] == 0).double().mean()))
        curves["pre_repeated"].append(repeated_entries(acts["pre"]))
        curves["pre_identical"].append(policies_coincide(acts["pre"], args.tie_seed))
        curves["pre_policies"].append(
            {
                policy: {key: row[key] for key in ("min_omega", "max_omega")}
                | {f"limited_{key}": row["limited"][key] for key in ("min_omega", "max_omega")}
                for policy, row in pre.items()
            }
        )
        for variant in VARIANTS:
            curves[variant].append(scores[variant])
        if at_snapshot:
            found["snapshot"] = snapshot(acts, scores, args)
        print(
            f"  seed {seed} step {step:5d}: "
            + "  ".join(
                f"{v} {scores[v]['min_omega']:+.3f}/{scores[v]['max_omega']:.2f}" for v in VARIANTS
            )
            + f"  ({time.perf_counter() - began:.0f} s)",
            flush=True,
        )

    log = train_grokking(
        config, model=build_model(config), data=data, on_step=on_step, eval_every=1
    )
    grokked = grokking_step(log, GROKKED)
    return {
        "seed": seed,
        "settings": settings(args),
        "config": config.to_dict(),
        "grokking_step": grokked,
        "memorisation_step": memorisation_step(log),
        "final_test_acc": log.test_acc[-1],
        "accuracy": {  # at the evaluated steps only (the full log is not needed for the figure)
            "train": [log.train_acc[s] for s in curves["steps"]],
            "test": [log.test_acc[s] for s in curves["steps"]],
        },
        "curves": curves,
        "input_rank": rank,
        "probe_samples": int(data.x_train.shape[0]),
        "snapshot": found.get("snapshot"),
        "seconds": time.perf_counter() - began,
    }


# ---- analysis -----------------------------------------------------------------------------------


def peaks(record: dict[str, Any], variant: str) -> dict[str, Any]:
    """Synergy peak of one variant (causal tracker and raw argmax) and its lead before grokking."""
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

    def lead(peak: int | None) -> int | None:
        return None if peak is None or grokked is None else grokked - peak

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
        "lead": lead(tracked),
        "raw_lead": lead(raw),
        "late_lead": lead(late_peak),
    }


PEAK_KINDS = ("peak", "raw_peak", "late_peak")  # tracker, raw argmax, argmax after memorising


def in_window(step: int | None, row: dict[str, Any]) -> bool:
    """Whether a peak step lies after memorisation (inclusive) and before grokking."""
    memorised, grokked = row["memorisation_step"], row["grokking_step"]
    if step is None or memorised is None or grokked is None:
        return False
    return memorised <= step < grokked


def spread(values: list[int | None]) -> dict[str, Any]:
    """Median, min and max over the seeds that have a value, and how many lack one."""
    present = [v for v in values if v is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "missing": len(values)}
    return {
        "median": statistics.median(present),
        "min": min(present),
        "max": max(present),
        "missing": len(values) - len(present),
    }


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
            "over_seeds": {key: spread([row[key] for row in rows.values()]) for key in keys},
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
    ("peak (tracker)", "peak_step"),
    ("raw argmax", "raw_peak_step"),
    ("argmax ≥ memorised", "late_peak_step"),
    ("grokking", "grokking_step"),
    ("lead (tracker)", "lead"),
    ("lead (raw)", "raw_lead"),
    ("lead (≥ memorised)", "late_lead"),
)


def window_counts(entry: dict[str, Any]) -> str:
    """Seeds whose peak lies in [memorised, grokking): tracker / raw argmax / argmax after memorising."""
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
        + " | peak in [memorised, grokking) (tracker / raw / ≥ mem.) |",
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
    matplotlib.use("Agg")
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
        "confirmed by the phase tracker; band: mean ± SD over seeds",
        fontsize="medium",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


# ---- main ---------------------------------------------------------------------------------------


def load_or_run(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """A seed's results: from its file when the settings match, else trained and scored now."""
    path = args.out / f"seed{seed}.json"
    if path.exists():
        record = json.loads(path.read_text())
        if record.get("settings") == settings(args):
            print(f"seed {seed}: reusing {path} ({record['seconds']:.0f} s when run)", flush=True)
            return record
    print(f"seed {seed}: training and scoring ...", flush=True)
    record = run_seed(args, seed)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(record))
    partial.replace(path)
    print(f"seed {seed}: done in {record['seconds']:.0f} s -> {path}", flush=True)
    return record


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or reuse) every seed, then write the table, the figure and the JSON."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    records = [load_or_run(args, seed) for seed in args.seeds]
    table = summarise(records)
    report = {
        "settings": settings(args),
        "seeds": args.seeds,
        "variants": list(VARIANTS),
        "pre_policy": PRE_POLICY,
        "pre_policy_check": pre_policy_check(records),
        "table": table,
        "phase_levels": phase_levels(records),
        "snapshots": {str(r["seed"]): r["snapshot"] for r in records},
        "seconds_per_seed": {str(r["seed"]): r["seconds"] for r in records},
        "environment": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "machine": platform.machine(),
            "threads": args.threads,
        },
        "command": "benchmarks/ties_grokking.py " + " ".join(argv or []),
    }
    tables = markdown_tables(table) + "\n\nMeans over seeds per phase of training:\n\n"
    tables += levels_table(report["phase_levels"])
    (args.out / "ties_grokking.md").write_text(tables + "\n")
    (args.out / "ties_grokking.json").write_text(json.dumps({**report, "records": records}))
    figure(records, table, args.out / "ties_grokking.png")
    if args.publish:
        docs = Path(__file__).resolve().parent.parent / "docs" / "img"
        figure(records, table, docs / "ties_grokking.png")
        (docs / "ties_grokking.json").write_text(json.dumps(report, indent=1) + "\n")
    print()
    print(tables)
    print()
    print(snapshot_lines(records, args.snapshot_step))
    print(f"issue (seed 0, step 1000): {ISSUE_SNAPSHOT}")
    check = report["pre_policy_check"]
    print(
        f"pre-activations: copula transforms bit-identical under the three policies at "
        f"{check['identical_steps']} of {check['steps']} evaluations; repeated values per "
        f"{check['entries']:,}-entry matrix: {check['repeated_min']}..{check['repeated_max']}; "
        f"largest difference between policies: {check['max_abs_diff']}; evaluations differing "
        f"by more than 1e-3 bits: {check['differing']}"
    )
    print(f"\nwall time {time.perf_counter() - began:.0f} s; outputs in {args.out}/")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
