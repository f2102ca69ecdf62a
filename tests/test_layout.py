"""The package's layout: data flows one way, so no module imports a module that
imports it back (directly or through others), counting imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import django_cronofy_conferencing

PACKAGE = Path(django_cronofy_conferencing.__file__).parent
NAME = "django_cronofy_conferencing"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Package modules ``path`` imports: ``from X import name`` counts ``X`` (a
    package's ``__init__`` runs on it, so ``from . import y`` in a module the
    package's ``__init__`` imports is a cycle) and the module ``X.name`` if any."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith(NAME)}


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for imported in imports_of(path, set(known)):
            while imported and imported not in known:
                imported = imported.rsplit(".", 1)[0] if "." in imported else ""
            if imported and imported != name:
                targets.add(imported)
        edges[name] = targets
    return edges


def find_cycles(edges: dict[str, set[str]]) -> list[str]:
    cycles: list[str] = []
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycles.append(" -> ".join([*stack[stack.index(node) :], node]))
            return
        if node in done:
            return
        for target in sorted(edges.get(node, ())):
            visit(target, [*stack, node])
        done.add(node)

    for start in sorted(edges):
        visit(start, [])
    return cycles


def test_the_cycle_finder_finds_cycles():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a -> b -> c -> a"]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_module_imports_a_module_that_imports_it_back():
    assert find_cycles(graph()) == []


def test_sync_sits_below_linking():
    edges = graph()
    assert f"{NAME}.sync" in edges[f"{NAME}.linking"]
    assert f"{NAME}.tokens" in edges[f"{NAME}.sync"]
    assert f"{NAME}.linking" not in edges[f"{NAME}.sync"]
    assert f"{NAME}.sync" not in edges[f"{NAME}.tokens"]


#: Modules stay small, one concern each (the project's style: "aim under 400 lines").
MAX_MODULE_LINES = 400


def test_every_module_stays_small():
    long = {
        name: lines
        for name, path in modules().items()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these modules (over {MAX_MODULE_LINES} lines): {long}"


def test_the_writes_sit_below_the_sync_service():
    edges = graph()
    assert f"{NAME}.sync_writes" in edges[f"{NAME}.sync"]
    assert f"{NAME}.sync" not in edges[f"{NAME}.sync_writes"]
    assert f"{NAME}.client_errors" in edges[f"{NAME}.client"]
    assert f"{NAME}.client" not in edges[f"{NAME}.client_errors"]
