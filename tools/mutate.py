"""A small mutation tester for this app: change one operator, run the tests that cover it.

Not part of the suite (it runs the suite hundreds of times). Usage::

    python tools/mutate.py                       # every module below, sampled
    python tools/mutate.py --modules cronofy/client accounts/tokens --per-module 40 --workers 2
    python tools/mutate.py --only "web/pages:185 not" "fields:144 drop_call"   # re-run some

It copies the repository (``git archive HEAD``) into a temporary folder per
worker, so the working tree is never touched, then for each mutant rewrites one
module there (``ast.unparse``: comments go, behaviour stays), runs the module's
tests with ``-x`` and a time limit, and counts the mutant *killed* when they
fail (or hang), *survived* when they pass. Operators: comparison swaps (``>``
and ``>=``, ``==`` and ``!=``, ``in`` and ``not in``, ...), ``and``/``or``,
a dropped ``not``, ``True``/``False``, an integer off by one, a dropped
``.select_for_update()``, a dropped call statement, and ``return`` of None.
Tests run on SQLite unless ``DATABASE_URL`` is set; the row-lock mutants need
PostgreSQL to be killed.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "django_cronofy_conferencing"

#: Module -> the test paths that cover it.
TESTS = {
    "cronofy/userinfo": ["tests/cronofy", "tests/sync/test_sync_account.py"],
    "sync/service": ["tests/sync", "tests/management/commands/test_cronofy_sync.py"],
    "sync/writes": ["tests/sync"],
    "sync/plan": [
        "tests/sync/test_sync_account.py",
        "tests/sync/test_calendar_profiles.py",
        "tests/sync/test_batch.py",
    ],
    "fields": [
        "tests/test_fields.py",
        "tests/test_models.py",
        "tests/accounts/test_rotation.py",
        "tests/test_exception_reports.py",
    ],
    "web/notifications": [
        "tests/web/test_notifications.py",
        "tests/integration/test_push_notifications.py",
    ],
    "web/views": ["tests/web/test_views.py", "tests/test_exception_reports.py"],
    "web/pages": ["tests/web/test_pages.py"],
    "api/views": [
        "tests/api/test_views.py",
        "tests/api/test_choices_views.py",
        "tests/api/test_schema.py",
        "tests/test_atomic_requests.py",
    ],
    "cronofy/client": ["tests/cronofy/test_client.py", "tests/accounts/test_tokens.py"],
    "cronofy/errors": [
        "tests/cronofy/test_client.py",
        "tests/test_secrets.py",
        "tests/accounts/test_tokens.py",
    ],
    "cronofy/transport": ["tests/cronofy/test_client.py"],
    "cronofy/ratelimit": [
        "tests/cronofy/test_ratelimit.py",
        "tests/integration/test_ratelimit_redis.py",
    ],
    "cronofy/redaction": ["tests/cronofy/test_redaction.py", "tests/test_secrets.py"],
    "accounts/tokens": [
        "tests/accounts/test_tokens.py",
        "tests/accounts/test_linking.py",
        "tests/test_secrets.py",
        "tests/test_exception_reports.py",
        # Last: real processes on a SQLite file (the cross-process refresh lock).
        "tests/accounts/test_refresh_processes.py",
    ],
    "accounts/linking": ["tests/accounts/test_linking.py", "tests/web/test_views.py"],
}

_SWAPS = {
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}


@dataclass
class Mutant:
    module: str
    index: int  # the n-th mutation site of its kind in the module
    kind: str
    line: int

    def label(self) -> str:
        return f"{self.module}:{self.line} {self.kind}"


class _Sites(ast.NodeVisitor):
    """Finds mutation sites in a stable order."""

    def __init__(self) -> None:
        self.sites: list[tuple[str, int]] = []

    def _add(self, kind: str, node: ast.AST) -> None:
        self.sites.append((kind, getattr(node, "lineno", 0)))

    def visit_Compare(self, node: ast.Compare) -> None:
        if type(node.ops[0]) in _SWAPS:
            self._add("compare", node)
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        self._add("boolop", node)
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self._add("not", node)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, bool):
            self._add("bool", node)
        elif isinstance(node.value, int) and not isinstance(node.value, bool):
            self._add("int", node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "select_for_update":
            self._add("select_for_update", node)
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Call):
            self._add("drop_call", node)
        self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None
        ):
            self._add("return_none", node)
        self.generic_visit(node)

    # Docstrings and annotations are no behaviour.
    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_arg(self, node: ast.arg) -> None:
        return


class _Apply(ast.NodeTransformer):
    """Applies the ``target``-th site (in ``_Sites`` order)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.seen = -1
        self.done = False

    def _hit(self) -> bool:
        self.seen += 1
        return self.seen == self.target

    def visit_Compare(self, node):
        hit = type(node.ops[0]) in _SWAPS and self._hit()
        self.generic_visit(node)
        if hit:
            node.ops[0] = _SWAPS[type(node.ops[0])]()
            self.done = True
        return node

    def visit_BoolOp(self, node):
        hit = self._hit()
        self.generic_visit(node)
        if hit:
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            self.done = True
        return node

    def visit_UnaryOp(self, node):
        hit = isinstance(node.op, ast.Not) and self._hit()
        self.generic_visit(node)
        if hit:
            self.done = True
            return node.operand
        return node

    def visit_Constant(self, node):
        if isinstance(node.value, bool):
            if self._hit():
                self.done = True
                return ast.copy_location(ast.Constant(not node.value), node)
        elif isinstance(node.value, int) and self._hit():
            self.done = True
            return ast.copy_location(ast.Constant(node.value + 1), node)
        return node

    def visit_Call(self, node):
        func = node.func
        hit = isinstance(func, ast.Attribute) and func.attr == "select_for_update" and self._hit()
        self.generic_visit(node)
        if hit:
            self.done = True
            return func.value
        return node

    def visit_Expr(self, node):
        hit = isinstance(node.value, ast.Call) and self._hit()
        self.generic_visit(node)
        if hit:
            self.done = True
            return ast.copy_location(ast.Pass(), node)
        return node

    def visit_Return(self, node):
        hit = (
            node.value is not None
            and not (isinstance(node.value, ast.Constant) and node.value.value is None)
            and self._hit()
        )
        self.generic_visit(node)
        if hit:
            self.done = True
            node.value = ast.Constant(None)
        return node

    def visit_AnnAssign(self, node):
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_arg(self, node):
        return node


def _strip_docstrings(tree: ast.AST) -> None:
    """Docstrings are no behaviour: dropped (a ``pass`` where a body would be empty)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            first = body[0].value if body and isinstance(body[0], ast.Expr) else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                if len(body) > 1:
                    del body[0]  # (a module's ``from __future__`` must come first)
                else:
                    body[0] = ast.Pass()


def mutants_of(module: str) -> list[Mutant]:
    tree = ast.parse((ROOT / PACKAGE / f"{module}.py").read_text())
    _strip_docstrings(tree)
    sites = _Sites()
    sites.visit(tree)
    return [Mutant(module, i, kind, line) for i, (kind, line) in enumerate(sites.sites)]


def mutated_source(mutant: Mutant) -> str:
    tree = ast.parse((ROOT / PACKAGE / f"{mutant.module}.py").read_text())
    _strip_docstrings(tree)
    applier = _Apply(mutant.index)
    tree = applier.visit(tree)
    if not applier.done:
        raise RuntimeError(f"could not apply {mutant.label()}")
    return ast.unparse(ast.fix_missing_locations(tree))


def _copy_repo() -> Path:
    target = Path(tempfile.mkdtemp(prefix="cronofy-mutants-"))
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def _pytest(copy: Path, module: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-x",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--timeout={int(timeout)}",
            *TESTS[module],
        ],
        cwd=copy,
        capture_output=True,
        timeout=timeout * 4,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def _run(copy: Path, mutant: Mutant, timeout: float) -> str:
    path = copy / PACKAGE / f"{mutant.module}.py"
    original = path.read_text()
    try:
        source = mutated_source(mutant)
        compile(source, str(path), "exec")
    except (RuntimeError, SyntaxError):
        return "invalid"  # not counted
    path.write_text(source)
    try:
        result = _pytest(copy, mutant.module, timeout)
        if result.returncode == 0:
            return "survived"
        broken = (b"SyntaxError", b"ImportError while loading conftest")
        if any(marker in result.stderr for marker in broken):
            return "invalid"
        return "killed"
    except subprocess.TimeoutExpired:
        return "killed"  # a hang is noticed (pytest-timeout, or this limit)
    finally:
        path.write_text(original)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="*", default=list(TESTS))
    parser.add_argument("--per-module", type=int, default=25, help="0: every mutant")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="LABEL",
        help='run just these mutants ("module:line kind", as printed; e.g. the survivors '
        "of an earlier run); their modules are the ones tested",
    )
    args = parser.parse_args()
    if args.only:
        args.modules = sorted({label.split(":")[0] for label in args.only})

    rng = random.Random(args.seed)
    todo: list[Mutant] = []
    for module in args.modules:
        found = mutants_of(module)
        if args.only:
            todo.extend(m for m in found if m.label() in args.only)
            continue
        if args.per_module and len(found) > args.per_module:
            found = sorted(rng.sample(found, args.per_module), key=lambda m: m.index)
        todo.extend(found)
    print(f"{len(todo)} mutants over {len(args.modules)} modules", flush=True)

    results: dict[str, list[tuple[str, str]]] = {}
    lock = threading.Lock()
    queue = list(reversed(todo))
    started = time.monotonic()

    # The unmutated tests must pass, or every mutant would look killed.
    baseline = _copy_repo()
    try:
        for module in args.modules:
            if _pytest(baseline, module, args.timeout).returncode != 0:
                print(f"The tests of {module} fail without any mutant: fix them first.")
                return 1
            # Unparsing alone must change nothing either.
            path = baseline / PACKAGE / f"{module}.py"
            tree = ast.parse(path.read_text())
            _strip_docstrings(tree)
            path.write_text(ast.unparse(tree))
            if _pytest(baseline, module, args.timeout).returncode != 0:
                print(f"The tests of {module} fail on the unparsed module: the tool is wrong.")
                return 1
    finally:
        shutil.rmtree(baseline, ignore_errors=True)
    print("baseline: every module's tests pass, unparsed too", flush=True)

    def worker() -> None:
        copy = _copy_repo()
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    mutant = queue.pop()
                outcome = _run(copy, mutant, args.timeout)
                with lock:
                    results.setdefault(mutant.module, []).append((mutant.label(), outcome))
                    done = sum(len(v) for v in results.values())
                    print(f"[{done}/{len(todo)}] {outcome:8} {mutant.label()}", flush=True)
        finally:
            shutil.rmtree(copy, ignore_errors=True)

    threads = [threading.Thread(target=worker) for _ in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = killed = 0
    invalid = sum(1 for rows in results.values() for _, o in rows if o == "invalid")
    print(f"\n{invalid} mutants were not valid Python or could not be applied (not counted)")
    print(f"\n{'module':15} killed/total  score")
    for module in args.modules:
        rows = [row for row in results.get(module, []) if row[1] != "invalid"]
        k = sum(1 for _, outcome in rows if outcome == "killed")
        total += len(rows)
        killed += k
        score = f"{100 * k / len(rows):.0f}%" if rows else "-"
        print(f"{module:15} {k:>6}/{len(rows):<6} {score}")
    print(f"{'all':15} {killed:>6}/{total:<6} {100 * killed / max(total, 1):.0f}%")
    print(f"({time.monotonic() - started:.0f} s)")
    survivors = [label for rows in results.values() for label, o in rows if o == "survived"]
    if survivors:
        print("\nSurvivors:\n  " + "\n  ".join(sorted(survivors)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
