"""Does the synergistic sub-network retrain differently from random ones, beyond chance?

Reads the ``retrain.json`` of several grokking networks, each retrained (mask procedure, see
`experiments.retrain_subnetwork`) with its most synergistic multiplet and with random sub-networks
of the same size, and tests, per metric, whether the synergistic one ranks apart from the random
ones. Within a network, under the null hypothesis (synergy picks neurons no better or worse than
chance) the synergistic sub-network is exchangeable with the random draws, so its rank among them
is uniform over the positions; over networks the ranks are independent. The test statistic is the
sum over networks of the synergistic sub-network's mid-rank (ties share their mean rank), and its
null distribution is exact: the convolution of the networks' uniform rank distributions. The
p-value is two-sided (the sum as far from its null mean as observed, either way).

Metrics (rank 1 = best): ``final_test`` (test accuracy at the end, higher is better),
``mean_test`` (mean test accuracy over the run, higher is better: who learns faster), and
``steps_to_grok`` (first evaluated step with test accuracy above the threshold; lower is better,
never = worst). ``--until STEP`` compares the runs over their first STEP steps only, so that
networks retrained for different lengths are compared over the same schedule (training is the
same step for step, so a run's first STEP steps are those of a run of STEP steps).

    python demos/retrain_significance.py runs/retrain5/*/retrain.json --out docs/data/retrain_grokking.json
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

METRICS = {"final_test": True, "mean_test": True, "steps_to_grok": False}
"""Each metric and whether higher is better."""


def metric_values(run: Mapping[str, Any], until: int | None = None) -> dict[str, float]:
    """The three metrics of one retraining run (a `RunResult` as saved in ``retrain.json``),
    over its evaluations at steps up to `until` (None: all of them).

    Examples:
        >>> run = {"steps": [0, 10, 20], "test_acc": [0.1, 0.5, 1.0], "steps_to_grok": 20}
        >>> metric_values(run)
        {'final_test': 1.0, 'mean_test': 0.5333333333333333, 'steps_to_grok': 20.0}
        >>> metric_values(run, until=10)
        {'final_test': 0.5, 'mean_test': 0.3, 'steps_to_grok': inf}
    """
    test, grok = run["test_acc"], run["steps_to_grok"]
    if until is not None:
        steps = run["steps"]
        if steps[-1] < until:
            raise ValueError(f"a run ends at step {steps[-1]}, before --until {until}")
        test = [acc for step, acc in zip(steps, test, strict=True) if step <= until]
        grok = grok if grok is not None and grok <= until else None
    return {
        "final_test": float(test[-1]),
        "mean_test": float(np.mean(test)),
        "steps_to_grok": math.inf if grok is None else float(grok),
    }


def synergy_rank(synergy: float, random: Sequence[float], higher_is_better: bool) -> list[float]:
    """Mid-ranks (1 = best) of the synergistic value and every random one, synergy first.

    Examples:
        >>> synergy_rank(0.9, [0.5, 0.9, 0.7], higher_is_better=True)
        [1.5, 4.0, 1.5, 3.0]
    """
    values = np.array([synergy, *random], dtype=np.float64)
    return [float(r) for r in rankdata(-values if higher_is_better else values)]


def rank_sum_test(ranks: Sequence[Sequence[float]]) -> dict[str, float]:
    """Exact two-sided test of the sum of the first entry of each rank list (see the module).

    Each list holds a network's mid-ranks, the synergistic one first; under the null the first is
    a uniform draw from its list. Returns the observed sum, its null mean and the p-value.

    Examples:
        >>> best_in_all = [[1.0] + [float(r) for r in range(2, 12)]] * 3  # 1 of 11, 3 networks
        >>> round(rank_sum_test(best_in_all)["p_value"] * 11**3, 6)  # both tails: 2 of 1331
        2.0
    """
    # Mid-ranks are multiples of 1/2: count in half-ranks to convolve on an integer grid.
    distribution = np.array([1.0])
    for network in ranks:
        halves = np.round(2 * np.asarray(network)).astype(int)
        own = np.bincount(halves) / len(halves)
        distribution = np.convolve(distribution, own)
    grid = np.arange(len(distribution)) / 2
    observed = sum(network[0] for network in ranks)
    mean = float((grid * distribution).sum())
    far = np.abs(grid - mean) >= abs(observed - mean) - 1e-9
    return {
        "rank_sum": float(observed),
        "null_mean": mean,
        "p_value": float(min(1.0, distribution[far].sum())),
    }


def compare(results: Mapping[str, Mapping[str, Any]], until: int | None = None) -> dict[str, Any]:
    """Per network and metric the synergistic sub-network's values and ranks; the tests over networks.

    `results` maps a network's name to its ``retrain.json`` content; its runs must include
    ``synergy`` and the random draws ``random:<i>``; `until` as in `metric_values`.

    Examples:
        >>> run = lambda acc: {"test_acc": [0.0, acc], "steps_to_grok": None}
        >>> net = {"runs": {"synergy": run(0.9), "random:0": run(0.5), "random:1": run(0.7)}}
        >>> compare({"a": net, "b": net})["tests"]["final_test"]["rank_sum"]
        2.0
    """
    networks: list[dict[str, Any]] = []
    ranks: dict[str, list[list[float]]] = {metric: [] for metric in METRICS}
    for name, result in results.items():
        runs = result["runs"]
        draws = sorted(label for label in runs if label.startswith("random:"))
        if "synergy" not in runs or not draws:
            raise ValueError(f"{name}: needs a 'synergy' run and random draws, got {sorted(runs)}")
        synergy = metric_values(runs["synergy"], until)
        random = [metric_values(runs[label], until) for label in draws]
        row: dict[str, Any] = {"network": name, "random_draws": len(draws)}
        for metric, higher in METRICS.items():
            network_ranks = synergy_rank(synergy[metric], [r[metric] for r in random], higher)
            ranks[metric].append(network_ranks)
            row[metric] = {  # never grokked: None (JSON has no infinity)
                "synergy": finite(synergy[metric]),
                "random": [finite(r[metric]) for r in random],
                "synergy_rank": network_ranks[0],
            }
        row["size"] = sum(len(n) for n in runs["synergy"].get("neurons", {}).values())
        row["selection"] = result.get("selection", {})
        networks.append(row)
    tests = {metric: rank_sum_test(ranks[metric]) for metric in METRICS}
    return {
        "networks": networks,
        "tests": tests,
        "test": "exact rank-sum permutation test",
        "until": until,
    }


def finite(value: float) -> float | None:
    """`value`, or None for infinity.

    Examples:
        >>> finite(math.inf), finite(2.0)
        (None, 2.0)
    """
    return None if math.isinf(value) else value


def shown(value: float | None) -> str:
    """A metric value as the table shows it ("never" for a run that did not grok).

    Examples:
        >>> shown(None), shown(0.98765)
        ('never', '0.9877')
    """
    return "never" if value is None else f"{value:.4g}"


def table(comparison: Mapping[str, Any]) -> str:
    """A markdown table: per network the synergistic rank among its draws, per metric; the tests.

    Examples:
        >>> run = lambda acc: {"test_acc": [0.0, acc], "steps_to_grok": None}
        >>> net = {"runs": {"synergy": run(0.9), "random:0": run(0.5)}}
        >>> print(table(compare({"a": net})).splitlines()[0])
        | network | size | final test: synergy (random range), rank | mean test: synergy (random range), rank | steps to grok: synergy (random range), rank |
    """
    names = {"final_test": "final test", "mean_test": "mean test", "steps_to_grok": "steps to grok"}
    head = " | ".join(f"{names[m]}: synergy (random range), rank" for m in METRICS)
    lines = [f"| network | size | {head} |", "|" + " --- |" * (len(METRICS) + 2)]
    for row in comparison["networks"]:
        cells = []
        for metric in METRICS:
            entry = row[metric]
            ordered = sorted(entry["random"], key=lambda v: math.inf if v is None else v)
            spread = f"{shown(ordered[0])}–{shown(ordered[-1])}"
            out_of = row["random_draws"] + 1
            cells.append(
                f"{shown(entry['synergy'])} ({spread}), {entry['synergy_rank']:g} of {out_of}"
            )
        lines.append(f"| {row['network']} | {row['size']} | " + " | ".join(cells) + " |")
    tests = comparison["tests"]
    sums = " | ".join(
        f"rank sum {tests[m]['rank_sum']:g} (null {tests[m]['null_mean']:g}), "
        f"p = {tests[m]['p_value']:.3g}"
        for m in METRICS
    )
    lines.append(f"| all | | {sums} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Read the given ``retrain.json`` files, print the table and write the comparison as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="retrain.json files, one per network")
    parser.add_argument("--out", default=None, help="write the comparison here (JSON)")
    parser.add_argument(
        "--until", type=int, default=None, help="compare over the first UNTIL steps of every run"
    )
    args = parser.parse_args(argv)
    results = {
        Path(path).parent.name: json.loads(Path(path).read_text(encoding="utf-8"))
        for path in args.results
    }
    comparison = compare(results, args.until)
    print(table(comparison))
    if args.out:
        Path(args.out).write_text(json.dumps(comparison, indent=1) + "\n", encoding="utf-8")
    return comparison


if __name__ == "__main__":
    main()
