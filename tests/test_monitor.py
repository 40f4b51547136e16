"""OInfoMonitor: never changes training, writes what it measured, and survives failures."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from oinfo_monitor import OInfoMonitor, OInfoMonitorWarning
from oinfo_monitor.monitor.records import read_records
from oinfo_monitor.monitor.sinks import custom_layout, layer_tag, size_tag

SEARCH = {"strategy": "exhaustive", "sizes": [3, 4]}


class Net(nn.Module):
    """A small MLP with dropout, so training consumes the RNG."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 12)
        self.act1 = nn.ReLU()
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(12, 10)
        self.act2 = nn.ReLU()
        self.out = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act2(self.fc2(self.drop(self.act1(self.fc1(x))))))


def make_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(400, 8, generator=generator)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).long() + (x[:, 3] > 1).long()
    return x, y


def train(steps: int, monitor_options: dict | None = None, tmp: Path | None = None):
    """Train Net with minibatches and dropout; optionally with a monitor evaluating every 2 steps."""
    torch.manual_seed(0)
    model = Net()
    x, y = make_data()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    monitor = None
    if monitor_options is not None:
        monitor = OInfoMonitor(model, probe=x[:300], every=2, **SEARCH, **monitor_options)
    for step in range(steps):
        index = torch.randint(0, 400, (64,))
        loss = nn.functional.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if monitor is not None:
            monitor.step(step)
    if monitor is not None:
        monitor.close()
    return model, monitor


def test_training_is_bit_identical_with_and_without_the_monitor(tmp_path: Path) -> None:
    """Same seed: the monitored run ends with exactly the weights of the unmonitored run."""
    plain, _ = train(12)
    monitored, monitor = train(12, {"logdir": tmp_path, "capture": "post", "figure_every": 2})
    assert monitor is not None and monitor.evaluations == 6
    for (name, a), (_, b) in zip(
        plain.state_dict().items(), monitored.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert monitored.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in monitored.modules())


def test_history_file_matches_memory_and_records_the_policy(tmp_path: Path) -> None:
    """The JSONL history holds exactly the in-memory records, with units, ties and bias correction."""
    _, monitor = train(6, {"logdir": tmp_path})
    assert monitor is not None
    on_disk = list(read_records(tmp_path / "oinfo_history.jsonl"))
    assert on_disk == monitor.history
    assert {r["layer"] for r in on_disk} == {"fc1", "fc2"}
    assert {r["size"] for r in on_disk} == {3, 4}
    assert {r["step"] for r in on_disk} == {0, 2, 4}
    for record in on_disk:
        assert record["units"] == "bits" and record["ties"] == "random" and record["bias_correct"]
        assert len(record["synergy_members"]) == record["size"]


def test_tensorboard_events_match_history(tmp_path: Path) -> None:
    """Scalars, layout, config text and figure read back from the event file agree with `history`."""
    _, monitor = train(6, {"logdir": tmp_path, "figure_every": 1})
    assert monitor is not None
    events = EventAccumulator(
        str(tmp_path), size_guidance={"scalars": 0, "images": 0, "tensors": 0}
    )
    events.Reload()
    tags = events.Tags()
    for record in monitor.history:
        for name in ("synergy", "redundancy"):
            series = {
                e.step: e.value
                for e in events.Scalars(size_tag(record["layer"], name, record["size"]))
            }
            assert series[record["step"]] == pytest.approx(record[name], rel=1e-6, abs=1e-6)
    for layer in ("fc1", "fc2"):
        headline = {e.step: e.value for e in events.Scalars(layer_tag(layer, "synergy"))}
        for step in (0, 2, 4):
            values = [
                r["synergy"] for r in monitor.history if r["layer"] == layer and r["step"] == step
            ]
            assert headline[step] == pytest.approx(min(values), rel=1e-6, abs=1e-6)
        assert layer_tag(layer, "synergy_size") in tags["scalars"]
    assert "oinfo/probe_seconds" in tags["scalars"]
    assert "oinfo/size_bars" in tags["images"]
    assert "custom_scalars__config__" in tags["tensors"]
    config = events.Tensors("oinfo/config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "ties" in config and "bits" in config


def test_custom_layout_groups_layers_and_measures() -> None:
    """Per layer: margin charts (value, lower, upper) and value-with-chance charts whose patterns
    match only that layer's tags; one chart per measure holds all layers."""
    layout = custom_layout(["fc1", "fc2"])
    charts = layout["O-information: fc1"]
    assert charts["synergy ± 2 SD (bits)"] == [
        "Margin",
        ["oinfo/fc1/synergy", "oinfo/fc1/synergy_lower", "oinfo/fc1/synergy_upper"],
    ]
    patterns = charts["synergy and its chance level (bits)"][1]
    tags = [
        "oinfo/fc1/synergy",
        "oinfo/fc1/synergy_chance",
        "oinfo/fc1/synergy_size",
        "oinfo/fc12/synergy",
    ]
    matched = [t for t in tags if any(re.search(p, t) for p in patterns)]
    assert matched == ["oinfo/fc1/synergy", "oinfo/fc1/synergy_chance"]
    assert "synergy (all layers, bits)" in layout["O-information: all layers"]


def test_nan_activations_warn_and_training_goes_on(tmp_path: Path) -> None:
    """A NaN in a layer's activations skips that layer with a warning; nothing raises."""
    model = Net()
    x, _ = make_data()
    x = x[:200].clone()
    x[5, 0] = float("nan")
    monitor = OInfoMonitor(model, probe=x, every=1, history_path=tmp_path / "h.jsonl", **SEARCH)
    with pytest.warns(OInfoMonitorWarning, match="NaN/inf"):
        evaluation = monitor.step(0)
    assert evaluation is not None and set(evaluation.skipped) == {"fc1", "fc2"}
    assert monitor.history == []


def test_failing_writer_is_a_warning_and_history_survives(tmp_path: Path) -> None:
    """A writer that raises does not stop the evaluation; the history file still gets the records."""

    class BrokenWriter:
        log_dir = str(tmp_path)

        def __getattr__(self, name: str):
            def fail(*args, **kwargs):
                raise OSError("disk full")

            return fail

    x, _ = make_data()
    with pytest.warns(OInfoMonitorWarning, match="disk full"):
        monitor = OInfoMonitor(Net(), probe=x[:200], every=1, writer=BrokenWriter(), **SEARCH)
        evaluation = monitor.step(0)
    assert evaluation is not None and evaluation.records
    assert len(list(read_records(tmp_path / "oinfo_history.jsonl"))) == len(evaluation.records)


def test_a_failing_evaluation_is_skipped_with_a_warning() -> None:
    """An exception inside an evaluation (here: forward fails mid-training) becomes one warning
    and None at every failing step; training goes on."""

    class Exploding(Net):
        explode = False

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.explode and not self.training:
                raise RuntimeError("boom")
            return super().forward(x)

    x, _ = make_data()
    model = Exploding()
    monitor = OInfoMonitor(model, probe=x[:100], every=1, **SEARCH)
    model.explode = True
    with pytest.warns(OInfoMonitorWarning, match="boom"):
        assert monitor.step(3) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert monitor.step(4) is None  # the same failure again: skipped, not warned twice
    assert monitor.skipped_steps == [3, 4]
    assert model.training


def test_dead_neurons_are_dropped_and_counted() -> None:
    """Constant neurons are excluded from the search and reported; members never name them."""
    model = Net()
    with torch.no_grad():
        model.fc1.weight[:4] = 0.0
        model.fc1.bias[:4] = -1.0
    x, _ = make_data()
    monitor = OInfoMonitor(model, probe=x[:300], every=1, layers=["fc1"], capture="post", **SEARCH)
    evaluation = monitor.evaluate(0)
    assert evaluation is not None
    for record in evaluation.records:
        assert record["dead_neurons"] == 4 and record["n_neurons"] == 12
        assert not set(record["synergy_members"]) & {0, 1, 2, 3}
        assert not set(record["redundancy_members"]) & {0, 1, 2, 3}


def test_target_gives_task_related_oinformation() -> None:
    """A DataLoader of (x, y) batches supplies labels, recorded as a discrete target."""
    x, y = make_data()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=50, shuffle=True
    )
    model = Net()
    state = torch.get_rng_state()
    monitor = OInfoMonitor(model, probe=loader, every=1, **SEARCH)
    assert torch.equal(torch.get_rng_state(), state)
    evaluation = monitor.evaluate(0)
    assert evaluation is not None and monitor.target is not None
    assert {r["target"] for r in evaluation.records} == {"discrete"}


def test_state_dict_resume_continues_the_curves(tmp_path: Path) -> None:
    """A resumed monitor carries the earlier history and phase state and appends after it."""
    x, _ = make_data()
    model = Net()
    first = OInfoMonitor(model, probe=x[:200], every=1, **SEARCH)
    first.evaluate(0)
    first.evaluate(1)
    state = json.loads(json.dumps(first.state_dict()))
    second = OInfoMonitor(model, probe=x[:200], every=1, **SEARCH)
    second.load_state_dict(state)
    assert second.trackers["fc1"].state_dict() == first.trackers["fc1"].state_dict()
    second.evaluate(2)
    assert second.history[: len(first.history)] == first.history
    assert [r["step"] for r in second.history[len(first.history) :]] == [2] * 4
    assert second.evaluations == 3
    with pytest.raises(ValueError, match="version"):
        second.load_state_dict({"version": 99})


def test_phase_tracker_options_reach_every_layer() -> None:
    """A dict for `track_phases` configures each layer's tracker; a resume must use the same rule."""
    x, _ = make_data()
    options = {"min_bits": 0.3, "patience": 2}
    tuned = OInfoMonitor(Net(), probe=x[:100], track_phases=options, **SEARCH)
    assert set(tuned.trackers) == {"fc1", "fc2"}
    for tracker in tuned.trackers.values():
        params = tracker.state_dict()["params"]
        assert (params["min_bits"], params["patience"], params["span"]) == (0.3, 2, 5)
    assert OInfoMonitor(Net(), probe=x[:100], track_phases=False, **SEARCH).trackers == {}
    default = OInfoMonitor(Net(), probe=x[:100], **SEARCH)
    with pytest.raises(ValueError, match="differ"):
        default.load_state_dict(tuned.state_dict())
    with pytest.raises(ValueError, match="min_bits"):
        OInfoMonitor(Net(), probe=x[:100], track_phases={"min_bits": -1.0})
    with pytest.raises(TypeError, match="track_phases"):
        OInfoMonitor(Net(), probe=x[:100], track_phases="yes")  # type: ignore[arg-type]


def test_bad_configuration_fails_at_construction() -> None:
    """Unknown layers, bad schedules and bad tie policies raise before training starts."""
    x, _ = make_data()
    with pytest.raises(ValueError, match="fc9"):
        OInfoMonitor(Net(), probe=x, layers=["fc9"])
    with pytest.raises(ValueError, match="every"):
        OInfoMonitor(Net(), probe=x, every=0)
    with pytest.raises(ValueError, match="ties"):
        OInfoMonitor(Net(), probe=x, ties="first")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layer_options"):
        OInfoMonitor(Net(), probe=x, layer_options={"nope": {}})


def test_schedule_forms() -> None:
    """`every` accepts an int, a collection of steps and a predicate."""
    x, _ = make_data()
    for every, due in ((3, [0, 3, 6]), ([1, 5], [1, 5]), (lambda s: s in (2, 4), [2, 4])):
        monitor = OInfoMonitor(Net(), probe=x[:100], every=every, track_phases=False, **SEARCH)
        ran = [s for s in range(7) if monitor.step(s) is not None]
        assert ran == due


def test_context_manager_closes_its_writer(tmp_path: Path) -> None:
    """`with OInfoMonitor(...)` closes the writer it created; closing twice is harmless."""
    x, _ = make_data()
    with OInfoMonitor(Net(), probe=x[:100], every=1, logdir=tmp_path, **SEARCH) as monitor:
        monitor.step(0)
    assert monitor.sinks == []
    monitor.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(tmp_path.glob("events.out.tfevents.*"))
