"""Tests for the capture layer: layer selection, activation capture and non-disturbance."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from typing import cast

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from oinfo_monitor.monitor.capture import (
    CaptureSpec,
    capture_activations,
    materialize_probe,
    probe_context,
    resolve_layers,
    unwrap_model,
)


def mlp() -> nn.Sequential:
    """Linear→ReLU→Linear→ReLU→Linear with layers '0', '2', '4'."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3))


class FunctionalReluNet(nn.Module):
    """An MLP that applies F.relu in forward instead of using activation modules."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(5, 7)
        self.fc2 = nn.Linear(7, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class DropoutNet(nn.Module):
    """A layer followed by Dropout, with an encoder block to exercise nested names."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(5, 8), nn.Tanh())
        self.fc1 = nn.Linear(8, 8)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.drop(self.fc1(self.encoder(x))))


class ConvNet(nn.Module):
    """Conv2d→ReLU→global pool→Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.act(self.conv(x)).mean(dim=(2, 3)))


class SeqNet(nn.Module):
    """LSTM (tuple output) followed by a per-token Linear on [B, T, D]."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.proj = nn.Linear(6, 5)
        self.head = nn.Linear(5, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.proj(self.lstm(x)[0])[:, -1])


@pytest.fixture
def x() -> Tensor:
    """A fixed probe of 10 samples with 5 features."""
    return torch.randn(10, 5, generator=torch.Generator().manual_seed(1))


# --- resolve_layers ---------------------------------------------------------------------------


def test_default_layers_exclude_output_layer() -> None:
    assert list(resolve_layers(mlp())) == ["0", "2"]


def test_default_layers_need_a_hidden_layer() -> None:
    with pytest.raises(ValueError, match="pass layers="):
        resolve_layers(nn.Sequential(nn.Linear(3, 2)))


def test_default_layers_skip_attention_out_proj() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.MultiheadAttention(4, 2), nn.Linear(4, 2))
    assert list(resolve_layers(model)) == ["0"]


def test_layers_by_name_type_and_mix() -> None:
    model = DropoutNet()
    assert list(resolve_layers(model, "fc1")) == ["fc1"]
    assert list(resolve_layers(model, ["head", "encoder.0"])) == ["encoder.0", "head"]
    assert list(resolve_layers(model, nn.Linear)) == ["encoder.0", "fc1", "head"]
    assert list(resolve_layers(model, (nn.Tanh, nn.Dropout))) == ["encoder.1", "drop"]
    mixed = resolve_layers(model, ["drop", nn.Dropout, "fc1", "fc1"])
    assert list(mixed) == ["fc1", "drop"]
    assert mixed["fc1"] is model.fc1
    nested = nn.Sequential(nn.Sequential(nn.Linear(2, 2)), nn.Linear(2, 2))
    assert list(resolve_layers(nested, nn.Sequential)) == ["0"]  # the root is never matched


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ValueError) as info:
        resolve_layers(DropoutNet(), "fc_1")
    message = str(info.value)
    assert "'fc_1'" in message
    assert "Did you mean 'fc1'?" in message
    assert "'encoder.0', 'fc1', 'head'" in message
    with pytest.raises(ValueError, match=r"'zzz'\. Available Linear/Conv layers: '0', '2', '4'"):
        resolve_layers(mlp(), "zzz")


def test_type_without_match_and_bad_entry() -> None:
    with pytest.raises(ValueError, match="Conv2d"):
        resolve_layers(mlp(), nn.Conv2d)
    with pytest.raises(TypeError):
        resolve_layers(mlp(), [3])  # type: ignore[list-item]


def test_resolve_layers_names_relative_to_unwrapped_model() -> None:
    assert list(resolve_layers(nn.DataParallel(mlp()), "2")) == ["2"]


# --- pre / post capture -----------------------------------------------------------------------


def test_pre_and_post_match_manual_computation(x: Tensor) -> None:
    model = mlp()
    layers = resolve_layers(model)
    pre = capture_activations(model, (x,), layers)
    post = capture_activations(model, (x,), layers, capture="post")
    fc1, fc2 = model[0], model[2]
    assert isinstance(fc1, nn.Linear) and isinstance(fc2, nn.Linear)
    h1 = (x @ fc1.weight.T + fc1.bias).detach()
    h2 = (torch.relu(h1) @ fc2.weight.T + fc2.bias).detach()
    torch.testing.assert_close(pre["0"], h1)
    torch.testing.assert_close(pre["2"], h2)
    torch.testing.assert_close(post["0"], torch.relu(h1))
    torch.testing.assert_close(post["2"], torch.relu(h2))
    assert (pre["0"] < 0).any()
    assert not pre["0"].requires_grad


def test_pre_capture_survives_inplace_activation(x: Tensor) -> None:
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(inplace=True), nn.Linear(7, 2))
    pre = capture_activations(model, (x,), {"0": model[0]})
    torch.testing.assert_close(pre["0"], model[0](x).detach())
    assert (pre["0"] < 0).any()


def test_post_with_functional_relu_needs_activation(x: Tensor) -> None:
    model = FunctionalReluNet()
    layers = resolve_layers(model, "fc1")
    with pytest.raises(ValueError, match=r"'fc1' is not followed by an activation.*'fc2', Linear"):
        capture_activations(model, (x,), layers, capture="post")
    post = capture_activations(model, (x,), layers, capture="post", activation=torch.relu)
    torch.testing.assert_close(post["fc1"], torch.relu(model.fc1(x)).detach())


def test_post_error_names_the_next_module(x: Tensor) -> None:
    model = DropoutNet()
    with pytest.raises(ValueError, match=r"next module: 'drop', Dropout\).*activation=torch.relu"):
        capture_activations(model, (x,), resolve_layers(model, "fc1"), capture="post")
    with pytest.raises(ValueError, match="not followed by any module"):
        capture_activations(model, (x,), resolve_layers(model, "head"), capture="post")


def test_post_follows_execution_order_of_nested_block(x: Tensor) -> None:
    model = DropoutNet()
    post = capture_activations(model, (x,), resolve_layers(model, "encoder.0"), capture="post")
    torch.testing.assert_close(post["encoder.0"], model.encoder(x).detach())


def test_shared_activation_module_is_captured_per_call(x: Tensor) -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.act = nn.Linear(5, 4), nn.Linear(4, 3), nn.ReLU()

        def forward(self, x: Tensor) -> Tensor:
            return self.act(self.b(self.act(self.a(x))))

    model = Shared()
    post = capture_activations(model, (x,), resolve_layers(model, ["a", "b"]), capture="post")
    h = torch.relu(model.a(x))
    torch.testing.assert_close(post["a"], h.detach())
    torch.testing.assert_close(post["b"], torch.relu(model.b(h)).detach())


def test_invalid_options_and_layer_call_counts(x: Tensor) -> None:
    model = mlp()
    layers = resolve_layers(model)
    with pytest.raises(ValueError, match="only used with capture='post'"):
        capture_activations(model, (x,), layers, activation=torch.relu)
    with pytest.raises(ValueError, match="capture must be"):
        CaptureSpec(capture="mid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="different sample counts"):
        capture_activations(model, (x, x[:3]), layers)
    net = FunctionalReluNet()
    net.unused = nn.Linear(5, 5)
    with pytest.raises(ValueError, match="did not run"):
        capture_activations(net, (x,), resolve_layers(net, "unused"))
    twice = nn.Sequential(model[0], nn.ReLU(), nn.Linear(7, 5), model[0])
    with pytest.raises(ValueError, match="ran 2 times"):
        capture_activations(twice, (x,), {"0": model[0]})


# --- reductions -------------------------------------------------------------------------------


def test_conv_reduced_to_spatial_mean() -> None:
    torch.manual_seed(0)
    model = ConvNet()
    images = torch.randn(6, 2, 5, 5)
    layers = resolve_layers(model)
    assert list(layers) == ["conv"]
    pre = capture_activations(model, (images,), layers)
    post = capture_activations(model, (images,), layers, capture="post")
    out = model.conv(images).detach()
    assert pre["conv"].shape == (6, 4)
    torch.testing.assert_close(pre["conv"], out.mean(dim=(2, 3)))
    torch.testing.assert_close(post["conv"], torch.relu(out).mean(dim=(2, 3)))


def test_sequence_token_selection_and_lstm_tuple_output() -> None:
    torch.manual_seed(0)
    model = SeqNet()
    seq = torch.randn(4, 3, 4)
    layers = resolve_layers(model, ["lstm", "proj"])
    full = model.proj(model.lstm(seq)[0]).detach()
    last = capture_activations(model, (seq,), layers)
    first = capture_activations(model, (seq,), layers, token=0)
    mean = capture_activations(model, (seq,), layers, token="mean")
    torch.testing.assert_close(last["proj"], full[:, -1])
    torch.testing.assert_close(first["proj"], full[:, 0])
    torch.testing.assert_close(mean["proj"], full.mean(dim=1))
    torch.testing.assert_close(last["lstm"], model.lstm(seq)[0][:, -1].detach())
    assert last["lstm"].shape == (4, 6)


def test_inputs_moved_to_model_device(x: Tensor) -> None:
    model = mlp().to("meta")
    out = capture_activations(model, (x,), resolve_layers(model), batch_size=4)
    assert out["0"].device.type == "meta" and out["0"].shape == (10, 7)
    assert out["2"].dtype == torch.float32


def test_non_batch_first_and_high_rank_outputs_rejected() -> None:
    flatten = nn.Sequential(nn.Flatten(0), nn.Linear(12, 2))
    with pytest.raises(
        ValueError, match=r"shape \(12,\): the default puts its samples along dim 0"
    ):
        capture_activations(flatten, (torch.randn(3, 4),), {"0": flatten[0]})
    flat = nn.Sequential(nn.Identity(), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="supported"):
        capture_activations(flat, (torch.randn(3, 2, 2, 2),), {"1": flat[1]})


def test_batch_size_chunks_match_single_pass() -> None:
    torch.manual_seed(0)
    model = ConvNet()
    images = torch.randn(11, 2, 5, 5)
    for capture, names in (("pre", ["conv", "head"]), ("post", ["conv"])):
        layers = resolve_layers(model, names)
        whole = capture_activations(model, (images,), layers, capture=capture)  # type: ignore[arg-type]
        chunked = capture_activations(model, (images,), layers, capture=capture, batch_size=4)  # type: ignore[arg-type]
        assert list(chunked) == names
        for name in names:
            torch.testing.assert_close(chunked[name], whole[name], rtol=0, atol=1e-6)
            assert chunked[name].shape[0] == 11


# --- non-disturbance --------------------------------------------------------------------------


def hook_state(model: nn.Module) -> dict[str, list[int]]:
    """The ids of every forward hook of every submodule, to compare before/after."""
    return {name: list(m._forward_hooks) for name, m in model.named_modules()}


def test_probe_restores_flags_grad_rng_and_hooks(x: Tensor) -> None:
    model = DropoutNet()
    model.train()
    model.encoder.eval()
    user_calls: list[int] = []
    model.fc1.register_forward_hook(lambda *args: user_calls.append(1))
    flags = {name: m.training for name, m in model.named_modules()}
    hooks = hook_state(model)
    rng = torch.get_rng_state()
    py_rng = random.getstate()
    layers = resolve_layers(model, ["encoder.0", "fc1", "head"])
    pre = capture_activations(model, (x,), layers, batch_size=3)
    assert torch.is_grad_enabled()
    assert torch.equal(torch.get_rng_state(), rng)
    assert random.getstate() == py_rng
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert hook_state(model) == hooks
    assert len(user_calls) == 4
    # Dropout ran in eval mode (identity), although the model is in train mode.
    expected = model.head(model.fc1(model.encoder(x))).detach()
    torch.testing.assert_close(pre["head"], expected)


def test_probe_runs_in_eval_without_consuming_rng(x: Tensor) -> None:
    model = DropoutNet().train()
    with probe_context(model):
        assert not model.training and not model.drop.training
        assert not torch.is_grad_enabled()
        before = torch.get_rng_state()
        model(x)
        assert torch.equal(torch.get_rng_state(), before)
    assert model.training and model.drop.training


def test_state_restored_when_forward_raises(x: Tensor) -> None:
    class Boom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(5, 5)
            self.act = nn.ReLU()

        def forward(self, x: Tensor) -> Tensor:
            self.act(self.fc(x))
            torch.rand(3)
            random.random()
            raise RuntimeError("boom")

    model = Boom()
    model.act.eval()
    hooks = hook_state(model)
    rng = torch.get_rng_state()
    py_rng = random.getstate()
    with torch.enable_grad(), pytest.raises(RuntimeError, match="boom"):
        capture_activations(model, (x,), resolve_layers(model, "fc"), capture="post")
    assert torch.is_grad_enabled()
    assert hook_state(model) == hooks
    assert model.training and model.fc.training and not model.act.training
    assert torch.equal(torch.get_rng_state(), rng)
    assert random.getstate() == py_rng


def test_probe_context_restores_grad_disabled_mode() -> None:
    model = mlp()
    with torch.no_grad():
        with probe_context(model):
            pass
        assert not torch.is_grad_enabled()


# --- unwrapping -------------------------------------------------------------------------------


def test_unwrap_data_parallel_and_nested_wrappers(x: Tensor) -> None:
    model = mlp()
    wrapped = nn.DataParallel(nn.DataParallel(model))
    assert unwrap_model(wrapped) is model
    assert unwrap_model(model) is model
    pre = capture_activations(wrapped, (x,), resolve_layers(wrapped))
    torch.testing.assert_close(pre["0"], model[0](x).detach())


def test_unwrap_compiled_model_hooks_work_after_compiled_call(x: Tensor) -> None:
    model = mlp()
    compiled = cast(nn.Module, torch.compile(model, backend="eager"))
    compiled(x)  # compiled calls ignore hooks added afterwards; the unwrapped model does not
    assert unwrap_model(compiled) is model
    assert unwrap_model(nn.DataParallel(compiled)) is model
    post = capture_activations(compiled, (x,), resolve_layers(compiled), capture="post")
    torch.testing.assert_close(post["0"], torch.relu(model[0](x)).detach())


@pytest.fixture
def gloo_group() -> Iterator[None]:
    """A one-process gloo process group, destroyed afterwards."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is not available")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"tcp://127.0.0.1:{port}")
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.usefixtures("gloo_group")
def test_unwrap_distributed_data_parallel(x: Tensor) -> None:
    model = mlp()
    ddp = nn.parallel.DistributedDataParallel(model)
    assert unwrap_model(ddp) is model
    pre = capture_activations(ddp, (x,), resolve_layers(ddp))
    torch.testing.assert_close(pre["2"], model[2](torch.relu(model[0](x))).detach())


# --- materialize_probe ------------------------------------------------------------------------


def test_materialize_tensor_and_tuple(x: Tensor) -> None:
    inputs, target = materialize_probe(x)
    assert len(inputs) == 1 and inputs[0] is not None and torch.equal(inputs[0], x)
    assert target is None
    labels = torch.arange(10)
    inputs, target = materialize_probe((x, labels))
    assert len(inputs) == 2 and target is None  # direct tuples are forward arguments
    inputs, target = materialize_probe([x, x], target=labels, max_samples=4)
    assert [t.shape[0] for t in inputs] == [4, 4]
    assert target is not None and torch.equal(target, labels[:4])


def test_materialize_dataloader_pairs_keeps_rng() -> None:
    data = torch.arange(40.0).reshape(20, 2)
    labels = torch.arange(20)
    loader = DataLoader(TensorDataset(data, labels), batch_size=6, shuffle=True)
    rng = torch.get_rng_state()
    inputs, target = materialize_probe(loader)
    assert torch.equal(torch.get_rng_state(), rng)
    assert len(inputs) == 1 and target is not None
    assert sorted(target.tolist()) == list(range(20))
    torch.testing.assert_close(inputs[0], data[target])  # pairs stay aligned after shuffling
    assert not torch.equal(target, labels)
    first, first_target = materialize_probe(loader, max_samples=7)
    assert first[0].shape == (7, 2) and first_target is not None and first_target.shape == (7,)
    explicit = torch.zeros(20)
    assert torch.equal(materialize_probe(loader, target=explicit)[1], explicit)  # type: ignore[arg-type]


def test_materialize_iterable_batches_without_target() -> None:
    batches = [(torch.ones(3, 2), torch.ones(3, 4)), (torch.zeros(2, 2), torch.zeros(2, 4))]
    inputs, target = materialize_probe(iter(batches))
    assert [tuple(t.shape) for t in inputs] == [(5, 2), (5, 4)] and target is None
    inputs, target = materialize_probe([torch.ones(3, 2)] * 2)
    assert len(inputs) == 2 and target is None


def test_materialize_stops_reading_at_max_samples() -> None:
    consumed: list[int] = []

    def batches() -> Iterator[Tensor]:
        for i in range(10):
            consumed.append(i)
            yield torch.full((3, 2), float(i))

    inputs, _ = materialize_probe(batches(), max_samples=5)
    assert len(consumed) == 2
    torch.testing.assert_close(inputs[0][:, 0], torch.tensor([0.0, 0, 0, 1, 1]))


@pytest.mark.parametrize(
    ("probe", "kwargs", "message"),
    [
        ([], {}, "non-empty"),
        (iter([]), {}, "empty"),
        (torch.empty(0, 3), {}, "no samples"),
        ((torch.ones(3, 2), torch.ones(4, 2)), {}, "different sample counts"),
        (torch.ones(3, 2), {"target": torch.ones(4)}, "target has 4 entries"),
        (torch.ones(3, 2), {"max_samples": 0}, "max_samples"),
        ([{"x": torch.ones(3, 2)}], {}, "dict batches"),
        ([(torch.ones(3, 2), torch.ones(3)), (torch.ones(3, 2),)], {}, "target"),
    ],
)
def test_materialize_errors(probe: object, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        materialize_probe(probe, **kwargs)  # type: ignore[arg-type]
