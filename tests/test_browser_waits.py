"""The browser tests never look once, right after a click, at what the click brings
(issue 20 §4: ``test_demo_site.py`` checked visibility at once after Deny, and failed
under load). After a click comes a wait (``wait_for_url``, ``wait_for``) or
Playwright's ``expect``, which retries until the page shows the state; a helper that
may end on a click counts as a click."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

BROWSER_TESTS = sorted((Path(__file__).parent / "browser").glob("*.py"))
WAITS = {"wait_for_url", "wait_for", "wait_for_load_state", "goto", "expect"}


def _called(node: ast.AST) -> set[str]:
    names = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            func = n.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def _after(statements: list[ast.stmt], state: str, clickers: set[str]) -> str:
    """ "click" when a path through ``statements`` may end on a click, else ``state``/"wait"."""
    for statement in statements:
        if isinstance(statement, ast.If):
            branches = (
                _after(statement.body, state, clickers),
                _after(statement.orelse, state, clickers),
            )
            state = "click" if "click" in branches else branches[0]
        elif isinstance(statement, ast.Expr):
            called = _called(statement)
            if "click" in called or called & clickers:
                state = "click"
            elif called & WAITS:
                state = "wait"
    return state


def one_shot_checks_after_clicks(source: str) -> list[int]:
    """Line numbers of ``assert ....is_visible()`` statements right after a click."""
    tree = ast.parse(source)
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    clickers = {f.name for f in functions if _after(f.body, "wait", set()) == "click"}
    found = []
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if not isinstance(statements, list):
                continue
            for before, after in itertools.pairwise(statements):
                clicked = isinstance(before, ast.Expr) and (
                    "click" in _called(before) or _called(before) & clickers
                )
                if clicked and isinstance(after, ast.Assert) and "is_visible" in _called(after):
                    found.append(after.lineno)
    return sorted(found)


def test_the_checker_finds_a_one_shot_check_after_a_click():
    source = (
        "def test(page):\n"
        "    page.get_by_role('button', name='Deny').click()\n"
        "    assert page.get_by_role('heading').is_visible()\n"
    )
    assert one_shot_checks_after_clicks(source) == [3]
    waited = source.replace("    assert", "    page.wait_for_url('/')\n    assert")
    assert one_shot_checks_after_clicks(waited) == []


def test_the_checker_follows_a_helper_that_may_end_on_a_click():
    source = (
        "def connect(page, approve):\n"
        "    page.get_by_role('button').click()\n"
        "    if approve:\n"
        "        page.wait_for_url('/')\n"
        "def test(page):\n"
        "    connect(page, approve=False)\n"
        "    assert page.get_by_role('heading').is_visible()\n"
    )
    assert one_shot_checks_after_clicks(source) == [7]
    both = source.replace(
        "        page.wait_for_url('/')\n",
        "        page.wait_for_url('/')\n    else:\n        page.wait_for_url('/x')\n",
    )
    assert one_shot_checks_after_clicks(both) == []


def test_no_browser_test_checks_once_right_after_a_click():
    assert BROWSER_TESTS
    offenders = {
        path.name: lines
        for path in BROWSER_TESTS
        if (lines := one_shot_checks_after_clicks(path.read_text()))
    }
    assert offenders == {}
