"""A user's call never queues behind a sweep (issue 21): a sweep at concurrency 16 keeps
its whole share of RATE_LIMITS=["10/s"] busy while a user presses Sync now.

Real threads on the real clock (the sweep is ``sync_accounts``' own threads): about
three seconds. The lane logic itself is tested on an injected clock in
tests/cronofy/test_lanes.py.
"""

from __future__ import annotations

import threading
import time

import pytest

from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_account, sync_accounts
from django_cronofy_conferencing.testing import max_in_window

pytestmark = pytest.mark.django_db(transaction=True)

SWEEP = 26


def test_a_users_sync_never_waits_behind_a_sweep_at_its_full_share(
    sim, link_account, settings_with
):
    user_account, _ = link_account(conferencing_profiles=[sim.profile("zoom")])
    for _ in range(SWEEP):
        link_account(conferencing_profiles=[sim.profile("zoom")])
    sweeping = threading.Event()
    durations: list[float] = []
    errors: list[BaseException] = []

    def user() -> None:
        try:
            sweeping.wait(10)
            for _ in range(3):
                started = time.monotonic()
                sync_account(user_account)
                durations.append(time.monotonic() - started)
        except BaseException as exc:  # reported below
            errors.append(exc)

    with settings_with(RATE_LIMITS=["10/s"], FLEET_BUDGET_SHARE=0.8):
        presses = threading.Thread(target=user)
        presses.start()
        report = sync_accounts(
            LinkedAccount.objects.exclude(pk=user_account.pk),
            concurrency=16,
            progress=lambda *_: sweeping.set(),
        )
        presses.join(20)
    assert errors == [] and report.failed == 0 and report.synced == SWEEP
    assert len(durations) == 3
    assert max(durations) < 0.6, durations  # before: 1.0-1.75 s each
    sweep = [r.at for r in sim.requests if r.sub != user_account.sub]
    assert len(sweep) == SWEEP
    assert max_in_window(sweep, 1.0) <= 8  # never above its share (80% of 10/s)
    assert max_in_window([r.at for r in sim.requests], 1.0) <= 10
