"""Engine outputs, bit for bit, against a record made before the package was reorganised.

`tests/data/golden.json` was written by this file's `compute()` on the code of commit
"Drop-in: CLI and retraining share ..." (before the sub-package layout). A refactoring that moves
code must leave every number identical; a change that is meant to move numbers must say so and
re-record (``python tests/test_golden.py``). Re-recorded once so far: when batches of fewer than
768 blocks moved from the unrolled Cholesky to LAPACK (`estimators.logdets`), which moved values by
at most 3.6e-15 bits and no multiplet's members.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

import oinfo_monitor as om

GOLDEN = Path(__file__).parent / "data" / "golden.json"


def digest(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's float64 bytes: equal only if every value is bit-identical."""
    return hashlib.sha256(tensor.detach().double().contiguous().numpy().tobytes()).hexdigest()


def data(seed: int, samples: int = 400, neurons: int = 9) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, neurons, generator=generator, dtype=torch.float64)
    x[:, 2] = x[:, 0] + x[:, 1] + 0.3 * x[:, 2]
    x[:, 5] = x[:, 3] + 0.2 * x[:, 5]
    return x


def compute() -> dict[str, Any]:
    out: dict[str, Any] = {}
    x = data(0)
    relu = torch.relu(data(1)).float()
    for ties in ("random", "stable", "average"):
        out[f"copnorm/{ties}"] = digest(om.copnorm(relu, ties=ties, seed=3))
    multiplets = [[0, 1, 2], [3, 4, 5, 6], [0, 2, 5, 6, 7]]
    labels = (x[:, 0] > 0).long() + (x[:, 4] > 1).long()
    for target_name, y in (("none", None), ("discrete", labels), ("continuous", x[:, 8] ** 3)):
        for bias in (True, False):
            stats = om.copula_covariance(x[:, :8], y=y, bias_correct=bias, ties="random", seed=1)
            for name in ("oinfo", "sinfo", "tc", "dtc"):
                out[f"{name}/{target_name}/{bias}"] = digest(stats.measure(name, multiplets))
    out["gaussian_entropy"] = digest(om.gaussian_entropy(torch.cov(x.T), 400))
    out["mi_model"] = digest(om.mi_model(relu.double(), labels, seed=2))
    out["mi_mixture"] = digest(om.mi_mixture(x, labels))
    for strategy, options in (
        ("exhaustive", {}),
        ("greedy", {"beam": 2}),
        ("clusters", {"bins": 5}),
        ("anneal", {"steps": 10, "chains": 3}),
        ("auto", {}),
    ):
        result = om.search(relu, strategy=strategy, seed=4, **options)
        out[f"search/{strategy}"] = {
            str(k): [
                result.synergy[k].value.hex(),
                list(result.synergy[k].members),
                result.redundancy[k].value.hex(),
                list(result.redundancy[k].members),
            ]
            for k in sorted(result.synergy)
        }
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 2))
    probe = torch.randn(300, 6, generator=torch.Generator().manual_seed(5))
    monitor = om.OInfoMonitor(model, probe, capture="post", strategy="greedy", track_phases=False)
    evaluation = monitor.evaluate(0)
    assert evaluation is not None
    out["monitor"] = [
        [r["layer"], r["size"], r["synergy"].hex(), r["synergy_members"], r["redundancy"].hex()]
        for r in evaluation.records
    ]
    return out


def test_engine_outputs_are_bit_identical_to_the_record() -> None:
    expected = json.loads(GOLDEN.read_text())
    found = json.loads(json.dumps(compute()))
    assert sorted(found) == sorted(expected)
    for key in expected:
        assert found[key] == expected[key], key


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(compute(), indent=1) + "\n")
    sys.stdout.write(f"wrote {GOLDEN}\n")
