"""The rank test of the synergistic sub-network against random ones: exact, calibrated, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from oinfo_monitor.experiments.retrain_significance import main, rank_sum_test

# Mid-ranks of three networks, the synergistic sub-network's first; the second has a tie.
NETWORKS = [[1.0, 2.0, 3.0, 4.0], [1.5, 1.5, 3.0, 4.0, 5.0], [3.0, 1.0, 2.0]]


def test_the_exact_p_value_matches_a_simulation_of_the_null() -> None:
    """Under the null each network's synergistic rank is a uniform draw from its ranks: the
    exact p-value equals the frequency, over simulated draws, of a sum as far from the mean."""
    rng = np.random.default_rng(0)
    sums = sum(rng.choice(network, 200_000) for network in NETWORKS)
    test = rank_sum_test(NETWORKS)
    assert test["rank_sum"] == 5.5
    assert test["null_mean"] == pytest.approx(sums.mean(), abs=0.01)
    far = np.abs(sums - test["null_mean"]) >= abs(test["rank_sum"] - test["null_mean"]) - 1e-9
    assert test["p_value"] == pytest.approx(far.mean(), abs=0.005)


def test_the_test_is_calibrated_and_detects_a_real_difference() -> None:
    """5 networks of 10 random draws: under the null p < 0.05 in at most about 5% of simulated
    experiments; a synergistic sub-network best in every network gives p < 0.001."""
    rng = np.random.default_rng(1)
    ranks = [float(r) for r in range(1, 12)]
    p_values = [
        rank_sum_test([[float(rng.integers(1, 12)), *ranks[1:]] for _ in range(5)])["p_value"]
        for _ in range(2000)
    ]
    assert np.mean(np.array(p_values) < 0.05) <= 0.06
    assert rank_sum_test([ranks] * 5)["p_value"] < 0.001


def run(test_acc: list[float], grok: int | None) -> dict[str, object]:
    """One retraining run as `retrain.json` stores it."""
    return {"neurons": {"hidden": [0, 1, 2]}, "test_acc": test_acc, "steps_to_grok": grok}


def test_main_reads_results_and_writes_json_with_never_as_null(tmp_path: Path) -> None:
    paths = []
    for k in range(3):
        runs = {"synergy": run([0.2, 0.99], 100)}
        runs.update({f"random:{i}": run([0.1, 0.5 + 0.1 * i], None) for i in range(4)})
        folder = tmp_path / f"net{k}"
        folder.mkdir()
        (folder / "retrain.json").write_text(json.dumps({"runs": runs}), encoding="utf-8")
        paths.append(str(folder / "retrain.json"))
    out = tmp_path / "comparison.json"
    main([*paths, "--out", str(out)])
    saved = json.loads(out.read_text(encoding="utf-8"))
    first = saved["networks"][0]
    assert first["size"] == 3 and first["random_draws"] == 4
    assert (
        first["steps_to_grok"]["random"] == [None] * 4 and first["steps_to_grok"]["synergy"] == 100
    )
    assert all(row["final_test"]["synergy_rank"] == 1.0 for row in saved["networks"])
    assert saved["tests"]["final_test"]["rank_sum"] == 3.0  # best of 5 in all 3 networks
    assert saved["tests"]["final_test"]["p_value"] == pytest.approx(2 / 125)


def test_until_compares_every_network_over_the_same_first_steps(tmp_path: Path) -> None:
    """A network retrained longer is cut at --until: its later accuracy and a late grokking step
    no longer count, and a run shorter than --until is refused."""
    curve = {"steps": [0, 500, 1000, 1500], "neurons": {"hidden": [0, 1]}}
    late = {
        **curve,
        "train_acc": [0.0] * 4,
        "test_acc": [0.0, 0.2, 0.4, 1.0],
        "steps_to_grok": 1500,
    }
    early = {
        **curve,
        "train_acc": [0.0] * 4,
        "test_acc": [0.0, 0.5, 0.99, 0.99],
        "steps_to_grok": 1000,
    }
    path = tmp_path / "net" / "retrain.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"runs": {"synergy": late, "random:0": early}}), encoding="utf-8")
    whole = main([str(path)])["networks"][0]
    cut = main([str(path), "--until", "1000"])["networks"][0]
    assert whole["final_test"]["synergy"] == 1.0 and whole["final_test"]["synergy_rank"] == 1.0
    assert cut["final_test"]["synergy"] == 0.4 and cut["final_test"]["synergy_rank"] == 2.0
    assert whole["steps_to_grok"]["synergy"] == 1500 and cut["steps_to_grok"]["synergy"] is None
    assert cut["mean_test"]["synergy"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="before --until 2000"):
        main([str(path), "--until", "2000"])
