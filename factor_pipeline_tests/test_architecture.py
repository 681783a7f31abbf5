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


def _module_name(path: Path) -> str:
    return ".".join(("factor_pipeline", *path.relative_to(PACKAGE).with_suffix("").parts))


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle of ``graph`` (module -> the modules it imports), each once, as the path that closes it."""
    cycles, state = [], {}  # state: 1 = on the current path, 2 = finished

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_the_circle_check_finds_a_circle_inside_a_layer_and_passes_a_tree():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert import_cycles({"x": {"x"}}) == [["x", "x"]]


def test_no_module_imports_itself_back_through_others():
    """Not even inside one layer, and not even through an import inside a function."""
    modules = {_module_name(p): p for p in MODULES}
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    assert import_cycles(graph) == []


def test_production_never_imports_the_experimental_options():
    for path in MODULES:
        if path.name != "experimental.py":
            assert "factor_pipeline.model.experimental" not in _imports(path), path


def _reads_environment(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                return True
        if isinstance(node, ast.ImportFrom) and node.module == "os" and any(
            a.name in ("environ", "getenv") for a in node.names
        ):
            return True
    return False


def test_the_environment_is_read_only_in_the_pipeline_layer():
    """Settings come in through the pipeline's resource and are passed down as values. storage.py's crash
    failpoint, a hook for the crash tests, is the one exception."""
    assert _reads_environment(PACKAGE / "pipeline" / "resources.py")  # the check sees a read
    readers = [
        str(p.relative_to(PACKAGE)) for p in MODULES
        if p.relative_to(PACKAGE).parts[0] != "pipeline" and p.name != "storage.py" and _reads_environment(p)
    ]
    assert readers == []
