"""The simulated Cronofy's events, with conferencing.

Kept apart from ``simulator`` (state and routing of accounts, tokens, channels)
and ``calendars`` (the calendar profiles events go in):

- ``POST /v1/calendars/{calendar_id}/events`` (upsert) answers as Cronofy does:
  ``202 Accepted`` with an empty body, or ``422`` with Cronofy's error shape
  ``{"errors": {field: [{"key", "description"}]}}``. A ``conferencing`` object
  is generated asynchronously: the event reads ``{"pending": true}`` first, then
  carries ``provider_name`` and ``join_url`` once assigned; for a disconnected
  or removed profile (or "integrated" on a calendar without it) it stays
  pending and is marked failing, and is generated on a later attempt once the
  cause is gone (Cronofy keeps retrying).
- ``GET /v1/events`` (read events, ``tzid`` required) lists the account's events.

Choices where Cronofy documents nothing: an unknown calendar is a 404; a
read-only or deleted calendar, an unknown conferencing ``profile_id`` and bad
times are 422s on the field concerned.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .calendars import (
    INTEGRATED_CONFERENCING,
    calendar,
    calendar_profile,
    find_calendar,
    set_calendar_profile_connected,
)

__all__ = [
    "INTEGRATED_CONFERENCING",
    "EventStore",
    "SimEvent",
    "calendar",
    "calendar_profile",
    "generate",
    "handle",
    "match_endpoint",
    "set_calendar_profile_connected",
]

# The simulator imports this module, so nothing here imports it back: handlers take
# its objects duck-typed (``sim``, ``account``, ``request``) and answer an
# ``Answer``, ``(status, JSON data or None for an empty body)``, that it wraps.
Answer = tuple[int, Any]

UPSERT_PATH = re.compile(r"^/v1/calendars/(?P<calendar_id>[^/]+)/events/?$")
READ_PATH = "/v1/events"

MAX_SUMMARY = 1024
MAX_DESCRIPTION = 4096

PENDING, ASSIGNED, FAILING = "pending", "assigned", "failing"


def _id(prefix: str, length: int = 10) -> str:
    return prefix + secrets.token_hex(length // 2)


# -- events -----------------------------------------------------------------------


@dataclass
class SimEvent:
    """An event the app upserted, as the simulator keeps it."""

    sub: str
    calendar_id: str
    event_id: str
    event_uid: str
    body: dict[str, Any] = field(repr=False)
    conferencing: dict[str, Any] | None = None  # what was asked
    status: str | None = None  # None (no conferencing asked), pending, assigned, failing
    details: dict[str, Any] = field(default_factory=dict)  # once assigned
    reads: int = 0
    attempts: int = 0
    updates: int = 0

    def as_read(self) -> dict[str, Any]:
        """The event as ``GET /v1/events`` lists it."""
        event: dict[str, Any] = {
            "calendar_id": self.calendar_id,
            "event_uid": self.event_uid,
            "event_id": self.event_id,
            "summary": self.body.get("summary", ""),
            "description": self.body.get("description", ""),
            "start": self.body.get("start"),
            "end": self.body.get("end"),
            "deleted": False,
            "participation_status": "accepted",
            "transparency": "opaque",
            "event_status": "confirmed",
            "attendees": [],
        }
        if isinstance(self.body.get("location"), dict):
            event["location"] = self.body["location"]
        if self.status is not None:
            event["conferencing"] = (
                dict(self.details) if self.status == ASSIGNED else {"pending": True}
            )
        return event


@dataclass
class EventStore:
    """The simulator's events, by (sub, calendar_id, event_id).

    ``pending_reads``: how many reads see a new conference as pending before it
    is generated (0: generated on the first read). ``generate()`` runs the
    generation now; ``interactions`` records the ``conferencing_assigned`` /
    ``conferencing_failing`` notifications Cronofy would send to an event's
    ``subscriptions``.
    """

    pending_reads: int = 1
    events: dict[tuple[str, str, str], SimEvent] = field(default_factory=dict)
    interactions: list[dict[str, Any]] = field(default_factory=list)

    def get(self, sub: str, event_id: str, calendar_id: str | None = None) -> SimEvent:
        for (event_sub, cal, eid), event in self.events.items():
            if event_sub == sub and eid == event_id and calendar_id in (None, cal):
                return event
        raise KeyError(event_id)

    def for_account(self, sub: str) -> list[SimEvent]:
        return [e for e in self.events.values() if e.sub == sub]


def match_endpoint(method: str, path: str) -> str | None:
    """The endpoint name of an events request, or None."""
    method = method.upper()
    if method == "POST" and UPSERT_PATH.match(path):
        return "upsert_event"
    if method == "GET" and path.rstrip("/") == READ_PATH:
        return "read_events"
    return None


def handle(sim: Any, endpoint: str, account: Any, request: Any, body: Any) -> Answer:
    if endpoint == "upsert_event":
        calendar_id = unquote(UPSERT_PATH.match(request.path).group("calendar_id"))
        return _upsert(sim, account, calendar_id, body)
    params = dict(parse_qsl(request.query or urlsplit(request.path).query))
    if not params.get("tzid"):
        return _invalid({"tzid": [("errors.required", "required")]})
    for event in sim.events.for_account(account.sub):
        event.reads += 1
        if event.status in (PENDING, FAILING) and event.reads > sim.events.pending_reads:
            _attempt(sim, account, event)
    events = [e.as_read() for e in sim.events.for_account(account.sub)]
    return 200, {"pages": {"current": 1, "total": 1}, "events": events}


def generate(sim: Any, sub: str | None = None) -> None:
    """Attempt every pending or failing conference now (of one account, or all)."""
    with sim.lock:
        for event in list(sim.events.events.values()):
            if event.status in (PENDING, FAILING) and sub in (None, event.sub):
                _attempt(sim, sim.accounts[event.sub], event)


def _invalid(errors: dict[str, list[tuple[str, str]]]) -> Answer:
    return 422, {
        "errors": {
            name: [{"key": key, "description": text} for key, text in problems]
            for name, problems in errors.items()
        }
    }


def _parse_time(value: Any) -> datetime | date | None:
    if isinstance(value, dict):
        value = value.get("time")
    if not isinstance(value, str):
        return None
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _validate(account: Any, body: Any) -> dict[str, list[tuple[str, str]]]:
    errors: dict[str, list[tuple[str, str]]] = {}
    if not isinstance(body, dict):
        body = {}
    for name in ("event_id", "summary"):
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            errors[name] = [("errors.required", "required")]
    if isinstance(body.get("summary"), str) and len(body["summary"]) > MAX_SUMMARY:
        errors["summary"] = [("errors.too_long", f"must be at most {MAX_SUMMARY} characters")]
    description = body.get("description")
    if description is not None and (
        not isinstance(description, str) or len(description) > MAX_DESCRIPTION
    ):
        errors["description"] = [
            ("errors.invalid", f"must be a string of at most {MAX_DESCRIPTION} characters")
        ]
    times = {}
    for name in ("start", "end"):
        if name not in body:
            errors[name] = [("errors.required", "required")]
        elif (times.setdefault(name, _parse_time(body[name]))) is None:
            errors[name] = [("errors.invalid", "must be a time or a date")]
    start, end = times.get("start"), times.get("end")
    if start is not None and end is not None:
        if type(start) is not type(end):
            errors["end"] = [("errors.invalid", "must be of the same kind as start")]
        else:
            try:
                if end < start:
                    errors["end"] = [("errors.invalid", "must not be before start")]
            except TypeError:  # naive and aware times
                errors["end"] = [("errors.invalid", "must carry a time zone like start")]
    conferencing = body.get("conferencing")
    if conferencing is not None:
        errors.update(_validate_conferencing(account, conferencing))
    return errors


def _validate_conferencing(account: Any, value: Any) -> dict[str, list[tuple[str, str]]]:
    if not isinstance(value, dict):
        return {"conferencing": [("errors.invalid", "must be an object")]}
    profile_id = value.get("profile_id")
    if not isinstance(profile_id, str) or not profile_id:
        return {"conferencing.profile_id": [("errors.required", "required")]}
    if profile_id == "explicit":
        errors = {}
        if not isinstance(value.get("provider_description"), str):
            errors["conferencing.provider_description"] = [("errors.required", "required")]
        join_url = value.get("join_url")
        if not isinstance(join_url, str) or not join_url.startswith(("https://", "http://")):
            errors["conferencing.join_url"] = [("errors.invalid", "must be an http(s) URL")]
        return errors
    if profile_id in ("default", "integrated"):
        return {}
    if not any(p["profile_id"] == profile_id for p in account.conferencing_profiles):
        return {
            "conferencing.profile_id": [
                ("errors.unknown_profile", "is not a conferencing profile of this account")
            ]
        }
    return {}


def _upsert(sim: Any, account: Any, calendar_id: str, body: Any) -> Answer:
    _profile, entry = find_calendar(account, calendar_id)
    if entry is None:
        return 404, {"error": "not_found"}
    if entry.get("calendar_readonly") or entry.get("calendar_deleted"):
        state = "deleted" if entry.get("calendar_deleted") else "read-only"
        return _invalid({"calendar_id": [("errors.calendar_readonly", f"the calendar is {state}")]})
    errors = _validate(account, body)
    if errors:
        return _invalid(errors)
    key = (account.sub, calendar_id, body["event_id"])
    event = sim.events.events.get(key)
    if event is None:
        event = SimEvent(
            sub=account.sub,
            calendar_id=calendar_id,
            event_id=body["event_id"],
            event_uid=_id("evt_external_", 24),
            body=dict(body),
        )
        sim.events.events[key] = event
    else:
        event.body = dict(body)
        event.updates += 1
    if "conferencing" in body:  # absent: Cronofy leaves the event's conferencing as it is
        event.conferencing = dict(body["conferencing"])
        event.details = {}
        event.reads = 0
        if event.conferencing["profile_id"] == "explicit":
            event.status = ASSIGNED
            event.details = {
                "provider_description": event.conferencing["provider_description"],
                "join_url": event.conferencing["join_url"],
            }
        else:
            event.status = PENDING
            if sim.events.pending_reads == 0:
                _attempt(sim, account, event)
    return 202, None


def _attempt(sim: Any, account: Any, event: SimEvent) -> None:
    """Try to generate the event's conference: assigned, or failing (retried later)."""
    event.attempts += 1
    provider = _provider_for(account, event)
    was_failing = event.status == FAILING
    if provider is None:
        event.status = FAILING
        if not was_failing:
            _notify(sim, event, "conferencing_failing")
        return
    event.status = ASSIGNED
    event.details = {
        "provider_name": provider,
        "join_url": f"https://{provider.replace('_', '-')}.simulated-cronofy.test/j/"
        + secrets.token_hex(6),
    }
    _notify(sim, event, "conferencing_assigned")


def _provider_for(account: Any, event: SimEvent) -> str | None:
    """The provider that generates the conference now, or None when it cannot."""
    profile_id = (event.conferencing or {}).get("profile_id")
    calendar_profile, entry = find_calendar(account, event.calendar_id)
    integrated = None
    if (
        calendar_profile is not None
        and calendar_profile.get("profile_connected")
        and entry.get("calendar_integrated_conferencing_available")
    ):
        integrated = INTEGRATED_CONFERENCING.get(calendar_profile["provider_name"])
    if profile_id == "integrated":
        return integrated
    if profile_id == "default":
        if integrated:
            return integrated
        connected = [p for p in account.conferencing_profiles if p.get("profile_connected")]
        return connected[0]["provider_name"] if connected else None
    for profile in account.conferencing_profiles:
        if profile["profile_id"] == profile_id:
            return profile["provider_name"] if profile.get("profile_connected") else None
    return None  # the profile was removed since the upsert


def _notify(sim: Any, event: SimEvent, interaction: str) -> None:
    for subscription in event.body.get("subscriptions") or []:
        if not isinstance(subscription, dict):
            continue
        wanted = {
            i.get("type") for i in subscription.get("interactions") or [] if isinstance(i, dict)
        }
        if interaction in wanted:
            sim.events.interactions.append(
                {
                    "uri": subscription.get("uri"),
                    "type": interaction,
                    "event": event.as_read(),
                }
            )
