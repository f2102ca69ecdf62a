"""Diffing a validated UserInfo against the stored rows: what a sync writes and signals.

Pure planning, no queries: ``service`` loads the stored profiles, asks ``plan``
what changed, writes it in bulk and sends the events after the commit. Both
kinds of profile (conferencing and calendar) follow the same rules: created,
updated (``connection_changed_at`` on a connection flip), kept as history with
``removed_at`` when Cronofy stops listing them, restored when they come back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import models
from django.dispatch import Signal

from .. import signals
from ..cronofy.userinfo import (
    SECTION_LABELS,
    CalendarProfileData,
    ConferencingProfileData,
    SectionProblem,
    UserInfo,
)
from ..models import CalendarProfile, ConferencingProfile, LinkedAccount

logger = logging.getLogger(__name__)

PROFILE_UPDATE_FIELDS = [
    "provider_name",
    "profile_name",
    "profile_connected",
    "profile_relink_url",
    "connection_changed_at",
    "removed_at",
]
CALENDAR_PROFILE_UPDATE_FIELDS = [*PROFILE_UPDATE_FIELDS, "provider_service", "calendars"]


@dataclass(frozen=True)
class SyncResult:
    """Counts of one sync: conferencing profiles, then calendar profiles (``calendar_*``)."""

    created: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    calendar_created: int = 0
    calendar_updated: int = 0
    calendar_removed: int = 0
    calendar_unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(
            self.created
            or self.updated
            or self.removed
            or self.calendar_created
            or self.calendar_updated
            or self.calendar_removed
        )


@dataclass(frozen=True)
class _Kind:
    """What differs between the two kinds of profile."""

    model: type[models.Model]
    fields: tuple[str, ...]  # compared and copied from the payload, besides the connection
    added: Signal
    removed: Signal
    disconnected: Signal
    reconnected: Signal


CONFERENCING = _Kind(
    ConferencingProfile,
    ("provider_name", "profile_name", "profile_relink_url"),
    signals.conferencing_profile_added,
    signals.conferencing_profile_removed,
    signals.conferencing_profile_disconnected,
    signals.conferencing_profile_reconnected,
)
CALENDAR = _Kind(
    CalendarProfile,
    ("provider_name", "provider_service", "profile_name", "profile_relink_url", "calendars"),
    signals.calendar_profile_added,
    signals.calendar_profile_removed,
    signals.calendar_profile_disconnected,
    signals.calendar_profile_reconnected,
)


def _values(data: ConferencingProfileData | CalendarProfileData, kind: _Kind) -> dict[str, Any]:
    values = {name: getattr(data, name) for name in kind.fields if name != "calendars"}
    if "calendars" in kind.fields:
        values["calendars"] = data.calendars_json()
    return values


@dataclass
class _Diff:
    to_create: list = field(default_factory=list)
    to_update: list = field(default_factory=list)
    unchanged: int = 0
    removed: int = 0

    @property
    def updated(self) -> int:
        return len(self.to_update) - self.removed


def _diff(
    kind: _Kind,
    account: LinkedAccount,
    items: Iterable[ConferencingProfileData | CalendarProfileData] | None,
    existing: dict[str, models.Model],
    now: datetime,
    events: list[tuple[Signal, models.Model]],
) -> _Diff:
    """Compare one kind's payload entries with its stored rows (``existing``, consumed).

    ``items`` None: the body said nothing about this kind (no ``cronofy.data``), so
    every stored row stays as it is.
    """
    diff = _Diff()
    if items is None:
        diff.unchanged = sum(1 for p in existing.values() if p.removed_at is None)
        return diff
    for data in items:
        values = _values(data, kind)
        profile = existing.pop(data.profile_id, None)
        if profile is None:
            profile = kind.model(
                account=account,
                profile_id=data.profile_id,
                profile_connected=data.profile_connected,
                first_seen_at=now,
                **values,
            )
            diff.to_create.append(profile)
            events.append((kind.added, profile))
            continue
        profile.account = account
        changed = False
        if profile.removed_at is not None:
            profile.removed_at = None
            changed = True
            events.append((kind.added, profile))
        elif profile.profile_connected != data.profile_connected:
            # None is unknown (the older calendar shape): learning a state is no flip,
            # except that a profile now known to be disconnected needs relinking.
            if data.profile_connected is False:
                events.append((kind.disconnected, profile))
            elif data.profile_connected and profile.profile_connected is False:
                events.append((kind.reconnected, profile))
        if profile.profile_connected != data.profile_connected:
            profile.profile_connected = data.profile_connected
            profile.connection_changed_at = now
            changed = True
        for name, value in values.items():
            if getattr(profile, name) != value:
                setattr(profile, name, value)
                changed = True
        if changed:
            diff.to_update.append(profile)
        else:
            diff.unchanged += 1
    for profile in existing.values():
        if profile.removed_at is None:
            profile.account = account
            profile.removed_at = now
            diff.to_update.append(profile)
            diff.removed += 1
            events.append((kind.removed, profile))
    return diff


@dataclass
class Plan:
    """What applying one payload to one account writes, and the signals it sends."""

    account: LinkedAccount
    result: SyncResult
    to_create: list[ConferencingProfile]
    to_update: list[ConferencingProfile]
    events: list[tuple[Signal, models.Model]]
    account_fields: dict[str, object]
    calendars_to_create: list[CalendarProfile] = field(default_factory=list)
    calendars_to_update: list[CalendarProfile] = field(default_factory=list)
    #: The sections of the payload left as stored, and why (``UserInfo.problems``).
    problems: tuple[SectionProblem, ...] = ()
    #: The account object's values before ``adopt`` (what ``restore`` puts back).
    previous: dict[str, object] = field(default_factory=dict, repr=False)

    def adopt(self) -> None:
        """Set the written fields on the account object (``restore`` undoes it)."""
        self.previous = {name: getattr(self.account, name) for name in self.account_fields}
        for name, value in self.account_fields.items():
            setattr(self.account, name, value)

    def restore(self) -> None:
        """The write was rolled back: the account object says what is stored again, so
        writing the same payload once more (after a reconnect) writes the same fields."""
        for name, value in self.previous.items():
            setattr(self.account, name, value)

    def report(self) -> None:
        """Log the sections of the payload left as stored, each with its JSON path."""
        for problem in self.problems:
            # A missing section is Cronofy saying nothing (service accounts, older
            # shapes): worth knowing, not a warning; an invalid one is.
            log = logger.info if problem.missing else logger.warning
            log(
                "Cronofy account %s: UserInfo %s %s; its stored %s were left as they were.",
                self.account.pk,
                problem.path,
                problem.problem,
                SECTION_LABELS.get(problem.section, problem.section),
            )

    def send(self) -> None:
        for signal, profile in self.events:
            signal.send(sender=type(profile), profile=profile)
        signals.account_synced.send(sender=LinkedAccount, account=self.account, result=self.result)


def plan(
    account: LinkedAccount,
    info: UserInfo,
    existing: dict[str, ConferencingProfile],
    now: datetime,
    existing_calendars: dict[str, CalendarProfile] | None = None,
) -> Plan:
    """Compare the payload with the stored profiles (both ``existing`` dicts are consumed)."""
    events: list[tuple[Signal, models.Model]] = []
    conferencing = _diff(CONFERENCING, account, info.conferencing_profiles, existing, now, events)
    calendar = _diff(
        CALENDAR, account, info.calendar_profiles, existing_calendars or {}, now, events
    )
    # A section left as stored writes none of its fields: the account details only
    # when they were read, the UserInfo JSON only from a body without invalid sections.
    account_fields: dict[str, object] = {}
    if info.details_valid:
        account_fields.update(
            email=info.email,
            name=info.name,
            zoneinfo=info.zoneinfo,
            account_type=info.account_type,
            scope=info.scope or account.scope,
        )
    if info.raw is not None:
        account_fields["userinfo"] = info.raw
    account_fields.update(
        sync_warnings=info.warnings,
        last_synced_at=now,
        last_sync_error="",
        consecutive_failures=0,
        updated_at=now,
    )
    result = SyncResult(
        created=len(conferencing.to_create),
        updated=conferencing.updated,
        removed=conferencing.removed,
        unchanged=conferencing.unchanged,
        calendar_created=len(calendar.to_create),
        calendar_updated=calendar.updated,
        calendar_removed=calendar.removed,
        calendar_unchanged=calendar.unchanged,
    )
    return Plan(
        account,
        result,
        conferencing.to_create,
        conferencing.to_update,
        events,
        account_fields,
        calendar.to_create,
        calendar.to_update,
        info.problems,
    )
