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


#: What each subpackage may import, in the order data flows (DESIGN.md "Layout").
LAYERS = ["cronofy", "sync", "accounts", "queueing", "web"]
ABOVE_EVERY_LAYER = {
    "admin",
    "api",
    "management",
    "templatetags",
    "urls",
    "tasks",
    "linking",
    "testing",
}


def subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_data_flows_one_way_between_subpackages():
    wrong = []
    for source, targets in graph().items():
        here = subpackage(source)
        for target in targets:
            there = subpackage(target)
            if there in ABOVE_EVERY_LAYER and here not in ABOVE_EVERY_LAYER and here != there:
                wrong.append(f"{source} -> {target}")
            # The one way up: a sync refreshes tokens (accounts.tokens sits below sync).
            if (
                here in LAYERS
                and there in LAYERS
                and LAYERS.index(there) > LAYERS.index(here)
                and target not in (f"{NAME}.accounts", f"{NAME}.accounts.tokens")
            ):
                wrong.append(f"{source} -> {target}")
            if here == "cronofy" and there not in ("cronofy", "conf", "exceptions", ""):
                wrong.append(f"{source} -> {target}")
    assert wrong == []


def test_tokens_sit_below_the_sync_and_linking_above_it():
    edges = graph()
    assert f"{NAME}.sync.service" in edges[f"{NAME}.accounts.linking"]
    assert f"{NAME}.accounts.tokens" in edges[f"{NAME}.sync.service"]
    assert not any(t.startswith(f"{NAME}.sync") for t in edges[f"{NAME}.accounts.tokens"])


#: DESIGN.md: a subpackage per role; few top-level modules.
MAX_TOP_LEVEL_MODULES = 20


def test_few_top_level_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_every_error_class_lives_in_exceptions():
    import importlib
    import inspect

    from rest_framework.exceptions import APIException

    elsewhere = []
    for name in modules():
        if name.startswith((f"{NAME}.testing", f"{NAME}.tasks", f"{NAME}.queueing.celery")):
            continue
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional extra that is not installed
            continue
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == name:
                if issubclass(value, APIException):
                    continue  # DRF's answers (api.exceptions), not errors the app raises
                elsewhere.append(f"{name}.{value.__name__}")
    exceptions = [e for e in elsewhere if not e.startswith(f"{NAME}.exceptions.")]
    assert exceptions == []


def test_every_check_is_in_checks():
    registered = [
        name
        for name, path in modules().items()
        if name != f"{NAME}.checks"
        and "register(" in path.read_text()
        and "checks" in path.read_text()
    ]
    assert registered == []


#: Documented Django model and manager attributes, not private reach-ins.
DJANGO_PUBLIC = {"_meta", "_default_manager", "_base_manager"}


def test_no_reach_into_private_attributes_of_other_objects():
    """``x._name`` only on ``self``/``cls`` (or Django's documented ``_meta``): never
    another library's private attributes (nor, across modules, this package's own)."""
    found = []
    for name, path in modules().items():
        if name.startswith(f"{NAME}.testing"):
            continue  # the simulator's own modules share its state
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and node.attr not in DJANGO_PUBLIC
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{name}:{node.lineno} {ast.unparse(node)}")
    assert found == []


def test_production_code_never_asks_whether_it_runs_under_a_test_double():
    found = []
    for name, path in modules().items():
        if name.startswith(f"{NAME}.testing"):
            continue
        text = path.read_text()
        for needle in ("import responses", "requests_mock", "__module__", "unittest.mock"):
            if needle in text:
                found.append(f"{name}: {needle}")
    assert found == []
