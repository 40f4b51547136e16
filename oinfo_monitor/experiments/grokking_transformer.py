"""Does a significant synergy peak precede grokking in a transformer? The MLP demo's question, asked of Nanda et al.'s model.

Clauw, Stramaglia & Marinazzo (2024) found that synergy among the hidden neurons of an MLP that
groks modular addition peaks before the test accuracy jumps. This experiment trains the one-layer
transformer of Nanda et al. (2023) on (a + b) mod 113 (`grokking_transformer_setup`) and attaches
`OInfoMonitor` to two layers, both read at the answer token ``=``:

- ``act``: the MLP's hidden neurons after the ReLU (the monitored module is the ReLU itself, so
  the records say ``capture: "pre"``: the module's own output);
- ``attn``: the attention block's output (before it joins the residual stream).

For each layer and model seed it reports, as the MLP demo does (`grokking`): memorisation (train
accuracy >= 0.99), grokking (test accuracy > 0.98), the synergy peak of the causal `PhaseTracker`
(thresholds in units of the bootstrap SD), the step at which the tracker confirmed it, whether the
synergy at the peak was beyond its chance level, and the causal lead = grokking step - confirmation
step (positive: the tracker knew of the peak before grokking); peak_lead = grokking - peak step.

Seeds run one after another; each lives in ``<runs-dir>/seed<k>/`` (TensorBoard events,
``oinfo_history.jsonl``, ``summary.json``), and a seed whose ``summary.json`` exists is read back,
so an interrupted sweep resumes. The per-run data (``--data``), the figure (``--figure``) and the
table (``table.md``) are written from all seeds at the end. The training defaults are shrunk for a
2-core CPU (see `CPU` and docs/grokking_transformer.md); ``--help`` lists every flag.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from oinfo_monitor import OInfoMonitor
from oinfo_monitor.cli.options import HelpFormatter
from oinfo_monitor.cli.plot import draw_trust, step_axis
from oinfo_monitor.experiments.common import (
    add_run_folder,
    add_schedule,
    add_threads,
    describe,
    difference,
    new_run_dir,
    set_threads,
)
from oinfo_monitor.experiments.grokking_setup import (
    GrokkingLog,
    StepMetrics,
    evaluation_steps,
    grokking_step,
    memorisation_step,
    train_grokking,
)
from oinfo_monitor.experiments.grokking_transformer_setup import (
    TransformerConfig,
    build_transformer,
    transformer_data,
)
from oinfo_monitor.monitor.records import history_curves

LAYERS = {"act": "MLP neurons (post-ReLU)", "attn": "attention output"}
"""The monitored modules of `GrokkingTransformer`, both read at the answer token, and their titles."""

CPU = TransformerConfig(d_model=64, d_mlp=256, lr=1e-2, steps=1500)
"""The defaults: Nanda et al.'s setting at half the width, 10x the learning rate, 1500 steps (see the docs)."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; the training defaults are `CPU`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    train = parser.add_argument_group("training (defaults: Nanda et al. 2023, shrunk for a CPU)")
    for flag, kind, help_text in (
        ("steps", int, "full-batch AdamW updates (paper: 40000)"),
        ("lr", float, "AdamW learning rate (paper: 1e-3)"),
        ("weight_decay", float, "AdamW (decoupled) weight decay, on every parameter"),
        ("d_model", int, "width of the residual stream (paper: 128)"),
        ("heads", int, "attention heads"),
        ("d_mlp", int, "hidden ReLU neurons of the MLP (paper: 512)"),
        ("p", int, "modulus of (a + b) mod p"),
        ("train_fraction", float, "fraction of all p*p pairs used for training"),
        ("data_seed", int, "seed of the train/test split"),
    ):
        train.add_argument(
            f"--{flag.replace('_', '-')}", type=kind, default=getattr(CPU, flag), help=help_text
        )
    train.add_argument("--seeds", type=int, nargs="+", default=[0], help="model seeds, run in turn")
    train.add_argument(
        "--eval-every", type=int, default=10, help="train/test accuracy every this many steps"
    )
    add_threads(train, "these tensors are small, and the runs go one at a time")
    monitor = parser.add_argument_group("monitoring (O-information at the answer token)")
    monitor.add_argument(
        "--bins", type=int, default=10, help="Ward clusters of the clusters search"
    )
    add_schedule(monitor, log_points=60, every=50)
    monitor.add_argument("--monitor-seed", type=int, default=0, help="seed of random tie-breaking")
    output = parser.add_argument_group("output")
    add_run_folder(output, "transformer")
    output.add_argument(
        "--data", type=Path, help="the per-run JSON to write (default: <run folder>/runs.json)"
    )
    output.add_argument("--figure", type=Path, help="figure (default: <run folder>/figure.png)")
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace, seed: int) -> TransformerConfig:
    """The training configuration the flags describe, for one model seed.

    Examples:
        >>> config = make_config(parse_args(["--d-mlp", "128"]), seed=3)
        >>> config.d_mlp, config.d_model, config.lr, config.seed
        (128, 64, 0.01, 3)
    """
    names = ("steps", "lr", "weight_decay", "d_model", "heads", "d_mlp", "p", "train_fraction")
    values = {name: getattr(args, name) for name in names}
    return TransformerConfig(**values, data_seed=args.data_seed, seed=seed)


def train_with_monitor(
    args: argparse.Namespace, config: TransformerConfig, run_dir: Path
) -> tuple[GrokkingLog, OInfoMonitor, float]:
    """Train one seed with the monitor on `LAYERS`; return the log, the monitor and its seconds."""
    data = transformer_data(config)
    model = build_transformer(config)
    writer = SummaryWriter(log_dir=str(run_dir))
    monitor = OInfoMonitor(
        model,
        data.x_train,  # probe: the training set's token rows; outputs [samples, 1, width]
        layers=list(LAYERS),
        capture="pre",  # the modules' own outputs: the ReLU's is the post-ReLU hidden layer
        every=evaluation_steps(config.steps, args.log_points, args.every),
        strategy="clusters",
        search_options={"bins": args.bins},
        seed=args.monitor_seed,
        writer=writer,
    )
    bar = tqdm(total=config.steps + 1, desc=f"seed {config.seed}", disable=args.quiet)
    clock = {"monitor": 0.0}

    def on_step(step: int, model: nn.Module, metrics: StepMetrics | None) -> None:
        """Log the accuracies, let the monitor evaluate when due, and advance the bar."""
        if metrics is not None:
            writer.add_scalar("accuracy/train", metrics.train_acc, step)
            writer.add_scalar("accuracy/test", metrics.test_acc, step)
            bar.set_postfix_str(f"train {metrics.train_acc:.3f} test {metrics.test_acc:.3f}")
        tic = time.perf_counter()
        monitor.step(step)
        clock["monitor"] += time.perf_counter() - tic
        bar.update(1)

    training = config.training()
    log = train_grokking(
        training, model=model, data=data, on_step=on_step, eval_every=args.eval_every
    )
    bar.close()
    monitor.close()
    writer.close()
    return log, monitor, clock["monitor"]


def layer_events(monitor: OInfoMonitor, layer: str, grokked: int | None) -> dict[str, Any]:
    """The layer's synergy peak, its confirmation step, its significance and the two leads."""
    phases = monitor.trackers[layer].summary()
    peak, confirmed = phases["peak_step"], phases["peak_confirmed_step"]
    curve = history_curves(monitor.history)[layer]
    significant = None
    if peak in curve["steps"]:
        at = curve["steps"].index(peak)
        chance = curve["synergy_chance"][at]
        significant = None if np.isnan(chance) else bool(curve["synergy"][at] < chance)
    return {
        "peak_step": peak,
        "peak_bits": phases["peak_synergy"],
        "peak_confirmed_step": confirmed,
        "peak_significant": significant,
        "lead": difference(grokked, confirmed),
        "peak_lead": difference(grokked, peak),
        "emergence_onset_step": phases["emergence_onset_step"],
    }


def run_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Train and summarise one seed, or read back its summary if it already finished."""
    config = make_config(args, seed)
    run_dir = args.folder / f"seed{seed}"
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        summary: dict[str, Any] = json.loads(summary_path.read_text(encoding="utf-8"))
        if summary["config"] != config.to_dict():
            raise SystemExit(f"{run_dir} holds another configuration; pass another --name")
        return summary
    shutil.rmtree(run_dir, ignore_errors=True)  # left by an interrupted run: redo it
    started = time.perf_counter()
    log, monitor, monitor_seconds = train_with_monitor(args, config, run_dir)
    grokked = grokking_step(log)
    summary = {
        "seed": seed,
        "config": config.to_dict(),
        "monitor": monitor.config(),
        "memorised_step": memorisation_step(log),
        "grokked_step": grokked,
        "final_test_acc": log.test_acc[-1],
        "layers": {layer: layer_events(monitor, layer, grokked) for layer in LAYERS},
        "wall_seconds": time.perf_counter() - started,
        "monitor_seconds": monitor_seconds,
        "evaluations": monitor.evaluations,
        "curves": {"training": log.to_dict(), "oinfo": history_curves(monitor.history)},
    }
    summary_path.write_text(json.dumps(summary) + "\n", encoding="utf-8")
    return summary


COLUMNS = ("peak_step", "peak_confirmed_step", "lead", "peak_lead")
"""The per-layer events that the summary table gives the median and range of."""


def table(runs: list[dict[str, Any]]) -> str:
    """Per seed and layer the events, then per layer the median [min, max] and the counts, as Markdown.

    Examples:
        >>> events = {"peak_step": 150, "peak_confirmed_step": 250, "lead": 220, "peak_lead": 320,
        ...           "peak_significant": True}
        >>> run = {"seed": 0, "memorised_step": 90, "grokked_step": 470,
        ...        "layers": {layer: events for layer in LAYERS}}
        >>> print(table([run]).splitlines()[2])
        | 0 | 90 | 470 | act | 150 | 250 | 220 | 320 | true |
    """
    head = "| seed | memorised | grokked | layer | peak | peak confirmed | lead | peak lead | significant |"
    lines = [head, "|---" * 9 + "|"]
    for run in runs:
        for layer, events in run["layers"].items():
            cells = [run["memorised_step"], run["grokked_step"], layer]
            cells += [events[key] for key in (*COLUMNS, "peak_significant")]
            text = " | ".join("none" if cell is None else str(cell).lower() for cell in cells)
            lines.append(f"| {run['seed']} | {text} |")
    lines += [
        "",
        "| layer | grokked | peak | peak confirmed | lead | peak lead | confirmed before "
        "grokking | significant peaks |",
        "|---" * 8 + "|",
    ]
    grokked = describe([run["grokked_step"] for run in runs])
    for layer in LAYERS:
        events = [run["layers"][layer] for run in runs]
        stats = [grokked] + [describe([e[key] for e in events]) for key in COLUMNS]
        cells = [
            f"{s['median']:g} [{s['min']}, {s['max']}] (n={s['n']})" if s["n"] else "none"
            for s in stats
        ]
        ahead = sum(e["lead"] is not None and e["lead"] > 0 for e in events)
        significant = sum(e["peak_significant"] is True for e in events)
        cells += [f"{ahead}/{len(runs)}", f"{significant}/{len(runs)}"]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mark(axis: Any, run: dict[str, Any], layer: str | None) -> None:
    """Vertical lines: memorisation and grokking, and for a layer its peak (dotted) and its confirmation."""
    marks = [("memorised_step", run, "grey", "--"), ("grokked_step", run, "tab:green", "--")]
    if layer is not None:
        events = run["layers"][layer]
        marks += [
            ("peak_step", events, "black", ":"),
            ("peak_confirmed_step", events, "black", "-."),
        ]
    for key, source, color, style in marks:
        if source[key] is not None:
            axis.axvline(source[key], color=color, linestyle=style, linewidth=1.1)


def transformer_figure(data: dict[str, Any]) -> Figure:
    """The first run's accuracy and per-layer synergy (±2 SD, chance level); every run's lead, by layer."""
    run, runs = data["runs"][0], data["runs"]
    figure = Figure(figsize=(13, 8.5), layout="constrained")
    grid = figure.add_gridspec(len(LAYERS) + 1, 2, width_ratios=(1.7, 1))
    axes = [figure.add_subplot(grid[row, 0]) for row in range(len(LAYERS) + 1)]
    training = run["curves"]["training"]
    for key, color in (("train_acc", "tab:orange"), ("test_acc", "tab:green")):
        axes[0].plot(training["steps"], training[key], color=color, label=key.replace("_acc", ""))
    axes[0].set_ylabel("accuracy")
    mark(axes[0], run, None)
    for axis, (layer, title) in zip(axes[1:], LAYERS.items(), strict=True):
        curve = run["curves"]["oinfo"][layer]
        axis.plot(curve["steps"], curve["synergy"], color="tab:blue", marker=".", label="min Ω")
        draw_trust(axis, curve, "synergy", "tab:blue")
        mark(axis, run, layer)
        axis.set_ylabel(f"{title}\nsynergy: min Ω (bits)")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small", loc="best")
        step_axis(axis, log_x=False)
    axes[0].set_title(
        f"seed {run['seed']}: dashed grey memorised, dashed green grokked (test > 0.98);\n"
        "dotted: synergy peak, dash-dot: its confirmation; band ± 2 SD, hollow: not beyond chance",
        fontsize="small",
    )
    leads = figure.add_subplot(grid[:, 1])
    for position, layer in enumerate(LAYERS):
        events = [run_["layers"][layer] for run_ in runs]
        for key, offset, marker in (("lead", -0.12, "o"), ("peak_lead", 0.12, "s")):
            shown = [e for e in events if e[key] is not None]
            faces = [
                "tab:blue" if key == "lead" and e["peak_significant"] else "none" for e in shown
            ]
            x = [position + offset] * len(shown)
            y = [e[key] for e in shown]
            leads.scatter(x, y, s=30, edgecolors="tab:blue", facecolors=faces, marker=marker)
        if all(e["lead"] is None for e in events):
            leads.text(position, 0, "no confirmed peak\nin any seed", ha="center", va="bottom")
    leads.axhline(0, color="grey", linewidth=0.8)
    leads.set_xticks(range(len(LAYERS)), list(LAYERS))
    leads.set_xlim(-0.5, len(LAYERS) - 0.5)
    leads.set_ylabel("steps ahead of grokking (> 0: before)")
    leads.set_title(
        f"{len(runs)} seeds; circles: lead = grokking − confirmation (filled: significant "
        "peak)\nsquares: peak lead = grokking − peak",
        fontsize="small",
    )
    leads.grid(alpha=0.3)
    c = run["config"]
    figure.suptitle(
        f"one-layer transformer, (a+b) mod {c['p']}, d_model {c['d_model']}, d_mlp {c['d_mlp']}, "
        f"lr {c['lr']}, wd {c['weight_decay']}"
    )
    return figure


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run (or read back) every seed, then write the per-run data, the table and the figure."""
    args = parse_args(argv)
    set_threads(args.threads)
    args.folder = new_run_dir(args, "transformer", lambda folder: False)  # seeds done are reused
    args.data = args.data or args.folder / "runs.json"
    args.figure = args.figure or args.folder / "figure.png"
    runs = [run_seed(args, seed) for seed in args.seeds]
    flags = sys.argv[1:] if argv is None else argv
    command = ["python", "-m", "oinfo_monitor.experiments.grokking_transformer", *flags]
    data = {"command": command, "runs": runs}
    args.data.parent.mkdir(parents=True, exist_ok=True)
    args.data.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    text = table(runs)
    (args.folder / "table.md").write_text(text + "\n", encoding="utf-8")
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    transformer_figure(data).savefig(args.figure, dpi=110)
    if not args.quiet:
        print(text)
        print(f"\nwrote {args.data}, {args.figure}, {args.folder / 'table.md'}")
    return data


if __name__ == "__main__":
    main()
