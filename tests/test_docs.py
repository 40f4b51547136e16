"""The documentation: docstrings of the public API, the runnable code on the pages, the strict site build.

- every public name (and every public method of a public class) has a docstring;
- the XOR example of the Concepts page runs and shows what it claims: the Gaussian-copula Ω of
  z = sign(x·y) is 0 while the true interaction information is −1 bit;
- every code block marked ``<!-- runnable -->`` on a page runs (the Quickstart's three-line
  integration among them), in a temporary folder;
- ``mkdocs build --strict`` succeeds, and the built pages load nothing from the network;
- the screenshot script's image checks work on synthetic images.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import importlib.util
import inspect
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = DOCS
CONFIG = ROOT / "mkdocs.yml"

MODULES = (
    "oinfo_monitor",
    "oinfo_monitor.integrations.lightning",
    "oinfo_monitor.experiments.data",
    "oinfo_monitor.retrain",
    "oinfo_monitor.monitor.phases",
    "oinfo_monitor.search",
    "oinfo_monitor.cli",
)
"""Modules whose public names must be documented; the Lightning adapter needs lightning installed."""

RUNNABLE = "<!-- runnable -->"
"""The marker, on the line before a ```python fence, of a code block the tests run."""

XOR_TOLERANCE_BITS = 0.01
"""How close to 0 the copula's Ω of the XOR triple, and to −1 bit the true value, must be."""


# --- (1) docstrings --------------------------------------------------------------------------


def _module(name: str) -> ModuleType:
    """Import a documented module, skipping only what is optional: the CLI if absent, Lightning."""
    if name == "oinfo_monitor.cli" and importlib.util.find_spec(name) is None:
        pytest.skip("oinfo_monitor.cli does not exist (yet)")
    if name.endswith(".lightning"):
        pytest.importorskip("lightning.pytorch", reason="the Lightning adapter needs lightning")
    return importlib.import_module(name)


def _public_names(module: ModuleType) -> list[str]:
    """`__all__`, or else the functions and classes defined in the module without a leading _."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    ]


def _attribute_docstrings(module: ModuleType) -> dict[str, str]:
    """Docstrings of module-level assignments (a string literal right after ``NAME = ...``)."""
    source = inspect.getsource(module)
    body = ast.parse(source).body
    found = {}
    for statement, following in itertools.pairwise(body):
        targets: list[ast.expr] = []
        if isinstance(statement, ast.Assign):
            targets = statement.targets
        elif isinstance(statement, ast.AnnAssign):
            targets = [statement.target]
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = following.value.value
    return found


def _own_docstring(obj: Any) -> str:
    """The docstring written for a function or class (not one Python generated for it)."""
    if inspect.isclass(obj):
        doc = vars(obj).get("__doc__") or ""
        if dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("):
            return ""  # the signature that @dataclass writes when there is no docstring
        if issubclass(obj, enum.Enum) and doc.strip() == "An enumeration.":
            return ""
        return doc.strip()
    return (getattr(obj, "__doc__", None) or "").strip()


def _undocumented_methods(cls: type) -> list[str]:
    """Public methods and properties defined in `cls` itself that have no docstring."""
    missing = []
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            function = member.fget
        elif isinstance(member, staticmethod | classmethod):
            function = member.__func__
        elif inspect.isfunction(member):
            function = member
        else:
            continue
        if not (getattr(function, "__doc__", None) or "").strip():
            missing.append(f"{cls.__qualname__}.{name}")
    return missing


@pytest.mark.parametrize("module_name", MODULES)
def test_public_names_have_docstrings(module_name: str) -> None:
    """Every public function and class, every public method of those classes, and every other
    name listed in ``__all__`` (type aliases, constants) has a non-empty docstring."""
    module = _module(module_name)
    attribute_docs = _attribute_docstrings(module)
    missing = []
    for name in _public_names(module):
        obj = getattr(module, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            if not _own_docstring(obj):
                missing.append(name)
            if inspect.isclass(obj):
                missing += _undocumented_methods(obj)
        elif not attribute_docs.get(name, "").strip():
            missing.append(f"{name} (a string literal on the line after its assignment)")
    assert not missing, f"{module_name}: no docstring for {', '.join(missing)}"


# --- runnable blocks -------------------------------------------------------------------------


def runnable_blocks(page: Path) -> list[str]:
    """The ```python blocks of a page that directly follow a ``<!-- runnable -->`` line."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks = []
    for index, line in enumerate(lines):
        if line.strip() != RUNNABLE:
            continue
        fence = lines[index + 1].strip() if index + 1 < len(lines) else ""
        assert fence.startswith("```python"), (
            f"{page.name}:{index + 1}: {RUNNABLE} must be followed by a ```python fence"
        )
        end = next(i for i in range(index + 2, len(lines)) if lines[i].strip() == "```")
        blocks.append("\n".join(lines[index + 2 : end]))
    return blocks


def run_page(page: Path, where: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run a page's runnable blocks in order, in one namespace, with `where` as the working folder."""
    monkeypatch.chdir(where)
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    for number, block in enumerate(runnable_blocks(page), start=1):
        code = compile(block, f"{page.name} (runnable block {number})", "exec")
        exec(code, namespace)
    return namespace


def pages_with_runnable_blocks() -> list[str]:
    """Names of the pages that have at least one runnable block."""
    return sorted(page.name for page in PAGES.glob("*.md") if runnable_blocks(page))


def test_quickstart_marks_the_three_line_integration_runnable() -> None:
    """The Quickstart's integration example is among the blocks the tests run."""
    blocks = runnable_blocks(PAGES / "quickstart.md")
    assert any(
        "OInfoMonitor(" in b and "monitor.step(" in b and "monitor.close()" in b for b in blocks
    )


@pytest.mark.parametrize("page", pages_with_runnable_blocks())
def test_runnable_blocks_run(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every block marked runnable runs as it is shown, and the Quickstart's monitor did its job."""
    namespace = run_page(PAGES / page, tmp_path, monkeypatch)
    if page == "quickstart.md":
        monitor = namespace["monitor"]
        assert monitor.evaluations >= 2 and not monitor.skipped_steps
        assert (tmp_path / "runs" / "quickstart" / "oinfo_history.jsonl").is_file()
        assert "layer 2: synergy" in capsys.readouterr().out


# --- (2) what the Gaussian copula cannot see ------------------------------------------------


def test_xor_synergy_is_invisible_to_the_gaussian_copula(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Concepts page's XOR example: x, y independent Gaussians, z = sign(x·y).

    The true interaction information of the triple is −1 bit (1 bit of pure synergy), but every
    correlation of the copula-transformed variables is 0, so the Gaussian-copula Ω is 0. Both
    within XOR_TOLERANCE_BITS (20,000 samples). The check is the page's own code block.
    """
    namespace = run_page(PAGES / "concepts.md", tmp_path, monkeypatch)
    assert abs(namespace["omega_copula"]) < XOR_TOLERANCE_BITS
    assert abs(namespace["omega_true"] - (-1.0)) < XOR_TOLERANCE_BITS


# --- (3) the site -----------------------------------------------------------------------------

EXTERNAL_RESOURCE = re.compile(
    r"<(?:script|link|img|iframe|source|video|audio)\b[^>]*\b(?:src|href)\s*=\s*[\"'](?:https?:)?//",
    re.IGNORECASE,
)
"""A tag that would make the browser fetch something from another host (plain links are fine)."""


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the site once with ``mkdocs build --strict`` into a temporary folder."""
    for package in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(package.split(".")[0]) is None:
            pytest.skip(f"{package} is not installed: pip install -e '.[docs]' (make does it)")
    site = tmp_path_factory.mktemp("site")
    # The same command as `make docs`, config path relative to the repository root as there.
    config = str(CONFIG.relative_to(ROOT))
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", config, "-d", str(site)]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return site


def test_site_builds_strictly_with_every_page(built_site: Path) -> None:
    """The strict build succeeds and publishes every nav page, docs/mnist.md and docs/img/ included."""
    for page in (
        "quickstart",
        "concepts",
        "monitor",
        "grokking",
        "mnist",
        "retraining",
        "performance",
    ):
        assert (built_site / page / "index.html").is_file(), page
    assert (built_site / "img" / "tensorboard_custom_scalars.png").is_file()


def test_site_loads_nothing_from_the_network(built_site: Path) -> None:
    """No script, stylesheet, font or image of the built site comes from another host."""
    offenders = {
        str(path.relative_to(built_site)): EXTERNAL_RESOURCE.findall(text)
        for path in built_site.rglob("*.html")
        if EXTERNAL_RESOURCE.search(text := path.read_text(encoding="utf-8"))
    }
    assert not offenders, offenders


def test_api_reference_documents_the_measures(built_site: Path) -> None:
    """`oinfo` is documented as a function with its docstring and its example."""
    html = (built_site / "api" / "index.html").read_text(encoding="utf-8")
    assert 'id="oinfo_monitor.estimators.measures.oinfo"' in html
    assert "O-information Ω in bits of each multiplet" in html
    assert "xor_like" in html


# --- the screenshot script ----------------------------------------------------------------------


def _screenshot_script() -> ModuleType:
    """Import docs/screenshots/take_tensorboard_screenshot.py as a module."""
    path = DOCS / "screenshots" / "take_tensorboard_screenshot.py"
    spec = importlib.util.spec_from_file_location("take_tensorboard_screenshot", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_screenshot_checks_on_synthetic_images(tmp_path: Path) -> None:
    """Blank pages count as not drawn, coloured lines as drawn; the empty bottom is cut off."""
    image_module = pytest.importorskip("PIL.Image")
    draw_module = pytest.importorskip("PIL.ImageDraw")
    shots = _screenshot_script()
    blank, chart = tmp_path / "blank.png", tmp_path / "chart.png"
    image_module.new("RGB", (800, 600), (245, 245, 245)).save(blank)
    picture = image_module.new("RGB", (800, 600), (245, 245, 245))
    draw = draw_module.Draw(picture)
    for offset in range(0, 200, 20):
        draw.line([(250, 120 + offset), (780, 300 - offset)], fill=(255, 112, 67), width=3)
    picture.save(chart)
    assert shots.line_pixels(blank) == 0
    assert shots.line_pixels(chart) >= shots.MIN_LINE_PIXELS
    assert shots.changed_fraction(chart, chart) == 0.0
    assert shots.changed_fraction(blank, chart) > shots.SETTLED_FRACTION
    shots.trim_bottom(chart)
    with image_module.open(chart) as trimmed:
        assert trimmed.size[1] < 600
    assert shots.is_run_folder(tmp_path) is False
