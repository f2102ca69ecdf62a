"""Cronofy limits each application on its own: two data centers' fleets, synced
together over real HTTP, each use their own budget, and neither server answers 429.

Scaled down from Cronofy's 50/s and 500/min to 10/s so it runs in a few seconds;
the limiter and the simulator's limit are the same code at any rate.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_accounts
from django_cronofy_conferencing.testing import HTTPServerAdapter, SimulatedCronofy, max_in_window

pytestmark = pytest.mark.django_db(transaction=True)

RATE = "10/s"  # what each simulated application allows
# What the app claims: a tenth below, so that on a loaded 2-core CI machine a thread
# woken late cannot bunch two requests into one server window (the app would retry a
# 429 anyway; this test wants none).
CLIENT_RATE = "9/s"
PER_DATA_CENTER = 25


def test_two_applications_each_reach_their_own_budget_without_a_429():
    sim = SimulatedCronofy()
    with (
        HTTPServerAdapter(sim, "sim", rate_limits=[RATE]) as first,
        HTTPServerAdapter(sim, "sim2", rate_limits=[RATE]) as second,
        first.registered(),
        second.registered(RATE_LIMITS=[CLIENT_RATE]),
    ):
        for dc in ("sim", "sim2"):
            for _ in range(PER_DATA_CENTER):
                sim_account = sim.add_account(data_center=dc, conferencing_profiles=[sim.profile()])
                LinkedAccount.objects.create(
                    data_center=dc,
                    sub=sim_account.sub,
                    access_token=sim_account.access_token,
                    refresh_token=sim_account.refresh_token,
                    token_expires_at=timezone.now() + timedelta(hours=1),
                )
        report = sync_accounts(LinkedAccount.objects.all(), concurrency=16)
    assert (report.synced, report.failed) == (2 * PER_DATA_CENTER, 0)
    for server in (first, second):
        assert server.rate_limited == 0
        assert server.served == PER_DATA_CENTER
        # Paced within each application's own budget, never over it.
        assert server.max_in_window(1.0) <= 10
    # Together they went faster than one budget allows: neither waited for the other
    # (a shared budget would cap this at 9; a quiet machine reaches about 18).
    assert max_in_window(first.arrivals + second.arrivals, 1.0) >= 12
