"""storage_problem: one level-by-level walk that answers what serializing the body
(``_problem_by_serializing``) answers, with the depth limit first; anything
``json.loads`` cannot produce falls back to serializing."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from django_cronofy_conferencing.cronofy.userinfo import (
    _problem_by_serializing,
    storage_problem,
)

NAN = "contains a number JSON cannot store (NaN or Infinity)"
NUL = "contains a NUL character"
SURROGATE = "is not valid Unicode (a lone surrogate)"

# Any characters, with the troublesome ones often: NUL, lone surrogates, and a literal
# backslash before "u0000" (six characters, no NUL). Pieces, since hypothesis draws an
# alphabet's characters evenly (a lone surrogate would almost never come up).
trouble = st.sampled_from(["\x00", "\ud800", "\udfff", "\\", "u0000", "\\u0000"])
text = st.lists(trouble | st.text(st.characters(codec=None), max_size=3), max_size=4).map("".join)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | text
)
json_like = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(text, json_like, max_size=5))
def test_the_walk_answers_what_serializing_answers(data):
    assert storage_problem(data, max_depth=1000) == _problem_by_serializing(data)


def nested(levels: int, leaf=1):
    """``levels`` containers deep, dicts and lists in turn, the outermost a dict."""
    value = leaf
    for level in reversed(range(levels)):
        value = {"k": value} if level % 2 == 0 else [value]
    return value


@pytest.mark.parametrize("max_depth", [1, 2, 5, 32])
def test_the_depth_limit_is_exact(max_depth):
    assert storage_problem(nested(max_depth), max_depth=max_depth) is None
    assert storage_problem(nested(max_depth + 1), max_depth=max_depth) == (
        f"is nested more than {max_depth} levels deep"
    )


def test_an_empty_container_counts_as_a_level():
    assert storage_problem({"a": {"b": []}}, max_depth=2) == "is nested more than 2 levels deep"
    assert storage_problem({"a": {"b": 1}}, max_depth=2) is None


def test_the_depth_limit_comes_before_other_problems():
    body = {"nan": float("nan"), "nul": "\x00", "deep": nested(4)}
    assert storage_problem(body, max_depth=3) == "is nested more than 3 levels deep"


def test_problems_come_in_the_order_serializing_finds_them():
    body = {"a": ["\ud800"], "b": {"c": "x\x00"}, "d": [[float("-inf")]]}
    assert storage_problem(body, max_depth=10) == NAN
    del body["d"]
    assert storage_problem(body, max_depth=10) == NUL
    del body["b"]
    assert storage_problem(body, max_depth=10) == SURROGATE
    assert storage_problem({"\ud800": 1}, max_depth=10) == SURROGATE
    assert storage_problem({"a\x00": 1}, max_depth=10) == NUL


@pytest.mark.parametrize(
    "body, problem",
    [
        ({"when": [{"at": datetime(2024, 1, 1)}]}, NAN),
        ({"pair": ("x", "y")}, None),
        ({"pair": ["ok", ("x", "y\x00")]}, NUL),
        ({"pair": ("\\u0000",)}, None),
        ({1: "x"}, None),
        ({"a": {1: "\x00"}}, NUL),
        ({"a": {2.5: float("inf")}}, NAN),
    ],
)
def test_what_json_loads_cannot_make_falls_back_to_serializing(body, problem):
    assert storage_problem(body, max_depth=10) == problem == _problem_by_serializing(body)


@pytest.mark.parametrize(
    "value, problem",
    [
        ("\\u0000", None),  # a backslash and "u0000": six characters, no NUL
        ("\\\\u0000", None),
        ("\x00", NUL),
        ("\\\x00", NUL),  # a backslash, then a real NUL
    ],
)
def test_only_a_real_nul_is_a_problem(value, problem):
    assert storage_problem({"v": value}, max_depth=10) == problem
    assert storage_problem({value: "v"}, max_depth=10) == problem
    assert _problem_by_serializing({"v": value}) == problem


def _deep(levels: int) -> list:
    nested: list = []
    for _ in range(levels - 1):
        nested = [nested]
    return nested


@pytest.mark.parametrize(
    "odd", [(1,), datetime(2026, 1, 1), "non-string key"], ids=["tuple", "datetime", "key"]
)
def test_the_depth_limit_holds_beside_what_json_loads_cannot_make(odd):
    data = {1: "x"} if odd == "non-string key" else {"odd": odd}
    data["deep"] = _deep(40)
    assert storage_problem(data, max_depth=32) == "is nested more than 32 levels deep"


def test_an_int_too_long_to_serialize_is_answered_as_serializing_does():
    data = {"n": 10**5000}
    assert storage_problem(data, max_depth=32) == _problem_by_serializing(data) is not None
    assert storage_problem({"n": 10**100}, max_depth=32) is None


def test_dict_and_list_subclasses_count_toward_the_depth():
    from collections import OrderedDict

    nested: dict = OrderedDict(leaf="x")
    for _ in range(50):
        nested = OrderedDict(inner=nested)
    assert storage_problem({"d": nested}, max_depth=10) == "is nested more than 10 levels deep"
    assert storage_problem({"d": OrderedDict(a="\x00")}, max_depth=10) == NUL
