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
and the JSON without the per-step curves to docs/img/ (run it from the repository root). Seeds can run as separate processes
(``--seeds 1 2`` in one, ``--seeds 3 4`` in another); a final call with all seeds then only
aggregates their files.

Run (``python -m oinfo_monitor.experiments.ties_grokking`` does the same)::

    .venv/bin/python demos/ties_grokking.py --quick      # seed 0, 600 steps: about 1.5 min
    .venv/bin/python demos/ties_grokking.py --publish    # seeds 0-4, 2000 steps: 13-27 min per seed

On a busy machine keep --threads 1: torch's intra-op threads wait on each other and these small
operations get many times slower.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from oinfo_monitor.cli.options import HelpFormatter
from oinfo_monitor.estimators import TIE_POLICIES
from oinfo_monitor.experiments.common import add_schedule, add_threads, set_threads
from oinfo_monitor.experiments.grokking_setup import (
    GrokkingConfig,
    StepMetrics,
    build_model,
    evaluation_steps,
    grokking_data,
    grokking_step,
    memorisation_step,
    train_grokking,
)
from oinfo_monitor.experiments.ties_report import (
    figure,
    levels_table,
    markdown_tables,
    phase_levels,
    pre_policy_check,
    snapshot_lines,
    summarise,
)
from oinfo_monitor.experiments.ties_scoring import (
    GROKKED,
    LAYER,
    PRE_POLICY,
    VARIANTS,
    numpy_default_ranks,
    policies_coincide,
    repeated_entries,
    score,
)
from oinfo_monitor.monitor.capture import capture_activations

# ---- configuration (what is scored: ties_scoring's LAYER, VARIANTS, PRE_POLICY and GROKKED) ----

ISSUE_SNAPSHOT = {  # the issue's figures at step 1000 (post-ReLU, seed 0), for the printout
    "numpy": "max Ω 8.4 bits, 24 negative unions",
    "stable": "max Ω 15.8 bits",
    "random": "max Ω ~6.0 bits, ~180 negative unions",
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; --quick overrides the run length and the seeds."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="model seeds",
    )
    parser.add_argument(
        "--data-seed",
        type=int,
        default=0,
        help="train/test split seed, fixed as in the paper",
    )
    parser.add_argument("--steps", type=int, default=2000, help="training steps")
    add_schedule(parser, log_points=100, every=None)
    parser.add_argument(
        "--snapshot-step",
        type=int,
        default=1000,
        help="step of the tie-policy snapshot, added to the schedule (the issue's)",
    )
    parser.add_argument("--bins", type=int, default=10, help="Ward bins (the paper's)")
    parser.add_argument("--tie-seed", type=int, default=0, help="seed of random tie-breaking")
    parser.add_argument(
        "--snapshot-tie-seeds",
        type=int,
        default=5,
        help="tie seeds of 'random' at the snapshot, starting at --tie-seed",
    )
    parser.add_argument(
        "--no-union-counts",
        action="store_true",
        help="count Ω < 0 unions at the snapshot only, not at every evaluation (faster)",
    )
    add_threads(parser, "on a busy machine keep 1: torch's threads wait on each other")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default runs/ties, quick: runs/ties-quick)",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="also write docs/img/ties_grokking.png and docs/img/ties_grokking.json (under the "
        "current folder: run it from the repository root)",
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
        """At a scheduled step: capture both activations, score every variant and log the curves."""
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


# ---- main -------------------------------------------------------------------------------------


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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run (or reuse) every seed, then write the table, the figure and the JSON."""
    args = parse_args(argv)
    set_threads(args.threads)
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
        "command": "python -m oinfo_monitor.experiments.ties_grokking " + " ".join(argv or []),
    }
    tables = markdown_tables(table) + "\n\nMeans over seeds per phase of training:\n\n"
    tables += levels_table(report["phase_levels"])
    (args.out / "ties_grokking.md").write_text(tables + "\n")
    (args.out / "ties_grokking.json").write_text(json.dumps({**report, "records": records}))
    figure(records, table, args.out / "ties_grokking.png")
    if args.publish:
        docs = Path("docs", "img")
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
    main()
