"""Two lanes in each application's budget (issue 21), and the wait for a slot counted
against the call's deadline (issue 20, 2.3): the RateLimiter with an injected clock."""

from __future__ import annotations

import random

import pytest
from django.core.cache import caches

from django_cronofy_conferencing.cronofy.client import CronofyClient, get_client
from django_cronofy_conferencing.cronofy.ratelimit import Lane, RateLimiter, as_lane, parse_rate
from django_cronofy_conferencing.exceptions import BudgetExhausted, RateLimited
from django_cronofy_conferencing.testing import max_in_window


def limiter(clock, *rates: str, share: float = 0.8, margin: float | None = 0.0) -> RateLimiter:
    return RateLimiter(
        [parse_rate(r) for r in rates],
        clock=clock,
        sleep=clock.sleep,
        safety_margin=margin,
        fleet_share=share,
    )


def test_fleet_slots_are_the_share_evenly_spread(fake_clock):
    rl = limiter(fake_clock, "10/s", share=0.8)
    assert [rl.fleet_slot(n) for n in range(10)] == [False, True, True, True, True] * 2
    assert all(limiter(fake_clock, "10/s", share=1.0).fleet_slot(n) for n in range(10))
    third = limiter(fake_clock, "10/s", share=1 / 3)
    for start in range(30):
        assert sum(third.fleet_slot(n) for n in range(start, start + 10)) <= 4  # ceil(10/3)


@pytest.mark.parametrize("share", [0.8, 0.5, 1.0])
def test_a_sweep_never_uses_more_than_its_share(fake_clock, share):
    rl = limiter(fake_clock, "10/s", share=share)
    starts = []
    for _ in range(80):
        rl.acquire(Lane.BACKGROUND)
        starts.append(fake_clock.now)
    assert max_in_window(starts, 1.0) <= round(10 * share)
    # ...and uses it all: 80 calls in about 80 / (10 * share) seconds.
    assert starts[-1] - starts[0] <= 80 / (10 * share) + 0.2


def test_a_sweep_claims_just_in_time_and_never_ahead(fake_clock):
    rl = limiter(fake_clock, "10/s")
    rl.acquire(Lane.BACKGROUND)
    # A second sweep thread at the same moment finds no free fleet slot *now*: it
    # holds none ahead (it sleeps until the next one and tries again).
    assert rl.reserve(Lane.BACKGROUND) is None
    assert len([k for k in caches["default"]._cache if "ratelimit" in k]) == 1


@pytest.mark.parametrize("seed", range(4))
def test_a_users_call_waits_at_most_one_slot_behind_a_sweep(fake_clock, seed):
    """Sixteen sweep threads keep every fleet slot busy; a user's call at any moment
    waits less than one slot of the whole budget, and the sweep keeps its share."""
    rng = random.Random(seed)
    rl = limiter(fake_clock, "10/s")
    interval = 0.1
    sweep_starts, user_waits = [], []
    for _ in range(120):
        # The sweep threads: each takes the current fleet slot when it comes.
        rl.acquire(Lane.BACKGROUND)
        sweep_starts.append(fake_clock.now)
        if rng.random() < 0.3:  # a user presses Sync now, somewhere in the slot
            fake_clock.now += rng.uniform(0, interval)
            user_waits.append(rl.claim(Lane.USER))
    assert user_waits and max(user_waits) < interval
    assert max_in_window(sweep_starts, 1.0) <= 8


def test_users_may_use_the_whole_budget(fake_clock):
    rl = limiter(fake_clock, "10/s")
    starts = []
    for _ in range(30):
        rl.acquire(Lane.USER)
        starts.append(fake_clock.now)
    assert max_in_window(starts, 1.0) == 10


def test_push_resyncs_go_before_waiting_sweep_threads_within_the_fleet_share(fake_clock):
    rl = limiter(fake_clock, "10/s")
    fake_clock.now = 1000.05  # slot 10000 is not a fleet slot; 10001 is
    assert rl.reserve(Lane.BACKGROUND) is None
    push = rl.reserve(Lane.PUSH)  # claims the next fleet slot ahead
    assert push == pytest.approx(1000.1)
    assert rl.fleet_slot(10001)
    fake_clock.now = 1000.1
    assert rl.reserve(Lane.BACKGROUND) is None  # the push holds it: the sweep waits
    starts = [rl.reserve(Lane.PUSH) for _ in range(8)]
    assert all(rl.fleet_slot(round(t / 0.1)) for t in starts)  # pushes stay in the share


def test_lanes_are_named_and_checked():
    assert as_lane("background") is Lane.BACKGROUND
    assert as_lane(None) is Lane.USER
    assert as_lane(None, default=Lane.BACKGROUND) is Lane.BACKGROUND
    with pytest.raises(ValueError, match="'user', 'push', 'background'"):
        as_lane("fleet")
    assert get_client("us", Lane.BACKGROUND).lane is Lane.BACKGROUND
    assert get_client("us").lane is Lane.USER
    assert get_client("us") is not get_client("us", "background")


# -- the wait counts against the deadline (issue 20, 2.3) ---------------------------


def test_a_slot_past_the_deadline_is_refused_at_once_holding_nothing(fake_clock):
    rl = limiter(fake_clock, "12/m", margin=None)
    fake_clock.now = 20_000 * 5.15  # on a slot (12/m with the margin: 5.15 s apart)
    assert rl.acquire(Lane.USER, within=2) == 0.0
    with pytest.raises(BudgetExhausted) as caught:
        rl.acquire(Lane.USER, within=2)  # the next slot is 5 s away
    assert fake_clock.slept == []
    assert caught.value.retry_after == pytest.approx(5.15, abs=0.01)
    assert isinstance(caught.value, RateLimited)
    assert "RATE_LIMITS" in str(caught.value) and "nothing was sent" in str(caught.value)
    # It held nothing: the same slot is still the next one for anybody.
    assert rl.claim(Lane.USER) == pytest.approx(5.15, abs=0.01)


def test_a_sweep_waiting_past_its_deadline_is_refused_before_sleeping(fake_clock):
    rl = limiter(fake_clock, "12/m", margin=None)
    fake_clock.now = 100_000.0
    rl.acquire(Lane.USER)
    with pytest.raises(BudgetExhausted):
        rl.acquire(Lane.BACKGROUND, within=2)
    assert fake_clock.slept == []


def test_an_idle_budget_sends_at_once_and_a_busy_one_fails_fast(sim, fake_clock, settings_with):
    """Before: RATE_LIMITS=["12/m"], REQUEST_DEADLINE=2: every call slept about 5 s,
    then failed with "Cronofy did not answer" having sent nothing."""
    account = sim.add_account()
    with settings_with(REQUEST_DEADLINE=2):
        fake_clock.now = 100_000.0
        rl = RateLimiter([parse_rate("12/m")], clock=fake_clock, sleep=fake_clock.sleep)
        client = CronofyClient("us", rate_limiter=rl, clock=fake_clock)
        client.userinfo(account.access_token)
        assert fake_clock.slept == [] and sim.count("userinfo") == 1
        with pytest.raises(BudgetExhausted, match=r"no user slot within the 2\.0s"):
            client.userinfo(account.access_token)
    assert fake_clock.slept == []
    assert sim.count("userinfo") == 1  # nothing was sent


def test_sweep_threads_of_a_process_queue_for_a_slot_each(fake_clock):
    """Each waiting thread wakes for a fleet slot of its own (not all for every one)."""
    rl = limiter(fake_clock, "10/s")
    fake_clock.now = 1000.0  # slot 10000: not a fleet slot
    wakes = [rl.next_fleet_time(fake_clock.now) for _ in range(5)]
    assert wakes == pytest.approx([1000.1, 1000.2, 1000.3, 1000.4, 1000.6])  # 10005 is not
