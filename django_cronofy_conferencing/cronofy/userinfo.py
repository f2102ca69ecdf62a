"""UserInfo JSON -> validated dataclasses, section by section.

Lenient where Cronofy documents change (unknown keys, unknown providers, older
shapes), strict about shape. Only a body for the right account (a valid
``sub``) may change anything; within it, each section stands on its own
(``SECTIONS``): the account details (``email``, ``name``, ``zoneinfo``,
``cronofy.type``, ``cronofy.data.authorization``), ``conferencing_profiles``
and the calendar ``profiles``. A section that is missing or invalid is
reported (``UserInfo.problems``, each with its JSON path) and its stored rows
are left as they were; the valid sections are applied. A body none of whose
sections can be read is refused whole (``InvalidResponse``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import InvalidField, InvalidResponse

# Column sizes in models.py: a longer value is a malformed response, not a DB error.
MAX_SUB = 255
MAX_EMAIL = 254
MAX_NAME = 255
MAX_ZONEINFO = 64
MAX_ACCOUNT_TYPE = 64
MAX_SCOPE = 4096
MAX_PROVIDER_NAME = 100
MAX_PROFILE_ID = 255
MAX_PROFILE_NAME = 500
MAX_RELINK_URL = 2048
MAX_PROFILES = 1000
MAX_PROVIDER_SERVICE = 100
MAX_CALENDAR_ID = 255
MAX_CALENDAR_NAME = 500
MAX_CALENDARS_PER_PROFILE = 1000
MAX_CALENDARS = 10_000  # all calendar profiles together
#: Bytes (as JSON) of the keys this app does not model that are kept in ``userinfo``:
#: the rest is dropped, so a huge body of unknown keys is never stored or rendered.
MAX_UNKNOWN_KEYS_JSON = 64 * 1024
# Real UserInfo nests about five levels; deeper bodies are refused before they
# reach json.dumps (recursive) when the JSON column is written.
MAX_DEPTH = 32
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]+\Z")  # \Z: "$" also matches before a final newline
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x1f\x7f-\x9f\s]")


#: The sections of UserInfo that stand on their own, and the stored JSON of the
#: keys the app does not model (``USERINFO``), kept only from a body without
#: invalid sections.
ACCOUNT = "account"
CONFERENCING = "conferencing_profiles"
CALENDAR = "profiles"
USERINFO = "userinfo"
SECTIONS = (ACCOUNT, CONFERENCING, CALENDAR)
#: What each section's problem leaves as it was, in words (logs, admin).
SECTION_LABELS = {
    ACCOUNT: "account details",
    CONFERENCING: "conferencing profiles",
    CALENDAR: "calendar profiles",
    USERINFO: "UserInfo JSON",
}


@dataclass(frozen=True)
class SectionProblem:
    """Why a section was not applied: ``path`` (a JSON path) ``problem``."""

    section: str
    path: str
    problem: str
    #: The section was not in the body (nothing was said about it), rather than invalid.
    missing: bool = False

    @property
    def message(self) -> str:
        return f"{self.path} {self.problem}"

    def as_dict(self) -> dict[str, str]:
        """The form stored in ``LinkedAccount.sync_warnings``."""
        return {"section": self.section, "path": self.path, "problem": self.problem}


@dataclass(frozen=True)
class ConferencingProfileData:
    provider_name: str
    profile_id: str
    profile_name: str
    profile_connected: bool
    profile_relink_url: str = ""


@dataclass(frozen=True)
class CalendarData:
    """One of a calendar profile's ``profile_calendars``: what a picker needs of it."""

    calendar_id: str
    calendar_name: str
    calendar_primary: bool = False
    calendar_readonly: bool = False
    calendar_deleted: bool = False
    calendar_integrated_conferencing_available: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The form stored in ``CalendarProfile.calendars``."""
        return {
            "calendar_id": self.calendar_id,
            "calendar_name": self.calendar_name,
            "calendar_primary": self.calendar_primary,
            "calendar_readonly": self.calendar_readonly,
            "calendar_deleted": self.calendar_deleted,
            "calendar_integrated_conferencing_available": (
                self.calendar_integrated_conferencing_available
            ),
        }


@dataclass(frozen=True)
class CalendarProfileData:
    """One entry of ``cronofy.data.profiles``: a calendar service and its calendars."""

    provider_name: str
    profile_id: str
    profile_name: str
    #: None in the older shape without ``profile_connected``: unknown, not "disconnected".
    profile_connected: bool | None
    provider_service: str = ""
    profile_relink_url: str = ""
    calendars: tuple[CalendarData, ...] = ()

    def calendars_json(self) -> list[dict[str, Any]]:
        return [calendar.as_dict() for calendar in self.calendars]


@dataclass(frozen=True)
class UserInfo:
    sub: str
    account_type: str
    email: str
    name: str
    zoneinfo: str
    scope: str
    #: ``None``: the section is missing or invalid (see ``problems``), so the stored
    #: profiles stay as they are. An empty tuple means "none".
    conferencing_profiles: tuple[ConferencingProfileData, ...] | None
    #: The same for ``cronofy.data.profiles``.
    calendar_profiles: tuple[CalendarProfileData, ...] | None = ()
    #: The body as stored in ``LinkedAccount.userinfo`` (unknown keys bounded), or
    #: None when it is not to be stored (an invalid section, or JSON no column holds).
    raw: dict[str, Any] | None = field(repr=False, compare=False, default_factory=dict)
    #: Whether the account details (``email`` ... ``scope``) were read; when not,
    #: the stored ones stay as they are.
    details_valid: bool = True
    #: The sections not applied, and why (missing ones included).
    problems: tuple[SectionProblem, ...] = ()

    @property
    def warnings(self) -> list[dict[str, str]]:
        """``problems`` as stored in ``LinkedAccount.sync_warnings`` ([] when all is well)."""
        return [problem.as_dict() for problem in self.problems]


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _fail(where: str, problem: str) -> InvalidField:
    return InvalidField(
        f"Invalid UserInfo response: {where} {problem}.", path=where, problem=problem
    )


def _string(
    obj: dict,
    key: str,
    where: str,
    *,
    max_length: int,
    required: bool = False,
    nullable: bool = True,
    non_empty: bool = False,
    ascii_token: bool = False,
) -> str:
    path = f"{where}.{key}" if where else key
    if key not in obj:
        if required:
            raise _fail(path, "is missing")
        return ""
    value = obj[key]
    if value is None and nullable and not required:
        return ""
    if not isinstance(value, str):
        raise _fail(path, f"must be a string, got {_type_name(value)}")
    if len(value) > max_length:
        raise _fail(path, f"is longer than {max_length} characters ({len(value)})")
    if non_empty and not value.strip():
        raise _fail(path, "must not be empty")
    if ascii_token and not _PRINTABLE_ASCII.match(value):
        raise _fail(path, "must be printable ASCII without spaces")
    _refuse_unstorable_text(value, path)
    return value


def _refuse_unstorable_text(value: str, path: str) -> None:
    """Refuse what no database column can hold: NUL and lone surrogates."""
    if "\x00" in value:
        raise _fail(path, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(path, "is not valid Unicode (a lone surrogate)") from None


def _relink_url(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _fail(path, f"must be a string, got {_type_name(value)}")
    if len(value) > MAX_RELINK_URL:
        raise _fail(path, f"is longer than {MAX_RELINK_URL} characters ({len(value)})")
    _refuse_unstorable_text(value, path)
    if _CONTROL_OR_SPACE.search(value):
        raise _fail(path, "contains whitespace or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # noqa: F841 - raises ValueError on a malformed port
    except ValueError:
        raise _fail(path, "is not a valid URL") from None
    if parts.scheme != "https":
        raise _fail(path, "must be an https URL")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise _fail(path, "must be an https URL with a host and no credentials")
    return value


def _profile(item: Any, index: int, seen: set[str]) -> ConferencingProfileData:
    where = f"cronofy.data.conferencing_profiles[{index}]"
    common = _profile_fields(item, where, seen)
    return ConferencingProfileData(**common)


def _boolean(obj: dict, key: str, where: str) -> bool:
    """An optional flag: absent or null reads as false, anything but a boolean is refused."""
    value = obj.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _fail(f"{where}.{key}", f"must be a boolean, got {_type_name(value)}")
    return value


def _unique_id(item: dict, key: str, where: str, max_length: int, seen: set[str], what: str) -> str:
    """A required printable-ASCII id, not seen before in its list."""
    value = _string(
        item, key, where, max_length=max_length, required=True, non_empty=True, ascii_token=True
    )
    if value in seen:
        raise _fail(f"{where}.{key}", f"duplicates an earlier {what} ({value!r})")
    seen.add(value)
    return value


def _calendar(item: Any, where: str, seen: set[str]) -> CalendarData:
    if not isinstance(item, dict):
        raise _fail(where, f"must be an object, got {_type_name(item)}")
    calendar_id = _unique_id(item, "calendar_id", where, MAX_CALENDAR_ID, seen, "calendar")
    return CalendarData(
        calendar_id=calendar_id,
        calendar_name=_string(item, "calendar_name", where, max_length=MAX_CALENDAR_NAME),
        calendar_primary=_boolean(item, "calendar_primary", where),
        calendar_readonly=_boolean(item, "calendar_readonly", where),
        calendar_deleted=_boolean(item, "calendar_deleted", where),
        calendar_integrated_conferencing_available=_boolean(
            item, "calendar_integrated_conferencing_available", where
        ),
    )


def _calendar_profile(
    item: Any, index: int, seen: set[str], budget: list[int]
) -> CalendarProfileData:
    where = f"cronofy.data.profiles[{index}]"
    common = _profile_fields(item, where, seen, connection_required=False)
    service = _string(item, "provider_service", where, max_length=MAX_PROVIDER_SERVICE)
    calendars: tuple[CalendarData, ...] = ()
    items = item.get("profile_calendars")
    if items is not None:
        path = f"{where}.profile_calendars"
        if not isinstance(items, list):
            raise _fail(path, f"must be an array, got {_type_name(items)}")
        if len(items) > MAX_CALENDARS_PER_PROFILE:
            raise _fail(path, f"has more than {MAX_CALENDARS_PER_PROFILE} entries")
        budget[0] -= len(items)
        if budget[0] < 0:
            raise _fail("cronofy.data.profiles", f"list more than {MAX_CALENDARS} calendars")
        seen_calendars: set[str] = set()
        calendars = tuple(
            _calendar(entry, f"{path}[{i}]", seen_calendars) for i, entry in enumerate(items)
        )
    return CalendarProfileData(**common, provider_service=service, calendars=calendars)


def _profile_fields(
    item: Any, where: str, seen: set[str], *, connection_required: bool = True
) -> dict[str, Any]:
    """The fields both kinds of profile share, validated the same way.

    Without ``connection_required`` (calendar profiles, whose older shape has no
    ``profile_connected``) a missing connection state reads as None: unknown.
    """
    if not isinstance(item, dict):
        raise _fail(where, f"must be an object, got {_type_name(item)}")
    profile_id = _unique_id(item, "profile_id", where, MAX_PROFILE_ID, seen, "profile")
    provider_name = _string(
        item,
        "provider_name",
        where,
        max_length=MAX_PROVIDER_NAME,
        required=True,
        non_empty=True,
        ascii_token=True,
    )
    profile_name = _string(item, "profile_name", where, max_length=MAX_PROFILE_NAME)
    connected: bool | None = None
    if "profile_connected" in item:
        connected = item["profile_connected"]
        if not isinstance(connected, bool):
            problem = f"must be a boolean, got {_type_name(connected)}"
            raise _fail(f"{where}.profile_connected", problem)
    elif connection_required:
        raise _fail(f"{where}.profile_connected", "is missing")
    relink = item.get("profile_relink_url")
    if relink is not None:
        relink = _relink_url(relink, f"{where}.profile_relink_url")
    return {
        "provider_name": provider_name,
        "profile_id": profile_id,
        "profile_name": profile_name,
        "profile_connected": connected,
        # The relink URL only means something while the profile is not connected.
        "profile_relink_url": "" if connected else (relink or ""),
    }


def _storage_problem_at(data: dict) -> SectionProblem | None:
    """What keeps the body from being stored as JSON (``storage_problem``, below), with
    the path of the key it is in. Runs after the modelled fields were checked, so a bad
    value there was reported naming its field; this finds the same problems elsewhere."""
    problem = storage_problem(data, max_depth=MAX_DEPTH)
    if problem is None:
        return None
    path = "the body"
    for key, value in data.items():  # find the key it is in (only on failure: rare)
        inner = value if key == "cronofy.data" and isinstance(value, dict) else None
        candidates = inner.items() if inner is not None else [(key, value)]
        prefix = "cronofy.data." if inner is not None else ""
        found = next(
            (
                f"{prefix}{name}"
                for name, item in candidates
                if isinstance(name, str) and storage_problem({name: item}, max_depth=MAX_DEPTH)
            ),
            None,
        )
        if found is not None:
            path = found
            break
    return SectionProblem(USERINFO, path, problem)


#: ``cronofy.data`` not in the body (older shapes).
_ABSENT = object()


def _account_details(data: dict, cronofy_data: Any) -> dict[str, str]:
    """The account details section: top-level strings and ``cronofy.data.authorization``."""
    details = {
        "email": _string(data, "email", "", max_length=MAX_EMAIL),
        "name": _string(data, "name", "", max_length=MAX_NAME),
        "zoneinfo": _string(data, "zoneinfo", "", max_length=MAX_ZONEINFO),
        "account_type": _string(data, "cronofy.type", "", max_length=MAX_ACCOUNT_TYPE),
        "scope": "",
    }
    if cronofy_data is _ABSENT:
        return details
    if not isinstance(cronofy_data, dict):
        raise _fail("cronofy.data", f"must be an object, got {_type_name(cronofy_data)}")
    authorization = cronofy_data.get("authorization")
    if authorization is not None:
        if not isinstance(authorization, dict):
            raise _fail(
                "cronofy.data.authorization", f"must be an object, got {_type_name(authorization)}"
            )
        details["scope"] = _string(
            authorization, "scope", "cronofy.data.authorization", max_length=MAX_SCOPE
        )
    return details


def _profile_list(cronofy_data: dict, key: str) -> list:
    path = f"cronofy.data.{key}"
    items = cronofy_data[key]
    if not isinstance(items, list):
        raise _fail(path, f"must be an array, got {_type_name(items)}")
    if len(items) > MAX_PROFILES:
        raise _fail(path, f"has more than {MAX_PROFILES} entries")
    return items


def _conferencing_section(cronofy_data: dict) -> tuple[ConferencingProfileData, ...]:
    seen: set[str] = set()
    items = _profile_list(cronofy_data, CONFERENCING)
    return tuple(_profile(item, index, seen) for index, item in enumerate(items))


def _calendar_section(cronofy_data: dict) -> tuple[CalendarProfileData, ...]:
    seen: set[str] = set()
    budget = [MAX_CALENDARS]
    items = _profile_list(cronofy_data, CALENDAR)
    return tuple(_calendar_profile(item, index, seen, budget) for index, item in enumerate(items))


def parse_userinfo(data: Any, *, expected_sub: str | None = None) -> UserInfo:
    """Validate a decoded UserInfo body; ``expected_sub`` is the account's Cronofy id.

    Raises ``InvalidResponse`` for a body that is not for this account (no object,
    a bad or foreign ``sub``) or none of whose sections can be read. Otherwise each
    section is read on its own: one that is missing or invalid is ``None`` (the
    account details: ``details_valid`` False) and listed in ``problems``.
    """
    if not isinstance(data, dict):
        raise InvalidResponse(
            f"Invalid UserInfo response: the body must be a JSON object, got {_type_name(data)}."
        )
    try:
        sub = _string(
            data, "sub", "", max_length=MAX_SUB, required=True, non_empty=True, ascii_token=True
        )
    except InvalidField as exc:  # the body is refused whole: the error callers know
        raise InvalidResponse(str(exc)) from None
    if expected_sub is not None and sub != expected_sub:
        raise InvalidResponse(
            "Invalid UserInfo response: sub belongs to another Cronofy account "
            f"(expected {expected_sub!r})."
        )
    problems: list[SectionProblem] = []

    def section(name: str, read: Any) -> Any:
        try:
            return read()
        except InvalidField as exc:
            problems.append(SectionProblem(name, exc.path, exc.problem))
            return None

    cronofy_data = data.get("cronofy.data", _ABSENT)
    details = section(ACCOUNT, lambda: _account_details(data, cronofy_data))
    profiles: dict[str, Any] = {}
    for name, read in ((CONFERENCING, _conferencing_section), (CALENDAR, _calendar_section)):
        if cronofy_data is _ABSENT or (isinstance(cronofy_data, dict) and name not in cronofy_data):
            # Older shapes, service accounts, application calendars: nothing was said
            # about this section, so what is stored stays as it is.
            problems.append(SectionProblem(name, f"cronofy.data.{name}", "is missing", True))
            profiles[name] = None
        elif not isinstance(cronofy_data, dict):
            problem = f"must be an object, got {_type_name(cronofy_data)}"
            problems.append(SectionProblem(name, "cronofy.data", problem))
            profiles[name] = None
        else:
            profiles[name] = section(name, lambda read=read: read(cronofy_data))

    invalid = [problem for problem in problems if not problem.missing]
    readable = details is not None or any(value is not None for value in profiles.values())
    if invalid and not readable:
        raise InvalidResponse(
            "Invalid UserInfo response: "
            + "; ".join(dict.fromkeys(problem.message for problem in invalid))
            + "."
        )
    # The JSON is kept only from a body without invalid sections (``userinfo`` is the
    # last valid body), and only what a JSON column holds.
    raw: dict[str, Any] | None = None
    if not invalid:
        unstorable = _storage_problem_at(data)
        if unstorable is None:
            raw = kept_keys(data, budget=MAX_UNKNOWN_KEYS_JSON)
        else:
            problems.append(unstorable)
    details_valid = details is not None
    details = details or {}
    return UserInfo(
        sub=sub,
        account_type=details.get("account_type", ""),
        email=details.get("email", ""),
        name=details.get("name", ""),
        zoneinfo=details.get("zoneinfo", ""),
        scope=details.get("scope", ""),
        conferencing_profiles=profiles[CONFERENCING],
        calendar_profiles=profiles[CALENDAR],
        raw=raw,
        details_valid=details_valid,
        problems=tuple(problems),
    )


# -- what of the body is stored: the bounds of the ``userinfo`` JSON column -------------
#
# Apart from the validation of the modelled fields above, which calls these last
# and owns the limits (``MAX_DEPTH`` and ``MAX_UNKNOWN_KEYS_JSON`` are passed in).

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
                        _note_text_problems(key, found)
                    else:
                        odd = True
                values = container.values()
            else:
                values = container
            for value in values:
                kind = type(value)
                if kind is str:
                    _note_text_problems(value, found)
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


def _note_text_problems(text: str, found: set[str]) -> None:
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
