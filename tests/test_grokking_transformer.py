"""Tests for the grokking transformer (model, data, answer-token readout) and its experiment in a smoke run."""

import json
import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional

from oinfo_monitor.experiments import grokking_transformer as demo
from oinfo_monitor.experiments.grokking_transformer_setup import (
    GrokkingTransformer,
    TransformerConfig,
    build_transformer,
    transformer_data,
)
from oinfo_monitor.monitor.capture import capture_activations
from oinfo_monitor.monitor.records import TRUST_FIELDS, read_records

TINY = TransformerConfig(p=13, d_model=16, heads=4, d_mlp=24, steps=20)


def test_split_is_nandas_and_the_inputs_are_a_b_equals() -> None:
    data = transformer_data(TransformerConfig())
    assert (len(data.y_train), len(data.y_test)) == (3830, 8939)  # floor(0.3 * 113²) for training
    tokens = torch.cat([data.x_train, data.x_test])
    assert tokens.dtype == torch.int64 and tokens.shape == (113 * 113, 3)
    assert bool((tokens[:, 2] == 113).all()) and int(tokens[:, :2].max()) == 112
    pairs = {tuple(row) for row in tokens[:, :2].tolist()}
    assert len(pairs) == 113 * 113  # every pair once, train and test disjoint
    labels = torch.cat([data.y_train, data.y_test])
    assert torch.equal(labels, (tokens[:, 0] + tokens[:, 1]) % 113)


def full_transformer_logits(model: GrokkingTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """Nanda et al.'s forward written out for all three positions (causal mask), read at ``=``."""
    x = model.embed(tokens) + model.pos
    mask = torch.triu(torch.ones(3, 3, dtype=torch.bool), diagonal=1)  # True: not attended
    x = x + model.attn(x, x, x, attn_mask=mask, need_weights=False)[0]
    x = x + model.mlp_out(torch.relu(model.mlp_in(x)))
    return model.unembed(x)[:, 2]


def test_the_loss_reads_the_full_models_answer_position() -> None:
    model = build_transformer(TINY)
    data = transformer_data(TINY)
    with torch.no_grad():  # the biases start at zero; move them so that they count too
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_()
    assert model(data.x_train).shape == (len(data.y_train), TINY.p)
    torch.testing.assert_close(model(data.x_train), full_transformer_logits(model, data.x_train))
    losses = []
    for forward in (model, lambda t: full_transformer_logits(model, t)):
        model.zero_grad()
        functional.cross_entropy(forward(data.x_train), data.y_train).backward()
        losses.append(
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        )
    assert losses[0].keys() == losses[1].keys()
    for name in losses[0]:
        torch.testing.assert_close(losses[0][name], losses[1][name], msg=name)
    first = model(data.x_train[:1]).clone()  # the readout depends on a and b ...
    swapped = data.x_train[:1].clone()
    swapped[0, 0] = (swapped[0, 0] + 1) % TINY.p
    assert not torch.equal(first, model(swapped))


def test_monitored_layers_are_the_relu_neurons_and_attention_at_the_answer() -> None:
    model = build_transformer(TINY)
    tokens = transformer_data(TINY).x_train
    layers = {name: dict(model.named_modules())[name] for name in demo.LAYERS}
    captured = capture_activations(model, tokens, layers, capture="pre")
    with torch.no_grad():
        x = model.embed(tokens) + model.pos
        attention = model.attn(x[:, 2:], x, x, need_weights=False)[0][:, 0]
        hidden = torch.relu(model.mlp_in(x[:, 2] + attention))
    torch.testing.assert_close(captured["attn"], attention)
    torch.testing.assert_close(captured["act"], hidden)
    assert bool((captured["act"] >= 0).all()) and captured["act"].shape == (len(tokens), 24)


def test_config_rejects_a_width_the_heads_do_not_divide() -> None:
    with pytest.raises(ValueError, match="divisible by heads"):
        TransformerConfig(d_model=30, heads=4)
    with pytest.raises(ValueError, match="lr"):
        TransformerConfig(lr=0.0)


def test_smoke_run_writes_trusted_history_data_figure_and_resumes(tmp_path: Path) -> None:
    flags = "--p 31 --d-model 16 --d-mlp 32 --steps 40 --log-points 5 --every 0 --bins 4"
    argv = [*flags.split(), "--seeds", "0", "1", "--runs-dir", str(tmp_path), "--name", "smoke"]
    data = demo.main([*argv, "--quiet"])
    folder = tmp_path / "smoke"
    saved = json.loads((folder / "runs.json").read_text())
    assert [run["seed"] for run in saved["runs"]] == [0, 1] and (folder / "figure.png").is_file()
    assert saved["command"][-1] == "--quiet" and "| seed |" in (folder / "table.md").read_text()
    for run in saved["runs"]:
        records = list(read_records(folder / f"seed{run['seed']}" / "oinfo_history.jsonl"))
        steps = sorted({r["step"] for r in records})
        assert {r["layer"] for r in records} == set(demo.LAYERS)
        assert len(steps) == run["evaluations"]
        assert all(set(TRUST_FIELDS) <= set(r) for r in records)
        assert all(r["headline_synergy_sd"] is not None for r in records)
        assert all(r["headline_synergy_chance"] is not None for r in records)
        assert set(run["layers"]) == set(demo.LAYERS) and run["config"]["steps"] == 40
        for layer, events in run["layers"].items():
            assert events["peak_significant"] in (True, False, None)
            if None not in (run["grokked_step"], events["peak_confirmed_step"]):
                assert events["lead"] == run["grokked_step"] - events["peak_confirmed_step"]
            else:
                assert events["lead"] is None
            curve = run["curves"]["oinfo"][layer]
            assert curve["steps"] == steps and all(math.isfinite(v) for v in curve["synergy_sd"])
        training = run["curves"]["training"]
        assert training["steps"][-1] == 40 and len(training["test_acc"]) == len(training["steps"])
    assert data["runs"] == saved["runs"]
    (folder / "figure.png").unlink()
    again = demo.main([*argv, "--quiet"])  # both seeds are read back, not retrained
    assert again["runs"] == saved["runs"] and (folder / "figure.png").is_file()
    with pytest.raises(SystemExit, match="another configuration"):
        demo.main([*argv, "--lr", "0.02", "--quiet"])
