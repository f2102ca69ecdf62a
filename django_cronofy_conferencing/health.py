"""The fleet's health in figures: what ``manage.py cronofy_status`` prints and the
admin's fleet page shows.

``fleet_health()`` reads them in a fixed number of queries whatever the number
of accounts (six, plus the cache for the last sweep and the rate limits):
accounts by status, due by reason (``due_by_reason``), failing by reason
(``FAILURE_REASONS``, also how the admin puts an error in words), disconnected
conferencing and calendar profiles by provider, accounts without a push
channel, the last notification received, the last sweep, each application's
rate-limit use. ``parse_condition`` reads ``--fail-when`` conditions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Case, Count, Max, Q, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from .conf import app_settings
from .cronofy.applications import configured_applications
from .cronofy.ratelimit import RateLimiter, guarded
from .exceptions import ConditionError
from .models import CalendarProfile, ConferencingProfile, LinkedAccount, PushNotification

Status = LinkedAccount.Status

# -- why accounts are due ---------------------------------------------------------------


def due_reasons(now: datetime | None = None) -> dict[str, Q]:
    """Why an active account is due for a sync, as disjoint filters whose union is
    ``LinkedAccount.objects.due(now=now)`` (a test holds the two together).

    The one place to extend when ``due()`` learns a new schedule (a push-first
    schedule adds its reasons here).
    """
    cutoff = (now or timezone.now()) - timedelta(seconds=app_settings.SYNC_STALE_AFTER)
    return {
        "never_synced": Q(last_synced_at__isnull=True),
        "stale": Q(last_synced_at__lte=cutoff),
    }


#: Words for each reason of ``due_reasons`` (the admin and the terminal).
DUE_REASON_LABELS = {
    "never_synced": _("never synced"),
    "stale": _("not synced within SYNC_STALE_AFTER"),
}


def due_by_reason(now: datetime | None = None) -> dict[str, int]:
    """How many active accounts are due, by reason (``due_reasons``): one query."""
    reasons = due_reasons(now)
    counts = LinkedAccount.objects.active().aggregate(
        **{name: Count("pk", filter=condition) for name, condition in reasons.items()}
    )
    return {name: counts[name] or 0 for name in reasons}


# -- why syncs fail ---------------------------------------------------------------------


@dataclass(frozen=True)
class FailureReason:
    """A kind of sync failure: its words for people, and how to recognise it.

    ``markers`` are pieces of the stored error text (``last_sync_error``, written
    from the app's own exception messages), matched case-insensitively, first
    reason first.
    """

    code: str
    label: str
    advice: str
    markers: tuple[str, ...] = ()


FAILURE_REASONS: tuple[FailureReason, ...] = (
    FailureReason(
        "reauthorization",
        _("Cronofy access was withdrawn"),
        _(
            "The user must connect Cronofy again: send them the reconnect link. "
            "Syncing again cannot help."
        ),
        (
            "refused the grant",
            "rejected the access token",
            "needs to be connected again",
            "has no access token stored",
            "no longer exists",
        ),
    ),
    FailureReason(
        "rate_limited",
        _("Cronofy's rate limit was reached"),
        _(
            "The next sync tries again. If it keeps happening, lower SYNC_CONCURRENCY or "
            "ask Cronofy for a higher limit."
        ),
        ("rate limit reached",),
    ),
    FailureReason(
        "unavailable",
        _("Cronofy could not be reached"),
        _("Usually temporary: the next sync tries again."),
        ("failed with HTTP 5", "timed out", "could not reach cronofy", "did not answer"),
    ),
    FailureReason(
        "configuration",
        _("This site's Cronofy settings need fixing"),
        _(
            "A setting is missing or wrong (the detail names it): fix it, then sync again. "
            "Syncing before cannot help."
        ),
        (
            "no cronofy application is configured",
            "is required to talk to cronofy",
            "cannot be decrypted",
            "invalid_client",
        ),
    ),
    FailureReason(
        "invalid_response",
        _("Cronofy sent an answer the app cannot use"),
        _(
            "Nothing was changed. If it persists, report the detail to Cronofy or to the "
            "app's maintainers."
        ),
        ("invalid ",),
    ),
    FailureReason(
        "refused",
        _("Cronofy refused the request"),
        _("See the detail; if it persists, report it to the app's maintainers."),
        ("cronofy answered http 4", "cronofy refused"),
    ),
)

OTHER_FAILURE = FailureReason(
    "other",
    _("The sync failed"),
    _("See the detail; the next sync tries again."),
)
FAILURE_REASON_CODES = (*(r.code for r in FAILURE_REASONS), OTHER_FAILURE.code)


def failure_reason(error: str) -> FailureReason | None:
    """The reason of a stored error text (None for no error)."""
    if not error:
        return None
    text = error.lower()
    for reason in FAILURE_REASONS:
        if any(marker.lower() in text for marker in reason.markers):
            return reason
    return OTHER_FAILURE


def failure_reason_by_code(code: str) -> FailureReason | None:
    return next((r for r in (*FAILURE_REASONS, OTHER_FAILURE) if r.code == code), None)


def failure_reason_expression() -> Case:
    """``failure_reason`` in SQL (for an ``annotate``): the same markers, in the same order."""
    return Case(
        *(
            When(last_sync_error__icontains=marker, then=Value(reason.code))
            for reason in FAILURE_REASONS
            for marker in reason.markers
        ),
        default=Value(OTHER_FAILURE.code),
    )


def failing() -> Q:
    """Active accounts whose last sync failed."""
    return Q(status=Status.ACTIVE, consecutive_failures__gt=0)


# -- the last sweep (recorded in the rate limit's cache) --------------------------------

SWEEP_KEY = "cronofy_conferencing:last-sweep"


def record_sweep(kind: str, *, synced: int = 0, failed: int = 0, queued: int = 0) -> None:
    """Remember that a sweep of the due accounts finished (``cronofy_sync``, the queued
    fan-out), in ``RATE_LIMIT_CACHE``: shared by every process when that cache is
    (Redis, as the rate limit wants)."""
    value = {
        "finished_at": timezone.now().isoformat(),
        "kind": kind,
        "synced": synced,
        "failed": failed,
        "queued": queued,
    }
    cache = caches[app_settings.RATE_LIMIT_CACHE]
    guarded("the last sweep", lambda: cache.set(SWEEP_KEY, value, timeout=None), None)


def last_sweep() -> dict[str, Any] | None:
    """The last sweep ``record_sweep`` remembered (``finished_at`` a datetime), or None."""
    cache = caches[app_settings.RATE_LIMIT_CACHE]
    value = guarded("the last sweep", lambda: cache.get(SWEEP_KEY), None)
    if not isinstance(value, dict):
        return None
    finished = parse_datetime(str(value.get("finished_at", "")))
    if finished is None:
        return None
    return {**value, "finished_at": finished}


# -- rate limits -------------------------------------------------------------------------


def rate_limit_usage() -> dict[str, list[dict[str, Any]]]:
    """Each configured application's rate-limit use now, by data center
    (``RateLimiter.usage``); empty when ``RATE_LIMITS`` is empty."""
    try:
        applications = configured_applications()
    except ImproperlyConfigured:
        return {}
    usage: dict[str, list[dict[str, Any]]] = {}
    for dc_id, application in sorted(applications.items()):
        limiter = RateLimiter.from_settings(application.budget_key)
        if limiter is None:
            return {}
        usage[dc_id] = [
            {
                "rate": f"{u.rate.limit}/{u.rate.period}s",
                "in_use": round(u.in_use, 3),
                "queued": u.queued,
                "queued_seconds": round(u.queued_seconds, 3),
            }
            for u in limiter.usage()
        ]
    return usage


# -- the figures -------------------------------------------------------------------------


@dataclass
class FleetHealth:
    """The fleet's figures at ``generated_at`` (``fleet_health``)."""

    generated_at: datetime
    accounts: dict[str, int]
    due: dict[str, int]
    failing: dict[str, int]
    #: Present disconnected profiles of active accounts by provider, and all present ones.
    profiles_disconnected: dict[str, int]
    profiles_present: int
    calendar_profiles_disconnected: dict[str, int]
    calendar_profiles_present: int
    without_push_channel: int
    push_configured: bool
    last_notification_at: datetime | None
    last_sweep: dict[str, Any] | None
    rate_limits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.accounts.values())

    @property
    def active(self) -> int:
        return self.accounts.get(Status.ACTIVE, 0)

    @property
    def due_total(self) -> int:
        return sum(self.due.values())

    @property
    def failing_total(self) -> int:
        return sum(self.failing.values())

    def as_json(self) -> dict[str, Any]:
        """The JSON of ``cronofy_status --json`` (keys fixed by DESIGN.md "Operators")."""
        sweep = None
        if self.last_sweep is not None:
            sweep = {**self.last_sweep, "finished_at": self.last_sweep["finished_at"].isoformat()}
        return {
            "generated_at": self.generated_at.isoformat(),
            "accounts": dict(self.accounts),
            "due": {"total": self.due_total, "by_reason": dict(self.due)},
            "failing": {"total": self.failing_total, "by_reason": dict(self.failing)},
            "profiles_disconnected": dict(self.profiles_disconnected),
            "calendar_profiles_disconnected": dict(self.calendar_profiles_disconnected),
            "without_push_channel": self.without_push_channel,
            "push_notifications_configured": self.push_configured,
            "last_notification_at": (
                self.last_notification_at.isoformat() if self.last_notification_at else None
            ),
            "last_sweep": sweep,
            "rate_limits": self.rate_limits,
        }


def _by_provider(model: type) -> tuple[dict[str, int], int]:
    rows = (
        model.objects.present()
        .filter(account__status=Status.ACTIVE)
        .values("provider_name")
        .annotate(
            present=Count("pk"),
            disconnected=Count("pk", filter=Q(profile_connected=False)),
        )
        .order_by("provider_name")
    )
    present = 0
    disconnected: dict[str, int] = {}
    for row in rows:
        present += row["present"]
        if row["disconnected"]:
            disconnected[row["provider_name"]] = row["disconnected"]
    return disconnected, present


def fleet_health(now: datetime | None = None) -> FleetHealth:
    """Every figure of the fleet, in six queries whatever its size."""
    now = now or timezone.now()
    active = Q(status=Status.ACTIVE)
    counts = LinkedAccount.objects.aggregate(
        **{status.value: Count("pk", filter=Q(status=status)) for status in Status},
        without_push_channel=Count("pk", filter=active & Q(channel_id="")),
    )
    failing_rows = (
        LinkedAccount.objects.filter(failing())
        .annotate(reason=failure_reason_expression())
        .values("reason")
        .annotate(n=Count("pk"))
        .order_by("reason")
    )
    failing_counts = {row["reason"]: row["n"] for row in failing_rows}
    profiles, profiles_present = _by_provider(ConferencingProfile)
    calendar, calendar_present = _by_provider(CalendarProfile)
    last = PushNotification.objects.filter(signature_valid=True).aggregate(at=Max("received_at"))
    return FleetHealth(
        generated_at=now,
        accounts={status.value: counts[status.value] or 0 for status in Status},
        due=due_by_reason(now),
        failing={
            code: failing_counts[code] for code in FAILURE_REASON_CODES if code in failing_counts
        },
        profiles_disconnected=profiles,
        profiles_present=profiles_present,
        calendar_profiles_disconnected=calendar,
        calendar_profiles_present=calendar_present,
        without_push_channel=counts["without_push_channel"] or 0,
        push_configured=bool(app_settings.PUSH_NOTIFICATIONS_CALLBACK_URL),
        last_notification_at=last["at"],
        last_sweep=last_sweep(),
        rate_limits=rate_limit_usage(),
    )


# -- --fail-when conditions -------------------------------------------------------------

_CONDITION = re.compile(
    r"^\s*(?P<name>[a-z_]+)(?:\.(?P<key>[^\s<>=!]+))?\s*(?P<op>>=|<=|==|!=|>|<|=)\s*"
    r"(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>%|s|m|h|d)?\s*$"
)
_OPERATORS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Figures ``--fail-when`` knows, and what a percentage of each is taken of.
COUNT_FIGURES = {
    "accounts": "linked accounts",
    "due": "active accounts",
    "failing": "active accounts",
    "without_push_channel": "active accounts",
    "profiles_disconnected": "present conferencing profiles of active accounts",
    "calendar_profiles_disconnected": "present calendar profiles of active accounts",
}
AGE_FIGURES = ("last_notification_age", "last_sweep_age")


@dataclass(frozen=True)
class Condition:
    """``NAME[.KEY] OP VALUE[%|s|m|h|d]``: held when the figure compares true."""

    text: str
    name: str
    key: str | None
    operator: str
    value: float
    percent: bool

    def measure(self, health: FleetHealth) -> tuple[float, str]:
        """The figure (a count, a percentage or an age in seconds) and how to say it."""
        if self.name in AGE_FIGURES:
            when = (
                health.last_notification_at
                if self.name == "last_notification_age"
                else (health.last_sweep or {}).get("finished_at")
            )
            if when is None:
                return math.inf, "never"
            age = max(0.0, (health.generated_at - when).total_seconds())
            return age, f"{age:.0f} s"
        count, base = self._count(health)
        if not self.percent:
            return float(count), str(count)
        share = 100.0 * count / base if base else 0.0
        return share, f"{share:.1f}% ({count} of {base} {COUNT_FIGURES[self.name]})"

    def _count(self, health: FleetHealth) -> tuple[int, int]:
        key = self.key
        if self.name == "accounts":
            return health.accounts.get(key or "", 0), health.total
        if self.name == "due":
            return (health.due.get(key, 0) if key else health.due_total), health.active
        if self.name == "failing":
            return (health.failing.get(key, 0) if key else health.failing_total), health.active
        if self.name == "without_push_channel":
            return health.without_push_channel, health.active
        if self.name == "profiles_disconnected":
            found = health.profiles_disconnected
            return (found.get(key, 0) if key else sum(found.values())), health.profiles_present
        found = health.calendar_profiles_disconnected
        return (found.get(key, 0) if key else sum(found.values())), health.calendar_profiles_present

    def holds(self, health: FleetHealth) -> tuple[bool, str]:
        measured, said = self.measure(health)
        return _OPERATORS[self.operator](measured, self.value), said


def parse_condition(text: str) -> Condition:
    """Read ``failing>5%``, ``accounts.reauthorization_required>=10``,
    ``profiles_disconnected.zoom>0``, ``last_sweep_age>2h``...; ``ConditionError`` otherwise."""
    match = _CONDITION.match(text or "")
    if not match:
        raise ConditionError(
            f"{text!r} is not NAME OP VALUE (for example failing>5%, due>=100, last_sweep_age>2h)."
        )
    name, key, unit = match["name"], match["key"], match["unit"]
    value = float(match["value"])
    known = (*COUNT_FIGURES, *AGE_FIGURES)
    if name not in known:
        raise ConditionError(f"{text!r}: unknown figure {name!r}; use one of {', '.join(known)}.")
    if name in AGE_FIGURES:
        if key or unit == "%":
            raise ConditionError(f"{text!r}: {name} is an age: give seconds, or s, m, h or d.")
        return Condition(text, name, None, match["op"], value * _SECONDS.get(unit or "s", 1), False)
    if unit not in (None, "%"):
        raise ConditionError(f"{text!r}: {name} is a count: give a number or a percentage.")
    allowed = {
        "accounts": [status.value for status in Status],
        "due": list(DUE_REASON_LABELS),
        "failing": list(FAILURE_REASON_CODES),
        "without_push_channel": [],
    }.get(name)
    if name == "accounts" and not key:
        raise ConditionError(f"{text!r}: name a status: accounts.{'|'.join(allowed or [])}.")
    if key and allowed is not None and key not in allowed:
        choices = ", ".join(allowed) or "none"
        raise ConditionError(f"{text!r}: {name} has no {key!r} (known: {choices}).")
    return Condition(text, name, key, match["op"], value, unit == "%")
