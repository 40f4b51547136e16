"""The oinfo-monitor command line, end to end on small files: results, outputs and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from torch import nn

from oinfo_monitor import OInfoMonitor, __version__, cli
from oinfo_monitor.cli import analyze, demo, retrain

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SAMPLES = 400


def run(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    """Call `cli.main` in this process; return the exit status, stdout and stderr."""
    code = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str) -> None:
    """Standard error is exactly one line, the CLI's error line, with no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("oinfo-monitor: error: "), err
    assert "Traceback" not in err


def assert_png(path: Path) -> None:
    """The file exists and decodes as a PNG image."""
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert imread(path).ndim == 3


def synergy_matrix(seed: int = 0) -> np.ndarray:
    """Columns: a constant (dead) one, a, noise, b, a + b + noise, noise; {1, 3, 4} is synergistic."""
    rng = np.random.default_rng(seed)
    a, b, noise = rng.normal(size=(3, SAMPLES))
    total = a + b + 0.3 * rng.normal(size=SAMPLES)
    return np.column_stack([np.ones(SAMPLES), a, noise, b, total, rng.normal(size=SAMPLES)])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Small activation files of every supported kind, plus labels."""
    rng = np.random.default_rng(1)
    x = synergy_matrix()
    labels = rng.integers(0, 3, SAMPLES)
    paths = {name: tmp_path / name for name in ("x.npy", "two.npz", "acts.pt", "labels.npy")}
    np.save(paths["x.npy"], x)
    np.savez(paths["two.npz"], fc1=x, fc2=rng.normal(size=(SAMPLES, 5)), labels=labels)
    torch.save({"l1": torch.from_numpy(x), "l2": torch.randn(SAMPLES, 4)}, paths["acts.pt"])
    np.save(paths["labels.npy"], labels)
    return paths


def test_analyze_npy_prints_sizes_and_members_in_original_columns(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(analyze, "PROGRESS_DELAY", 0.0)  # draw the bar at once, however quick
    code, out, err = run(capsys, "analyze", files["x.npy"], "--strategy", "exhaustive")
    assert code == 0, err
    assert "array 'x': 6 neurons, 1 constant left out (0)" in out
    size_3 = next(line.split() for line in out.splitlines() if line.split()[:1] == ["3"])
    assert size_3[2:5] == ["1", "3", "4"]  # the synergistic triplet, in the file's column numbers
    assert float(size_3[1]) < -0.5
    assert "analyze: 100%" in err and "1/1" in err  # the progress bar


def test_analyze_npz_two_arrays_json_and_figure(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, figure = tmp_path / "out" / "result.json", tmp_path / "bars.png"
    code, _, err = run(
        capsys,
        *("analyze", files["two.npz"], "--target-key", "labels", "--sizes", "3-4"),
        *("--json", out_json, "--figure", figure),
    )
    assert code == 0, err
    payload = json.loads(out_json.read_text())
    assert payload["units"] == "bits"
    assert payload["source"] == {"input": str(files["two.npz"]), "target": "labels"}
    assert list(payload["layers"]) == ["fc1", "fc2"]
    fc1 = payload["layers"]["fc1"]
    assert (fc1["ties"], fc1["bias_correct"], fc1["units"], fc1["target"]) == (
        "random",
        True,
        "bits",
        "discrete",
    )
    assert (fc1["n_neurons"], fc1["dead_neurons"], fc1["n_samples"]) == (6, [0], SAMPLES)
    for layer in payload["layers"].values():
        for kind in ("synergy", "redundancy"):
            assert sorted(layer[kind]) == ["3", "4"]
            for size, found in layer[kind].items():
                assert isinstance(found["value"], float)
                assert len(found["members"]) == int(size)
    assert fc1["synergy"]["3"]["value"] < fc1["redundancy"]["3"]["value"]
    assert_png(figure)


def test_analyze_pt_dict_with_target_file_and_search_options(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "result.json"
    code, out, err = run(
        capsys,
        *("analyze", files["acts.pt"], "--layers", "l1", "--target", files["labels.npy"]),
        *("--strategy", "greedy", "--option", "beam=2", "--option", "start-size=3"),
        *("--ties", "stable"),
        *("--no-bias-correct", "--seed", "3", "--max-samples", "300", "--sizes", "3,5"),
        *("--json", out_json, "--quiet"),
    )
    assert (code, out, err) == (0, "", "")  # --quiet: no table, no progress bar
    layer = json.loads(out_json.read_text())["layers"]["l1"]
    assert (layer["ties"], layer["bias_correct"], layer["n_samples"]) == ("stable", False, 300)
    assert sorted(layer["synergy"]) == ["3", "5"]
    assert "beam-2" in layer["reason"]


def save_mlp(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny MLP saved whole with torch.save, and a probe batch for it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))
    torch.save(model, tmp_path / "model.pt")
    np.save(tmp_path / "probe.npy", np.random.default_rng(0).normal(size=(200, 4)))
    return tmp_path / "model.pt", tmp_path / "probe.npy"


def test_analyze_checkpoint_with_probe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint, probe = save_mlp(tmp_path)
    out_json = tmp_path / "result.json"
    code, out, err = run(
        capsys,
        *("analyze", "--checkpoint", checkpoint, "--probe", probe, "--layers", "0,2"),
        *("--capture", "post", "--sizes", "4", "--json", out_json),
    )
    assert code == 0, err
    assert "layer '0': 8 neurons" in out
    payload = json.loads(out_json.read_text())
    assert payload["source"]["capture"] == "post"
    assert list(payload["layers"]) == ["0", "2"]
    assert payload["layers"]["0"]["n_samples"] == 200


def write_history(path: Path) -> None:
    """A real monitor history: a tiny MLP trained a few steps, evaluated every 4 steps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 2))
    x = torch.randn(200, 4)
    y = (x[:, 0] > 0).long()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with OInfoMonitor(model, x, every=4, history_path=path, sizes=4, track_phases=False) as mon:
        for step in range(13):
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            mon.step(step)


def test_plot_history_writes_the_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = tmp_path / "oinfo_history.jsonl"
    write_history(history)
    code, out, err = run(capsys, "plot", history, "--log-x")
    assert code == 0, err
    for name in ("oinfo_curves.png", "synergy_size.png", "size_bars_step12.png"):
        assert_png(tmp_path / name)
        assert f"wrote {tmp_path / name}" in out
    code, _, err = run(capsys, "plot", history, "--out", tmp_path / "figs", "--step", "4")
    assert code == 0, err
    assert_png(tmp_path / "figs" / "size_bars_step4.png")


def bad_inputs(tmp_path: Path) -> dict[str, list[Any]]:
    """Command lines that must fail with one line on stderr, by case name."""
    np.save(tmp_path / "flat.npy", np.arange(10.0))
    with_nan = synergy_matrix()
    with_nan[5, 2] = np.nan
    np.save(tmp_path / "nan.npy", with_nan)
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    (tmp_path / "history.jsonl").write_text('{"step": 0, "layer": "a"\n')
    np.save(tmp_path / "x.npy", synergy_matrix())
    checkpoint, probe = save_mlp(tmp_path)
    torch.save(torch.load(checkpoint, weights_only=False).state_dict(), tmp_path / "sd.pt")
    x = tmp_path / "x.npy"
    return {
        "missing file": ["analyze", tmp_path / "missing.npy"],
        "corrupt npz": ["analyze", tmp_path / "corrupt.npz"],
        "1-D array": ["analyze", tmp_path / "flat.npy"],
        "NaN column": ["analyze", tmp_path / "nan.npy"],
        "unsupported suffix": ["analyze", tmp_path / "history.jsonl"],
        "unknown array": ["analyze", x, "--layers", "nope"],
        "target length": ["analyze", x, "--target", tmp_path / "flat.npy"],
        "size 2": ["analyze", x, "--sizes", "2"],
        "size above the width": ["analyze", x, "--sizes", "9"],
        "unknown strategy option": ["analyze", x, "--option", "bins=3"],
        "unknown layer": ["analyze", "--checkpoint", checkpoint, "--probe", probe, "--layers", "9"],
        "probe shape": ["analyze", "--checkpoint", checkpoint, "--probe", x],
        "state_dict checkpoint": ["analyze", "--checkpoint", tmp_path / "sd.pt", "--probe", probe],
        "non-model checkpoint": ["analyze", "--checkpoint", x, "--probe", probe],
        "malformed history": ["plot", tmp_path / "history.jsonl"],
        "binary history": ["plot", x],
        "missing history": ["plot", tmp_path / "missing.jsonl"],
    }


USAGE_ERRORS: dict[str, list[str]] = {
    "no command": [],
    "unknown command": ["frobnicate"],
    "unknown strategy": ["analyze", "x.npy", "--strategy", "best"],
    "bad sizes": ["analyze", "x.npy", "--sizes", "three"],
    "reversed sizes": ["analyze", "x.npy", "--sizes", "6-3"],
    "bad option": ["analyze", "x.npy", "--option", "bins"],
    "bad max samples": ["analyze", "x.npy", "--max-samples", "0"],
    "unknown flag": ["analyze", "x.npy", "--frobnicate"],
    "no input": ["analyze"],
    "input and checkpoint": ["analyze", "x.npy", "--checkpoint", "m.pt", "--probe", "p.npy"],
    "probe without checkpoint": ["analyze", "x.npy", "--probe", "p.npy"],
    "target and target key": ["analyze", "x.npy", "--target", "y.npy", "--target-key", "y"],
    "figure format": ["analyze", "x.npy", "--figure", "bars.nope"],
    "unknown demo": ["demo", "nope"],
}


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "corrupt npz",
        "1-D array",
        "NaN column",
        "unsupported suffix",
        "unknown array",
        "target length",
        "size 2",
        "size above the width",
        "unknown strategy option",
        "unknown layer",
        "probe shape",
        "state_dict checkpoint",
        "non-model checkpoint",
        "malformed history",
        "binary history",
        "missing history",
    ],
)
def test_bad_files_and_data_fail_in_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = bad_inputs(tmp_path)[case]
    capsys.readouterr()
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert_one_line_error(err)


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_errors_fail_in_one_line_with_status_2(
    case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, *USAGE_ERRORS[case])
    assert code == 2
    assert_one_line_error(err)


def test_error_messages_name_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = bad_inputs(tmp_path)
    expected = {
        "NaN column": "array 'nan': the matrix has 1 NaN/inf value(s) in column 2",
        "1-D array": "must be 2-D",
        "unknown layer": "unknown layer name '9'",
        "missing file": "does not exist",
        "state_dict checkpoint": "not an nn.Module",
    }
    for case, text in expected.items():
        _, _, err = run(capsys, *cases[case])
        assert text in err, (case, err)


def test_internal_errors_are_one_line_unless_debug(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(analyze, "search_covariance", broken)
    code, _, err = run(capsys, "analyze", files["x.npy"])
    assert code == 1
    assert_one_line_error(err)
    assert "internal error (ZeroDivisionError: a bug)" in err and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        cli.main(["analyze", str(files["x.npy"]), "--debug"])


def option_strings(parser: Any) -> dict[str, tuple[Any, list[str]]]:
    """Each subcommand's parser and every option it takes (flags and metavars of positionals)."""
    commands = next(a for a in parser._actions if a.dest == "command_name").choices
    return {
        name: (sub, [s for a in sub._actions for s in (a.option_strings or [a.metavar or a.dest])])
        for name, sub in commands.items()
    }


def test_every_command_help_mentions_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    for name, (sub, options) in option_strings(cli.build_parser()).items():
        text = sub.format_help()
        for option in options:
            assert option in text, (name, option)
        assert all(action.help for action in sub._actions), name
    for argv in (["--help"], ["analyze", "--help"], ["plot", "--help"], ["demo", "--help"]):
        code, out, _ = run(capsys, *argv)
        assert code == 0 and out.startswith("usage: oinfo-monitor"), argv


def test_forwarding_help_shows_the_experiment_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "retrain", "--help")
    assert code == 0
    assert "--debug" in out and "--quick" in out
    assert "Options passed through to oinfo_monitor.experiments.retrain_subnetwork" in out
    assert "usage: oinfo-monitor retrain" in out  # the experiment's own usage line, as the command
    code, out, _ = run(capsys, "demo", "grokking", "--help")
    assert code == 0
    assert "Options passed through to oinfo_monitor.experiments.grokking" in out
    assert "usage: oinfo-monitor demo grokking" in out and "--weight-decay" in out


def fake_experiments(monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """Point every demo and ``retrain`` at one fake experiment module whose main(argv) runs `body`."""
    module = types.ModuleType("fake_experiment")
    exec(f"import sys\n\ndef main(argv):\n    {body}\n", module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for name in demo.DEMOS:
        monkeypatch.setitem(demo.DEMOS, name, module.__name__)
    monkeypatch.setattr(retrain, "RETRAIN_EXPERIMENT", module.__name__)


def test_demo_and_retrain_forward_their_arguments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_experiments(monkeypatch, "print(sys.argv[0], '|', ' '.join(argv))")
    code, out, _ = run(capsys, "demo", "mnist", "--quick", "--debug", "--run", "x")
    assert (code, out) == (0, "oinfo-monitor demo mnist | --quick --run x\n")
    code, out, _ = run(capsys, "retrain", "--steps", "5", "--mnist")
    assert (code, out) == (0, "oinfo-monitor retrain | --steps 5 --mnist\n")


def test_a_demo_exit_message_becomes_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_experiments(monkeypatch, "raise SystemExit('error: runs/x already holds a run')")
    code, _, err = run(capsys, "demo", "grokking")
    assert code == 1
    assert err == "oinfo-monitor: error: runs/x already holds a run\n"


def test_demo_grokking_runs_through(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = ["--p", "7", "--hidden", "12", "--steps", "20", "--log-points", "4", "--every", "0"]
    tiny += ["--strategy", "exhaustive", "--threads", "1", "--quiet"]
    code, _, err = run(capsys, "demo", "grokking", *tiny, "--runs-dir", tmp_path, "--name", "t")
    assert code == 0, err
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["evaluations"] >= 2
    code, _, err = run(capsys, "plot", tmp_path / "t" / "oinfo_history.jsonl", "--quiet")
    assert code == 0, err
    assert_png(tmp_path / "t" / "oinfo_curves.png")
    code, _, err = run(capsys, "demo", "grokking", *tiny, "--runs-dir", tmp_path, "--name", "t")
    assert code == 1
    assert (
        err
        == f"oinfo-monitor: error: {tmp_path / 't'} already holds a run; pass another --name or delete it\n"
    )


def module_command(*argv: Any) -> subprocess.CompletedProcess[str]:
    """Run ``python -m oinfo_monitor`` in a fresh interpreter."""
    command = [sys.executable, "-m", "oinfo_monitor", *map(str, argv)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_python_dash_m_version_and_error(tmp_path: Path) -> None:
    version = module_command("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"oinfo-monitor {__version__}"
    missing = module_command("analyze", tmp_path / "missing.npy")
    assert missing.returncode == 1
    assert_one_line_error(missing.stderr)
