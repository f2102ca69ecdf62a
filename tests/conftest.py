"""Shared fixtures: the simulated Cronofy, users, linked accounts (``synced``), documented
payloads, secret-scanning clients, a fake clock, ``settings_with``, signal recording
(``received``), a slow loopback server.

Set ``CRONOFY_REQUIRE_SERVICES=1`` (``.ci/run`` does) to turn a skip for a
missing service (PostgreSQL, Redis, Chromium) into a failure.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from django.utils import timezone

from django_cronofy_conferencing import signals
from django_cronofy_conferencing.cronofy import client as client_module
from django_cronofy_conferencing.cronofy.client import reset_clients
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import SyncResult, sync_account
from django_cronofy_conferencing.testing import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    SimulatedCronofy,
    simulated_cronofy,
)
from tests.secret_scan import ScanningAPIClient, ScanningClient, SecretScanner
from tests.slow_server import SlowServer

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
def _clear_cache():
    """Budgets, throttles, debounces and flow values live in the cache: every test starts clean."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    cache = caches["default"]
    local = isinstance(cache, LocMemCache)  # never flush a shared Redis
    if local:
        cache.clear()
    yield
    if local:
        cache.clear()


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


def make_linker(sim: SimulatedCronofy, data_center: str | None = None):
    """``link(...)``: a simulator account (in ``data_center``, if given) and the matching
    ``LinkedAccount`` holding its tokens."""

    def make(*, user=None, sim_account=None, token_expires_in: int = 3600, **sim_kwargs):
        if data_center is not None:
            sim_kwargs.setdefault("data_center", data_center)
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
def link_account(sim: SimulatedCronofy):
    """Create a simulator account and the matching ``LinkedAccount`` holding its tokens."""
    return make_linker(sim)


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
def settings_with():
    """``with settings_with(KEY=value): ...`` overrides keys of ``CRONOFY_CONFERENCING``."""

    def override(**values):
        return override_settings(
            CRONOFY_CONFERENCING={**django_settings.CRONOFY_CONFERENCING, **values}
        )

    return override


@pytest.fixture
def slow_server():
    """A real loopback server (``tests.slow_server``) registered as data center ``slow``."""
    with SlowServer() as server:
        data_centers = {"slow": {"api_url": server.url, "app_url": server.url}}
        application = {"CLIENT_ID": DEFAULT_CLIENT_ID, "CLIENT_SECRET": DEFAULT_CLIENT_SECRET}
        app = django_settings.CRONOFY_CONFERENCING
        with override_settings(
            CRONOFY_CONFERENCING={
                **app,
                "DATA_CENTERS": data_centers,
                "APPLICATIONS": {**app.get("APPLICATIONS", {}), "slow": application},
            }
        ):
            yield server


@pytest.fixture
def synced(link_account, sim, user):
    """Alice's account linked through the simulator, with a zoom and a disconnected teams."""
    zoom = sim.profile("zoom", profile_name="alice@zoom.example")
    teams = sim.profile("ms_teams", profile_name="alice@teams.example", connected=False)
    account, sim_account = link_account(user=user, conferencing_profiles=[zoom, teams])
    sync_account(account)
    account.refresh_from_db()
    return account, sim_account


@pytest.fixture
def foreign_account(other_user, link_account, sim):
    account, _ = link_account(
        user=other_user, conferencing_profiles=[sim.profile("zoom", profile_id="pro_bobs")]
    )
    sync_account(account)
    return account


SIGNAL_NAMES = (
    "conferencing_profile_added",
    "conferencing_profile_removed",
    "conferencing_profile_disconnected",
    "conferencing_profile_reconnected",
    "account_synced",
    "account_reauthorization_required",
)


@pytest.fixture
def received():
    """Every signal of signals.py, recorded as (name, profile_id or account pk)."""
    log: list[tuple[str, object]] = []
    connected = []
    for name in SIGNAL_NAMES:
        signal = getattr(signals, name)

        def handler(sender, _name=name, **kwargs):
            if "profile" in kwargs:
                assert sender is ConferencingProfile
                log.append((_name, kwargs["profile"].profile_id))
            else:
                assert sender is LinkedAccount
                if _name == "account_synced":
                    assert isinstance(kwargs["result"], SyncResult)
                log.append((_name, kwargs["account"].pk))

        signal.connect(handler, weak=False)
        connected.append((signal, handler))
    yield log
    for signal, handler in connected:
        signal.disconnect(handler)


@pytest.fixture
def row_lock_holder():
    """``with row_lock_holder(pk, write):`` on PostgreSQL: a second connection (a thread)
    locks the account row (``SELECT ... FOR UPDATE``), runs ``write()`` in its
    transaction, and commits only once another session waits on a lock, which is
    the code under test, started inside the ``with``. Proves a read happens under
    the row lock: code that read first would act on the state before ``write``.
    """
    import contextlib
    import threading
    import time

    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("runs in the PostgreSQL run of the suite (DATABASE_URL=postgres://...)")

    @contextlib.contextmanager
    def hold(pk: int, write):
        locked, errors = threading.Event(), []

        def holder():
            try:
                with transaction.atomic():
                    LinkedAccount.objects.select_for_update().get(pk=pk)
                    write()
                    locked.set()
                    with connection.cursor() as cursor:
                        deadline = time.monotonic() + 10
                        while time.monotonic() < deadline:
                            cursor.execute(
                                "SELECT count(*) FROM pg_stat_activity WHERE "
                                "wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                            )
                            if cursor.fetchone()[0]:
                                break
                            time.sleep(0.005)  # polling PostgreSQL, not waiting for time
                        else:
                            errors.append("nobody waited on the row lock")
            except BaseException as exc:
                errors.append(exc)
                locked.set()
            finally:
                connection.close()

        thread = threading.Thread(target=holder, daemon=True)
        thread.start()
        assert locked.wait(10)
        yield
        thread.join(15)
        assert not thread.is_alive()
        assert errors == []

    return hold


# -- queues: TASK_QUEUE and Django's tasks backends ---------------------------------


def tasks_backend(name: str) -> dict:
    """A TASKS setting for Django 6 (django.tasks) or the 5.2 backport (django_tasks)."""
    from importlib.util import find_spec

    module = "django.tasks" if find_spec("django.tasks") else "django_tasks"
    return {"default": {"BACKEND": f"{module}.backends.{name}"}}


@contextmanager
def queue(name, **extra):
    with override_settings(
        CRONOFY_CONFERENCING={**django_settings.CRONOFY_CONFERENCING, "TASK_QUEUE": name}, **extra
    ):
        yield


def enqueued(backend) -> list[tuple]:
    return [tuple(result.args) for result in backend.results]
