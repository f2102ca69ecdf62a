"""RateLimiter: paced slots claimed in Django's cache, with an injected clock and sleep;
the fleet sync's margin (tiny waits within it are not slept)."""

from __future__ import annotations

import random

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_cronofy_conferencing.cronofy import ratelimit
from django_cronofy_conferencing.cronofy.client import CronofyClient, get_client
from django_cronofy_conferencing.cronofy.ratelimit import Rate, RateLimiter, parse_rate
from django_cronofy_conferencing.testing import max_in_window


@pytest.fixture(autouse=True)
def clear_cache():
    caches["default"].clear()
    yield
    caches["default"].clear()


def limiter(clock, *rates: str, margin: float | None = 0.0) -> RateLimiter:
    """No safety margin unless given one (``margin=None``: the class default)."""
    return RateLimiter(
        [parse_rate(r) for r in rates], clock=clock, sleep=clock.sleep, safety_margin=margin
    )


@pytest.mark.parametrize(
    "text, rate",
    [
        ("50/s", Rate(50, 1)),
        ("500/m", Rate(500, 60)),
        ("10/5m", Rate(10, 300)),
        ("1/h", Rate(1, 3600)),
        (" 3 / second ", Rate(3, 1)),
        ("7/min", Rate(7, 60)),
        ("2/2hour", Rate(2, 7200)),
        ("4/sec", Rate(4, 1)),
        ("6/minute", Rate(6, 60)),
        ("8/hours", Rate(8, 3600)),
        ("9/d", Rate(9, 86400)),
        ("1000/day", Rate(1000, 86400)),
    ],
)
def test_parse_rate(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0/s", "abc", "5/w", "", "50", "/s", "-1/s", 5, None])
def test_parse_rate_rejects_malformed(text):
    with pytest.raises(ImproperlyConfigured, match=r"CRONOFY_CONFERENCING\['RATE_LIMITS'\]"):
        parse_rate(text)


def test_requests_are_paced_one_slot_apart(fake_clock):
    rl = limiter(fake_clock, "4/s")
    starts = []
    for _ in range(8):
        rl.acquire()
        starts.append(fake_clock.now)
    assert starts == [1000.0 + 0.25 * i for i in range(8)]
    assert fake_clock.slept == [0.25] * 7


def test_spaced_requests_never_wait(fake_clock):
    rl = limiter(fake_clock, "4/s")
    for _ in range(5):
        assert rl.acquire() == 0.0
        fake_clock.now += 0.25
    assert fake_clock.slept == []


def test_a_request_between_slots_waits_less_than_one_interval(fake_clock):
    rl = limiter(fake_clock, "4/s")
    fake_clock.now = 1000.1
    assert rl.acquire() == 0.0  # an idle budget's slot is now (issue 20, 2.3)
    waited = rl.acquire()  # the next one waits for the next free slot
    assert waited == pytest.approx(0.15)
    assert 0 < waited < 0.25


def test_an_idle_budget_gives_its_slot_now_and_no_window_holds_one_too_many(fake_clock):
    """Before: the first call on an idle 500/m budget waited for the next slot boundary
    (up to 124 ms). A late start past the margin also takes the slot ``limit`` on."""
    rl = limiter(fake_clock, "4/s")  # no margin: every late start takes a second slot
    fake_clock.now = 1000.2  # 0.2 s into slot 4000
    assert rl.acquire() == 0.0
    keys = sorted(k.rsplit(":", 1)[-1] for k in caches["default"]._cache if "ratelimit" in k)
    assert keys == ["4000", "4004"]  # its own slot and the one a period on
    starts = [fake_clock.now]
    for _ in range(6):
        rl.acquire()
        starts.append(fake_clock.now)
    assert starts == [1000.2, 1000.25, 1000.5, 1000.75, 1001.25, 1001.5, 1001.75]
    assert max_in_window(starts, 1.0) <= 4


def test_a_late_start_within_half_the_margin_takes_one_slot(fake_clock):
    rl = limiter(fake_clock, "500/m", margin=None)
    interval = 60 / 500 * 1.03
    fake_clock.now = 10_000 * interval + 0.1  # 100 ms late: within 0.9 s (half the margin)
    assert rl.acquire() == 0.0
    assert len([k for k in caches["default"]._cache if "ratelimit" in k]) == 1


def test_reserve_claims_without_sleeping(fake_clock):
    rl = limiter(fake_clock, "2/s")
    assert [rl.reserve() for _ in range(3)] == [1000.0, 1000.5, 1001.0]
    assert fake_clock.slept == []


def test_the_slowest_rate_sets_the_pace(fake_clock):
    rl = limiter(fake_clock, "10/s", "2/m")
    assert rl.rates == [Rate(2, 60), Rate(10, 1)]
    starts = []
    for _ in range(3):
        rl.acquire()
        starts.append(fake_clock.now)
    # 30 s slots; 1000 is 10 s into slot 33 (990): it starts now and also takes the
    # slot a period on (35: 1050), so the third waits for 1080.
    assert starts == [1000.0, 1020.0, 1080.0]
    assert max_in_window(starts, 60) <= 2


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("margin", [0.0, RateLimiter.safety_margin])
def test_no_window_ever_holds_more_than_the_limit(fake_clock, seed, margin):
    """Bursty random arrivals: any window of `period` seconds, wherever it starts."""
    rng = random.Random(seed)
    rates = ["5/s", "20/m"]
    rl = limiter(fake_clock, *rates, margin=margin)
    starts = []
    for _ in range(60):
        if rng.random() < 0.3:
            fake_clock.now += rng.uniform(0, 5)
        rl.acquire()
        starts.append(fake_clock.now)
    assert starts == sorted(starts)
    for rate in map(parse_rate, rates):
        for i in range(len(starts) - rate.limit):
            assert starts[i + rate.limit] - starts[i] >= rate.period - 1e-9


def test_limiters_share_the_schedule_through_the_cache(fake_clock):
    first, second = limiter(fake_clock, "2/s"), limiter(fake_clock, "2/s")
    assert first.reserve() == 1000.0
    assert second.reserve() == 1000.5  # the other limiter took the first slot
    assert first.reserve() == 1001.0


def test_slots_live_in_the_configured_cache(fake_clock):
    rl = RateLimiter([Rate(1, 1)], "default", clock=fake_clock, sleep=fake_clock.sleep)
    fake_clock.now = 1000 * 1.03  # on the grid: one slot
    rl.acquire()
    keys = [k for k in caches["default"]._cache if RateLimiter.key_prefix in k]
    assert len(keys) == 1


def test_repr_names_rates_and_cache(fake_clock):
    assert repr(limiter(fake_clock, "50/s", "500/m")) == (
        "<RateLimiter 500/60s, 50/1s via cache 'default'>"
    )


def test_from_settings(settings):
    config = settings.CRONOFY_CONFERENCING
    with override_settings(CRONOFY_CONFERENCING={**config, "RATE_LIMITS": []}):
        assert RateLimiter.from_settings() is None
    with override_settings(CRONOFY_CONFERENCING={**config, "RATE_LIMITS": ["50/s", "500/m"]}):
        rl = RateLimiter.from_settings()
        assert set(rl.rates) == {Rate(50, 1), Rate(500, 60)}
        assert rl.cache_alias == "default"
        assert get_client("us").rate_limiter is not None
    assert get_client("us").rate_limiter is None  # tests/settings.py disables it


class CountingLimiter:
    def __init__(self) -> None:
        self.calls = 0
        self.lanes: list[tuple] = []

    def acquire(self, lane, *, within=None) -> float:
        self.calls += 1
        self.lanes.append((lane, within))
        return 0.0


def test_the_client_acquires_before_every_attempt(sim):
    counting = CountingLimiter()
    client = CronofyClient("us", rate_limiter=counting, sleep=lambda s: None)
    account = sim.add_account()
    sim.fail("userinfo", status=503, times=2)
    client.userinfo(account.access_token)
    assert counting.calls == 3 == sim.count("userinfo")


# -- the safety margin (as the fleet sync uses it) ---------------------------------


def test_min_sleep_is_a_tenth_of_the_margin_at_most_a_millisecond(fake_clock):
    assert limiter(fake_clock, "50/s", "500/m", margin=None).min_sleep == pytest.approx(0.001)
    assert limiter(fake_clock, "50/s", margin=0.005).min_sleep == pytest.approx(0.0005)
    assert limiter(fake_clock, "50/s", margin=0.0).min_sleep == 0.0


def test_a_tiny_wait_is_not_slept_but_a_real_one_is(fake_clock):
    fake_clock.now = 100.0
    rl = limiter(fake_clock, "10/s", margin=None)  # slots 0.103 s apart: 100.013, 100.116, ...
    rl.acquire()  # idle: now (slot 970, late, with slot 980)
    rl.acquire()
    assert fake_clock.slept == [pytest.approx(0.013)]
    fake_clock.now = 100.1155  # the next slot is half a millisecond away: not slept
    assert rl.acquire() == pytest.approx(0.0005)
    assert fake_clock.slept == [pytest.approx(0.013)]


@pytest.mark.parametrize("seed", range(5))
def test_windows_hold_the_limit_with_the_default_margin(fake_clock, seed):
    """Starting up to min_sleep early never puts more than the limit in a window."""
    rng = random.Random(seed)
    fake_clock.now = 5_000.0
    rates = ["20/s", "100/m"]
    rl = limiter(fake_clock, *rates, margin=None)
    starts = []
    for _ in range(400):
        fake_clock.now += rng.choice([0.0, 0.0, rng.uniform(0, 0.2), rng.uniform(0, 0.0015)])
        rl.acquire()
        starts.append(fake_clock.now)
    for rate in map(parse_rate, rates):
        for i in range(len(starts) - rate.limit):
            assert starts[i + rate.limit] - starts[i] >= rate.period


# -- a cache outage (issue #10 item 3): fail open, warned, in one place -----------------

CLOSED_PORT = {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
}


@pytest.fixture
def caches_down(settings_with):
    """Every cache (the default one too: budgets, throttles) on a closed port; limits on."""
    with (
        override_settings(
            CACHES={"default": CLOSED_PORT, "ratelimit": CLOSED_PORT},
            SESSION_ENGINE="django.contrib.sessions.backends.db",
        ),
        settings_with(RATE_LIMITS=["50/s", "500/m"], RATE_LIMIT_CACHE="ratelimit"),
    ):
        yield


def test_acquire_with_the_cache_down_goes_ahead_and_warns_once(caches_down, caplog):
    from django_cronofy_conferencing.cronofy import ratelimit

    ratelimit._last_warning.clear()
    limiter_down = RateLimiter.from_settings()
    with caplog.at_level("WARNING", logger="django_cronofy_conferencing.cronofy.ratelimit"):
        assert [limiter_down.acquire() for _ in range(5)] == [0.0] * 5
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1
    assert "'ratelimit'" in warnings[0].getMessage()


def test_a_misconfigured_cache_is_no_outage(settings_with):
    from django.core.cache import InvalidCacheBackendError

    with (
        settings_with(RATE_LIMITS=["5/s"], RATE_LIMIT_CACHE="no-such-cache"),
        pytest.raises(InvalidCacheBackendError),
    ):
        RateLimiter.from_settings().acquire()


@pytest.mark.django_db
def test_every_view_that_calls_cronofy_works_with_the_cache_down(
    caches_down, sim, link_account, user, scanning_client, admin_user
):
    """Before: API sync, unlink, admin Sync now and the OAuth callback answered 500.
    After: each does its work, unpaced (a warning says why)."""
    from django.urls import reverse

    from django_cronofy_conferencing.models import LinkedAccount

    account, _ = link_account(user=user, conferencing_profiles=[sim.profile("zoom")])
    other, _ = link_account(user=user)
    api = scanning_client(user, api=True)
    base = "/api/cronofy/accounts"
    assert api.post(f"{base}/{account.pk}/sync/").status_code == 200
    response = api.post(f"{base}/{account.pk}/conferencing-authorization/", {}, format="json")
    assert response.status_code == 200
    assert api.delete(f"{base}/{other.pk}/").status_code == 204

    admin = scanning_client(admin_user)
    response = admin.post(
        reverse("admin:cronofy_conferencing_linkedaccount_changelist"),
        {"action": "sync_now", "_selected_action": [str(account.pk)], "index": 0},
    )
    assert response.status_code == 302

    browser = scanning_client(user)
    start = browser.post(reverse("cronofy_conferencing:connect"))
    assert start.status_code == 302
    back = browser.get(sim.authorize(start["Location"], account=sim.add_account()))
    assert back.status_code == 302
    assert LinkedAccount.objects.filter(user=user).count() == 2
    assert sim.count("userinfo") >= 3


# -- claims: reserve, claim, and the cache-outage policy ------------------------------


def test_reserve_skips_a_slot_another_limiter_holds(fake_clock):
    first, second = limiter(fake_clock, "2/s"), limiter(fake_clock, "2/s")
    fake_clock.now = 1001.0
    assert first.reserve() == 1001.0
    fake_clock.now = 1000.0
    assert [second.reserve() for _ in range(4)] == [1000.0, 1000.5, 1001.5, 1002.0]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("rates", [("2/s",), ("2/s", "3/m")])
def test_two_limiters_never_share_a_slot_and_keep_every_rate(fake_clock, seed, rates):
    rng = random.Random(seed)
    limiters = [limiter(fake_clock, *rates), limiter(fake_clock, *rates)]
    times: list[float] = []
    for _ in range(12):
        fake_clock.now += rng.choice([0.0, rng.uniform(0, 3), rng.uniform(0, 40)])
        chosen = rng.choice(limiters)
        got = [chosen.reserve() for _ in range(rng.randint(1, 4))]
        assert got == sorted(got) and got[0] >= fake_clock.now
        times += got
    assert len(set(times)) == len(times)
    for rate in map(parse_rate, rates):
        assert max_in_window(times, rate.period) <= rate.limit


def test_claim_fails_open_on_an_outage(fake_clock, caplog, monkeypatch):
    monkeypatch.setattr(ratelimit, "_last_warning", {})
    rl, tried = limiter(fake_clock, "2/s"), []

    class Unreachable:
        def add(self, *args, **kwargs):
            tried.append(args)
            raise ConnectionError("connection refused")

    monkeypatch.setattr(ratelimit, "caches", {"default": Unreachable()})
    with caplog.at_level("WARNING", logger="django_cronofy_conferencing.cronofy.ratelimit"):
        assert rl.claim() == 0.0
        assert rl.claim() == 0.0
    assert len(tried) == 2
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1  # at most once a minute


def test_claim_returns_the_seconds_to_the_slot_without_sleeping(fake_clock):
    rl = limiter(fake_clock, "2/s")
    assert rl.claim() == 0.0
    assert rl.claim() == 0.5
    fake_clock.now = 1000.7  # the next free slot is 1001.0
    assert rl.claim() == pytest.approx(0.3)
    assert fake_clock.slept == []


def test_a_misconfigured_cache_alias_still_raises_from_claim(fake_clock):
    from django.core.cache import InvalidCacheBackendError

    rl = RateLimiter([Rate(2, 1)], "no-such-cache", clock=fake_clock, sleep=fake_clock.sleep)
    with pytest.raises(InvalidCacheBackendError):
        rl.claim()


# -- what operators see: RateLimiter.usage (cronofy_status, the fleet page) -----------------


def test_usage_counts_the_slots_taken_lately_and_those_claimed_ahead(fake_clock):
    """Ten requests at t=1000 on 100/m and 10/s: slots taken now and claimed ahead show;
    once the queue has drained, nothing does."""
    rl = limiter(fake_clock, "10/s", "100/m")
    for _ in range(10):
        rl.claim()
    minute, second = rl.usage()  # slowest first
    assert (minute.rate, second.rate) == (Rate(100, 60), Rate(10, 1))
    assert minute.queued >= 8 and minute.queued_seconds > 0
    assert 0.0 <= minute.in_use <= 1.0 and 0.0 <= second.in_use <= 1.0
    fake_clock.now += 1.0
    later = rl.usage()[0]
    assert later.queued < minute.queued  # the queue drains as time passes
    fake_clock.now += 120  # long drained; nothing new
    assert [(u.in_use, u.queued) for u in rl.usage()] == [(0.0, 0), (0.0, 0)]


def test_usage_reads_the_shared_schedule_of_another_process(fake_clock):
    """Another limiter with the same budget (another worker) sees the same use."""
    one = limiter(fake_clock, "5/s")
    other = limiter(fake_clock, "5/s")
    for _ in range(3):
        one.claim()
    [usage] = other.usage()
    assert usage.in_use + usage.queued / 5 > 0 and usage.queued == 2


def test_usage_with_the_cache_down_reads_as_unused(fake_clock, monkeypatch):
    rl = limiter(fake_clock, "5/s")
    cache = caches["default"]

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get_many", down)
    [usage] = rl.usage()
    assert (usage.in_use, usage.queued, usage.queued_seconds) == (0.0, 0, 0.0)


def test_a_slot_claimed_ahead_is_kept_until_its_time(fake_clock, monkeypatch):
    """Each slot's key must outlive the slot: a key that expired sooner would let another
    worker claim the same slot again, and two requests would share it."""
    cache = caches["default"]
    added: list[tuple[str, float]] = []
    real_add = cache.add

    def add(key, value, timeout=None, **kwargs):
        added.append((key, timeout))
        return real_add(key, value, timeout=timeout, **kwargs)

    monkeypatch.setattr(cache, "add", add)
    rl = limiter(fake_clock, "1/m")
    for _ in range(5):  # the last is 4 minutes ahead
        added.clear()
        start = rl.reserve()
        assert added, "a claim is a cache.add"
        # The key that claimed the slot (the last one added) outlives the slot's time.
        key, timeout = added[-1]
        assert timeout >= start - fake_clock.now, (key, timeout, start)
    assert start - fake_clock.now >= 240


def test_an_outage_warning_quotes_at_most_200_characters_of_the_error(caplog, monkeypatch):
    monkeypatch.setattr(ratelimit, "_last_warning", {})

    def down():
        raise ConnectionError("x" * 300)

    assert ratelimit.guarded("the test cache", down, "fallback") == "fallback"
    quoted = caplog.records[-1].getMessage().split("ConnectionError: ")[1]
    assert quoted.startswith("x" * 200) and "x" * 201 not in quoted
