"""What of a UserInfo body is stored, and whether it can be: the bounds of the
``userinfo`` JSON column, apart from the validation of the modelled fields
(``payloads``, which calls these last and owns the limits: ``MAX_DEPTH`` and
``MAX_UNKNOWN_KEYS_JSON`` are its settings, passed in)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

_MODELLED_KEYS = frozenset({"sub", "email", "name", "zoneinfo", "cronofy.type", "cronofy.data"})
_MODELLED_DATA_KEYS = frozenset({"authorization", "profiles", "conferencing_profiles"})
# An escaped NUL in json.dumps output: "\u0000" preceded by an even number of backslashes.
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


_NAN = "contains a number JSON cannot store (NaN or Infinity)"
_NUL = "contains a NUL character"
_SURROGATE = "is not valid Unicode (a lone surrogate)"
# Past this, an int may have more digits than json.dumps converts (sys.int_info's 4,300).
_LONGEST_INT_BITS = 14_000


def storage_problem(data: dict, *, max_depth: int) -> str | None:
    """What keeps the raw body from being stored as JSON (None: nothing).

    Runs after the modelled fields were checked, so a bad value there gets a
    message naming its field; this catches the same problems in other keys.
    One walk, level by level, of what ``json.loads`` makes (dicts with string
    keys, lists, strings, numbers, booleans, None): serializing the body to
    look for the same problems cost half of a fleet sync's parsing. Anything
    else (a body built in Python) is checked by serializing it.
    """
    found: set[str] = set()
    odd = False  # met something json.loads never makes: decided by serializing
    depth = 0
    level = [data] if isinstance(data, dict | list) else []
    while level:
        depth += 1
        if depth > max_depth:
            return f"is nested more than {max_depth} levels deep"
        below: list = []
        for container in level:
            if isinstance(container, dict):
                for key in container:
                    if type(key) is str:
                        _check_text(key, found)
                    else:
                        odd = True
                values = container.values()
            else:
                values = container
            for value in values:
                kind = type(value)
                if kind is str:
                    _check_text(value, found)
                elif kind is dict or kind is list:
                    below.append(value)
                elif kind is float:
                    if not math.isfinite(value):
                        found.add(_NAN)
                elif kind is int:
                    odd = odd or value.bit_length() > _LONGEST_INT_BITS
                elif isinstance(value, dict | list):  # a subclass: counted, then serialized
                    below.append(value)
                    odd = True
                elif not (value is None or kind is bool):
                    odd = True
        level = below
    if odd:
        return _problem_by_serializing(data)
    for problem in (_NAN, _NUL, _SURROGATE):  # the order json.dumps finds them in
        if problem in found:
            return problem
    return None


def _check_text(text: str, found: set[str]) -> None:
    if "\x00" in text:
        found.add(_NUL)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            found.add(_SURROGATE)


def _problem_by_serializing(data: Any) -> str | None:
    try:
        text = json.dumps(data, allow_nan=False, ensure_ascii=False)
    except (ValueError, TypeError):
        return _NAN
    except RecursionError:  # tuples in tuples, which the walk does not count
        return "is nested too deeply"
    if _ESCAPED_NUL.search(text):
        return _NUL
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE
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
