"""The house rules of docs/ARCHITECTURE.md, checked on the source: nothing imports upward, and only the
pipeline layer knows Dagster."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "factor_pipeline"
# Lower layers first; a module may import its own layer and the layers below it.
LAYERS = {"config": 0, "datasets": 0, "stats": 0, "storage": 0, "market": 1, "features": 2, "model": 3, "evaluation": 4, "pipeline": 5}


def _layer_of(module: str) -> str:
    return module.split(".")[1]


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def test_every_module_sits_in_a_known_layer():
    for path in MODULES:
        assert path.relative_to(PACKAGE).parts[0].removesuffix(".py") in LAYERS, path


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_imports_upward_and_only_the_pipeline_knows_dagster(path):
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    imported = _imports(path)
    upward = sorted(m for m in imported if m.startswith("factor_pipeline.") and m.split(".")[1] in LAYERS
                    and LAYERS[_layer_of(m)] > LAYERS[own])
    assert not upward, f"{path.name} ({own}) imports {upward}"
    if own != "pipeline":
        assert not any(m == "dagster" or m.startswith("dagster") for m in imported), f"{path.name} imports Dagster"
