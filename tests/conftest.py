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
