"""The fleet's health: ``manage.py cronofy_status [--json] [--fail-when CONDITION ...]``.

Accounts by status, the accounts due for a sync (by reason), failing syncs
(by reason), disconnected conferencing and calendar profiles by provider,
accounts without a push channel, the last push notification received, the
last sweep and each application's rate-limit use (``health.fleet_health``: a
fixed number of queries whatever the fleet's size).

Text for people by default; ``--json`` for machines (keys: ``accounts``,
``due``, ``failing``, ``profiles_disconnected``, ``without_push_channel``,
``last_notification_at``, and more). For monitoring, ``--fail-when`` (repeatable)
exits with status 1 when any condition holds, for example
``--fail-when 'failing>5%' --fail-when 'last_sweep_age>2h'``; a condition that
cannot be read exits with status 2.
"""

from __future__ import annotations

import json
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.timesince import timesince

from ...health import (
    AGE_FIGURES,
    COUNT_FIGURES,
    DUE_REASON_LABELS,
    Condition,
    ConditionError,
    FleetHealth,
    failure_reason_by_code,
    fleet_health,
    parse_condition,
)
from ...models import LinkedAccount
from ...providers import provider_label

#: Exit status when a --fail-when condition holds, and when one cannot be read.
EXIT_CONDITION_HELD = 1
EXIT_BAD_CONDITION = 2


class Command(BaseCommand):
    help = (
        "Show the health of the linked Cronofy accounts: status, due and failing syncs, "
        "disconnected profiles, push channels and notifications, rate limits. "
        "--fail-when CONDITION exits with status 1 when it holds (for monitoring)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON instead of text.")
        parser.add_argument(
            "--fail-when",
            action="append",
            default=[],
            dest="fail_when",
            metavar="CONDITION",
            help="Exit with status 1 when CONDITION holds (repeatable): NAME OP VALUE, "
            "NAME one of "
            + ", ".join([*COUNT_FIGURES, *AGE_FIGURES])
            + " (a dot picks a status, reason or provider: failing.unavailable, "
            "profiles_disconnected.zoom), OP one of > >= < <= = !=, VALUE a number, a "
            "percentage (failing>5%%) or, for ages, seconds or s/m/h/d (last_sweep_age>2h).",
        )

    def handle(self, *args, **options) -> None:
        conditions = []
        for text in options["fail_when"]:
            try:
                conditions.append(parse_condition(text))
            except ConditionError as exc:
                raise CommandError(f"--fail-when: {exc}", returncode=EXIT_BAD_CONDITION) from None
        health = fleet_health()
        held = [(c, said) for c in conditions for holds, said in [c.holds(health)] if holds]
        if options["json"]:
            data = health.as_json()
            if conditions:
                data["fail_when"] = [
                    {"condition": c.text, "held": holds, "value": said}
                    for c in conditions
                    for holds, said in [c.holds(health)]
                ]
            self.stdout.write(json.dumps(data, indent=2, sort_keys=False))
        else:
            self.stdout.write(self.text(health, conditions))
        if held:
            raise CommandError(
                "; ".join(f"--fail-when {c.text} holds: {said}" for c, said in held),
                returncode=EXIT_CONDITION_HELD,
            )

    # -- text for people ---------------------------------------------------------------

    def text(self, health: FleetHealth, conditions: list[Condition]) -> str:
        lines = [f"Cronofy fleet health at {health.generated_at:%Y-%m-%d %H:%M:%S %Z}".rstrip()]
        statuses = ", ".join(
            f"{health.accounts[s.value]} {s.label.lower()}" for s in LinkedAccount.Status
        )
        lines.append(f"Accounts: {health.total} linked: {statuses}")
        lines.append(
            f"Due for a sync: {health.due_total}"
            + _breakdown({str(DUE_REASON_LABELS[k]): v for k, v in health.due.items()})
        )
        reasons = {}
        for code, count in health.failing.items():
            reason = failure_reason_by_code(code)
            reasons[str(reason.label) if reason else code] = count
        share = _percent(health.failing_total, health.active)
        lines.append(
            f"Failing: {health.failing_total} of {health.active} active{share}"
            + _breakdown(reasons)
        )
        for title, found, present in (
            (
                "Disconnected conferencing profiles",
                health.profiles_disconnected,
                health.profiles_present,
            ),
            (
                "Disconnected calendar profiles",
                health.calendar_profiles_disconnected,
                health.calendar_profiles_present,
            ),
        ):
            total = sum(found.values())
            lines.append(
                f"{title}: {total} of {present}"
                + _breakdown({provider_label(k): v for k, v in found.items()})
            )
        channels = (
            f"Without a push channel: {health.without_push_channel} of {health.active} active"
        )
        if not health.push_configured:
            channels += " (push notifications are not configured: PUSH_NOTIFICATIONS_CALLBACK_URL)"
        lines.append(channels)
        lines.append(f"Last push notification: {_when(health.last_notification_at, health)}")
        sweep = health.last_sweep
        if sweep is None:
            lines.append("Last sweep: none recorded (in RATE_LIMIT_CACHE)")
        else:
            counts = (
                f"{sweep.get('queued', 0)} queued"
                if sweep.get("kind") == "queued"
                else f"{sweep.get('synced', 0)} synced, {sweep.get('failed', 0)} failed"
            )
            lines.append(f"Last sweep: {_when(sweep['finished_at'], health)}: {counts}")
        if not health.rate_limits:
            lines.append("Rate limits: none (RATE_LIMITS is empty)")
        for dc_id, rates in health.rate_limits.items():
            said = "; ".join(
                f"{r['rate']} {r['in_use']:.0%} in use, {r['queued']} waiting"
                + (f" ({r['queued_seconds']:.1f} s)" if r["queued"] else "")
                for r in rates
            )
            lines.append(f"Rate limit of the {dc_id!r} application: {said}")
        for condition in conditions:
            holds, said = condition.holds(health)
            lines.append(
                f"--fail-when {condition.text}: {'HOLDS' if holds else 'does not hold'} ({said})"
            )
        return "\n".join(lines)


def _breakdown(counts: dict[str, int]) -> str:
    parts = [f"{name} {count}" for name, count in counts.items() if count]
    return f" ({', '.join(parts)})" if parts else ""


def _percent(part: int, whole: int) -> str:
    return f" ({100 * part / whole:.1f}%)" if whole else ""


def _when(moment: datetime | None, health: FleetHealth) -> str:
    if moment is None:
        return "never"
    return f"{moment:%Y-%m-%d %H:%M:%S %Z} ({timesince(moment, health.generated_at)} ago)"
