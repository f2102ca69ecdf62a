"""Shared fixtures: the simulated Cronofy, users, linked accounts, documented payloads,
secret-scanning clients, a fake clock.

Set ``CRONOFY_REQUIRE_SERVICES=1`` (``.ci/run`` does) to turn a skip for a
missing service (PostgreSQL, Redis, Chromium) into a failure.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from django_cronofy_conferencing import client as client_module
from django_cronofy_conferencing.client import reset_clients
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_account
from django_cronofy_conferencing.testing import SimulatedCronofy, simulated_cronofy
from tests.secret_scan import ScanningAPIClient, ScanningClient, SecretScanner

PAYLOADS = Path(__file__).parent / "payloads"


def require_service(available: bool, reason: str) -> None:
    """Skip without the service locally; fail in CI, where it must be there.

    Not for the database: CI runs the whole suite once on SQLite and once on
    PostgreSQL, so a PostgreSQL-only test ``pytest.skip``s on other backends
    (it runs in the PostgreSQL run) instead of calling this.
    """
    if available:
        return
    if os.environ.get("CRONOFY_REQUIRE_SERVICES"):
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def load_payload(name: str):
    return json.loads((PAYLOADS / f"{name}.json").read_text())


@pytest.fixture
def payload():
    """``payload("userinfo_conferencing_example")`` -> a fresh decoded copy."""
    return load_payload


class FakeClock:
    """A clock to inject (``clock=``, ``sleep=clock.sleep``): sleeping records and advances."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_clock():
    """A ``FakeClock`` at t=1000 s; set ``fake_clock.now`` to start elsewhere."""
    return FakeClock()


@pytest.fixture(autouse=True)
def sleeps(monkeypatch):
    """Retries never sleep for real in tests; the requested delays are recorded."""
    recorded: list[float] = []
    monkeypatch.setattr(client_module, "_sleep", recorded.append)
    return recorded


@pytest.fixture(autouse=True)
def _fresh_clients():
    reset_clients()
    yield
    reset_clients()


@pytest.fixture
def sim():
    """A simulated Cronofy serving every data center through ``responses``."""
    with simulated_cronofy() as simulator:
        yield simulator


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob")


@pytest.fixture
def scanner(sim):
    """The secrets no response may carry (``tests.secret_scan``); ``scanner.add`` more."""
    return SecretScanner(sim)


@pytest.fixture
def scanning_client(scanner):
    """``scanning_client(user=None, *, api=False)`` -> a test client whose every response is
    scanned for secrets, logged in as ``user`` (DRF's ``APIClient`` with ``api=True``)."""

    def make(user=None, *, api: bool = False):
        if api:
            client = ScanningAPIClient(scanner)
            if user is not None:
                client.force_authenticate(user)
        else:
            client = ScanningClient(scanner)
            if user is not None:
                client.force_login(user)
        return client

    return make


@pytest.fixture
def link_account(sim: SimulatedCronofy):
    """Create a simulator account and the matching ``LinkedAccount`` holding its tokens."""

    def make(*, user=None, sim_account=None, token_expires_in: int = 3600, **sim_kwargs):
        sim_account = sim_account or sim.add_account(**sim_kwargs)
        account = LinkedAccount.objects.create(
            user=user,
            data_center=sim_account.data_center,
            sub=sim_account.sub,
            access_token=sim_account.access_token,
            refresh_token=sim_account.refresh_token,
            token_expires_at=timezone.now() + timedelta(seconds=token_expires_in),
        )
        return account, sim_account

    return make


@pytest.fixture
def booking_host(user, link_account, sim):
    """``user``'s account as a sync stored it, with every kind of profile and calendar:
    pro_zoom connected, pro_goto disconnected, pro_gone removed; calendar profile pro_google
    (cal_work integrated, cal_plain without, cal_ro read-only, cal_del deleted) and
    pro_o365 disconnected (cal_teams)."""
    account, sim_account = link_account(
        user=user,
        email="alice@example.com",
        conferencing_profiles=[
            sim.profile("zoom", profile_id="pro_zoom", profile_name="alice@zoom"),
            sim.profile("go_to", profile_id="pro_goto", connected=False),
            sim.profile("ms_teams", profile_id="pro_gone"),
        ],
        calendar_profiles=[
            sim.calendar_profile(
                "google",
                profile_id="pro_google",
                calendars=[
                    sim.calendar("Work", calendar_id="cal_work", primary=True, integrated=True),
                    sim.calendar("Plain", calendar_id="cal_plain", integrated=False),
                    sim.calendar("Shared", calendar_id="cal_ro", readonly=True, integrated=True),
                    sim.calendar("Old", calendar_id="cal_del", deleted=True, integrated=True),
                ],
            ),
            sim.calendar_profile(
                "office365",
                profile_id="pro_o365",
                connected=False,
                calendars=[sim.calendar("Teams", calendar_id="cal_teams", integrated=True)],
            ),
        ],
    )
    sync_account(account)
    sim.remove_profile(sim_account.sub, "pro_gone")
    sync_account(account)  # pro_gone is kept as history, removed
    account.refresh_from_db()
    return account, sim_account


@pytest.fixture
def foreign_account(other_user, link_account, sim):
    account, _ = link_account(
        user=other_user, conferencing_profiles=[sim.profile("zoom", profile_id="pro_bobs")]
    )
    sync_account(account)
    return account
