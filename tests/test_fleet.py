"""fleet: when sync_accounts fetches on the event loop, and what it does there.

The rows, signals and failures of both ways are compared in
tests/sync/test_concurrency.py (the ``fleet`` fixture runs them each way).
"""

from __future__ import annotations

import itertools
import threading
from importlib.util import find_spec

import pytest
from django.core.checks import run_checks
from django.db import connection, connections

from django_cronofy_conferencing import fleet, sync
from django_cronofy_conferencing.exceptions import CronofyUnavailable
from django_cronofy_conferencing.fleet import Workers, event_loop_unavailable
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_accounts
from django_cronofy_conferencing.testing import simulated_cronofy

from .conftest import require_service
from .test_fleet_http import claim_together

DOUBLE = "a test double is patched into requests or the client"


@pytest.fixture
def aiohttp_installed():
    require_service(find_spec("aiohttp") is not None, "aiohttp (pip install -e '.[test]')")


@pytest.fixture
def no_proxy(monkeypatch):
    for name in ("http", "https", "all", "no"):
        monkeypatch.delenv(f"{name}_proxy", raising=False)
        monkeypatch.delenv(f"{name.upper()}_PROXY", raising=False)


def test_the_event_loop_is_used_when_nothing_stands_in_the_way(aiohttp_installed, no_proxy):
    assert event_loop_unavailable() is None


@pytest.mark.parametrize("setting", ["requests"])
def test_fleet_http_requests_keeps_threads(aiohttp_installed, no_proxy, settings_with, setting):
    with settings_with(FLEET_HTTP=setting):
        assert event_loop_unavailable() == "CRONOFY_CONFERENCING['FLEET_HTTP'] is 'requests'"


def test_a_test_double_in_requests_keeps_threads(aiohttp_installed, no_proxy):
    """``responses`` (and so ``simulated_cronofy``) sees only requests' calls: a sync on
    aiohttp would escape it and reach the network."""
    with simulated_cronofy():
        assert event_loop_unavailable() == DOUBLE
    assert event_loop_unavailable() is None


@pytest.mark.parametrize(
    "target", ["django_cronofy_conferencing.client.CronofyClient.userinfo", "sync.fetch_userinfo"]
)
def test_a_mocked_client_keeps_threads(aiohttp_installed, no_proxy, target):
    """A test that replaces the client's UserInfo call must see every call: the event
    loop would go around it to aiohttp."""
    from unittest import mock

    target = target.replace("sync.", "django_cronofy_conferencing.sync.")
    with mock.patch(target, return_value={}):
        assert event_loop_unavailable() == DOUBLE
    with mock.patch(target, autospec=True):
        assert event_loop_unavailable() == DOUBLE
    assert event_loop_unavailable() is None


def test_no_proxy_alone_names_no_proxy(aiohttp_installed, no_proxy, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "localhost")
    assert event_loop_unavailable() is None


def test_a_proxy_keeps_threads(aiohttp_installed, no_proxy, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert "proxy" in event_loop_unavailable()


def test_without_aiohttp_threads(monkeypatch, no_proxy):
    monkeypatch.setattr(fleet, "find_spec", lambda name: None)
    assert event_loop_unavailable() == "aiohttp is not installed (the 'fleet' extra)"


def test_asking_for_aiohttp_where_it_cannot_run_warns(aiohttp_installed, settings_with, caplog):
    with settings_with(FLEET_HTTP="aiohttp"), simulated_cronofy():
        assert event_loop_unavailable() == DOUBLE
    assert "FLEET_HTTP is 'aiohttp', but the sync runs in threads" in caplog.text


# -- check E016 ----------------------------------------------------------------------


def e016(settings_with, **values) -> list[str]:
    with settings_with(**values):
        return [m.msg for m in run_checks() if m.id == "cronofy_conferencing.E016"]


def test_e016_names_an_unknown_value(settings_with):
    assert e016(settings_with, FLEET_HTTP="httpx") == [
        "CRONOFY_CONFERENCING['FLEET_HTTP'] is 'httpx', which is not a way the app knows."
    ]


def test_e016_aiohttp_asked_for_but_missing(settings_with, monkeypatch):
    monkeypatch.setattr(fleet, "find_spec", lambda name: None)
    assert e016(settings_with, FLEET_HTTP="aiohttp") == [
        "CRONOFY_CONFERENCING['FLEET_HTTP'] is 'aiohttp', but aiohttp is not installed."
    ]
    assert e016(settings_with, FLEET_HTTP="auto") == []  # auto falls back to threads


@pytest.mark.parametrize("value", ["auto", "aiohttp", "requests"])
def test_e016_is_quiet_for_known_values(settings_with, aiohttp_installed, value):
    assert e016(settings_with, FLEET_HTTP=value) == []


# -- the worker threads -----------------------------------------------------------------


def test_workers_start_as_needed_and_pass_results_and_errors_back():
    workers = Workers(3, "test-worker")
    release = threading.Event()
    blocked = [workers.submit(release.wait, 10) for _ in range(3)]
    assert len(workers._threads) == 3  # one per job that found no idle thread
    extra = workers.submit(lambda: 42)
    assert len(workers._threads) == 3  # never more than size: it waits its turn
    release.set()
    assert [f.result(timeout=10) for f in blocked] == [True] * 3
    assert extra.result(timeout=10) == 42
    failing = workers.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=10)
    workers.shutdown()
    assert not any(thread.is_alive() for thread in workers._threads)


@pytest.mark.django_db(transaction=True)
def test_workers_close_their_database_connections():
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("in-memory SQLite shares one connection between threads")
    workers = Workers(2, "test-worker")
    opened = []

    def query():
        LinkedAccount.objects.count()
        opened.append(connections["default"])

    workers.submit(query).result(timeout=10)
    assert opened[0].connection is not None
    workers.shutdown()
    assert opened[0].connection is None


# -- sync_accounts on the event loop -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_progress_is_called_once_per_account_either_way(fleet_way):
    """The command's progress bar (``progress=``) counts every account, fetched or failed,
    whichever thread finishes it."""
    sim, link = fleet_way.sim, fleet_way.link_account
    pairs = [link(conferencing_profiles=[sim.profile("zoom")]) for _ in range(7)]
    sim.fail("userinfo", status=500, times=None, sub=pairs[3][1].sub)
    seen = []
    lock = threading.Lock()

    def progress(account, result, error):
        with lock:
            seen.append((account.pk, result is not None, type(error).__name__ if error else None))

    report = sync_accounts(LinkedAccount.objects.all(), concurrency=3, progress=progress)
    assert sorted(seen) == sorted(
        (a.pk, a.pk != pairs[3][0].pk, "CronofyUnavailable" if a.pk == pairs[3][0].pk else None)
        for a, _ in pairs
    )
    assert isinstance(report.failures[pairs[3][0].pk], CronofyUnavailable)


@pytest.mark.django_db(transaction=True)
def test_a_401_is_refreshed_once_then_retried_either_way(fleet_way):
    sim, link = fleet_way.sim, fleet_way.link_account
    account, sim_account = link(conferencing_profiles=[sim.profile("zoom")])
    sim.expire_access_token(sim_account.sub)
    report = sync_accounts([account], concurrency=2)
    assert (report.synced, report.failed) == (1, 0)
    assert sim.count("token", status=200) == 1
    assert sim.count("userinfo", status=401) == 1
    assert sim.count("userinfo", status=200) == 1
    account.refresh_from_db()
    assert account.conferencing_profiles.count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_account_of_an_unknown_data_center_fails_alone_either_way(fleet_way):
    sim, link = fleet_way.sim, fleet_way.link_account
    good, _ = link(conferencing_profiles=[sim.profile("zoom")])
    lost = LinkedAccount.objects.create(data_center="atlantis", sub="acc_lost", access_token="x")
    report = sync_accounts(LinkedAccount.objects.all(), concurrency=2)
    assert report.synced == 1
    assert set(report.failures) == {lost.pk}
    assert good.conferencing_profiles.count() == 1


@pytest.fixture
def fleet_way(fleet):
    """``fleet`` on a database that threads can share (not in-memory SQLite, which
    tests/sync/test_concurrency.py covers with a file)."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("in-memory SQLite: threads share it differently than a real database")
    return fleet


def test_the_decision_is_taken_where_sync_accounts_looks_for_it():
    assert sync.event_loop_unavailable is fleet.event_loop_unavailable


@pytest.mark.django_db(transaction=True)
def test_a_token_no_key_decrypts_fails_its_account_alone_either_way(fleet_way):
    """The event loop decrypts tokens ahead, a chunk at a time: one that fails must
    fail its own account, where it is used, and no other."""
    sim, link = fleet_way.sim, fleet_way.link_account
    good, _ = link(conferencing_profiles=[sim.profile("zoom")])
    broken, _ = link(conferencing_profiles=[sim.profile("zoom")])
    table = LinkedAccount._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET access_token = %s WHERE id = %s",
            ["gAAAAABnot-a-token-of-ours", broken.pk],
        )
    report = sync_accounts(LinkedAccount.objects.all(), concurrency=2)
    assert report.synced == 1
    assert type(report.failures[broken.pk]).__name__ == "TokenDecryptionError"
    assert good.conferencing_profiles.count() == 1
    failures, error = LinkedAccount.objects.values_list(
        "consecutive_failures", "last_sync_error"
    ).get(pk=broken.pk)
    assert failures == 1
    assert "cannot be decrypted" in error


def test_workers_start_a_thread_for_each_job_that_waits():
    """A burst of refreshes submitted in one turn of the loop runs side by side."""
    workers = Workers(8, "test-worker")
    together = threading.Barrier(8, timeout=10)
    jobs = [workers.submit(together.wait) for _ in range(8)]
    assert sorted(job.result(timeout=10) for job in jobs) == list(range(8))
    workers.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_stopped_fetch_starts_no_more_requests_and_ends_its_threads(aiohttp_installed):
    """What an interrupt (Ctrl-C, a task's time limit) does to ``EventLoopFetch.run``."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("in-memory SQLite: threads share it differently than a real database")
    from django_cronofy_conferencing.sync_batches import BatchWriter
    from django_cronofy_conferencing.testing import SimulatedCronofy, serve_simulator

    from .conftest import make_linker

    with serve_simulator(SimulatedCronofy(), "sim", latency=0.02) as server:
        link = make_linker(server.sim, "sim")
        accounts = [link(conferencing_profiles=[])[0] for _ in range(60)]
        finished = []
        stopping = threading.Event()

        def finish(account, result, error):
            finished.append(account.pk)
            if len(finished) == 5:
                stopping.set()

        with BatchWriter(finish, max_backlog=100) as writer:
            fetch = fleet.EventLoopFetch(accounts, concurrency=2, writer=writer, fail=finish)
            fetch.flush_size = 1
            stopper = threading.Thread(target=lambda: stopping.wait(10) and fetch._stop())
            stopper.start()
            fetch.run()
            stopper.join()
        served = server.sim.count("userinfo")
        assert 5 <= served < 60
        assert not any(t.is_alive() for t in fetch.workers._threads + fetch.reader._threads)
        assert server.sim.count("userinfo") == served  # nothing after it returned


@pytest.mark.django_db(transaction=True)
def test_claims_on_the_database_cache_are_made_off_the_loop(settings):
    """Django forbids queries on an event loop: the database cache's claims run on a
    worker, and are paced (a claim made on the loop failed open, unpaced)."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("in-memory SQLite: threads share it differently than a real database")

    from django.core.management import call_command

    from django_cronofy_conferencing.fleet_http import LoopClaims
    from django_cronofy_conferencing.ratelimit import RateLimiter, parse_rate

    settings.CACHES = {
        **settings.CACHES,
        "dbcache": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "cronofy_test_limits",
        },
    }
    call_command("createcachetable", "cronofy_test_limits", verbosity=0)
    limiter = RateLimiter([parse_rate("10/s")], "dbcache", safety_margin=0.0)
    assert limiter.queries_the_database
    workers = Workers(2, "test-worker")
    claims = LoopClaims(limiter, demand=lambda: 0, executor=workers)
    try:
        times = claim_together(claims, 3)
    finally:
        workers.shutdown()
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.1, 0.1], abs=1e-3)
