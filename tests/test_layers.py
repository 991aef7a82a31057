"""The import graph of harness/ and sandbox/, read from the source alone: no circle anywhere, and
Docker reached only through sandbox/ and the one module that wires a backend from the settings."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "sandbox")
# The only modules above sandbox/ that may name Docker or the Docker sandbox.
WIRING = {"harness.backends"}
DOCKER = ("docker", "sandbox.docker_sandbox")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, top_level_only: bool) -> set[str]:
    """The modules `path` imports, lazily inside functions too unless `top_level_only`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    named: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            named |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            named.add(node.module)
            named |= {f"{node.module}.{alias.name}" for alias in node.names}
    return named


def graph(top_level_only: bool) -> dict[str, set[str]]:
    ours = modules()
    return {
        name: {m for m in imports(path, top_level_only) if m in ours and m != name}
        for name, path in ours.items()
    }


def cycle(edges: dict[str, set[str]]) -> list[str]:
    """One circle of imports, or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_sandbox_modules_import_each_other_in_no_circle_even_lazily():
    edges = graph(top_level_only=False)
    sandbox_only = {
        name: {m for m in targets if m.startswith("sandbox")}
        for name, targets in edges.items()
        if name.startswith("sandbox")
    }
    assert cycle(sandbox_only) == []


def test_harness_and_sandbox_import_each_other_in_no_circle_at_module_level():
    assert cycle(graph(top_level_only=True)) == []


def test_sandbox_imports_of_the_harness_only_its_seams_and_errors():
    edges = graph(top_level_only=False)
    reached = {m for name, targets in edges.items() if name.startswith("sandbox") for m in targets}
    assert {m for m in reached if m.startswith("harness")} <= {"harness.seams", "harness.errors"}


def test_nothing_above_sandbox_but_the_wiring_imports_docker_even_lazily():
    offenders = {
        name: sorted(m for m in imports(path, top_level_only=False) if m.startswith(DOCKER))
        for name, path in modules().items()
        if name.startswith("harness") and name not in WIRING
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_checker_sees_a_circle_when_there_is_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []
