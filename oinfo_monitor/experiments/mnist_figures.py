"""The MNIST experiment's tables and figures: Figure 1 (Ω by layer and size) and the Figure 2 analogue (rewinds)."""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

from oinfo_monitor import Evaluation
from oinfo_monitor.experiments.mnist_training import LAYERS, WIDTH
from oinfo_monitor.monitor.figures import size_bars, size_table
from oinfo_monitor.retrain import RetrainResult, RunResult, change_figure


def seed_table(evaluation: Evaluation) -> dict[str, dict[str, dict[str, Any]]]:
    """Per layer and size: min/max Ω (bits) and members of one network's final analysis."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for record in evaluation.records:
        table.setdefault(record["layer"], {})[str(record["size"])] = {
            key: record[key]
            for key in ("synergy", "synergy_members", "redundancy", "redundancy_members", "exact")
        }
    return table


def dominance(layer_table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Which of synergy and redundancy dominates one layer of one network.

    At each size the synergy (−min Ω) and the redundancy (max Ω), both in positive bits, are
    compared; the verdict is the one larger at most sizes. The strongest of each over all sizes
    is kept too (at large sizes Ω of nearly the whole layer decides both).
    """
    synergy_larger = [
        int(k) for k, row in layer_table.items() if -row["synergy"] > row["redundancy"]
    ]
    return {
        "strongest_redundancy": max(row["redundancy"] for row in layer_table.values()),
        "strongest_synergy": -min(row["synergy"] for row in layer_table.values()),
        "synergy_larger_at": synergy_larger,
        "verdict": "synergy" if 2 * len(synergy_larger) > len(layer_table) else "redundancy",
    }


def mean_std(values: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (None for a single value)."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
    }


def figure1_summary(tables: list[dict[str, dict[str, dict[str, Any]]]]) -> dict[str, Any]:
    """Across networks, per layer: mean/std of min and max Ω by size, and the dominance verdicts.

    `tables` holds one `seed_table` per network. ``synergy_dominant_sizes`` lists the sizes at
    which the mean synergy (−min Ω) exceeds the mean redundancy (max Ω).
    """
    summary: dict[str, Any] = {}
    for layer in LAYERS:
        layer_tables = [table[layer] for table in tables if layer in table]
        if not layer_tables:
            continue
        sizes = {
            size: {
                kind: mean_std([table[size][kind] for table in layer_tables])
                for kind in ("synergy", "redundancy")
            }
            for size in layer_tables[0]
        }
        verdicts = [dominance(table) for table in layer_tables]
        summary[layer] = {
            "networks": len(layer_tables),
            "sizes": sizes,
            "synergy_dominant_sizes": [
                int(k)
                for k, row in sizes.items()
                if -row["synergy"]["mean"] > row["redundancy"]["mean"]
            ],
            "strongest_redundancy": mean_std([v["strongest_redundancy"] for v in verdicts]),
            "strongest_synergy": mean_std([v["strongest_synergy"] for v in verdicts]),
            "redundancy_dominated": sum(v["verdict"] == "redundancy" for v in verdicts),
            "synergy_dominated": sum(v["verdict"] == "synergy" for v in verdicts),
        }
    return summary


def pooled_retraining(results: dict[int, RetrainResult]) -> RetrainResult:
    """One `RetrainResult` holding every seed's runs, so its summary pools seeds (and draws).

    Run labels become ``<layer>/<strategy>:s<seed>[.<draw>]``, which `RetrainResult.groups`
    pools under ``<layer>/<strategy>``; the reference holds the trained networks' mean accuracies.
    """
    runs: dict[str, RunResult] = {}
    for seed, result in results.items():
        for label, run in result.runs.items():
            strategy, _, draw = label.partition(":")
            runs[f"{strategy}:s{seed}" + (f".{draw}" if draw else "")] = run
    references = [result.reference.final for result in results.values()]
    final = {key: statistics.fmean(ref[key] for ref in references) for key in references[0]}
    reference = RunResult(neurons={}, steps=[], train_acc=[], test_acc=[], final=final)
    first = next(iter(results.values()))
    return RetrainResult("rewind", first.seed, reference, runs, dict(first.options))


def at_rewind(result: RetrainResult) -> RetrainResult:
    """The same runs scored right after the reset, before any retraining (their curves' first point)."""
    reference = result.reference.final
    runs = {}
    for label, run in result.runs.items():
        final = {"train": run.train_acc[0], "test": run.test_acc[0]}
        change = {key: final[key] - reference[key] for key in final}
        runs[label] = dataclasses.replace(run, final=final, change=change)
    return dataclasses.replace(result, runs=runs)


def comparison(retrains: dict[int, RetrainResult], metric: str = "test") -> dict[str, list[dict]]:
    """Per layer, strategies from least to most accuracy lost after retraining, with the drop at reset.

    Each row: strategy, sub-network size, runs pooled (networks x draws), and mean ± std of the
    `metric` accuracy change right after the rewind and after retraining.
    """
    after = pooled_retraining(retrains).summary(metric)
    before = pooled_retraining({s: at_rewind(r) for s, r in retrains.items()}).summary(metric)
    table: dict[str, list[dict]] = {}
    for row, reset in zip(after, before, strict=True):
        layer, _, strategy = row["strategy"].rpartition("/")
        table.setdefault(layer, []).append(
            {
                "strategy": strategy,
                "size": row["size"],
                "runs": row["runs"],
                "change_at_rewind": {"mean": reset["change_mean"], "std": reset["change_std"]},
                "change_after_retraining": {"mean": row["change_mean"], "std": row["change_std"]},
            }
        )
    return {
        layer: sorted(rows, key=lambda r: -r["change_after_retraining"]["mean"])
        for layer, rows in table.items()
    }


def write_figure1(
    run_dir: Path,
    config: dict[str, Any],
    seeds: list[dict[str, Any]],
    records: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """Figure 1 per --target (bars by size per layer, mean ± std over networks) as
    ``figure1_<target>.png``, and one JSON table with every network, layer and size."""
    summary = {}
    for target, target_records in records.items():
        summary[target] = figure1_summary([seed["layers"][target] for seed in seeds])
        title = (
            f"MNIST MLP pre-activations, target: {target} label; {len(seeds)} network(s), "
            f"mean ± std; sizes 3..{config['exhaustive_to']} exhaustive, greedy beyond"
        )
        figure = size_bars(size_table(target_records), title=title)
        figure.savefig(run_dir / f"figure1_{target}.png", dpi=80)
    figure1 = {"config": config, "summary": summary, "seeds": seeds}
    (run_dir / "figure1.json").write_text(json.dumps(figure1, indent=1) + "\n", encoding="utf-8")
    return figure1


def write_figure2(
    run_dir: Path, config: dict[str, Any], retrains: dict[int, RetrainResult]
) -> dict[str, Any]:
    """The Figure 2 analogue: accuracy change per layer and strategy after retraining (PNG), the
    same right after the reset (``figure2_rewound.png``), and the JSON with every run."""
    size, epochs, n = config["retrain_size"], f"{config['retrain_epochs']:g}", len(retrains)
    pooled = pooled_retraining(retrains)
    for name, result, when in (
        ("figure2.png", pooled, f"after retraining {epochs} epoch(s)"),
        (
            "figure2_rewound.png",
            pooled_retraining({seed: at_rewind(r) for seed, r in retrains.items()}),
            "right after the reset, before retraining",
        ),
    ):
        title = (
            f"{size}-neuron sub-networks (complement: {WIDTH - size}) rewound, {when}\n"
            f"mean ± std over {n} network(s) and draws"
        )
        change_figure(result, title=title).savefig(run_dir / name, dpi=80)
    figure2 = {
        "config": config,
        "networks": n,
        "reference_mean": pooled.reference.final,
        "comparison_test": comparison(retrains, "test"),
        "comparison_train": comparison(retrains, "train"),
        "per_seed": {str(seed): result.to_dict() for seed, result in retrains.items()},
    }
    (run_dir / "figure2.json").write_text(json.dumps(figure2, indent=1) + "\n", encoding="utf-8")
    return figure2
