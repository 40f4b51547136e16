"""The monitor inside real frameworks: DDP with two gloo processes, a Lightning Trainer, TensorBoard's server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch
from torch import nn

from oinfo_monitor import OInfoMonitor
from oinfo_monitor.monitor.records import read_records

SEARCH = {"strategy": "exhaustive", "sizes": [3, 4]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 2))


def ddp_worker(rank: int, port: int, out: str) -> None:
    """One DDP rank: train a few steps with the monitor; record what the monitor returned."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(mlp())
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        x = torch.randn(200, 6, generator=torch.Generator().manual_seed(1))
        monitor = OInfoMonitor(
            model, probe=x, every=2, history_path=Path(out) / f"h{rank}.jsonl", **SEARCH
        )
        returned = []
        for step in range(6):
            loss = model(x[rank::2]).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            returned.append(monitor.step(step) is not None)
        dist.barrier()
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(returned))
    finally:
        dist.destroy_process_group()


def test_ddp_only_rank_zero_returns_and_writes_and_no_rank_blocks(tmp_path: Path) -> None:
    """Under DDP both ranks score their share of the layers, but only rank 0 returns the
    evaluation and writes the history; rank 1 returns None; both finish."""
    context = torch.multiprocessing.start_processes(
        ddp_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        assert time.monotonic() < deadline, "DDP workers did not finish: a rank blocked"
    assert json.loads((tmp_path / "rank0.json").read_text()) == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]
    assert json.loads((tmp_path / "rank1.json").read_text()) == [False] * 6
    assert {r["step"] for r in read_records(tmp_path / "h0.jsonl")} == {0, 2, 4}
    assert not (tmp_path / "h1.jsonl").exists()


def test_lightning_callback_with_a_real_trainer(tmp_path: Path) -> None:
    """OInfoCallback runs in a CPU Trainer and writes through the trainer's TensorBoard logger."""
    lightning = pytest.importorskip("lightning.pytorch")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from oinfo_monitor.integrations.lightning import OInfoCallback

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=generator)
    y = (x[:, 0] > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    callback = OInfoCallback(probe=x[:200], every=4, **SEARCH)
    logger = lightning.loggers.TensorBoardLogger(str(tmp_path), name="run")
    trainer = lightning.Trainer(
        max_steps=8, logger=logger, callbacks=[callback], accelerator="cpu", devices=1,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    )  # fmt: skip
    trainer.fit(Module(), loader)
    assert callback.monitor is not None
    steps = sorted({r["step"] for r in callback.monitor.history})
    assert steps == [0, 4, 8]  # the initial state too
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert [e.step for e in events.Scalars("oinfo/net.0/synergy")] == [0, 4, 8]
    assert callback.state_dict()["evaluations"] == 3


def test_real_tensorboard_server_serves_the_monitor_curves(tmp_path: Path) -> None:
    """Start TensorBoard on 127.0.0.1, read the scalars over its HTTP API, compare with history."""
    torch.manual_seed(0)
    model = mlp()
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(2))
    with OInfoMonitor(model, probe=x, every=1, logdir=tmp_path / "run", **SEARCH) as monitor:
        for step in range(3):
            with torch.no_grad():
                model[0].weight.add_(0.05 * torch.randn_like(model[0].weight))
            monitor.step(step)
    port = free_port()
    command = [
        sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path), "--host", "127.0.0.1",
        "--port", str(port), "--samples_per_plugin", "scalars=10000", "--load_fast", "false",
    ]  # fmt: skip
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ}
    )
    try:
        base = f"http://127.0.0.1:{port}"
        tags = _wait_for_json(f"{base}/data/plugin/scalars/tags", server, lambda t: "run" in t)
        assert "oinfo/0/synergy" in tags["run"] and "oinfo/2/redundancy" in tags["run"]
        for layer in ("0", "2"):
            for name, pick in (("synergy", min), ("redundancy", max)):
                query = urllib.parse.urlencode({"run": "run", "tag": f"oinfo/{layer}/{name}"})
                served = _wait_for_json(f"{base}/data/plugin/scalars/scalars?{query}", server, bool)
                assert [row[1] for row in served] == [0, 1, 2]
                for _, step, value in served:
                    expected = pick(
                        r[name]
                        for r in monitor.history
                        if r["layer"] == layer and r["step"] == step
                    )
                    assert value == pytest.approx(expected, rel=1e-6, abs=1e-6)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for_json(url: str, server: subprocess.Popen, ready, timeout: float = 90.0):
    """Poll a TensorBoard endpoint until it answers JSON for which `ready` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"tensorboard exited: {server.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                data = json.loads(response.read())
            if ready(data):
                return data
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no data from {url} within {timeout} s")
