"""Whether each Cronofy application's budget covers its fleet: ``budget_outlook()``.

An estimate from the stored accounts and the settings, no Cronofy call: per
application (``RATE_LIMITS`` is each one's own), the calls a day its fleet
needs to stay within its windows (``SYNC_CONFIRM_AFTER`` for accounts whose
push channel Cronofy confirmed, ``SYNC_STALE_AFTER`` for the others, plus the
daily channel confirmation), against what ``FLEET_BUDGET_SHARE`` of its
slowest rate allows in a day. ``cronofy_sync`` warns in its summary when a
fleet needs more than that (it would fall further behind every day), the
system check W011 says so at ``migrate`` / ``check --database``, and an
operator's status page can show the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from ..conf import app_settings
from ..cronofy.client import budget_for
from ..cronofy.ratelimit import RateLimiter, parse_rate
from ..models import LinkedAccount, push_confirmed

__all__ = ["ACCESS_TOKEN_LIFETIME", "BudgetOutlook", "budget_outlook", "calls_per_sync"]

DAY = 86400.0
#: Seconds an access token lasts (Cronofy's documented hour); a sync after longer
#: than this, less ``TOKEN_REFRESH_MARGIN``, refreshes first: two calls.
ACCESS_TOKEN_LIFETIME = 3600.0


@dataclass(frozen=True)
class BudgetOutlook:
    """One application's budget against its fleet's needs (estimates, calls a day)."""

    #: The application (``cronofy.client.budget_for``) and its data centers.
    budget: str
    data_centers: tuple[str, ...]
    #: Active accounts drawing on it, and how many of them are polled only every
    #: ``SYNC_CONFIRM_AFTER`` (push channel confirmed).
    accounts: int
    push_confirmed: int
    #: Calls a day the fleet needs: syncs (with their token refreshes) and the daily
    #: channel confirmations.
    calls_needed: float
    #: Calls a day ``FLEET_BUDGET_SHARE`` of the slowest rate of ``RATE_LIMITS``
    #: allows (None: no rate limit configured).
    calls_allowed: float | None

    @property
    def share_needed(self) -> float | None:
        """``calls_needed / calls_allowed``: above 1, the fleet falls behind."""
        if not self.calls_allowed:
            return None
        return self.calls_needed / self.calls_allowed

    @property
    def covered(self) -> bool:
        share = self.share_needed
        return share is None or share <= 1.0

    def describe(self) -> str:
        where = ", ".join(self.data_centers)
        needed = f"{self.calls_needed:,.0f} Cronofy calls a day for {self.accounts:,} accounts"
        if self.calls_allowed is None:
            return f"{self.budget} ({where}): {needed}; no rate limit configured."
        return (
            f"{self.budget} ({where}): {needed}; FLEET_BUDGET_SHARE of RATE_LIMITS allows "
            f"{self.calls_allowed:,.0f} ({self.share_needed:.0%} needed)."
        )


def calls_per_sync(window: float) -> float:
    """Calls one sync costs when made every ``window`` seconds: UserInfo, and a token
    refresh whenever the token has expired since the last one."""
    lifetime = max(1.0, ACCESS_TOKEN_LIFETIME - float(app_settings.TOKEN_REFRESH_MARGIN))
    return 1.0 + min(1.0, float(window) / lifetime)


def fleet_calls_allowed() -> float | None:
    """Calls a day ``FLEET_BUDGET_SHARE`` of one application's ``RATE_LIMITS`` allows."""
    rates = [parse_rate(r) for r in app_settings.RATE_LIMITS or []]
    if not rates:
        return None
    margin = 1 + RateLimiter.safety_margin
    per_day = min(DAY / (rate.interval * margin) for rate in rates)
    return per_day * float(app_settings.FLEET_BUDGET_SHARE)


def budget_outlook() -> list[BudgetOutlook]:
    """Each application's budget against its fleet's needs, in one query (see the module).

    For ``cronofy_status`` and monitoring: ``[o for o in budget_outlook() if not o.covered]``
    are the applications whose fleet falls behind its windows.
    """
    now = timezone.now()
    stale = float(app_settings.SYNC_STALE_AFTER) or 1.0
    confirm = float(app_settings.SYNC_CONFIRM_AFTER) or 1.0
    push = bool(app_settings.PUSH_NOTIFICATIONS_CALLBACK_URL)
    rows = (
        LinkedAccount.objects.active()
        .order_by()
        .values("data_center")
        .annotate(
            total=Count("pk"),
            confirmed=Count("pk", filter=push_confirmed(now, confirm)),
            with_channel=Count("pk", filter=~Q(channel_id="")),
        )
    )
    allowed = fleet_calls_allowed()
    grouped: dict[str, dict] = {}
    for row in rows:
        entry = grouped.setdefault(
            budget_for(row["data_center"]),
            {"dcs": set(), "total": 0, "confirmed": 0, "channels": 0},
        )
        entry["dcs"].add(row["data_center"])
        entry["total"] += row["total"]
        entry["confirmed"] += row["confirmed"]
        entry["channels"] += row["with_channel"]
    outlooks = []
    for budget, entry in sorted(grouped.items()):
        polled = entry["total"] - entry["confirmed"]
        needed = entry["confirmed"] * DAY / confirm * calls_per_sync(confirm)
        needed += polled * DAY / stale * calls_per_sync(stale)
        if push:  # each channel confirmed once a window (a listing, usually with a refresh)
            needed += entry["channels"] * DAY / confirm * calls_per_sync(confirm)
        outlooks.append(
            BudgetOutlook(
                budget=budget,
                data_centers=tuple(sorted(entry["dcs"])),
                accounts=entry["total"],
                push_confirmed=entry["confirmed"],
                calls_needed=needed,
                calls_allowed=allowed,
            )
        )
    return outlooks
