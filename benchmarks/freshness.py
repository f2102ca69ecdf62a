#!/usr/bin/env python
"""Freshness within Cronofy's budget: a simulated day of one application's fleet (issue 21).

    python benchmarks/freshness.py                      # 100,000 accounts, push first
    python benchmarks/freshness.py --accounts 10000
    python benchmarks/freshness.py --no-push            # the baseline: everything polled
    python benchmarks/freshness.py --accounts 300 --hours 3 --json   # the suite's smoke

A day on a *virtual* clock: nothing sleeps for real. Every actor (sweep threads,
users pressing Sync now, Cronofy's push notifications, the channel check) is a
greenlet; the rate limiter's sleeps, the simulated network latency and the
waits between events advance the virtual clock, which Django's
``timezone.now``, the simulated Cronofy and the app's ``RateLimiter`` (built
by the app's own ``from_settings``, with the virtual clock injected) all read.

It drives the app's own scheduler, not a model of it, on an in-memory SQLite
database: ``LinkedAccount.objects.due()`` and the sweep order
(``stream_in_sweep_order``) pick what a ``cronofy_sync`` run every
``--sweep-every`` seconds syncs, ``--concurrency`` actors at a time, through
``fetch_userinfo(..., sweep=True)`` in the background lane (the refresh,
UserInfo and the piggybacked channel confirmation: what ``sync_accounts``'
threads call); users press Sync now (``sync_account``, the user lane) while
sweeps run; conferencing profiles disconnect and Cronofy pushes
``conferencing_profile_disconnected`` to the receiver view (signature,
confirmation, debounce, the bounded resync in the push lane); push channels
die (Cronofy forgets them) and ``check_channels(confirmation_sweep(
unconfirmed=True), repair=True)`` (``cronofy_channels --unconfirmed
--repair``) runs every ``--channels-every`` seconds.

The fleet at the start of the day: ``--confirmed`` of the accounts have a push
channel Cronofy confirmed at their last sync, spread over the last day; the
others have none yet and were synced within the last hour. Each sync's
token expired since the last one (a refresh each time, as with Cronofy's
one-hour tokens).

Prints: Cronofy calls per day (and per account), the share of the daily budget
(``RATE_LIMITS``, 500/min: 720,000 a day) used, the oldest channel
confirmation of any account at any time against ``SYNC_CONFIRM_AFTER``, the
oldest sync against each account's window, disconnection-to-stored-row p50/p99
(with a channel: push; without: the sweep), and the wait of users' calls for
the rate limit while a sweep runs (p50/p99). ``--json`` prints them as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import json
import logging
import random
import sys
import time
from collections import Counter, deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DAY = 86400.0
START = 1_767_571_200.0  # 2026-01-05 00:00 UTC: the virtual day begins here
CALLBACK = "https://app.example/cronofy/notifications/"
PER_MINUTE = 500  # Cronofy's default per application (RATE_LIMITS below)


def configure(push: bool) -> None:
    import django
    from django.conf import settings

    from django_cronofy_conferencing.testing import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    settings.configure(
        SECRET_KEY="benchmark-not-secret",
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "rest_framework",
            "django_cronofy_conferencing",
        ],
        CRONOFY_CONFERENCING={
            "CLIENT_ID": DEFAULT_CLIENT_ID,
            "CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "ENCRYPTION_KEYS": ["GI0i4TOcO9BJJV725ma6TI48G5GMQ3oVAM4A9O6nfXA="],
            "RATE_LIMITS": ["50/s", f"{PER_MINUTE}/m"],
            "FLEET_BUDGET_SHARE": 0.8,
            "SYNC_STALE_AFTER": 3600,
            "SYNC_CONFIRM_AFTER": 86400,
            "PUSH_NOTIFICATIONS_CALLBACK_URL": CALLBACK if push else "",
        },
        LOGGING_CONFIG=None,
    )
    django.setup()


class VirtualTime:
    """A virtual clock and the greenlets that wait on it: ``sleep`` yields to the loop,
    which wakes the earliest sleeper and sets the clock to its time."""

    def __init__(self, start: float) -> None:
        import greenlet

        self.greenlet = greenlet
        self.now = start
        self.loop = greenlet.getcurrent()
        self._queue: list = []
        self._order = itertools.count()
        self.errors: list[BaseException] = []

    def __call__(self) -> float:
        return self.now

    def spawn(self, function, *args, at: float | None = None) -> None:
        def run():
            try:
                function(*args)
            except BaseException as exc:  # reported at the end; the day goes on
                self.errors.append(exc)

        task = self.greenlet.greenlet(run, parent=self.loop)
        heapq.heappush(self._queue, (self.now if at is None else at, next(self._order), task))

    def sleep(self, seconds: float) -> None:
        current = self.greenlet.getcurrent()
        if current is self.loop:
            raise RuntimeError("the event loop itself cannot sleep")
        heapq.heappush(self._queue, (self.now + max(0.0, seconds), next(self._order), current))
        self.loop.switch()

    def run_until(self, end: float) -> None:
        while self._queue and self._queue[0][0] <= end:
            at, _, task = heapq.heappop(self._queue)
            self.now = max(self.now, at)
            task.switch()
        self.now = max(self.now, end)


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Day:
    """The fleet, the actors and what is measured."""

    def __init__(self, args) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.clock = VirtualTime(START)
        self.push = not args.no_push
        self.calls: Counter[str] = Counter()
        self.window = deque()  # request times in the last minute (the limit's check)
        self.max_per_minute = 0
        self.user_waits: list[float] = []
        self.disconnected_at: dict[str, float] = {}
        self.to_stored = {"push": [], "polled": []}
        self.sweeping = False
        self.sweeps = self.skipped_sweeps = 0
        self.oldest_confirmation = {"relied": 0.0, "any": 0.0}
        self.overdue = 0.0

    # -- the virtual world ---------------------------------------------------------

    def install(self) -> None:
        from django.utils import timezone

        from django_cronofy_conferencing.cronofy.client import reset_clients
        from django_cronofy_conferencing.cronofy.ratelimit import Lane, RateLimiter
        from django_cronofy_conferencing.testing import SimulatedCronofy

        clock, day = self.clock, self
        timezone.now = lambda: datetime.fromtimestamp(clock.now, UTC)

        class Recording(RateLimiter):
            def acquire(self, lane=Lane.USER, *, within=None):
                waited = super().acquire(lane, within=within)
                if Lane(lane) is Lane.USER and day.sweeping:
                    day.user_waits.append(waited)
                return waited

        original = RateLimiter.from_settings.__func__

        def from_settings(cls, budget=""):
            made = original(RateLimiter, budget)
            if made is None:
                return None
            return Recording(
                made.rates,
                made.cache_alias,
                clock=clock,
                sleep=clock.sleep,
                budget=budget,
                fleet_share=float(made.fleet_share),
            )

        RateLimiter.from_settings = classmethod(from_settings)
        reset_clients()
        latency = self.args.latency

        class Channels(dict):
            """The simulator's channels, indexed by account: listing one account's
            channels must not scan a hundred thousand of them."""

            def __init__(self) -> None:
                super().__init__()
                self.by_sub: dict[str, set[str]] = {}

            def __setitem__(self, channel_id, channel) -> None:
                super().__setitem__(channel_id, channel)
                self.by_sub.setdefault(channel["sub"], set()).add(channel_id)

            def pop(self, channel_id, *default):
                channel = super().pop(channel_id, *default)
                if isinstance(channel, dict):
                    self.by_sub.get(channel["sub"], set()).discard(channel_id)
                return channel

        class Cronofy(SimulatedCronofy):
            def __init__(self, **kwargs) -> None:
                super().__init__(**kwargs)
                self.channels = Channels()

            def _list_channels(self, account):
                from django_cronofy_conferencing.testing import SimResponse

                listed = [
                    {"channel_id": cid, "callback_url": self.channels[cid]["callback_url"]}
                    for cid in sorted(self.channels.by_sub.get(account.sub, ()))
                ]
                return SimResponse.json(200, {"channels": listed})

            def handle(self, request, data_center=None):
                clock.sleep(latency)  # the network and Cronofy's own time
                day.count(request)
                return super().handle(request, data_center)

        self.sim = Cronofy(clock=clock)

    def count(self, request) -> None:
        now = self.clock.now
        self.window.append(now)
        while self.window[0] <= now - 60:
            self.window.popleft()
        self.max_per_minute = max(self.max_per_minute, len(self.window))

    def seed(self) -> None:
        from django.core.management import call_command

        from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount

        call_command("migrate", verbosity=0)
        rows = []
        self.subs: list[str] = []
        self.channels: dict[str, str] = {}
        for i in range(self.args.accounts):
            sub = f"acc_{i:07d}"
            account = self.sim.add_account(
                sub=sub, conferencing_profiles=[self.sim.profile("zoom", profile_id=f"pro_{i}")]
            )
            confirmed = self.push and self.rng.random() < self.args.confirmed
            synced = START - self.rng.uniform(0, (DAY if confirmed else 3600) - 60)
            self.sim.access_tokens[account.access_token] = (sub, synced + 3600)
            channel_id = ""
            if confirmed:
                channel_id = f"chn_{i:07d}"
                self.sim.channels[channel_id] = {"sub": sub, "callback_url": CALLBACK}
                self.channels[sub] = channel_id
            at = datetime.fromtimestamp(synced, UTC)
            rows.append(
                LinkedAccount(
                    data_center="us",
                    sub=sub,
                    email=account.email,
                    access_token=account.access_token,
                    refresh_token=account.refresh_token,
                    token_expires_at=at + timedelta(hours=1),
                    last_synced_at=at,
                    channel_id=channel_id,
                    channel_confirmed_at=at if confirmed else None,
                )
            )
            self.subs.append(sub)
        LinkedAccount.objects.bulk_create(rows, batch_size=2000)
        ids = dict(LinkedAccount.objects.values_list("sub", "pk"))
        ConferencingProfile.objects.bulk_create(
            (
                ConferencingProfile(
                    account_id=ids[sub],
                    profile_id=f"pro_{i}",
                    provider_name="zoom",
                    profile_name="user@example.com",
                    profile_connected=True,
                )
                for i, sub in enumerate(self.subs)
            ),
            batch_size=2000,
        )

    # -- the actors ------------------------------------------------------------------

    def sweep(self) -> None:
        """One ``cronofy_sync`` run (skipped while the last one still runs, as under flock)."""
        from django_cronofy_conferencing.cronofy.client import get_client
        from django_cronofy_conferencing.cronofy.ratelimit import Lane
        from django_cronofy_conferencing.exceptions import CronofyError, NothingDue
        from django_cronofy_conferencing.models import LinkedAccount
        from django_cronofy_conferencing.sync.service import (
            fetch_userinfo,
            record_failure,
            stream_in_sweep_order,
        )
        from django_cronofy_conferencing.sync.writes import apply_userinfo

        if self.sweeping:
            self.skipped_sweeps += 1
            return
        self.sweeping = True
        self.sweeps += 1
        accounts = stream_in_sweep_order(LinkedAccount.objects.due())
        running = [self.args.concurrency]

        def worker():
            for account in accounts:
                client = get_client(account.data_center, Lane.BACKGROUND)
                try:
                    info = fetch_userinfo(account, client, sweep=True)
                except NothingDue:
                    continue
                except CronofyError as exc:
                    record_failure(account, exc)
                    continue
                apply_userinfo(account, info)
            running[0] -= 1
            if running[0] == 0:
                self.sweeping = False

        for _ in range(self.args.concurrency):
            self.clock.spawn(worker)
        for _ in range(self.args.presses_in_sweeps):  # users press Sync now mid-sweep
            at = self.clock.now + self.rng.uniform(0.5, 2.0)
            self.clock.spawn(self.sync_now, self.rng.choice(self.subs), at=at)

    def sync_now(self, sub: str) -> None:
        from django_cronofy_conferencing.exceptions import CronofyError
        from django_cronofy_conferencing.models import LinkedAccount
        from django_cronofy_conferencing.sync import sync_account

        with contextlib.suppress(CronofyError):  # recorded on the account, as the page shows
            sync_account(LinkedAccount.objects.get(sub=sub))

    def disconnect(self, sub: str) -> None:
        from django.test import RequestFactory

        from django_cronofy_conferencing.testing import NoPushChannel
        from django_cronofy_conferencing.web.notifications import receive

        self.sim.set_connected(
            sub, self.sim.accounts[sub].conferencing_profiles[0]["profile_id"], False
        )
        self.disconnected_at[sub] = self.clock.now
        try:
            body, headers = self.sim.notification(sub, "conferencing_profile_disconnected")
        except NoPushChannel:
            return  # no channel (or it died): the sweep finds it
        request = RequestFactory().post(
            "/cronofy/notifications/",
            data=body,
            content_type="application/json",
            HTTP_CRONOFY_HMAC_SHA256=headers["Cronofy-HMAC-SHA256"],
        )
        assert receive(request).status_code == 200

    def channel_dies(self, sub: str) -> None:
        self.sim.close_channel(self.channels.get(sub, ""))
        for channel_id, channel in list(self.sim.channels.items()):
            if channel["sub"] == sub:
                self.sim.close_channel(channel_id)

    def check_channels(self) -> None:
        from django_cronofy_conferencing.accounts.channels import (
            check_channels,
            confirmation_sweep,
        )

        check_channels(confirmation_sweep(unconfirmed=True), repair=True)

    def stored(self, sender, profile, **kwargs) -> None:
        sub = profile.account.sub
        if sub in self.disconnected_at:
            kind = "push" if self.push and sub in self.channels else "polled"
            self.to_stored[kind].append(self.clock.now - self.disconnected_at.pop(sub))

    # -- measuring -------------------------------------------------------------------

    def sample(self) -> None:
        """The oldest confirmation relied on (an account not polled because of it), the
        oldest of any stored channel, and the longest any due account has waited."""
        from django.db.models import DateTimeField, ExpressionWrapper, F, Min, Value
        from django.db.models.functions import Coalesce, Greatest
        from django.utils import timezone

        from django_cronofy_conferencing.models import LinkedAccount, push_confirmed

        now = timezone.now()
        active = LinkedAccount.objects.active()
        confirmed = push_confirmed(now, 86400)
        due = LinkedAccount.objects.due(now=now)
        relied = active.filter(confirmed).exclude(pk__in=due.values("pk"))
        for key, queryset in (("relied", relied), ("any", active.exclude(channel_id=""))):
            oldest = queryset.aggregate(at=Min("channel_confirmed_at"))["at"]
            if oldest is not None:
                age = (now - oldest).total_seconds()
                self.oldest_confirmation[key] = max(self.oldest_confirmation[key], age)

        def after(field: str, seconds: float):
            return ExpressionWrapper(
                F(field) + Value(timedelta(seconds=seconds)), output_field=DateTimeField()
            )

        # When each due account became due: a confirmed one a window after its sync; any
        # other an hour after its sync, or when its confirmation lapsed, if later.
        since = due.filter(last_synced_at__isnull=False).aggregate(
            confirmed=Min("last_synced_at", filter=confirmed),
            polled=Min(
                Greatest(
                    after("last_synced_at", 3600),
                    Coalesce(after("channel_confirmed_at", 86400), after("last_synced_at", 3600)),
                ),
                filter=~confirmed,
            ),
        )
        if since["confirmed"] is not None:
            late = (now - since["confirmed"]).total_seconds() - 86400
            self.overdue = max(self.overdue, late)
        if since["polled"] is not None:
            polled = since["polled"]
            if isinstance(polled, str):  # SQLite hands the computed datetime back as text
                polled = datetime.fromisoformat(polled).replace(tzinfo=UTC)
            self.overdue = max(self.overdue, (now - polled).total_seconds())

    def run(self) -> dict:
        import responses

        from django_cronofy_conferencing.signals import conferencing_profile_disconnected
        from django_cronofy_conferencing.testing import ResponsesAdapter

        self.install()
        seeded = time.monotonic()
        self.seed()
        seeded = time.monotonic() - seeded
        conferencing_profile_disconnected.connect(self.stored, weak=False)
        args, rng, span = self.args, self.rng, args_hours(self.args) * 3600
        scale = args.accounts / 100_000
        for at in frange(0, span, args.sweep_every):
            self.clock.spawn(self.sweep, at=START + at)
        if self.push:
            for at in frange(args.channels_at, span, args.channels_every):
                self.clock.spawn(self.check_channels, at=START + at)
        per_day = span / DAY
        for _ in range(max(3, round(args.disconnections * scale * per_day))):
            self.clock.spawn(
                self.disconnect, rng.choice(self.subs), at=START + rng.uniform(0, span)
            )
        if self.push:
            for _ in range(max(2, round(args.channel_deaths * scale * per_day))):
                sub = rng.choice(list(self.channels))
                self.clock.spawn(self.channel_dies, sub, at=START + rng.uniform(0, span))
        for _ in range(max(5, round(args.sync_now * scale * per_day))):
            self.clock.spawn(self.sync_now, rng.choice(self.subs), at=START + rng.uniform(0, span))
        started = time.monotonic()
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            ResponsesAdapter(self.sim).install(mock)
            for at in frange(0, span + 1, 900):
                self.clock.run_until(START + at)
                self.sample()
                for request in self.sim.requests:
                    self.calls[request.endpoint] += 1
                self.sim.requests.clear()
                mock.calls.reset()  # memory stays flat over a day
        return self.figures(span, seeded, time.monotonic() - started)

    def figures(self, span: float, seeded: float, ran: float) -> dict:
        total = sum(self.calls.values())
        budget = PER_MINUTE * span / 60
        days = span / DAY
        ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
        return {
            "accounts": self.args.accounts,
            "push": self.push,
            "hours": span / 3600,
            "calls": total,
            "calls_per_day": round(total / days),
            "calls_per_account_per_day": round(total / days / self.args.accounts, 2),
            "calls_by_endpoint": dict(self.calls.most_common()),
            "budget_share": round(total / budget, 4),
            "max_calls_in_a_minute": self.max_per_minute,
            "oldest_confirmation_s": {k: round(v) for k, v in self.oldest_confirmation.items()},
            "confirmation_window_s": 86400,
            "longest_overdue_s": round(self.overdue),
            "disconnection_to_row_ms": {
                kind: {
                    "count": len(values),
                    "p50": ms(percentile(values, 0.5)),
                    "p99": ms(percentile(values, 0.99)),
                }
                for kind, values in self.to_stored.items()
            },
            "user_wait_behind_sweeps_ms": {
                "count": len(self.user_waits),
                "p50": ms(percentile(self.user_waits, 0.5)),
                "p99": ms(percentile(self.user_waits, 0.99)),
                "max": ms(max(self.user_waits, default=None)),
            },
            "user_lane_slot_ms": round(60 / PER_MINUTE * 1.03 * 1000, 1),
            "sweeps": self.sweeps,
            "sweeps_skipped_still_running": self.skipped_sweeps,
            "errors": [f"{type(e).__name__}: {e}" for e in self.clock.errors[:5]],
            "seconds": {"seed": round(seeded, 1), "day": round(ran, 1)},
        }


def frange(start: float, stop: float, step: float):
    value = start
    while value < stop:
        yield value
        value += step


def args_hours(args) -> float:
    return args.hours


def show(f: dict) -> None:
    mode = "push first" if f["push"] else "push disabled (everything polled)"
    print(f"{f['accounts']:,} accounts, one application at {PER_MINUTE}/min, {mode}:")
    print(
        f"  Cronofy calls: {f['calls_per_day']:,} a day ({f['calls_per_account_per_day']} per "
        f"account): {f['budget_share']:.1%} of the daily budget; at most "
        f"{f['max_calls_in_a_minute']} in any minute"
    )
    print(f"  by endpoint: {f['calls_by_endpoint']}")
    oldest = f["oldest_confirmation_s"]
    print(
        f"  oldest confirmation relied on: {oldest['relied'] / 3600:.2f} h (window "
        f"{f['confirmation_window_s'] / 3600:.0f} h); of any stored channel: "
        f"{oldest['any'] / 3600:.2f} h; longest a due account waited: {f['longest_overdue_s']} s"
    )
    for kind, d in f["disconnection_to_row_ms"].items():
        print(f"  disconnection to stored row ({kind}): {d}")
    print(
        f"  user's call behind a sweep: {f['user_wait_behind_sweeps_ms']} "
        f"(one user-lane slot: {f['user_lane_slot_ms']} ms)"
    )
    print(
        f"  {f['sweeps']} sweeps ({f['sweeps_skipped_still_running']} skipped: still running); "
        f"errors: {f['errors'] or 'none'}; seeded in {f['seconds']['seed']} s, "
        f"day simulated in {f['seconds']['day']} s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--confirmed", type=float, default=0.9)
    parser.add_argument("--no-push", action="store_true", help="the baseline: all polled")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sweep-every", type=float, default=300.0)
    parser.add_argument("--channels-at", type=float, default=1800.0)
    parser.add_argument("--channels-every", type=float, default=6 * 3600.0)
    parser.add_argument("--latency", type=float, default=0.15, help="seconds per Cronofy call")
    parser.add_argument("--disconnections", type=int, default=300, help="a day per 100,000")
    parser.add_argument("--channel-deaths", type=int, default=300, help="a day per 100,000")
    parser.add_argument("--sync-now", type=int, default=3000, help="presses a day per 100,000")
    parser.add_argument(
        "--presses-in-sweeps", type=int, default=1, help="Sync now presses as each sweep starts"
    )
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure(push=not args.no_push)
    logging.getLogger("django_cronofy_conferencing").setLevel(logging.ERROR)
    figures = Day(args).run()
    if args.json:
        print(json.dumps(figures))
    else:
        show(figures)


if __name__ == "__main__":
    main()
