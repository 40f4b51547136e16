"""Retrain the sub-network that synergy picks and compare it with baselines: both papers' importance test.

(a) Grokking (default; Clauw, Stramaglia & Marinazzo 2024, Figs 6-7). Reads a run folder written
    by the grokking demo (``init.pt``, ``final.pt``, ``oinfo_history.jsonl``, ``summary.json``),
    picks the most synergistic multiplet of the hidden layer from the monitor history, and retrains
    from the run's initial weights for its full schedule with only the picked neurons active (the
    "mask" procedure: every other hidden neuron's incoming row, and bias unless --keep-bias, is held
    at exactly zero). The same is done for the most redundant multiplet (same step, nearest size),
    the complement of the synergy pick, random picks of its size (several seeded draws) and the
    top-k neurons by single-neuron MI with the labels (k = the synergy size; MI is measured on the
    trained network's pre-activations, as in the 2022 paper). The reference is the unmasked
    network retrained from the same weights and seed, i.e. the original run.
(b) --mnist (Clauw, Marinazzo & Stramaglia 2022, Fig. 2). Trains an MLP on MNIST, finds each hidden
    layer's most synergistic multiplet of pre-activations with the label as target, then for each
    layer and strategy resets the chosen neurons to their initial weights and retrains only them
    (the "rewind" procedure, every other weight frozen) and reports the accuracy change.

Outputs: ``retrain.png`` (test accuracy over training per strategy; for --mnist the accuracy change
per layer and strategy) and ``retrain.json`` (every run's curves and numbers) in --out, by default
the run folder (grokking) or ``runs/retrain-mnist``. --quick finishes in under 2 minutes on 2 CPU
cores: for grokking it first writes a small run (p = 41, 400 steps) with the grokking demo when
--run is not given. Run ``oinfo-monitor retrain --help`` (in a clone: ``python
demos/retrain_subnetwork.py --help``) for every option.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from oinfo_monitor import OInfoMonitor
from oinfo_monitor.cli.options import HelpFormatter
from oinfo_monitor.experiments import grokking
from oinfo_monitor.experiments.common import add_threads, set_threads
from oinfo_monitor.experiments.data import mnist
from oinfo_monitor.experiments.grokking_setup import (
    GrokkingConfig,
    build_model,
    grokking_data,
    train_grokking,
)
from oinfo_monitor.monitor.capture import capture_activations, resolve_layers
from oinfo_monitor.monitor.records import read_records
from oinfo_monitor.retrain import (
    BeforeStep,
    RetrainResult,
    accuracy_evaluator,
    best_record,
    change_figure,
    curves_figure,
    epoch_trainer,
    retrain,
    rewind_layerwise,
    select_from_result,
    strategy_selections,
)

LAYER = "hidden"  # the hidden layer of GrokkingMLP, the one the grokking demo monitors
QUICK_RUN = "retrain-quick-source"  # the run --quick writes when no --run is given
QUICK_GROKKING_FLAGS = [
    *("--p", "41", "--train-fraction", "0.6", "--steps", "400"),
    *("--log-points", "40", "--every", "0", "--threads", "1", "--quiet"),
]  # groks (test acc > 0.98) at about step 250, in about 30 s with the monitor


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter
    )
    common = parser.add_argument_group("both modes")
    common.add_argument("--mnist", action="store_true", help="run (b), the MNIST rewind test")
    common.add_argument(
        "--quick",
        action="store_true",
        help="under 2 minutes: at most 2 random draws; grokking on a small run (p 41, 400 "
        "steps) written first unless --run is given; MNIST with a 32-32-32 MLP trained 3 "
        "epochs on 10,000 images, 2,000 probe images, multiplets up to size 8",
    )
    common.add_argument("--draws", type=int, default=3, help="random selections of the same size")
    common.add_argument("--seed", type=int, default=0, help="seed of the random draws and runs")
    common.add_argument("--no-mi", action="store_true", help="skip the single-neuron MI baselines")
    add_threads(common, "one thread is the fastest for these small models on a shared CPU")
    common.add_argument("--out", default=None, help="output folder (see the description)")
    grok = parser.add_argument_group("(a) grokking, mask procedure")
    grok.add_argument(
        "--run",
        default=None,
        help="run folder of the grokking demo (default: the newest <runs-dir>/grokking-*)",
    )
    grok.add_argument("--runs-dir", default="runs", help="where run folders are looked for")
    grok.add_argument(
        "--step",
        default="run",
        help="where in the history to pick: 'run' (the most synergistic multiplet of the "
        "whole run), 'peak' (the run's confirmed synergy peak) or a step number",
    )
    grok.add_argument("--size", type=int, default=None, help="pick a multiplet of this size")
    grok.add_argument(
        "--steps", type=int, default=None, help="retraining steps (default: the run's)"
    )
    grok.add_argument("--eval-every", type=int, default=10, help="test accuracy every N steps")
    grok.add_argument(
        "--keep-bias",
        action="store_true",
        help="leave the switched-off neurons' biases trainable (the 2024 paper's variant) "
        "instead of holding them at zero",
    )
    mn = parser.add_argument_group("(b) MNIST, rewind procedure")
    mn.add_argument("--data-root", default="data", help="folder holding MNIST/raw")
    mn.add_argument("--download", action="store_true", help="download MNIST when missing")
    mn.add_argument("--hidden", type=int, nargs="+", default=[64, 64, 64], help="hidden widths")
    mn.add_argument("--train-samples", type=int, default=60000, help="training images used")
    mn.add_argument("--epochs", type=int, default=3, help="epochs of the original training")
    mn.add_argument("--retrain-epochs", type=int, default=1, help="epochs of each retraining")
    mn.add_argument("--probe-samples", type=int, default=5000, help="training images probed")
    mn.add_argument("--max-size", type=int, default=10, help="largest multiplet size searched")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- (a) grokking


def find_run(args: argparse.Namespace) -> Path:
    """The grokking run folder to use, written first by the grokking demo in --quick mode."""
    if args.run is not None:
        return Path(args.run)
    if args.quick:
        run = Path(args.runs_dir) / QUICK_RUN
        if not (run / "final.pt").exists():
            print(f"writing a small grokking run to {run} with the grokking demo ...")
            grokking.main([*QUICK_GROKKING_FLAGS, "--name", QUICK_RUN, "--runs-dir", args.runs_dir])
        return run
    runs = sorted(Path(args.runs_dir).glob("grokking-*/final.pt"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise SystemExit(
            f"no grokking run in {args.runs_dir}/: run `oinfo-monitor demo grokking` first, "
            "pass --run <folder>, or use --quick"
        )
    return runs[-1].parent


def pick_neurons(args: argparse.Namespace, run: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """The synergy pick from the history and the most redundant multiplet of the nearest size."""
    records = [r for r in read_records(run / "oinfo_history.jsonl") if r["layer"] == LAYER]
    step: int | None = None
    if args.step == "peak":
        step = summary.get("synergy_peak_step")
        if step is None:
            raise SystemExit("the run has no confirmed synergy peak: pass --step run or a number")
    elif args.step != "run":
        step = int(args.step)
    synergy = best_record(records, LAYER, step=step, size=args.size)
    at_step = [r for r in records if r["step"] == synergy["step"]]
    size = min({r["size"] for r in at_step}, key=lambda s: abs(s - synergy["size"]))
    redundancy = best_record(at_step, LAYER, size=size, kind="redundancy")
    return {
        "step": synergy["step"],
        "synergy": {key: synergy[key] for key in ("size", "synergy", "synergy_members")},
        "redundancy": {
            key: redundancy[key] for key in ("size", "redundancy", "redundancy_members")
        },
    }


def run_grokking(args: argparse.Namespace) -> tuple[RetrainResult, dict[str, Any], Path, Any]:
    """(a): the mask procedure on a grokking run, one call of `retrain`."""
    run = find_run(args)
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    config = GrokkingConfig.from_dict(summary["config"])
    if args.steps is not None:
        config = GrokkingConfig.from_dict({**config.to_dict(), "steps": args.steps})
    data = grokking_data(config)
    initial = torch.load(run / "init.pt", map_location="cpu")
    info = pick_neurons(args, run, summary)
    print(
        f"run {run}: picked at step {info['step']}: synergy {info['synergy']['synergy']:.3f} "
        f"bits ({info['synergy']['size']} neurons), redundancy "
        f"{info['redundancy']['redundancy']:.3f} bits ({info['redundancy']['size']} neurons)"
    )

    model = build_model(config)
    mi_inputs = {}
    if not args.no_mi:
        model.load_state_dict(torch.load(run / "final.pt", map_location="cpu"))
        acts = capture_activations(model, data.x_train, resolve_layers(model, LAYER))[LAYER]
        mi_inputs = {"activations": acts, "labels": data.y_train}
    strategies = strategy_selections(
        config.hidden,
        info["synergy"]["synergy_members"],
        redundancy=info["redundancy"]["redundancy_members"],
        random_draws=args.draws,
        seed=args.seed,
        **mi_inputs,
    )

    def train_fn(net: nn.Module, before_step: BeforeStep) -> Any:
        """Retrain `net` on the run's schedule, `before_step` holding the masks in place."""
        return train_grokking(
            config, model=net, data=data, before_step=before_step, eval_every=args.eval_every
        )

    result = retrain(
        model,
        train_fn,
        {label: {LAYER: neurons} for label, neurons in strategies.items()},
        initial_state=initial,
        mask_bias=not args.keep_bias,
        seed=args.seed,
    )
    info["original_grokking_step"] = summary.get("grokking_step")
    print(
        f"the original run grokked at step {info['original_grokking_step']} (evaluated every "
        f"step); its rerun, the reference below, at {result.reference.steps_to_grok} "
        f"(evaluated every {args.eval_every} steps)"
    )
    title = f"{run.name}: only the picked hidden neurons active (seed {args.seed})"
    return result, info, Path(args.out or run), curves_figure(result, title)


# --------------------------------------------------------------------------- (b) MNIST


def mnist_splits(args: argparse.Namespace) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(train, test) MNIST tensors, the training set cut to --train-samples (seeded subset)."""
    x, y = mnist(args.data_root, train=True, download=args.download)
    keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(args.seed))
    keep = keep[: args.train_samples]
    return (x[keep], y[keep]), mnist(args.data_root, train=False, download=args.download)


def mnist_mlp(widths: Sequence[int]) -> nn.Sequential:
    """784 → widths (Linear + ReLU each) → 10; the hidden Linear layers are '0', '2', '4', ..."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip([784, *widths[:-1]], widths, strict=True):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(widths[-1], 10))


def run_mnist(args: argparse.Namespace) -> tuple[RetrainResult, dict[str, Any], Path, Any]:
    """(b): train, find each layer's synergy pick, then the rewind procedure per layer."""
    if args.quick:
        args.hidden, args.train_samples, args.epochs = [32, 32, 32], 10000, 3
        args.probe_samples, args.max_size = 2000, 8
    train, test = mnist_splits(args)
    torch.manual_seed(args.seed)
    model = mnist_mlp(args.hidden)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    epoch_trainer(train, test, epochs=args.epochs)(model, lambda net, step: None)

    # Ω of each hidden layer's pre-activations with the label as target (the 2022 paper's
    # setting), on training images so that the test set plays no part in the selection.
    probe_x, probe_y = train[0][: args.probe_samples], train[1][: args.probe_samples]
    layers = resolve_layers(model, [str(2 * i) for i in range(len(args.hidden))])
    monitor = OInfoMonitor(
        model,
        probe_x,
        target=probe_y,
        layers=list(layers),
        capture="pre",
        sizes=args.max_size,
        strategy="greedy",
        track_phases=False,
    )
    evaluation = monitor.evaluate(0)
    if evaluation is None or evaluation.skipped:
        raise SystemExit(f"the O-information search failed: {evaluation and evaluation.skipped}")
    acts = capture_activations(model, probe_x, layers)
    info, per_layer = {}, {}
    for name, search in evaluation.results.items():
        best = search.most_synergistic()
        synergy, size = best.members, len(best.members)
        mi_inputs = {} if args.no_mi else {"activations": acts[name], "labels": probe_y}
        per_layer[name] = strategy_selections(
            acts[name].shape[1],
            synergy,
            redundancy=select_from_result(
                search, size=size if size in search.redundancy else None, kind="redundancy"
            ),
            random_draws=args.draws,
            seed=args.seed,
            **mi_inputs,
        )
        info[name] = {"synergy_bits": best.value, "size": size}
        print(f"layer {name}: synergy pick of {size} neurons, {best.value:.3f} bits")

    result = rewind_layerwise(
        model,
        initial,
        epoch_trainer(train, test, epochs=args.retrain_epochs),
        accuracy_evaluator({"train": train, "test": test}),
        per_layer,
        seed=args.seed,
    )
    title = f"MNIST: accuracy change after rewinding each pick (seed {args.seed})"
    return result, info, Path(args.out or "runs/retrain-mnist"), change_figure(result, title)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> RetrainResult:
    """Run the chosen comparison, print its table and write the figure and JSON."""
    args = parse_args(argv)
    set_threads(args.threads)
    if args.quick:
        args.draws = min(args.draws, 2)
    started = time.perf_counter()
    result, info, out, figure = run_mnist(args) if args.mnist else run_grokking(args)
    out.mkdir(parents=True, exist_ok=True)
    figure.savefig(out / "retrain.png", dpi=110)
    payload = {"selection": info, "seconds": time.perf_counter() - started, **result.to_dict()}
    (out / "retrain.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    print(result.format_table())
    print(f"\n{payload['seconds']:.0f} s; wrote {out / 'retrain.png'} and {out / 'retrain.json'}")
    return result


if __name__ == "__main__":
    main()
