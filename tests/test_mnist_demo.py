"""Tests for the MNIST experiment (demos/mnist_layerwise.py): a tiny run on real MNIST, its outputs, and flag checking."""

import json
from pathlib import Path

import pytest

from oinfo_monitor.experiments import mnist_layerwise

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte")
HAVE_MNIST = all(
    (DATA / "MNIST" / "raw" / name).exists() or (DATA / "MNIST" / "raw" / f"{name}.gz").exists()
    for name in MNIST_FILES
)
needs_mnist = pytest.mark.skipif(
    not HAVE_MNIST, reason=f"real MNIST not found in {DATA}/MNIST/raw (the demo test reads it)"
)

# Two networks on 3,000 training images for 2 epochs, sizes 3..5: seconds, not minutes.
TINY = [
    "--seeds", "2", "--epochs", "2", "--lr", "0.1",
    "--limit-train", "3000", "--limit-test", "1000",
    "--max-size", "5", "--exhaustive-to", "4", "--every", "50",
    "--retrain-epochs", "1", "--random-draws", "1",
    "--target", "discrete", "continuous",
    "--data-root", str(DATA), "--quiet", "--backend", "serial",  # no pool start-up in a test
]  # fmt: skip


@pytest.fixture(scope="module")
def demo():
    """The experiment module that demos/mnist_layerwise.py runs."""
    return mnist_layerwise


@pytest.fixture(scope="module")
def tiny_run(demo, tmp_path_factory):
    """Run the demo once with tiny flags; return its outputs and run folder."""
    runs = tmp_path_factory.mktemp("runs")
    outputs = demo.main([*TINY, "--runs-dir", str(runs), "--name", "tiny"])
    return outputs, runs / "tiny"


@needs_mnist
def test_figure1_table_holds_every_network_layer_and_size(tiny_run) -> None:
    outputs, run_dir = tiny_run
    table = json.loads((run_dir / "figure1.json").read_text())
    assert table == json.loads(json.dumps(outputs["figure1"]))
    assert table["config"]["probe"] == "test" and table["config"]["probe_images"] == 1000
    assert [seed["seed"] for seed in table["seeds"]] == [0, 1]
    for seed in table["seeds"]:
        assert set(seed["layers"]) == {"discrete", "continuous"}
        for target in ("discrete", "continuous"):
            assert set(seed["layers"][target]) == {"fc1", "fc2", "fc3"}
            for rows in seed["layers"][target].values():
                assert sorted(rows, key=int) == ["3", "4", "5"]
                for size, row in rows.items():
                    for members in (row["synergy_members"], row["redundancy_members"]):
                        assert len(members) == int(size) and set(members) <= set(range(20))
                    assert row["exact"] is (int(size) <= 4)  # exhaustive to 4, greedy beyond
    for target in ("discrete", "continuous"):
        for layer in ("fc1", "fc2", "fc3"):
            row = table["summary"][target][layer]
            assert row["networks"] == 2
            assert row["synergy_dominated"] + row["redundancy_dominated"] == 2
            for cell in row["sizes"].values():
                assert cell["synergy"]["std"] is not None and cell["redundancy"]["std"] >= 0


@needs_mnist
def test_accuracies_are_sane_for_the_tiny_run(tiny_run) -> None:
    outputs, _ = tiny_run
    for seed in outputs["figure1"]["seeds"]:
        curves = seed["curves"]
        assert len(curves["steps"]) == 3  # before training and after each of 2 epochs
        assert 0.3 < seed["test_acc"] <= 1.0 and 0.3 < seed["train_acc"] <= 1.0
        assert curves["test_acc"][-1] > curves["test_acc"][0]
        assert seed["meets_paper_bar"] is False  # 2 epochs on 3,000 images stay below 96%


@needs_mnist
def test_figures_and_tensorboard_logs_are_written(tiny_run) -> None:
    outputs, run_dir = tiny_run
    for name in (
        "figure1_discrete.png",
        "figure1_continuous.png",
        "figure2.png",
        "figure2_rewound.png",
    ):
        path = run_dir / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size < 300_000
        assert outputs["paths"][name] == str(path)
    for folder in ("seed0", "seed0/final_discrete", "seed1/final_continuous"):
        assert list((run_dir / folder).glob("events.out.tfevents.*"))
    history = [json.loads(line) for line in (run_dir / "seed0/oinfo_history.jsonl").open()]
    steps = sorted({record["step"] for record in history})
    assert steps == [0, 50, 100, 150, 188]  # every 50 steps and the last one (2 x 94 steps)
    assert {record["target"] for record in history} == {"discrete"}


@needs_mnist
def test_retraining_comparison_covers_every_strategy(tiny_run) -> None:
    _, run_dir = tiny_run
    figure2 = json.loads((run_dir / "figure2.json").read_text())
    assert figure2["networks"] == 2 and set(figure2["per_seed"]) == {"0", "1"}
    for layer in ("fc1", "fc2", "fc3"):
        rows = {row["strategy"]: row for row in figure2["comparison_test"][layer]}
        assert set(rows) == {
            "synergy",
            "redundancy",
            "complement",
            "random",
            "mi_mixture",
            "mi_model",
        }
        assert rows["synergy"]["size"] == 4 and rows["complement"]["size"] == 16
        assert rows["synergy"]["runs"] == 2 and rows["random"]["runs"] == 2
        changes = [
            row["change_after_retraining"]["mean"] for row in figure2["comparison_test"][layer]
        ]
        assert changes == sorted(changes, reverse=True)  # least accuracy lost first


@needs_mnist
def test_refuses_to_overwrite_a_run(demo, tiny_run) -> None:
    _, run_dir = tiny_run
    argv = [*TINY, "--runs-dir", str(run_dir.parent), "--name", run_dir.name]
    with pytest.raises(SystemExit, match="already holds a run"):
        demo.main(argv)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-size", "2"], "--max-size must lie in 3..20"),
        (["--max-size", "5", "--exhaustive-to", "6"], "--exhaustive-to must lie in 3..MAX_SIZE"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--retrain-size", "20"], "--retrain-size must be a searched size"),
        (["--limit-test", "10"], "--limit-test must be >= 100"),
        (["--lr", "0"], "--lr must be positive"),
        (["--target", "labels"], "invalid choice: 'labels'"),
    ],
)
def test_bad_flags_give_a_clear_error(demo, capsys, flags, message) -> None:
    with pytest.raises(SystemExit) as error:
        demo.parse_args(flags)
    assert error.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data_is_a_clear_error(demo, tmp_path) -> None:
    argv = ["--quick", "--data-root", str(tmp_path / "nowhere"), "--runs-dir", str(tmp_path)]
    with pytest.raises(SystemExit, match=r"not found in .*nowhere.*--data-root"):
        demo.main(argv)


def test_quick_preset_and_explicit_flags(demo) -> None:
    paper = demo.parse_args([])
    assert (paper.seeds, paper.epochs, paper.lr, paper.batch_size) == (20, 50, 0.01, 32)
    assert (paper.max_size, paper.exhaustive_to, paper.retrain_size, paper.probe) == (
        20,
        6,
        6,
        "test",
    )
    quick = demo.parse_args(["--quick", "--epochs", "4"])
    assert (quick.seeds, quick.epochs, quick.max_size) == (2, 4, 10)  # explicit flags win


def test_help_explains_every_flag(demo, capsys) -> None:
    with pytest.raises(SystemExit) as error:
        demo.parse_args(["--help"])
    assert error.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for flag in ("--seeds", "--epochs", "--probe", "--max-size", "--exhaustive-to", "--every"):
        assert flag in text
    assert "(full: 20; --quick: 2)" in text and "default: None" not in text
