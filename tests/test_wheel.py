"""The installed package stands alone: the CLI runs its demos from the package, never from the repository's demos/."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import oinfo_monitor
import oinfo_monitor.cli

PACKAGE = Path(oinfo_monitor.__file__).resolve().parent
ROOT = PACKAGE.parent

DEMOS_PATH = re.compile(r"""["']demos["']|["']demos/|demos_dir|spec_from_file_location""")
"""What building a path to the repository's demos/ (or importing a file by its path) looks like."""


def test_no_module_builds_a_path_to_the_demos_folder() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if DEMOS_PATH.search(line)
    ]
    assert found == []


def test_the_console_script_names_the_cli_main() -> None:
    script = re.search(r'^oinfo-monitor = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert script is not None
    module, _, function = script.group(1).partition(":")
    assert (module, function) == ("oinfo_monitor.cli", "main")
    assert callable(oinfo_monitor.cli.main)


def test_the_demo_runs_from_a_copy_of_the_package_alone(tmp_path: Path) -> None:
    """A copy of the package with no demos/ next to it, run from an empty folder, as after pip install."""
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "oinfo_monitor", ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "work"
    work.mkdir()
    tiny = "--p 7 --hidden 12 --steps 12 --log-points 3 --every 0 --strategy exhaustive --quiet"
    command = [sys.executable, "-m", "oinfo_monitor", "demo", "grokking", *tiny.split()]
    environment = {**os.environ, "PYTHONPATH": str(site), "MPLBACKEND": "Agg"}
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX"):
        environment.pop(name, None)
    done = subprocess.run(
        [*command, "--name", "t"],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((work / "runs" / "t" / "summary.json").read_text())
    assert summary["config"]["p"] == 7 and summary["evaluations"] >= 2
    # The experiments were imported from the copy: their bytecode is cached there.
    assert list((site / "oinfo_monitor" / "experiments" / "__pycache__").glob("grokking.*.pyc"))
    assert not (site / "demos").exists()
