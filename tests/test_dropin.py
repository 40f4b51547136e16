"""The monitor dropped into ordinary training loops: it never crashes training, rejects bad input
before training starts, and never reports a silently wrong answer."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from oinfo_monitor import OInfoMonitor, OInfoMonitorWarning
from oinfo_monitor.monitor.records import TornRecordWarning, read_records
from oinfo_monitor.retrain import masked

SEARCH: dict[str, Any] = {"strategy": "exhaustive", "sizes": [3, 4]}


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 2))


def probe(samples: int = 200) -> torch.Tensor:
    return torch.randn(samples, 6, generator=torch.Generator().manual_seed(1))


def steps_in(path: Path) -> list[int]:
    return [r["step"] for r in read_records(path) if r["size"] == 3 and r["layer"] == "0"]


# ------------------------------------------------------------------------------------------
# Training never crashes because of the monitor.


def test_an_epoch_local_counter_evaluates_once_per_step_and_warns_once(tmp_path: Path) -> None:
    monitor = OInfoMonitor(mlp(), probe(), every=5, history_path=tmp_path / "h.jsonl", **SEARCH)
    with pytest.warns(OInfoMonitorWarning, match="global step counter") as caught:
        for _epoch in range(3):
            for step in range(12):  # enumerate(loader): restarts at 0 every epoch
                monitor.step(step)
    assert len([w for w in caught if "global step" in str(w.message)]) == 1
    assert steps_in(tmp_path / "h.jsonl") == [0, 5, 10]


def test_repeated_steps_are_evaluated_once_and_silently() -> None:
    """Gradient accumulation repeats the global step; evaluate(s) then step(s) is the same."""
    monitor = OInfoMonitor(mlp(), probe(), every=2, **SEARCH)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert monitor.evaluate(4) is not None
        assert monitor.step(4) is None
        results = [monitor.step(s) for s in (6, 6, 6, 8, 8)]
    assert [r is not None for r in results] == [True, False, False, True, False]
    assert monitor.evaluations == 3


@pytest.mark.parametrize(
    "step", [torch.tensor(5), torch.tensor(5.0), torch.tensor([5]), np.int64(5), 5.0]
)
def test_integer_like_steps_match_a_list_schedule(step: Any) -> None:
    monitor = OInfoMonitor(mlp(), probe(), every=[0, 5], **SEARCH)
    evaluation = monitor.step(step)
    assert evaluation is not None and evaluation.step == 5
    assert isinstance(evaluation.records[0]["step"], int)


def test_a_step_that_is_not_an_integer_is_ignored_with_one_warning() -> None:
    monitor = OInfoMonitor(mlp(), probe(), every=1, **SEARCH)
    with pytest.warns(OInfoMonitorWarning, match="must be an integer"):
        assert monitor.step(2.5) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert monitor.step("three") is None
        assert monitor.step(torch.tensor([1, 2])) is None
    assert monitor.evaluations == 0


def test_a_failing_schedule_predicate_never_raises() -> None:
    def due(step: int) -> bool:
        raise KeyError(step)

    monitor = OInfoMonitor(mlp(), probe(), every=due, **SEARCH)
    with pytest.warns(OInfoMonitorWarning, match="KeyError"):
        assert monitor.step(3) is None


def test_step_after_close_does_nothing(tmp_path: Path) -> None:
    monitor = OInfoMonitor(mlp(), probe(), every=1, logdir=tmp_path, **SEARCH)
    monitor.step(0)
    monitor.close()
    with pytest.warns(OInfoMonitorWarning, match="after close"):
        assert monitor.step(1) is None
        assert monitor.evaluate(2) is None
    assert monitor.evaluations == 1
    assert steps_in(tmp_path / "oinfo_history.jsonl") == [0]


def test_a_broken_phase_tracker_state_cannot_crash_step() -> None:
    """The phase tracker refuses non-increasing steps; fed one by a stale state it only warns."""
    monitor = OInfoMonitor(mlp(), probe(), every=1, **SEARCH)
    monitor.trackers["0"].update(100, 0.1, 0.1)  # the tracker believes it is at step 100
    with pytest.warns(OInfoMonitorWarning, match="tracking phases failed"):
        assert monitor.step(3) is not None


# ------------------------------------------------------------------------------------------
# Fail fast: bad options and probes raise at construction.

BAD_OPTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "strategy": ({"strategy": "fastest"}, "strategy must be one of"),
    "unknown search option": ({"strategy": "greedy", "search_options": {"bins": 3}}, "'bins'"),
    "bad search value": ({"strategy": "greedy", "search_options": {"beam": 0}}, "beam"),
    "search option of the other strategy": (
        {"strategy": "auto", "search_options": {"beam": 2}},
        "'beam'",
    ),
    "size 2": ({"sizes": [2, 3]}, "pair is always 0"),
    "sizes text": ({"sizes": "3"}, "sizes must be"),
    "seed": ({"seed": -1}, "seed must be"),
    "capture": ({"capture": "Post"}, "capture must be 'pre' or 'post'"),
    "token": ({"token": "first"}, "token must be"),
    "batch_size": ({"batch_size": 0}, "batch_size must be"),
    "activation with pre": ({"activation": torch.relu}, "only used with capture='post'"),
    "every": ({"every": 0}, "every must be"),
    "ties": ({"ties": "first"}, "ties must be"),
    "track_phases": ({"track_phases": {"rise": 0.5}}, "rise"),
    "phase option name": ({"track_phases": {"rice": 2.0}}, "track_phases"),
    "layer options": ({"layer_options": {"0": {"strategy": "greedy", "bins": 2}}}, "'bins'"),
    "probe_axis": ({"probe_axis": -1}, "probe_axis"),
    "sample_axis": ({"sample_axis": {"0": "time"}}, "sample_axis"),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_bad_options_fail_at_construction_naming_the_option(case: str) -> None:
    options, message = BAD_OPTIONS[case]
    with pytest.raises((ValueError, TypeError), match=message):
        OInfoMonitor(mlp(), probe(), **options)


@pytest.mark.parametrize("case", [case for case in BAD_OPTIONS if case != "layer options"])
def test_the_lightning_callback_rejects_the_same_options_when_built(case: str) -> None:
    """Everything but layer names (known once the callback sees the model, at setup)."""
    pytest.importorskip("lightning")
    from oinfo_monitor.integrations.lightning import OInfoCallback

    options, message = BAD_OPTIONS[case]
    with pytest.raises((ValueError, TypeError), match=message):
        OInfoCallback(probe(), **options)


def test_the_callback_names_an_unknown_option() -> None:
    pytest.importorskip("lightning")
    from oinfo_monitor.integrations.lightning import OInfoCallback

    with pytest.raises(TypeError, match="did you mean 'strategy'"):
        OInfoCallback(probe(), stratgy="greedy")


def test_a_probe_that_does_not_fit_the_model_fails_at_construction() -> None:
    x = probe()
    with pytest.raises(ValueError, match="probe does not run through the model"):
        OInfoMonitor(mlp(), torch.randn(50, 7), **SEARCH)  # wrong width
    with pytest.raises(ValueError, match="probe=inputs, target=labels"):
        OInfoMonitor(mlp(), (x, torch.arange(200)), **SEARCH)  # an (x, y) tuple
    with pytest.raises(ValueError, match="probe does not run through the model"):
        OInfoMonitor(mlp(), x.double(), **SEARCH)  # wrong dtype
    with pytest.raises(ValueError, match="probe does not run through the model"):
        OInfoMonitor(mlp(), x.long(), **SEARCH)


def test_a_layer_whose_output_cannot_be_read_fails_at_construction() -> None:
    class Dict(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Linear(6, 6)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"h": self.inner(x)}

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = Dict()
            self.out = nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.block(x)["h"])

    with pytest.raises(ValueError, match="expected a tensor output"):
        OInfoMonitor(Net(), probe(), layers=["block"], **SEARCH)
    with pytest.raises(ValueError, match="not followed by an activation"):
        OInfoMonitor(Net(), probe(), layers=["block.inner"], capture="post", **SEARCH)


def test_construction_leaves_training_untouched() -> None:
    """The dry run at construction restores mode, grad mode and RNG, and removes its hooks."""
    model = mlp()
    model.train()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    OInfoMonitor(model, probe(), **SEARCH)
    assert torch.equal(torch.rand(3), expected)
    assert model.training and torch.is_grad_enabled()
    assert all(not m._forward_hooks for m in model.modules())


# ------------------------------------------------------------------------------------------
# No silent wrong answers.


class Recurrent(nn.Module):
    """A time-first sequence model: [T, B, D] in, the last step's hidden state read out."""

    def __init__(self, kind: type[nn.Module] = nn.LSTM) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn = kind(4, 12)
        self.head = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rnn(x)[0]
        return self.head(out[-1])


def test_time_first_sequences_are_measured_over_the_batch() -> None:
    sequences = torch.randn(7, 150, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="probe_axis"):
        OInfoMonitor(Recurrent(), sequences, layers=["rnn"], **SEARCH)
    for kind in (nn.LSTM, nn.GRU, nn.RNN):
        monitor = OInfoMonitor(Recurrent(kind), sequences, layers=["rnn"], probe_axis=1, **SEARCH)
        evaluation = monitor.evaluate(0)
        assert evaluation is not None and not evaluation.skipped
        assert {r["n_samples"] for r in evaluation.records} == {150}
        assert {r["n_neurons"] for r in evaluation.records} == {12}


def test_time_first_attention_is_measured_over_the_batch() -> None:
    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2)
            self.head = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.attn(x, x, x)[0][-1])

    sequences = torch.randn(5, 120, 8, generator=torch.Generator().manual_seed(0))
    monitor = OInfoMonitor(Attention(), sequences, layers=["attn"], probe_axis=1, **SEARCH)
    evaluation = monitor.evaluate(0)
    assert evaluation is not None
    assert {r["n_samples"] for r in evaluation.records} == {120}


def test_sample_axis_names_the_batch_of_a_custom_layer() -> None:
    """A module with no `batch_first` whose output is time-first needs sample_axis; without it
    the monitor refuses the layer at construction instead of measuring time steps."""

    class TimeFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(4, 9)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.proj(x).transpose(0, 1)  # [B, T, 9] -> [T, B, 9]

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = TimeFirst()
            self.head = nn.Linear(9, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.block(x)[-1])

    x = torch.randn(150, 7, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="sample_axis"):
        OInfoMonitor(Net(), x, layers=["block"], **SEARCH)
    monitor = OInfoMonitor(Net(), x, layers=["block"], sample_axis={"block": 1}, **SEARCH)
    evaluation = monitor.evaluate(0)
    assert evaluation is not None and {r["n_samples"] for r in evaluation.records} == {150}


def test_a_tiny_probe_caps_default_sizes_and_refuses_larger_explicit_ones() -> None:
    with pytest.raises(ValueError, match="cannot be searched: 10 probe samples support at most 2"):
        OInfoMonitor(mlp(), probe(10), strategy="exhaustive")
    with pytest.warns(OInfoMonitorWarning, match="limited to 6 of its 10 neurons"):
        monitor = OInfoMonitor(mlp(), probe(30), strategy="exhaustive", layers=["0"])
    evaluation = monitor.evaluate(0)
    assert evaluation is not None
    assert max(r["size"] for r in evaluation.records) == 6
    assert min(r["synergy"] for r in evaluation.records) > -5.0  # not the -38 bits of k = 8
    with pytest.raises(ValueError, match=r"sizes \[8\] are too large.*30 probe samples"):
        OInfoMonitor(mlp(), probe(30), sizes=[3, 8])


def test_pre_activation_sizes_stop_at_the_input_width() -> None:
    model = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 2))
    with pytest.warns(OInfoMonitorWarning, match="input width 4 bounds the rank"):
        monitor = OInfoMonitor(model, torch.randn(400, 4), strategy="exhaustive")
    evaluation = monitor.evaluate(0)
    assert evaluation is not None and max(r["size"] for r in evaluation.records) == 4
    with pytest.raises(ValueError, match="input width 4"):
        OInfoMonitor(model, torch.randn(400, 4), sizes=[3, 5])
    # After the activation the rank bound no longer applies.
    post = OInfoMonitor(model, torch.randn(400, 4), sizes=[3, 5], capture="post")
    assert post.size_limits == {"0": None}


def test_duplicated_neurons_are_dropped_and_counted() -> None:
    """A copied row (Linear) or filter (Conv) is dropped like a dead neuron, not the whole layer."""
    model = mlp()
    with torch.no_grad():
        model[0].weight[7] = model[0].weight[2]
        model[0].bias[7] = model[0].bias[2]
        model[0].weight[9] = 3 * model[0].weight[4]  # a scaled copy: the same copula variable
        model[0].bias[9] = 3 * model[0].bias[4]
    monitor = OInfoMonitor(model, probe(), layers=["0"], **SEARCH)
    evaluation = monitor.evaluate(0)
    assert evaluation is not None and not evaluation.skipped
    for record in evaluation.records:
        assert record["duplicate_neurons"] == 2 and record["n_neurons"] == 10
        assert not {7, 9} & set(record["synergy_members"] + record["redundancy_members"])

    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(2, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 36, 2))
    with torch.no_grad():
        conv[0].weight[5] = conv[0].weight[1]
        conv[0].bias[5] = conv[0].bias[1]
    images = torch.randn(200, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    evaluation = OInfoMonitor(conv, images, layers=["0"], **SEARCH).evaluate(0)
    assert evaluation is not None and not evaluation.skipped
    assert {r["duplicate_neurons"] for r in evaluation.records} == {1}


# ------------------------------------------------------------------------------------------
# The history file never loses or duplicates data.


def test_a_torn_last_line_is_skipped_by_readers_and_never_glued_to(tmp_path: Path) -> None:
    path = tmp_path / "oinfo_history.jsonl"
    first = OInfoMonitor(mlp(), probe(), every=5, history_path=path, **SEARCH)
    first.step(0)
    with path.open("a") as handle:
        handle.write('{"step": 5, "layer": "0", "si')  # a crash mid-write
    with pytest.warns(TornRecordWarning, match=":5: skipped a record cut off"):
        assert steps_in(path) == [0]
    monitor = OInfoMonitor(mlp(), probe(), every=5, history_path=path, resume=True, **SEARCH)
    monitor.step(5)
    with pytest.warns(TornRecordWarning):
        assert steps_in(path) == [0, 5]
    lines = path.read_text().splitlines()
    assert lines[4] == '{"step": 5, "layer": "0", "si'
    assert all(json.loads(line) for line in lines[5:])


def test_a_malformed_line_before_the_end_still_raises(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text('{"step": 0, "layer": "0", "size": 3, "synergy": 1}\nnot json\n{"step": 1}\n')
    with pytest.raises(ValueError, match=":2: not a JSON record"):
        list(read_records(path))


def test_a_rerun_into_the_same_logdir_is_refused_or_continued(tmp_path: Path) -> None:
    first = OInfoMonitor(mlp(), probe(), every=5, logdir=tmp_path, **SEARCH)
    for step in range(11):
        first.step(step)
    first.close()
    with pytest.raises(ValueError, match=r"already holds 12 records \(steps 0..10\).*resume=True"):
        OInfoMonitor(mlp(), probe(), every=5, logdir=tmp_path, **SEARCH)
    again = OInfoMonitor(mlp(), probe(), every=5, logdir=tmp_path, resume=True, **SEARCH)
    assert again.last_step == 10 and again.evaluations == 3
    with pytest.warns(OInfoMonitorWarning, match="already in the history"):
        for step in range(21):
            again.step(step)
    again.close()
    assert steps_in(tmp_path / "oinfo_history.jsonl") == [0, 5, 10, 15, 20]


def test_resuming_from_an_older_state_never_duplicates_steps(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    monitor = OInfoMonitor(mlp(), probe(), every=5, history_path=path, **SEARCH)
    state = None
    for step in range(16):
        monitor.step(step)
        if step == 5:
            state = monitor.state_dict()  # the checkpoint, older than the last evaluation
    assert state is not None
    resumed = OInfoMonitor(mlp(), probe(), every=5, history_path=path, resume=True, **SEARCH)
    resumed.load_state_dict(state)
    with pytest.warns(OInfoMonitorWarning, match="already in the history"):
        for step in range(5, 21):
            resumed.step(step)
    assert steps_in(path) == [0, 5, 10, 15, 20]
    assert [r["step"] for r in resumed.history if r["size"] == 3 and r["layer"] == "0"] == [
        0,
        5,
        10,
        15,
        20,
    ]


# ------------------------------------------------------------------------------------------
# Also.


def test_masked_restores_the_weights_when_its_block_raises() -> None:
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="interrupted"), masked(model, {"0": [0, 1, 2]}):
        assert float(model[0].weight[5].abs().sum()) == 0.0
        raise RuntimeError("interrupted")
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_the_monitor_refuses_pickling_with_a_clear_message() -> None:
    model = mlp()
    monitor = OInfoMonitor(model, probe(), **SEARCH)
    with pytest.raises(TypeError, match="state_dict"):
        pickle.dumps(monitor)
    copied = pickle.loads(pickle.dumps(model))  # the model itself carries nothing of the monitor
    assert all(not m._forward_hooks for m in copied.modules())
