"""Tests for retraining sub-networks: selections, masks/holds, the retrain comparison and its result."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.optim.optimizer import _global_optimizer_post_hooks

from oinfo_monitor.experiments.grokking_setup import GrokkingConfig, build_model, train_grokking
from oinfo_monitor.retrain import (
    BeforeStep,
    RetrainResult,
    accuracy_evaluator,
    best_record,
    change_figure,
    check_selection,
    complement,
    curves_figure,
    epoch_trainer,
    hold_entries,
    masked,
    neuron_masks,
    random_selections,
    retrain,
    rewind_layerwise,
    rewound,
    select_from_history,
    select_from_result,
    strategy_selections,
    top_mi,
)
from oinfo_monitor.search import Multiplet, SearchResult


def mlp(seed: int = 0) -> nn.Sequential:
    """Linear(5→8) → ReLU → Linear(8→6) → ReLU → Linear(6→3): layers '0', '2', '4'."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))


def blobs(n: int = 240, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A 3-class problem in 5 dims that the MLP learns in a few dozen steps."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=generator)
    x = torch.randn(n, 5, generator=generator) + 2.0 * nn.functional.one_hot(y, 5).float()
    return x, y


def adamw_steps(
    model: nn.Module,
    before_step: BeforeStep,
    steps: int = 25,
    check: Any = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Train with AdamW (weight decay 1.0, momentum), calling `check(model)` after every update."""
    x, y = blobs()
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=1.0)
    for step in range(steps):
        with torch.no_grad():
            before_step(model, step)
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if check is not None:
            check(model)


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    """A detached copy of the model's state dict."""
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def no_hooks_left(model: nn.Module) -> bool:
    """No forward hooks on any module and no gradient hooks on any parameter."""
    modules = all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    grads = all(not p._backward_hooks for p in model.parameters())
    return modules and grads


# --------------------------------------------------------------------------- masks and holds


def test_masked_rows_stay_exactly_zero_through_adamw_with_weight_decay() -> None:
    model = mlp()
    keep = [1, 4, 6]
    off = complement(keep, 8)
    start = snapshot(model)

    def check(m: nn.Module) -> None:
        weight, bias = m[0].weight, m[0].bias
        assert torch.equal(weight[list(off)], torch.zeros(len(off), 5))
        assert not torch.signbit(weight[list(off)]).any()  # +0.0, not -0.0
        assert torch.equal(bias[list(off)], torch.zeros(len(off)))

    with masked(model, {"0": keep}) as before_step:
        check(model)
        adamw_steps(model, before_step, check=check)
    check(model)
    assert not torch.equal(model[0].weight[keep], start["0.weight"][keep])  # kept neurons trained


def test_masking_mid_training_survives_momentum_already_in_the_optimizer() -> None:
    model = mlp()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=1.0)
    adamw_steps(model, lambda m, s: None, steps=5, optimizer=optimizer)  # Adam moments ≠ 0
    off = list(complement([0], 8))

    def check(m: nn.Module) -> None:
        assert torch.equal(m[0].weight[off], torch.zeros(len(off), 5))

    with masked(model, {"0": [0]}) as before_step:
        adamw_steps(model, before_step, steps=5, check=check, optimizer=optimizer)
    adamw_steps(model, lambda m, s: None, steps=1, optimizer=optimizer)
    assert not torch.equal(model[0].weight[off], torch.zeros(len(off), 5))  # released after


def test_mask_bias_false_leaves_biases_trainable_like_the_paper() -> None:
    model = mlp()
    off = list(complement([0, 1], 8))
    start = snapshot(model)
    with masked(model, {"0": [0, 1]}, bias=False) as before_step:
        adamw_steps(model, before_step)
    assert torch.equal(model[0].weight[off], torch.zeros(len(off), 5))
    assert not torch.equal(model[0].bias[off], start["0.bias"][off])


def test_mask_outgoing_zeroes_the_next_layers_columns() -> None:
    model = mlp()
    off = list(complement([2, 3], 8))
    with masked(model, {"0": [2, 3]}, outgoing=True) as before_step:
        adamw_steps(model, before_step)
    assert torch.equal(model[2].weight[:, off], torch.zeros(6, len(off)))
    assert bool((model[2].weight[:, [2, 3]] != 0).all())


def test_rewound_freezes_everything_else_bit_identically() -> None:
    initial, model = mlp(seed=1), mlp(seed=2)
    trained, init_state = snapshot(model), snapshot(initial)
    chosen = [0, 5]
    others = list(complement(chosen, 6))

    def check(m: nn.Module) -> None:
        state = m.state_dict()
        for name in ("0.weight", "0.bias", "4.weight", "4.bias"):
            assert torch.equal(state[name], trained[name])
        assert torch.equal(state["2.weight"][others], trained["2.weight"][others])
        assert torch.equal(state["2.bias"][others], trained["2.bias"][others])

    with rewound(model, {"2": chosen}, init_state) as before_step:
        assert torch.equal(model[2].weight[chosen], init_state["2.weight"][chosen])
        adamw_steps(model, before_step, check=check)
    check(model)
    assert not torch.equal(model[2].weight[chosen], init_state["2.weight"][chosen])


def test_rewound_outgoing_resets_and_trains_the_next_columns_only() -> None:
    initial, model = mlp(seed=1), mlp(seed=2)
    trained, init_state = snapshot(model), snapshot(initial)
    with rewound(model, {"2": [1]}, init_state, outgoing=True) as before_step:
        assert torch.equal(model[4].weight[:, 1], init_state["4.weight"][:, 1])
        adamw_steps(model, before_step)
    assert torch.equal(model[4].weight[:, [0, 2, 3, 4, 5]], trained["4.weight"][:, [0, 2, 3, 4, 5]])
    assert not torch.equal(model[4].weight[:, 1], init_state["4.weight"][:, 1])


def test_conv_channel_masking() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    x, y = torch.randn(16, 2, 7, 7), torch.randint(0, 3, (16,))
    masks = neuron_masks(model, {"0": [1, 3]}, outgoing=True)
    assert masks["0.weight"][[1, 3]].all() and not masks["0.weight"][[0, 2]].any()
    assert masks["2.weight"][:, [1, 3]].all() and not masks["2.weight"][:, [0, 2]].any()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=1.0)
    with masked(model, {"0": [1, 3]}, outgoing=True) as before_step:
        for step in range(5):
            before_step(model, step)
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    assert torch.equal(model[0].weight[[0, 2]], torch.zeros(2, 2, 3, 3))
    assert torch.equal(model[0].bias[[0, 2]], torch.zeros(2))
    assert torch.equal(model[2].weight[:, [0, 2]], torch.zeros(3, 2, 3, 3))
    assert bool((model[0].weight[[1, 3]] != 0).all())


def test_hooks_are_removed_afterwards_also_after_an_error() -> None:
    model = mlp()
    post_hooks = len(_global_optimizer_post_hooks)
    with masked(model, {"0": [0]}) as before_step:
        adamw_steps(model, before_step, steps=2)
        assert not no_hooks_left(model)
        assert len(_global_optimizer_post_hooks) == post_hooks + 1
    assert no_hooks_left(model) and len(_global_optimizer_post_hooks) == post_hooks
    with pytest.raises(RuntimeError, match="boom"), rewound(model, {"2": [1]}, snapshot(mlp(1))):
        raise RuntimeError("boom")
    assert no_hooks_left(model) and len(_global_optimizer_post_hooks) == post_hooks


def test_hold_entries_restores_for_a_hand_written_update_loop() -> None:
    model = mlp()
    mask = torch.zeros(8, 5, dtype=torch.bool)
    mask[3] = True
    before = model[0].weight[3].clone()
    with hold_entries(model, {"0.weight": mask}) as before_step, torch.no_grad():
        model[0].weight.add_(1.0)  # not an optimizer step: restored by before_step
        before_step(model, 0)
        assert torch.equal(model[0].weight[3], before)
    with pytest.raises(ValueError, match="unknown parameters"), hold_entries(model, {"x": mask}):
        pass


# --------------------------------------------------------------------------- selections


def test_complement_and_selection_cover_the_layer_exactly_and_are_disjoint() -> None:
    chosen = (0, 3, 7, 9)
    rest = complement([9, 0, 7, 3], 12)
    assert set(rest).isdisjoint(chosen)
    assert sorted(rest + chosen) == list(range(12))
    selections = strategy_selections(12, chosen, random_draws=2)
    assert set(selections["complement"]) | set(selections["synergy"]) == set(range(12))


def test_random_draws_have_the_requested_size_and_follow_the_seed() -> None:
    draws = random_selections(50, 7, 4, seed=3)
    assert len(draws) == 4
    assert all(len(d) == len(set(d)) == 7 and all(0 <= n < 50 for n in d) for d in draws)
    assert draws == random_selections(50, 7, 4, seed=3)
    assert draws != random_selections(50, 7, 4, seed=4)
    assert len(set(draws)) > 1


def test_mi_baselines_pick_the_informative_neurons() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (2000,), generator=generator)
    activations = torch.randn(2000, 8, generator=generator)
    activations[:, 2] += 2.0 * labels
    activations[:, 5] -= 1.5 * labels
    activations[:, 6] = 1.0  # dead
    for method in ("mi_mixture", "mi_model"):
        assert top_mi(activations, labels, 2, method=method) == (2, 5)
    assert 6 not in top_mi(activations, labels, 7)
    selections = strategy_selections(8, [0, 1], activations=activations, labels=labels)
    assert selections["mi_mixture"] == selections["mi_model"] == (2, 5)


def search_result() -> SearchResult:
    """A small search result of a 10-neuron layer with sizes 3 and 4."""

    def pick(value: float, members: tuple[int, ...]) -> Multiplet:
        return Multiplet(value, members, "exhaustive", True)

    return SearchResult(
        synergy={3: pick(-0.5, (1, 4, 7)), 4: pick(-0.2, (0, 1, 2, 3))},
        redundancy={3: pick(2.0, (5, 6, 8)), 4: pick(3.0, (2, 5, 6, 8))},
        strategy="exhaustive",
        reason="test",
        n_variables=10,
        n_samples=100,
        target="none",
        ties="random",
        bias_correct=True,
    )


def test_selection_from_a_search_result() -> None:
    result = search_result()
    assert select_from_result(result) == (1, 4, 7)
    assert select_from_result(result, size=4) == (0, 1, 2, 3)
    assert select_from_result(result, kind="redundancy") == (2, 5, 6, 8)
    with pytest.raises(ValueError, match="searched sizes: \\[3, 4\\]"):
        select_from_result(result, size=5)


def history() -> list[dict[str, Any]]:
    """History records of two steps of layer 'hidden' and one of layer 'other'."""

    def record(step: int, layer: str, size: int, syn: float, red: float) -> dict[str, Any]:
        members = list(range(step % 5, step % 5 + size))
        return {
            "step": step,
            "layer": layer,
            "size": size,
            "synergy": syn,
            "synergy_members": members,
            "redundancy": red,
            "redundancy_members": members[::-1],
        }

    return [
        record(10, "hidden", 3, -0.4, 1.0),
        record(10, "hidden", 4, -0.9, 2.0),
        record(21, "hidden", 3, -1.5, 0.5),
        record(21, "hidden", 5, -1.0, 4.0),
        record(10, "other", 3, -9.0, 9.0),
    ]


def test_selection_from_history_records_and_files(tmp_path: Path) -> None:
    records = history()
    assert select_from_history(records, "hidden") == (1, 2, 3)  # step 21, size 3: min over run
    assert select_from_history(records, "hidden", step=10) == (0, 1, 2, 3)
    assert select_from_history(records, "hidden", step=10, size=3) == (0, 1, 2)
    assert select_from_history(records, "hidden", kind="redundancy") == (1, 2, 3, 4, 5)
    assert best_record(records, "hidden")["step"] == 21
    path = tmp_path / "oinfo_history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert select_from_history(path, "hidden", step=10) == (0, 1, 2, 3)


def test_explicit_selection_is_validated_and_sorted() -> None:
    assert check_selection(mlp(), {"2": [5, 0, 3]}) == {"2": (0, 3, 5)}


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"9": [0]}, "unknown layer name '9'"),
        ({"1": [0]}, "is a ReLU"),
        ({"0": [8]}, "neuron index 8 is out of range for layer '0', which has 8 neurons"),
        ({"0": [-1]}, "out of range"),
        ({"0": []}, "empty selection for layer '0'"),
        ({}, "empty selection"),
        ({"0": [1, 1]}, "repeats a neuron index"),
        ({"0": [1.5]}, "must be integers"),
    ],
)
def test_bad_selections_raise_clear_errors(selection: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_selection(mlp(), selection)


def test_bad_history_queries_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="available layers: 'hidden', 'other'"):
        best_record(history(), "missing")
    with pytest.raises(ValueError, match="available steps of layer 'hidden': 10, 21"):
        best_record(history(), "hidden", step=11)
    with pytest.raises(ValueError, match="available sizes: 3, 4"):
        best_record(history(), "hidden", step=10, size=7)
    with pytest.raises(ValueError, match="kind must be"):
        best_record(history(), "hidden", kind="both")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- retrain


@pytest.fixture()
def setup() -> Iterator[dict[str, Any]]:
    """A classifier, its initial and trained states and the train/evaluate functions."""
    train, test = blobs(240, seed=0), blobs(120, seed=1)
    model = mlp()
    initial = snapshot(model)
    train_fn = epoch_trainer(train, test, epochs=2, batch_size=32, lr=0.02, weight_decay=1.0)
    train_fn(model, lambda m, s: None)
    yield {
        "model": model,
        "initial": initial,
        "trained": snapshot(model),
        "train_fn": train_fn,
        "evaluate": accuracy_evaluator({"train": train, "test": test}),
    }


def test_retrain_mask_compares_strategies_with_the_original_run(setup: dict[str, Any]) -> None:
    selections = {k: {"0": v} for k, v in strategy_selections(8, [1, 2, 5], random_draws=2).items()}
    state = torch.random.get_rng_state()
    result = retrain(mlp, setup["train_fn"], selections, initial_state=setup["initial"], seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    assert set(result.runs) == {"synergy", "complement", "random:0", "random:1"}
    assert result.reference.neurons == {} and result.reference.steps == [0, 8, 16]
    run = result.runs["synergy"]
    assert run.neurons == {"0": [1, 2, 5]} and len(run.test_acc) == 3
    assert run.change["test"] == pytest.approx(run.final["test"] - result.reference.final["test"])
    assert [row["strategy"] for row in result.summary()] == ["synergy", "complement", "random"]
    assert result.summary()[2]["runs"] == 2
    assert "random" in result.format_table()


def test_same_seed_gives_the_same_result(setup: dict[str, Any]) -> None:
    weights: list[Tensor] = []

    def train_fn(model: nn.Module, before_step: BeforeStep) -> Any:
        log = setup["train_fn"](model, before_step)
        weights.append(model[2].weight.detach().clone())
        return log

    def run(seed: int) -> dict[str, Any]:
        return retrain(
            setup["model"],
            train_fn,
            {"a": {"2": [0, 4]}},
            initial_state=setup["initial"],
            procedure="rewind",
            trained_state=setup["trained"],
            evaluate=setup["evaluate"],
            seed=seed,
        ).to_dict()

    first = run(0)
    assert run(0) == first
    assert torch.equal(weights[0], weights[1])
    run(1)
    assert not torch.equal(weights[0], weights[2])  # the seed drives the shuffling


def test_rewind_layerwise_reports_the_change_against_the_trained_network(
    setup: dict[str, Any],
) -> None:
    model = setup["model"]
    result = rewind_layerwise(
        model,
        setup["initial"],
        setup["train_fn"],
        setup["evaluate"],
        {"0": {"synergy": [0, 1], "random:0": [3, 4]}, "2": {"synergy": [2, 3]}},
    )
    assert torch.equal(model[0].weight, setup["trained"]["0.weight"])  # the model is unchanged
    assert no_hooks_left(model)
    assert list(result.runs) == ["0/synergy", "0/random:0", "2/synergy"]
    assert result.reference.final == setup["evaluate"](model)
    assert set(result.runs["2/synergy"].change) == {"train", "test"}
    change_figure(result)


def test_result_to_dict_is_json_safe_and_round_trips(setup: dict[str, Any]) -> None:
    result = retrain(
        mlp,
        setup["train_fn"],
        {"synergy": {"0": [0, 1]}, "random:0": {"0": [2, 3]}},
        initial_state=setup["initial"],
        grok_threshold=0.5,
    )
    text = json.dumps(result.to_dict(), allow_nan=False)
    assert RetrainResult.from_dict(json.loads(text)) == result
    curves_figure(result)


def test_retrain_with_train_grokking() -> None:
    config = GrokkingConfig(p=7, hidden=12, steps=6, train_fraction=0.5)
    initial = snapshot(build_model(config))

    def train_fn(model: nn.Module, before_step: BeforeStep) -> Any:
        return train_grokking(config, model=model, before_step=before_step)

    result = retrain(
        lambda: build_model(config), train_fn, {"half": {"hidden": range(6)}}, initial_state=initial
    )
    assert result.runs["half"].steps == list(range(7))
    assert result.runs["half"].steps_to_grok is None or result.runs["half"].steps_to_grok >= 0


def test_bad_retrain_arguments_raise_clear_errors(setup: dict[str, Any]) -> None:
    common = {"initial_state": setup["initial"]}
    with pytest.raises(ValueError, match="procedure must be"):
        retrain(mlp, setup["train_fn"], {"a": {"0": [0]}}, procedure="prune", **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="selections is empty"):
        retrain(mlp, setup["train_fn"], {}, **common)
    with pytest.raises(ValueError, match="needs trained_state"):
        retrain(
            mlp,
            setup["train_fn"],
            {"a": {"0": [0]}},
            procedure="rewind",
            evaluate=setup["evaluate"],
            **common,
        )
    with pytest.raises(ValueError, match="and evaluate="):
        retrain(
            mlp,
            setup["train_fn"],
            {"a": {"0": [0]}},
            procedure="rewind",
            trained_state=setup["trained"],
            **common,
        )
    with pytest.raises(ValueError, match="unknown layer name"):
        retrain(mlp, setup["train_fn"], {"a": {"fc": [0]}}, **common)
