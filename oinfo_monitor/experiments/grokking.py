"""Watch synergy rise and fall while an MLP groks modular addition.

Clauw, Stramaglia & Marinazzo (2024, arXiv:2408.08944) train a one-hidden-layer MLP on
(a + b) mod 97 from 40% of all pairs and follow the O-information of its 250 post-ReLU hidden
neurons: synergy among the neurons rises to a peak *before* the test accuracy jumps (grokking),
then falls as the network generalises. This demo reruns that setting with `OInfoMonitor` attached
to the training loop, live in TensorBoard, and reports when each event happened:

- memorisation: first step with train accuracy >= 0.99
- grokking: first step with test accuracy > 0.98 (the paper's code's definition)
- synergy peak: the peak of smoothed synergy found by the causal `PhaseTracker` (thresholds in
  units of the headline's bootstrap SD; a value not beyond its chance level cannot start it), the
  step at which the tracker confirmed it, and whether the synergy there was significant
- lead: grokking step - peak confirmation step, the causal lead (positive: the tracker knew of
  the peak before grokking; negative: only after); peak_lead: grokking step - peak step

Run ``oinfo-monitor demo grokking --help`` (in a clone: ``python demos/grokking.py --help``) for
every option. Outputs go to ``<runs-dir>/<name>/``: TensorBoard events, ``oinfo_history.jsonl``
(the monitor's records), ``summary.json``, ``grokking.png`` (the paper's Figures 2-4 and a
synergy/redundancy Pareto plot), ``init.pt`` and ``final.pt`` (model state dicts, for the
retraining demo).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from oinfo_monitor import OInfoMonitor
from oinfo_monitor.cli.options import HelpFormatter
from oinfo_monitor.estimators import TIE_POLICIES
from oinfo_monitor.experiments.common import (
    add_run_folder,
    add_schedule,
    add_threads,
    difference,
    new_run_dir,
    set_threads,
)
from oinfo_monitor.experiments.grokking_setup import (
    GrokkingConfig,
    GrokkingLog,
    StepMetrics,
    build_model,
    evaluation_steps,
    grokking_data,
    grokking_step,
    memorisation_step,
    train_grokking,
)
from oinfo_monitor.experiments.progress import Progress
from oinfo_monitor.monitor.records import history_curves
from oinfo_monitor.search import STRATEGIES

# ----------------------------------------------------------------------------- configuration

LAYER = "hidden"  # the monitored layer of GrokkingMLP: Linear(2p -> hidden), read after its ReLU
PAPER = GrokkingConfig()  # the 2024 paper's setting: every default below comes from here
OUTPUTS = {
    "run_dir": "",
    "summary": "summary.json",
    "figure": "grokking.png",
    "history": "oinfo_history.jsonl",
    "init": "init.pt",
    "final": "final.pt",
}  # what a run folder holds, by name in the summary's "paths"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; every default is the paper's setting unless the help says otherwise."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    train = parser.add_argument_group("training (defaults: the 2024 paper's setting)")
    train.add_argument("--steps", type=int, default=PAPER.steps, help="full-batch AdamW updates")
    train.add_argument("--lr", type=float, default=PAPER.lr, help="AdamW learning rate")
    train.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help=f"AdamW (decoupled) weight decay; default {PAPER.weight_decay}, or 0 with --alpha",
    )
    train.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="run the paper's initialisation-scale experiment instead: weight matrices x ALPHA "
        "at init (e.g. 8), output layer zeroed, weight norm held constant after every update, "
        "weight decay 0 unless --weight-decay is given",
    )
    train.add_argument("--hidden", type=int, default=PAPER.hidden, help="hidden neurons")
    train.add_argument("--p", type=int, default=PAPER.p, help="modulus of (a + b) mod p")
    train.add_argument(
        "--train-fraction",
        type=float,
        default=PAPER.train_fraction,
        help="fraction of all p*p pairs used for training; the rest is the test set",
    )
    train.add_argument("--seed", type=int, default=PAPER.seed, help="model initialisation seed")
    train.add_argument(
        "--data-seed", type=int, default=PAPER.data_seed, help="seed of the train/test split"
    )
    train.add_argument(
        "--eval-every",
        type=int,
        default=5,
        help="compute train/test loss and accuracy every this many steps, as the paper's code "
        "did; this is the resolution of the memorisation and grokking steps (1 makes training "
        "about 50%% slower)",
    )
    add_threads(
        train,
        "1 because these tensors are small: on a lightly loaded 2-core CPU this demo took 143 s "
        "with 1 thread and 213 s with 2, and on a busy one 2 threads made each training step "
        "about 4x slower",
    )
    monitor = parser.add_argument_group("monitoring (O-information of the hidden layer)")
    monitor.add_argument(
        "--capture",
        choices=("pre", "post"),
        default="post",
        help="measure the hidden neurons after the ReLU (post, as in the paper) or before it (pre)",
    )
    monitor.add_argument(
        "--ties",
        choices=TIE_POLICIES,
        default="random",
        help="how the copula ranks tied activations (post-ReLU zeros are ties; see DESIGN.md)",
    )
    monitor.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="clusters",
        help="multiplet search; clusters = the paper's Ward bins and all their unions",
    )
    monitor.add_argument(
        "--bins", type=int, default=10, help="Ward clusters for --strategy clusters (paper: 10)"
    )
    add_schedule(monitor, log_points=150, every=0)
    monitor.add_argument(
        "--background",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="score the evaluations on a worker thread while training goes on (the training "
        "thread only runs the probe); --no-background scores them on the training thread",
    )
    monitor.add_argument("--monitor-seed", type=int, default=0, help="seed of random tie-breaking")
    add_run_folder(parser.add_argument_group("output"), "grokking")
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> GrokkingConfig:
    """The training configuration the flags describe."""
    fields: dict[str, Any] = {
        "steps": args.steps,
        "lr": args.lr,
        "hidden": args.hidden,
        "p": args.p,
        "train_fraction": args.train_fraction,
        "seed": args.seed,
        "data_seed": args.data_seed,
    }
    if args.weight_decay is not None:
        fields["weight_decay"] = args.weight_decay
    if args.alpha is not None:
        return GrokkingConfig.alpha_experiment(args.alpha, **fields)
    return GrokkingConfig(**fields)


# ----------------------------------------------------------------------------- the training loop


def train_with_monitor(
    args: argparse.Namespace, config: GrokkingConfig, run_dir: Path
) -> tuple[GrokkingLog, OInfoMonitor, list[int], Progress]:
    """Train with the monitor attached; return the log, the monitor, its schedule and the progress
    bar's clocks (seconds in the monitor on the training thread, seconds of scoring)."""
    # The model, its data, and the monitor: probe = the training set, no target.
    data = grokking_data(config)
    model = build_model(config)
    torch.save(model.state_dict(), run_dir / "init.pt")
    writer = SummaryWriter(log_dir=str(run_dir))
    schedule = evaluation_steps(config.steps, args.log_points, args.every)
    progress = Progress(config.steps + 1, len(schedule), args.background, args.quiet, "grokking")
    monitor = OInfoMonitor(
        model,
        data.x_train,
        layers=[LAYER],
        capture=args.capture,
        every=schedule,
        strategy=args.strategy,
        search_options={"bins": args.bins} if args.strategy == "clusters" else None,
        ties=args.ties,
        seed=args.monitor_seed,
        writer=writer,
        background=args.background,
        max_pending=48,  # the first 40 steps hold 33 evaluations: let training run ahead of them
        on_evaluation=progress.evaluated,
    )
    progress.null_every = monitor.settings.null_every  # the cadence of the costly evaluations

    # The training loop calls this after every step's metrics, before the update.
    def on_step(step: int, model: nn.Module, metrics: StepMetrics | None) -> None:
        """Log the step's metrics, let the monitor evaluate when due, and advance the bar."""
        if metrics is not None:
            writer.add_scalar("accuracy/train", metrics.train_acc, step)
            writer.add_scalar("accuracy/test", metrics.test_acc, step)
            writer.add_scalar("loss/train", metrics.train_loss, step)
            writer.add_scalar("loss/test", metrics.test_loss, step)
            progress.accuracy = f"train {metrics.train_acc:.3f} test {metrics.test_acc:.3f}"
        tic = time.perf_counter()
        monitor.step(step)
        progress.stepped(time.perf_counter() - tic)

    log = train_grokking(
        config, model=model, data=data, on_step=on_step, eval_every=args.eval_every
    )
    tic = time.perf_counter()
    monitor.close()  # waits for the evaluations still queued
    progress.stepped(time.perf_counter() - tic, steps=0)
    progress.close()
    writer.close()
    torch.save(model.state_dict(), run_dir / "final.pt")
    return log, monitor, schedule, progress


# ----------------------------------------------------------------------------- after training


def peak_significant(history: list[dict[str, Any]], step: int | None) -> bool | None:
    """Whether the layer's headline synergy at `step` was beyond its chance level (None: unknown)."""
    records = [r for r in history if r["layer"] == LAYER and r["step"] == step]
    if not records or records[0]["headline_synergy_chance"] is None:
        return None
    synergy = min(r["synergy"] for r in records)
    return bool(synergy < records[0]["headline_synergy_chance"])


def summarise(
    args: argparse.Namespace,
    config: GrokkingConfig,
    log: GrokkingLog,
    monitor: OInfoMonitor,
    schedule: list[int],
    run_dir: Path,
) -> dict[str, Any]:
    """What happened when: accuracy events from the log, the synergy peak from the phase tracker."""
    tracker = monitor.trackers[LAYER]
    empty: dict[str, list[float]] = {"steps": [], "synergy": [], "redundancy": [], "size": []}
    oinfo = history_curves(monitor.history).get(LAYER, empty)
    memorised, grokked, peak = memorisation_step(log), grokking_step(log), tracker.peak_step
    phases = tracker.summary()
    raw_max = oinfo["steps"][int(np.argmin(oinfo["synergy"]))] if oinfo["steps"] else None
    return {
        "config": config.to_dict(),
        "monitor": {
            **monitor.config(),
            "schedule": schedule,
            "log_points": args.log_points,
            "every": args.every,
        },
        "memorisation_step": memorised,
        "grokking_step": grokked,
        "synergy_peak_step": peak,
        "synergy_peak_bits": tracker.peak_synergy,
        "raw_synergy_max_step": raw_max,
        "peak_confirmed_step": phases["peak_confirmed_step"],
        "peak_significant": peak_significant(monitor.history, peak),
        "lead": difference(grokked, phases["peak_confirmed_step"]),
        "peak_lead": difference(grokked, peak),
        "phases": phases,
        "final_train_acc": log.train_acc[-1],
        "final_test_acc": log.test_acc[-1],
        "evaluations": monitor.evaluations,
        "skipped_evaluations": monitor.skipped_steps,
        "paths": {name: str(run_dir / file) for name, file in OUTPUTS.items()},
        "curves": {"training": log.to_dict(), "oinfo": oinfo},
    }


def shade_phases(axis: Any, phases: dict[str, Any], last_step: int) -> None:
    """Shade Emergence (from its onset to the confirmed peak) and Decoupling (peak onwards)."""
    onset, peak = phases["emergence_onset_step"], phases["peak_step"]
    if onset is not None:
        axis.axvspan(onset, peak if peak is not None else last_step, color="gold", alpha=0.15)
    if peak is not None:
        axis.axvspan(peak, last_step, color="tab:green", alpha=0.08)


def mark_events(axis: Any, summary: dict[str, Any]) -> None:
    """Vertical lines at memorisation, grokking and the synergy peak."""
    for key, color, style in (
        ("memorisation_step", "grey", "--"),
        ("synergy_peak_step", "tab:blue", ":"),
        ("grokking_step", "tab:green", "--"),
    ):
        if summary[key] is not None:
            axis.axvline(summary[key], color=color, linestyle=style, linewidth=1.2)


def normalised(values: Sequence[float]) -> np.ndarray:
    """Values divided by their largest magnitude over the run (so the curve peaks at ±1)."""
    array = np.asarray(values, dtype=float)
    scale = np.max(np.abs(array)) if array.size else 0.0
    return array / scale if scale > 0 else array


def grokking_figure(summary: dict[str, Any]) -> Figure:
    """Accuracy, normalised synergy/redundancy, sub-network size and loss over log steps, plus a Pareto plot."""
    train, oinfo = summary["curves"]["training"], summary["curves"]["oinfo"]
    last = summary["config"]["steps"]
    figure = Figure(figsize=(13, 10), layout="constrained")
    grid = figure.add_gridspec(4, 2, width_ratios=(1.6, 1))
    axes = [figure.add_subplot(grid[0, 0])]
    axes += [figure.add_subplot(grid[row, 0], sharex=axes[0]) for row in (1, 2, 3)]
    synergy = -np.asarray(oinfo["synergy"])  # positive = synergistic
    panels = (
        (
            "accuracy",
            [
                ("train", train["steps"], train["train_acc"], "tab:orange"),
                ("test", train["steps"], train["test_acc"], "tab:green"),
            ],
        ),
        (
            "normalised O-information\n(÷ max |value| over the run)",
            [
                ("synergy  −min Ω", oinfo["steps"], normalised(list(synergy)), "tab:blue"),
                ("redundancy  max Ω", oinfo["steps"], normalised(oinfo["redundancy"]), "tab:red"),
            ],
        ),
        (
            "neurons in the most\nsynergistic multiplet",
            [("sub-network size", oinfo["steps"], oinfo["size"], "tab:purple")],
        ),
        (
            "cross-entropy (nats)",
            [
                ("train loss", train["steps"], train["train_loss"], "tab:orange"),
                ("test loss", train["steps"], train["test_loss"], "tab:green"),
            ],
        ),
    )
    for axis, (ylabel, lines) in zip(axes, panels, strict=True):
        shade_phases(axis, summary["phases"], last)
        mark_events(axis, summary)
        for label, steps, values, color in lines:
            axis.plot(steps, values, color=color, label=label, linewidth=1.4)
        axis.set_ylabel(ylabel)
        axis.legend(loc="best", fontsize="small")
        axis.grid(alpha=0.3)
    for axis in axes[:3]:
        axis.tick_params(labelbottom=False)
    axes[3].set_yscale("log")
    axes[0].set_xscale("symlog", linthresh=1)
    axes[0].set_xlim(0, last)
    axes[3].set_xlabel("training step (symlog)")
    axes[0].set_title(
        "dashed grey: memorisation  |  dotted blue: synergy peak  |  dashed green: grokking\n"
        "shaded: emergence (yellow, onset to peak), decoupling (green, after the peak)",
        fontsize="small",
    )
    pareto = figure.add_subplot(grid[:, 1])
    steps = np.asarray(oinfo["steps"])
    pareto.plot(oinfo["redundancy"], synergy, color="grey", linewidth=0.5, alpha=0.6)
    dots = pareto.scatter(
        oinfo["redundancy"], synergy, c=steps + 1, cmap="viridis", norm=LogNorm(), s=18
    )
    if steps.size:  # a log colour scale needs at least one evaluation
        figure.colorbar(dots, ax=pareto, label="training step + 1 (log)", location="right")
    pareto.set_xlabel("redundancy: max Ω (bits)")
    pareto.set_ylabel("synergy: −min Ω (bits)")
    pareto.set_title("synergy vs redundancy, one dot per evaluation")
    pareto.grid(alpha=0.3)
    c = summary["config"]
    figure.suptitle(
        f"(a+b) mod {c['p']}, hidden {c['hidden']}, wd {c['weight_decay']}, α {c['alpha']}, "
        f"seed {c['seed']}: memorised {summary['memorisation_step']}, synergy peak "
        f"{summary['synergy_peak_step']}, grokked {summary['grokking_step']} (lead {summary['lead']})"
    )
    return figure


def report(summary: dict[str, Any], runs_dir: Path) -> None:
    """Print the events, the timings and where every output is."""
    for key in ("memorisation_step", "synergy_peak_step", "grokking_step", "lead"):
        print(f"{key:>20}: {summary[key]}")
    print(
        f"{'final accuracy':>20}: train {summary['final_train_acc']:.4f}, "
        f"test {summary['final_test_acc']:.4f}"
    )
    where = "in the background" if summary["background"] else "on the training thread"
    print(
        f"{'wall time':>20}: {summary['wall_seconds']:.1f} s, of which "
        f"{summary['monitor_seconds']:.1f} s on the training thread in the monitor; "
        f"{summary['evaluations']} evaluations scored {where} in "
        f"{summary['scoring_seconds']:.1f} s"
    )
    print(
        f"{'CPU time':>20}: {summary['cpu_seconds']:.1f} s, of which the training thread "
        f"{summary['training_thread_cpu_seconds']:.1f} s"
    )
    for name, path in summary["paths"].items():
        print(f"{name:>20}: {path}")
    print(f"\nTensorBoard: tensorboard --logdir {runs_dir}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train with the monitor attached, then write the summary, the figure and the model states."""
    args = parse_args(argv)
    set_threads(args.threads)
    config = make_config(args)
    run_dir = new_run_dir(args, "grokking", lambda folder: (folder / OUTPUTS["history"]).exists())
    started, cpu, thread_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    log, monitor, schedule, clocks = train_with_monitor(args, config, run_dir)
    summary = summarise(args, config, log, monitor, schedule, run_dir)
    summary["wall_seconds"] = time.perf_counter() - started
    summary["monitor_seconds"] = clocks.monitor_seconds
    summary["scoring_seconds"] = clocks.evaluation_seconds
    summary["background"] = args.background
    # CPU seconds of the whole process and of this (the training) thread: on a busy machine the
    # wall time counts the waits for a core too; with a core to spare it is about the larger of
    # the training thread's share and the rest (the background worker's).
    summary["cpu_seconds"] = time.process_time() - cpu
    summary["training_thread_cpu_seconds"] = time.thread_time() - thread_cpu
    grokking_figure(summary).savefig(summary["paths"]["figure"], dpi=110)
    Path(summary["paths"]["summary"]).write_text(
        json.dumps(summary, indent=1) + "\n", encoding="utf-8"
    )
    if not args.quiet:
        report(summary, args.runs_dir)
    return summary


if __name__ == "__main__":
    main()
