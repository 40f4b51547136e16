"""The layering of the package, checked on its sources (docs/architecture.md states the rules).

- estimators → search → monitor → tools (retrain, cli, experiments, integrations): a module only
  imports from its own layer or lower ones;
- the math layer (estimators, search) never imports `torch.nn`;
- no module imports another module's private (underscore) name;
- no module is much over 500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "oinfo_monitor"
LAYERS = {"estimators": 0, "search": 1, "monitor": 2}
TOOLS = 3  # retrain, cli, experiments, integrations and the package root
MAX_LINES = 520


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def layer_of(module: str) -> int:
    """The layer of a dotted module name inside the package."""
    parts = module.split(".")
    return LAYERS.get(parts[1], TOOLS) if len(parts) > 1 else TOOLS


def dotted(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, imported names) for every import of the package in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_respects_the_layers(path: Path) -> None:
    own = layer_of(dotted(path))
    for module, names in imports(path):
        if module.startswith("oinfo_monitor."):
            assert layer_of(module) <= own, f"{dotted(path)} (layer {own}) imports {module}"
            private = [n for n in names if n.startswith("_")]
            assert not private, f"{dotted(path)} imports private {private} from {module}"
        if own <= LAYERS["search"]:
            uses_nn = module.startswith("torch.nn") or (module == "torch" and "nn" in names)
            assert not uses_nn, f"the math layer module {dotted(path)} imports torch.nn"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines"


def test_one_module_defines_the_gaussian_entropy_constant() -> None:
    """2πe (or its log) is written out in exactly one module: estimators/entropy.py."""
    holders = [
        str(p.relative_to(PACKAGE))
        for p in modules()
        if "math.pi * math.e" in p.read_text(encoding="utf-8")
    ]
    assert holders == ["estimators/entropy.py"]
