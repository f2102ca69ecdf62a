"""What of a UserInfo body is stored, and whether it can be: the bounds of the
``userinfo`` JSON column, apart from the validation of the modelled fields
(``payloads``, which calls these last and owns the limits: ``MAX_DEPTH`` and
``MAX_UNKNOWN_KEYS_JSON`` are its settings, passed in)."""

from __future__ import annotations

import json
import re
from typing import Any

_MODELLED_KEYS = frozenset({"sub", "email", "name", "zoneinfo", "cronofy.type", "cronofy.data"})
_MODELLED_DATA_KEYS = frozenset({"authorization", "profiles", "conferencing_profiles"})
# An escaped NUL in json.dumps output: "\u0000" preceded by an even number of backslashes.
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def nesting_depth(data: Any, stop_past: int) -> int:
    """Nesting depth of decoded JSON, level by level without recursion (containers
    only: scalars, most of a body, are never queued); stops past ``stop_past``."""
    depth = 0
    level = [data] if isinstance(data, dict | list) else []
    while level and depth <= stop_past:
        depth += 1
        below = []
        for value in level:
            children = value.values() if isinstance(value, dict) else value
            below.extend(child for child in children if isinstance(child, dict | list))
        level = below
    return depth


def storage_problem(data: dict, *, max_depth: int) -> str | None:
    """What keeps the raw body from being stored as JSON (None: nothing).

    Runs after the modelled fields were checked, so a bad value there gets a
    message naming its field; this catches the same problems in other keys.
    """
    if nesting_depth(data, max_depth) > max_depth:
        return f"is nested more than {max_depth} levels deep"
    try:
        text = json.dumps(data, allow_nan=False, ensure_ascii=False)
    except (ValueError, TypeError):
        return "contains a number JSON cannot store (NaN or Infinity)"
    if _ESCAPED_NUL.search(text):
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def kept_keys(data: dict, *, budget: int) -> dict:
    """``data`` with its unmodelled keys cut to ``budget`` bytes of JSON (first kept)."""

    def keep(mapping: dict, modelled: frozenset) -> dict:
        nonlocal budget
        kept = {}
        for key, value in mapping.items():
            if key not in modelled:
                size = len(json.dumps({key: value}, ensure_ascii=False).encode())
                if size > budget:
                    continue
                budget -= size
            kept[key] = value
        return kept

    raw = keep(data, _MODELLED_KEYS)
    if isinstance(raw.get("cronofy.data"), dict):
        raw["cronofy.data"] = keep(raw["cronofy.data"], _MODELLED_DATA_KEYS)
    return raw
