"""Tests for the grokking training loop, its helpers and the grokking experiment (the demo)."""

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from oinfo_monitor.experiments import grokking as demo
from oinfo_monitor.experiments.grokking_setup import (
    GrokkingConfig,
    GrokkingLog,
    GrokkingMLP,
    StepMetrics,
    build_model,
    evaluation_steps,
    grokking_data,
    grokking_step,
    memorisation_step,
    train_grokking,
    weight_norm,
)

SMALL = GrokkingConfig(p=23, hidden=64, steps=100)  # memorises by about step 30


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small tensors: one thread is faster, and on a busy CPU several threads are much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_defaults_are_the_papers_setting() -> None:
    config = GrokkingConfig()
    assert (config.p, config.op, config.train_fraction, config.hidden) == (97, "+", 0.4, 250)
    assert (config.lr, config.betas, config.weight_decay, config.steps) == (
        0.03,
        (0.9, 0.98),
        2.0,
        4000,
    )
    assert (config.alpha, config.zero_last_layer, config.constant_norm) == (1.0, False, False)
    alpha = GrokkingConfig.alpha_experiment()
    assert (alpha.alpha, alpha.weight_decay, alpha.zero_last_layer, alpha.constant_norm) == (
        8.0,
        0.0,
        True,
        True,
    )
    assert len(grokking_data(config).y_train) == 3763  # floor(0.4 * 97²), as in the paper


def test_config_round_trips_through_json_and_rejects_bad_values() -> None:
    config = GrokkingConfig.alpha_experiment(4.0, seed=3)
    assert GrokkingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown GrokkingConfig field"):
        GrokkingConfig.from_dict({"lr": 0.1, "learning_rate": 0.1})
    with pytest.raises(ValueError, match="alpha"):
        GrokkingConfig(alpha=0.0)


def test_model_shapes_and_no_output_bias() -> None:
    model = build_model(GrokkingConfig())
    assert isinstance(model, GrokkingMLP)
    assert model.hidden.weight.shape == (250, 194) and model.hidden.bias is not None
    assert model.out.weight.shape == (97, 250) and model.out.bias is None
    assert isinstance(model.act, torch.nn.ReLU)
    assert model(torch.zeros(5, 194)).shape == (5, 97)


def test_build_model_is_seeded_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = build_model(SMALL)
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(first.hidden.weight, build_model(SMALL).hidden.weight)
    assert not torch.equal(
        first.hidden.weight, build_model(GrokkingConfig(p=23, hidden=64, seed=1)).hidden.weight
    )


def test_short_run_memorises_and_logs_every_step() -> None:
    log = train_grokking(SMALL)
    assert log.steps == list(range(SMALL.steps + 1))
    assert log.train_acc[-1] >= 0.99
    step = memorisation_step(log)
    assert step is not None and log.train_acc[step] >= 0.99


def test_callbacks_see_every_step_and_a_mask_keeps_a_row_zero() -> None:
    config = GrokkingConfig(p=23, hidden=64, steps=40)
    before, after = [], []

    def mask(model: torch.nn.Module, step: int) -> None:
        assert not torch.is_grad_enabled()
        model.hidden.weight[3] = 0.0
        before.append(step)

    def watch(step: int, model: torch.nn.Module, metrics: StepMetrics | None) -> None:
        assert torch.count_nonzero(model.hidden.weight[3]) == 0
        after.append((step, metrics is not None))

    model = build_model(config)
    train_grokking(config, model=model, before_step=mask, on_step=watch, eval_every=10)
    assert before == list(range(41))
    assert after == [(step, step % 10 == 0) for step in range(41)]
    assert torch.count_nonzero(model.hidden.weight[3]) == 0
    assert torch.count_nonzero(model.hidden.weight[4]) > 0


def test_alpha_init_scales_zeroes_and_holds_the_norm() -> None:
    plain = GrokkingConfig(p=23, hidden=64, steps=25)
    scaled = GrokkingConfig.alpha_experiment(8.0, p=23, hidden=64, steps=25)
    reference, model = build_model(plain), build_model(scaled)
    assert torch.allclose(model.hidden.weight, 8.0 * reference.hidden.weight)
    assert torch.equal(model.hidden.bias, reference.hidden.bias)  # biases are not scaled
    assert torch.count_nonzero(model.out.weight) == 0
    start = weight_norm(model)
    assert start == pytest.approx(8.0 * reference.hidden.weight.norm().item(), rel=1e-6)
    norms = []
    train_grokking(scaled, model=model, on_step=lambda s, m, x: norms.append(weight_norm(m)))
    assert torch.count_nonzero(model.out.weight) > 0  # the output layer did learn
    assert max(abs(norm / start - 1) for norm in norms) < 1e-5
    assert abs(weight_norm(model) / start - 1) < 1e-5


def synthetic_log(train: list[float], test: list[float]) -> GrokkingLog:
    """A log with evaluations every 5 steps."""
    log = GrokkingLog()
    for i, (a, b) in enumerate(zip(train, test, strict=True)):
        log.append(5 * i, StepMetrics(0.0, a, 0.0, b))
    return log


def test_memorisation_and_grokking_steps_on_synthetic_logs() -> None:
    log = synthetic_log([0.1, 0.98, 0.99, 1.0, 1.0], [0.0, 0.1, 0.5, 0.98, 0.981])
    assert memorisation_step(log) == 10  # >= 0.99
    assert grokking_step(log) == 20  # strictly > 0.98
    assert memorisation_step(log, threshold=0.5) == 5
    assert grokking_step(log, threshold=0.4) == 10
    never = synthetic_log([0.5, 0.6], [0.1, 0.2])
    assert memorisation_step(never) is None and grokking_step(never) is None


def test_evaluation_schedule_is_dense_early_and_complete() -> None:
    steps = evaluation_steps(4000, log_points=150, every=500)
    assert steps[:12] == list(range(12))
    assert {0, 500, 1000, 3500, 4000} <= set(steps)
    assert steps == sorted(set(steps)) and len(steps) < 150 + 9
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    assert gaps[-1] > gaps[0]
    assert evaluation_steps(0) == [0]
    with pytest.raises(ValueError):
        evaluation_steps(10, log_points=-1)


def test_the_monitor_does_not_change_training() -> None:
    monitor_module = pytest.importorskip("oinfo_monitor.monitor")
    config = GrokkingConfig(p=11, hidden=16, steps=15)
    plain = build_model(config)
    train_grokking(config, model=plain)
    watched = build_model(config)
    monitor = monitor_module.OInfoMonitor(
        watched, grokking_data(config).x_train, capture="post", every=5, strategy="clusters"
    )
    train_grokking(config, model=watched, on_step=lambda step, m, x: monitor.step(step))
    assert monitor.evaluations == 4
    for (name, a), b in zip(plain.state_dict().items(), watched.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_demo_writes_its_summary_figure_and_models(tmp_path: Path) -> None:
    flags = "--p 11 --hidden 16 --steps 60 --log-points 6 --every 0 --bins 4 --quiet"
    summary = demo.main([*flags.split(), "--name", "tiny", "--runs-dir", str(tmp_path)])
    run_dir = tmp_path / "tiny"
    saved = json.loads((run_dir / "summary.json").read_text())
    expected = {
        "config",
        "memorisation_step",
        "grokking_step",
        "synergy_peak_step",
        "lead",
        "phases",
        "final_train_acc",
        "final_test_acc",
        "wall_seconds",
        "monitor_seconds",
        "paths",
    }
    assert expected <= set(saved) and saved["config"]["p"] == 11
    assert saved["config"] == summary["config"]
    evaluations = len(saved["monitor"]["schedule"])
    assert saved["evaluations"] == saved["phases"]["evaluations"] == evaluations == 7
    for name in ("grokking.png", "init.pt", "final.pt", "oinfo_history.jsonl"):
        assert (run_dir / name).is_file(), name
    final = torch.load(run_dir / "final.pt")
    assert final["hidden.weight"].shape == (16, 22)
    with pytest.raises(SystemExit, match="already holds a run"):  # refuses to append to it
        demo.main([*flags.split(), "--name", "tiny", "--runs-dir", str(tmp_path)])
