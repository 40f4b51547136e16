"""The monitor under DDP with two gloo ranks: each rank scores its layers and its share of the
surrogate searches, rank 0 writes the values one process computes."""

from __future__ import annotations

import json
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from oinfo_monitor import OInfoMonitor
from oinfo_monitor.monitor.records import RECORD_FIELDS, read_records
from oinfo_monitor.monitor.scoring import LayerScorer
from oinfo_monitor.monitor.trust import Trust

TRUST = {"noise_resamples": 2, "surrogates": 2, "null_every": 3}
OPTIONS: dict[str, Any] = {"strategy": "exhaustive", "sizes": [3, 4], "every": 2, **TRUST}
VALUES = [key for key in RECORD_FIELDS if not key.endswith("_seconds")]
STEPS = 7


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 9), nn.ReLU(), nn.Linear(9, 2))


def probe() -> torch.Tensor:
    return torch.randn(300, 6, generator=torch.Generator().manual_seed(1))


def sharded_mlp() -> nn.Module:
    """`mlp(0)` with every Linear and the whole model sharded over the ranks (FSDP2)."""
    from torch.distributed.fsdp import fully_shard

    net = mlp(0)
    for layer in (net[0], net[2], net[4]):
        fully_shard(layer)
    fully_shard(net)
    return net


def worker(rank: int, port: int, out: str) -> None:
    """One rank: train under DDP with a foreground and a background monitor on every rank; also
    monitor an untrained model whose weights differ between ranks, and an untrained FSDP-sharded
    one; keep the DDP model's weights at each evaluated step."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        net = mlp(0)
        model = nn.parallel.DistributedDataParallel(net)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        x = probe()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cases: list[tuple[str, nn.Module, dict[str, Any]]] = [
                ("foreground", model, {}),
                ("background", model, {"background": True}),
                ("one-layer", model, {"layers": ["2"]}),
                ("mixed", mlp(rank), {}),
                ("sharded", sharded_mlp(), {}),
            ]
            monitors = {
                name: OInfoMonitor(
                    watched, x, history_path=Path(out) / f"{name}{rank}.jsonl", **options, **OPTIONS
                )
                for name, watched, options in cases
            }
            returned: dict[str, list[bool]] = {name: [] for name in monitors}
            states = {}
            for step in range(STEPS):
                if step % 2 == 0:
                    states[step] = {k: v.clone() for k, v in net.state_dict().items()}
                for name, monitor in monitors.items():
                    returned[name].append(monitor.step(step) is not None)
                loss = model(x[rank::2]).square().mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            for monitor in monitors.values():
                monitor.close()
            try:  # a sharded model's probe cannot run on rank 0 alone
                OInfoMonitor(sharded_mlp(), x, split_ranks=False, **OPTIONS)
                refused = ""
            except ValueError as error:
                refused = str(error)
        torch.save(states, Path(out) / f"states{rank}.pt")
        report = {
            "returned": returned,
            "owners": {name: m.share.owners for name, m in monitors.items()},
            "splitting": {name: m.share.splitting for name, m in monitors.items()},
            "warnings": [str(w.message) for w in caught],
            "refused": refused,
        }
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(report))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """Two spawned ranks and their reports; fails if they do not both finish within four minutes
    (a blocked exchange would wait ten)."""
    folder = tmp_path_factory.mktemp("ddp")
    context = torch.multiprocessing.start_processes(
        worker, args=(free_port(), str(folder)), nprocs=2, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + 240
    while not context.join(timeout=1):
        assert time.monotonic() < deadline, "the ranks did not finish: one blocked"
    return folder, [json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1)]


def single_process_records(
    states: dict[int, dict[str, torch.Tensor] | None], **options: Any
) -> list[dict[str, Any]]:
    """The same steps' weights (None: `mlp(0)`'s initial ones) evaluated by one process, in order."""
    net = mlp(0)
    monitor = OInfoMonitor(net, probe(), track_phases=False, **OPTIONS, **options)
    for step, state in sorted(states.items()):
        if state is not None:
            net.load_state_dict(state)
        monitor.step(step)
    return monitor.history


def values(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: record[key] for key in VALUES} for record in records]


@pytest.mark.parametrize("mode", ["foreground", "background"])
def test_two_ranks_split_the_layers_and_rank_zero_writes_single_process_values(
    ranks: tuple[Path, list[dict[str, Any]]], mode: str
) -> None:
    folder, (zero, one) = ranks
    assert zero["owners"][mode] == one["owners"][mode] == {"0": 0, "2": 1}
    assert zero["splitting"][mode] and one["splitting"][mode]
    assert one["returned"][mode] == [False] * STEPS
    assert zero["returned"][mode] == [mode == "foreground" and s % 2 == 0 for s in range(STEPS)]
    assert not (folder / f"{mode}1.jsonl").exists()
    written = list(read_records(folder / f"{mode}0.jsonl"))
    assert {r["layer"] for r in written} == {"0", "2"}
    assert values(written) == values(single_process_records(torch.load(folder / "states0.pt")))


def test_one_monitored_layer_splits_its_surrogates_and_gets_single_process_values(
    ranks: tuple[Path, list[dict[str, Any]]],
) -> None:
    """Rank 1 owns no layer but runs one of the two surrogate searches at each due evaluation:
    rank 0's chance levels (the quantiles of both surrogates' extremes) equal one process's."""
    folder, (zero, one) = ranks
    assert zero["owners"]["one-layer"] == one["owners"]["one-layer"] == {"2": 0}
    assert zero["splitting"]["one-layer"] and one["splitting"]["one-layer"]
    written = list(read_records(folder / "one-layer0.jsonl"))
    expected = single_process_records(torch.load(folder / "states0.pt"), layers=["2"])
    assert {r["chance_step"] for r in written} == {0, 6}
    assert values(written) == values(expected)


def test_ranks_with_different_weights_stop_splitting_without_blocking(
    ranks: tuple[Path, list[dict[str, Any]]],
) -> None:
    folder, (zero, one) = ranks
    assert not zero["splitting"]["mixed"] and not one["splitting"]["mixed"]
    for report in (zero, one):  # the one warning of the run, on both ranks
        assert len(report["warnings"]) == 1 and "activations differ" in report["warnings"][0]
    assert one["returned"]["mixed"] == [False] * STEPS
    steps = sorted({r["step"] for r in read_records(folder / "mixed0.jsonl")})
    assert steps == [2, 4, 6]  # step 0 skipped on every rank, then rank 0 alone


def test_an_fsdp_sharded_model_runs_the_probe_on_every_rank_and_gets_single_process_values(
    ranks: tuple[Path, list[dict[str, Any]]],
) -> None:
    folder, (zero, one) = ranks
    assert zero["splitting"]["sharded"] and one["splitting"]["sharded"]
    written = list(read_records(folder / "sharded0.jsonl"))
    assert values(written) == values(single_process_records(dict.fromkeys((0, 2, 4, 6))))
    assert "sharded" in zero["refused"] and "sharded" in one["refused"]


def scorer() -> LayerScorer:
    """A scorer of two layers with 5 surrogates per chance level, every 2 evaluations."""
    options = {"strategy": "exhaustive", "sizes": [3]}
    return LayerScorer(
        None, "random", 0, True, dict.fromkeys("ab", options), dict.fromkeys("ab"),
        Trust(2, 5, 2), "pre",
    )  # fmt: skip


def test_shares_merged_in_one_process_equal_one_scorer_and_a_missing_share_is_no_level() -> None:
    """The split's bookkeeping without gloo: rank 0's and rank 1's shares of two evaluations,
    merged, give one scorer's records; without rank 1's share the due layer gets no chance level
    (not one from half the surrogates), and the ranks still agree on what is due next."""
    g = torch.Generator().manual_seed(3)
    batches = [{n: torch.randn(200, 6, generator=g) for n in "ab"} for _ in range(3)]
    owners = {"a": 0, "b": 1}
    single, zero, one = scorer(), scorer(), scorer()
    for step, activations in enumerate(batches[:2]):
        expected = single.score(step, activations)
        works = [s.share(step, owners, r, 2, activations) for r, s in enumerate((zero, one))]
        merged = zero.merge(step, works)
        for name in "ab":
            assert merged[name].chance == expected[name].chance  # type: ignore[union-attr]
            assert merged[name].noise == expected[name].noise  # type: ignore[union-attr]
    lost = zero.share(2, owners, 0, 2, batches[2])
    one.share(2, owners, 1, 2, batches[2])
    merged = zero.merge(2, [lost])
    assert merged["a"].chance is None  # type: ignore[union-attr]
    # rank 0 owns "a", so it runs the smaller share: surrogates 1 and 3
    assert "2 of 5 surrogates came back" in str(merged["a"].trust_error)  # type: ignore[union-attr]
    assert zero.trust.age == one.trust.age == {"a": 1, "b": 1}  # both counted the due one
