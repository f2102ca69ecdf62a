"""OAuth: authorization URL, code exchange, link, refresh (single flight), unlink."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet
from django.db import connection, connections
from django.db.models import QuerySet
from django.utils import timezone

from django_cronofy_conferencing import channels, db, linking, tokens
from django_cronofy_conferencing.client import CronofyClient
from django_cronofy_conferencing.datacenters import BUILTIN_DATA_CENTERS
from django_cronofy_conferencing.exceptions import (
    CronofyAPIError,
    CronofyUnavailable,
    InvalidGrant,
    RateLimited,
    ReauthorizationRequired,
)
from django_cronofy_conferencing.fields import EncryptedValue
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.payloads import TokenSet
from django_cronofy_conferencing.signals import account_reauthorization_required
from django_cronofy_conferencing.sync import sync_account

DATA_CENTERS = sorted(BUILTIN_DATA_CENTERS)
REDIRECT = "https://example.com/cronofy/callback/"


def expire_locally(account: LinkedAccount) -> LinkedAccount:
    LinkedAccount.objects.filter(pk=account.pk).update(
        token_expires_at=timezone.now() - timedelta(minutes=5)
    )
    return LinkedAccount.objects.get(pk=account.pk)


def code_for(sim, sim_account, redirect_uri=REDIRECT) -> str:
    url = linking.authorization_url(sim_account.data_center, redirect_uri=redirect_uri, state="s")
    return parse_qs(urlsplit(sim.authorize(url, account=sim_account)).query)["code"][0]


@pytest.fixture
def reauth_signals():
    received: list[int] = []

    def handler(sender, account, **kwargs):
        received.append(account.pk)

    account_reauthorization_required.connect(handler)
    yield received
    account_reauthorization_required.disconnect(handler)


# -- authorization URL and code exchange --------------------------------------


@pytest.mark.parametrize("dc_id", DATA_CENTERS)
def test_authorization_url_points_at_the_app_host(dc_id):
    url = linking.authorization_url(dc_id, redirect_uri=REDIRECT, state="st", provider_name="zoom")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == BUILTIN_DATA_CENTERS[dc_id].app_url
    assert parts.netloc.startswith("app")
    assert parts.path == "/oauth/authorize"
    query = parse_qs(parts.query)
    assert query["redirect_uri"] == [REDIRECT]
    assert query["state"] == ["st"]
    assert query["provider_name"] == ["zoom"]


@pytest.mark.parametrize("dc_id", DATA_CENTERS)
def test_code_exchange_goes_to_the_api_host(sim, dc_id):
    sim_account = sim.add_account(data_center=dc_id)
    tokens = linking.exchange_code(dc_id, code_for(sim, sim_account), REDIRECT)
    assert tokens.sub == sim_account.sub
    assert tokens.access_token == sim_account.access_token
    (request,) = sim.requests
    assert (request.endpoint, request.data_center) == ("token", dc_id)


def test_code_exchange_refuses_a_used_code(sim):
    sim_account = sim.add_account()
    code = code_for(sim, sim_account)
    linking.exchange_code("us", code, REDIRECT)
    with pytest.raises(InvalidGrant):
        linking.exchange_code("us", code, REDIRECT)


def test_code_exchange_refuses_a_code_from_another_data_center(sim):
    sim_account = sim.add_account(data_center="uk")
    with pytest.raises(InvalidGrant):
        linking.exchange_code("us", code_for(sim, sim_account), REDIRECT)


def test_code_exchange_refuses_another_redirect_uri(sim):
    sim_account = sim.add_account()
    with pytest.raises(InvalidGrant):
        linking.exchange_code("us", code_for(sim, sim_account), REDIRECT + "other/")


# -- link_account -------------------------------------------------------------


def tokens_for(sim_account, **overrides) -> TokenSet:
    values = {
        "access_token": sim_account.access_token,
        "refresh_token": sim_account.refresh_token,
        "expires_in": 3600,
        "scope": "read_account",
        "sub": sim_account.sub,
    }
    return TokenSet(**{**values, **overrides})


@pytest.mark.django_db
def test_link_creates_the_account_and_syncs(sim, user):
    sim_account = sim.add_account(data_center="sg", conferencing_profiles=[sim.profile("zoom")])
    result = linking.link_account(user, "sg", tokens_for(sim_account))
    assert result.created is True
    assert result.sync_error is None
    assert result.sync_result.created == 1
    account = LinkedAccount.objects.get()
    assert account == result.account
    assert (account.user, account.data_center, account.sub) == (user, "sg", sim_account.sub)
    assert account.scope == "read_account"
    assert account.token_expires_at > timezone.now() + timedelta(minutes=59)
    assert ConferencingProfile.objects.count() == 1


@pytest.mark.django_db
def test_link_without_sync(sim, user):
    sim_account = sim.add_account()
    result = linking.link_account(user, "us", tokens_for(sim_account), sync=False)
    assert result.sync_result is None and result.sync_error is None
    assert sim.count() == 0


@pytest.mark.django_db
def test_relink_updates_tokens_and_reactivates(sim, user, link_account):
    account, sim_account = link_account(user=user)
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REVOKED, consecutive_failures=3, last_sync_error="x"
    )
    new = tokens_for(sim_account, access_token="new-access-0001", refresh_token="new-refr-0001")
    result = linking.link_account(user, "us", new, sync=False)
    assert result.created is False
    account.refresh_from_db()
    assert account.status == LinkedAccount.Status.ACTIVE
    assert (account.access_token, account.refresh_token) == ("new-access-0001", "new-refr-0001")
    assert (account.consecutive_failures, account.last_sync_error) == (0, "")
    assert LinkedAccount.objects.count() == 1


@pytest.mark.django_db
def test_the_same_sub_in_another_data_center_is_another_account(sim, user, link_account):
    _, sim_account = link_account(user=user, data_center="us")
    result = linking.link_account(user, "de", tokens_for(sim_account), sync=False)
    assert result.created is True
    assert LinkedAccount.objects.count() == 2


@pytest.mark.django_db
def test_link_refuses_another_users_account(sim, user, other_user, link_account, settings):
    account, sim_account = link_account(user=other_user)
    stored = LinkedAccount.objects.filter(pk=account.pk).values().get()
    settings.CRONOFY_CONFERENCING = {
        **settings.CRONOFY_CONFERENCING,
        "LINK_CONFLICT_MESSAGE": "Already taken.",
    }
    with pytest.raises(linking.AccountLinkConflict, match=r"Already taken\."):
        linking.link_account(user, "us", tokens_for(sim_account, access_token="zzz-new-0001"))
    assert LinkedAccount.objects.filter(pk=account.pk).values().get() == stored
    assert sim.count() == 0


@pytest.mark.django_db
def test_link_needs_a_sub_and_both_tokens(sim, user):
    sim_account = sim.add_account()
    with pytest.raises(ValueError, match="sub"):
        linking.link_account(user, "us", tokens_for(sim_account, sub=""))
    with pytest.raises(ValueError, match="refresh token"):
        linking.link_account(user, "us", tokens_for(sim_account, refresh_token=""))
    assert not LinkedAccount.objects.exists()


@pytest.mark.django_db
def test_link_keeps_the_account_when_the_first_sync_fails(sim, user):
    sim_account = sim.add_account()
    sim.fail("userinfo", status=500, times=None)
    result = linking.link_account(user, "us", tokens_for(sim_account))
    assert isinstance(result.sync_error, CronofyUnavailable)
    account = LinkedAccount.objects.get()
    assert account.consecutive_failures == 1
    assert account.status == LinkedAccount.Status.ACTIVE


@pytest.mark.django_db
def test_link_survives_a_concurrent_create(sim, user, monkeypatch):
    """Two callbacks for the same new account: the loser updates the winner's row."""
    sim_account = sim.add_account()
    # The other request's row is committed after our lookup found nothing.
    LinkedAccount.objects.create(
        user=user, data_center="us", sub=sim_account.sub, access_token="winner-access-01"
    )
    queryset_class = type(LinkedAccount.objects.all())
    real_first = queryset_class.first
    calls = []

    def first_misses_once(self):
        if not calls:
            calls.append(1)
            return None
        return real_first(self)

    monkeypatch.setattr(queryset_class, "first", first_misses_once)
    result = linking.link_account(user, "us", tokens_for(sim_account), sync=False)
    assert result.created is False
    assert LinkedAccount.objects.get().access_token == sim_account.access_token


# -- refresh ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("dc_id", DATA_CENTERS)
def test_refresh_goes_to_the_api_host_of_the_account(sim, link_account, dc_id):
    account, sim_account = link_account(data_center=dc_id, token_expires_in=60)
    old = account.access_token
    sync_account(account)
    token_request = next(r for r in sim.requests if r.endpoint == "token")
    assert token_request.data_center == dc_id
    assert token_request.form["grant_type"] == "refresh_token"
    assert {r.data_center for r in sim.requests} == {dc_id}
    account.refresh_from_db()
    assert account.access_token == sim_account.access_token != old


@pytest.mark.django_db
def test_no_refresh_while_the_token_is_fresh(sim, link_account):
    account, _ = link_account(token_expires_in=301)  # just beyond the 300 s margin
    sync_account(account)
    assert sim.count("token") == 0


@pytest.mark.django_db
def test_refresh_before_the_call_within_the_margin(sim, link_account):
    account, _ = link_account(token_expires_in=299)
    sync_account(account)
    assert [r.endpoint for r in sim.requests] == ["token", "userinfo"]
    account.refresh_from_db()
    assert account.token_expires_at > timezone.now() + timedelta(minutes=59)


@pytest.mark.django_db
def test_refresh_once_after_a_401(sim, link_account):
    account, sim_account = link_account(token_expires_in=3600)
    sim.expire_access_token(sim_account.sub)
    sync_account(account)
    assert [(r.endpoint, r.status) for r in sim.requests] == [
        ("userinfo", 401),
        ("token", 200),
        ("userinfo", 200),
    ]


@pytest.mark.django_db
def test_a_second_401_after_refresh_is_not_retried_again(sim, link_account):
    account, _ = link_account()
    sim.fail("userinfo", status=401, times=2)
    with pytest.raises(ReauthorizationRequired):
        sync_account(account)
    assert sim.count("userinfo") == 2
    assert sim.count("token") == 1


@pytest.mark.django_db
def test_refresh_without_refresh_token_keeps_the_old_one(sim, link_account):
    sim.refresh_returns_refresh_token = False
    account, sim_account = link_account(token_expires_in=10)
    old_refresh = account.refresh_token
    sync_account(account)
    account.refresh_from_db()
    assert account.refresh_token == old_refresh
    assert account.access_token == sim_account.access_token
    # And it still works for the next refresh.
    account = expire_locally(account)
    sync_account(account)
    assert sim.count("token", status=200) == 2


def test_refresh_tokens_trades_a_refresh_token_and_stores_nothing(sim):
    """No database access (the test has none): the caller stores the tokens."""
    sim_account = sim.add_account(data_center="au")
    old_access, sent = sim_account.access_token, sim_account.refresh_token
    fresh = tokens.refresh_tokens("au", sent)
    assert fresh.access_token == sim_account.access_token != old_access
    assert fresh.refresh_token == sim_account.refresh_token
    assert fresh.expires_in == 3600
    request = sim.requests[-1]
    assert (request.endpoint, request.data_center) == ("token", "au")
    assert request.form["grant_type"] == "refresh_token"
    assert request.form["refresh_token"] == sent


def test_refresh_tokens_keeps_the_refresh_token_when_none_comes_back(sim):
    sim.refresh_returns_refresh_token = False
    sim_account = sim.add_account()
    sent = sim_account.refresh_token
    assert tokens.refresh_tokens("us", sent).refresh_token == sent


def test_refresh_tokens_of_a_dead_grant(sim):
    sim_account = sim.add_account()
    sim.revoke_grant(sim_account.sub)
    with pytest.raises(InvalidGrant):
        tokens.refresh_tokens("us", sim_account.refresh_token)


@pytest.mark.django_db
def test_the_account_refresh_goes_through_refresh_tokens(sim, link_account, monkeypatch):
    account, _ = link_account(token_expires_in=10)
    calls = []
    real = tokens.refresh_tokens

    def spy(data_center, refresh_token, **kwargs):
        calls.append((data_center, refresh_token))
        return real(data_center, refresh_token, **kwargs)

    monkeypatch.setattr(tokens, "refresh_tokens", spy)
    sent = account.refresh_token
    sync_account(account)
    assert calls == [("us", sent)]


@pytest.mark.django_db
def test_invalid_grant_marks_reauthorization_once_and_fails_fast(
    sim, link_account, reauth_signals, django_capture_on_commit_callbacks
):
    account, sim_account = link_account(token_expires_in=10)
    sim.revoke_grant(sim_account.sub)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ReauthorizationRequired):
        sync_account(account)
    account.refresh_from_db()
    assert account.status == LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    assert "invalid_grant" in account.last_sync_error
    assert reauth_signals == [account.pk]
    requests_so_far = sim.count()

    for _ in range(2):
        with (
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(ReauthorizationRequired),
        ):
            sync_account(LinkedAccount.objects.get(pk=account.pk))
    assert sim.count() == requests_so_far  # no HTTP call at all
    assert reauth_signals == [account.pk]  # sent once


@pytest.mark.django_db
def test_invalid_grant_after_a_401(
    sim, link_account, reauth_signals, django_capture_on_commit_callbacks
):
    account, sim_account = link_account(token_expires_in=3600)
    sim.revoke_grant(sim_account.sub)  # the access token dies too
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ReauthorizationRequired):
        sync_account(account)
    assert LinkedAccount.objects.get().status == LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    assert reauth_signals == [account.pk]


@pytest.mark.django_db
def test_a_lost_race_is_not_a_reauthorization(
    sim, link_account, reauth_signals, monkeypatch, django_capture_on_commit_callbacks
):
    """The stored refresh token changed while ours was in flight (a relink elsewhere)."""
    account, sim_account = link_account(
        token_expires_in=10, conferencing_profiles=[sim.profile("zoom")]
    )
    sent_refresh = account.refresh_token
    real_request_token = CronofyClient.request_token

    def relink_meanwhile(self, grant, **kwargs):
        if grant.get("grant_type") == "refresh_token":
            # Another worker relinked: new tokens stored, the old refresh token dead.
            del sim.refresh_tokens[sent_refresh]
            sim._issue_tokens(sim_account)
            LinkedAccount.objects.filter(pk=account.pk).update(
                access_token=sim_account.access_token,
                refresh_token=sim_account.refresh_token,
                token_expires_at=timezone.now() + timedelta(hours=1),
            )
        return real_request_token(self, grant, **kwargs)

    monkeypatch.setattr(CronofyClient, "request_token", relink_meanwhile)
    with django_capture_on_commit_callbacks(execute=True):
        result = sync_account(account)
    # The sync went on with the relinked tokens and stored the profile.
    assert (result.created, result.updated, result.removed) == (1, 0, 0)
    assert account.access_token == sim_account.access_token  # adopted in memory too
    assert account.status == LinkedAccount.Status.ACTIVE
    stored = LinkedAccount.objects.get()
    assert stored.status == LinkedAccount.Status.ACTIVE
    assert stored.access_token == sim_account.access_token
    assert stored.conferencing_profiles.get().provider_name == "zoom"
    assert sim.count("token", status=400) == 1
    assert sim.requests[-1].endpoint == "userinfo" and sim.requests[-1].status == 200
    assert reauth_signals == []


def _sync_in_threads(account_pk: int, n: int = 2):
    """Sync the same account from ``n`` threads at once; returns (results, errors)."""
    barrier = threading.Barrier(n)
    results, errors = [], []

    def work():
        try:
            account = LinkedAccount.objects.get(pk=account_pk)
            barrier.wait(timeout=10)
            results.append(sync_account(account))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    return results, errors


def _assert_single_flight(sim, sim_account, account_pk, old_token, results, errors):
    assert errors == []
    assert len(results) == 2
    assert sim.count("token") == 1  # exactly one refresh reached Cronofy
    assert sim.count("userinfo", status=200) == 2  # both syncs used the new token
    assert sim.count("userinfo", status=401) == 0
    stored = LinkedAccount.objects.get(pk=account_pk)
    assert stored.access_token == sim_account.access_token != old_token
    assert stored.status == LinkedAccount.Status.ACTIVE
    assert stored.token_expires_at > timezone.now() + timedelta(minutes=59)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("process_lock", [False, True], ids=["row-lock-only", "with-process-lock"])
def test_refresh_race_single_flight_postgresql(sim, link_account, monkeypatch, process_lock):
    """Two workers sync an account whose token expired: one refresh, both succeed.

    ``row-lock-only`` disables the process-local lock, so the threads behave like
    separate processes and only PostgreSQL's row lock (select_for_update) keeps
    the refresh single flight.
    """
    if connection.vendor != "postgresql":
        pytest.skip("runs in the PostgreSQL run of the suite (DATABASE_URL=postgres://...)")
    if not process_lock:
        monkeypatch.setattr(
            tokens, "_REFRESH_LOCKS", tuple(contextlib.nullcontext() for _ in range(64))
        )
    account, sim_account = link_account(token_expires_in=-60)
    sim.expire_access_token(sim_account.sub)
    sim.fail("token", delay=0.3)  # the refresh is slow: the second worker arrives meanwhile
    started = time.monotonic()
    results, errors = _sync_in_threads(account.pk)
    assert time.monotonic() - started >= 0.3
    _assert_single_flight(sim, sim_account, account.pk, account.access_token, results, errors)


@pytest.mark.django_db(transaction=True)
def test_refresh_race_single_flight_serialized(sim, link_account):
    """The same outcome on any database (SQLite: serialized by the process lock)."""
    account, sim_account = link_account(token_expires_in=-60)
    sim.expire_access_token(sim_account.sub)
    sim.fail("token", delay=0.3)
    results, errors = _sync_in_threads(account.pk)
    _assert_single_flight(sim, sim_account, account.pk, account.access_token, results, errors)
    connections.close_all()


@pytest.mark.django_db
def test_the_refresh_call_does_not_hold_the_process_write_lock(sim, link_account, monkeypatch):
    """On SQLite the process-wide write lock serializes writes only: other threads
    (other accounts of a fleet sync) keep writing while a refresh waits on Cronofy."""
    account, _ = link_account(token_expires_in=-60)
    real_request_token = CronofyClient.request_token
    other_thread_could_write: list[bool] = []

    def probe(self, grant, **kwargs):
        def writer():
            got = db._sqlite_write_lock.acquire(timeout=2)
            if got:
                db._sqlite_write_lock.release()
            other_thread_could_write.append(got)

        thread = threading.Thread(target=writer)
        thread.start()
        thread.join()
        return real_request_token(self, grant, **kwargs)

    monkeypatch.setattr(CronofyClient, "request_token", probe)
    sync_account(account)
    assert other_thread_could_write == [True]


@pytest.mark.django_db(transaction=True)
def test_a_reauthorization_handler_may_refresh_another_account(sim, link_account):
    """The signal is sent while the refresh slot is held: a handler refreshing an
    account that hashes to the same slot must not deadlock its own thread."""
    account, sim_account = link_account(token_expires_in=-60)
    other, _ = link_account(token_expires_in=-60)
    LinkedAccount.objects.filter(pk=other.pk).update(id=account.pk + len(tokens._REFRESH_LOCKS))
    other = LinkedAccount.objects.get(pk=account.pk + len(tokens._REFRESH_LOCKS))
    sim.revoke_grant(sim_account.sub)
    refreshed: list[str] = []

    def handler(sender, account, **kwargs):
        refreshed.append(tokens.refresh_access_token(other))

    account_reauthorization_required.connect(handler)
    errors: list[BaseException] = []

    def work():
        try:
            sync_account(LinkedAccount.objects.get(pk=account.pk))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=work, daemon=True)
    try:
        thread.start()
        thread.join(timeout=10)
    finally:
        account_reauthorization_required.disconnect(handler)
    assert not thread.is_alive(), "deadlocked on the refresh slot"
    assert [type(e) for e in errors] == [InvalidGrant]
    assert len(refreshed) == 1
    assert LinkedAccount.objects.get(pk=other.pk).access_token == refreshed[0]


# -- unlink -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("dc_id", ["us", "au"])
def test_unlink_revokes_with_the_refresh_token_then_deletes(sim, link_account, user, dc_id):
    account, sim_account = link_account(
        user=user, data_center=dc_id, conferencing_profiles=[sim.profile("zoom")]
    )
    sync_account(account)
    refresh_token = account.refresh_token
    linking.unlink(account)
    request = sim.requests[-1]
    assert (request.endpoint, request.data_center) == ("revoke", dc_id)
    assert request.form["token"] == refresh_token
    assert not LinkedAccount.objects.exists()
    assert not ConferencingProfile.objects.exists()
    assert sim_account.refresh_token not in sim.refresh_tokens  # the grant is gone


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fault", "error"),
    [({"status": 503}, CronofyUnavailable), ({"status": 429}, RateLimited)],
)
def test_unlink_when_cronofy_is_unreachable_deletes_nothing(sim, link_account, user, fault, error):
    account, _ = link_account(user=user, conferencing_profiles=[sim.profile("zoom")])
    sync_account(account)
    sim.fail("revoke", times=None, **fault)
    with pytest.raises(error):
        linking.unlink(account)
    assert LinkedAccount.objects.filter(pk=account.pk).exists()
    assert ConferencingProfile.objects.filter(account=account).count() == 1


@pytest.mark.django_db
def test_unlink_when_cronofy_does_not_know_the_token_deletes_locally(sim, link_account):
    account, sim_account = link_account()
    sim.revoke_grant(sim_account.sub)  # the token is unknown to Cronofy now
    sim.fail("revoke", status=400, body='{"error": "invalid_grant"}')
    linking.unlink(account)
    assert not LinkedAccount.objects.exists()


@pytest.mark.django_db
def test_unlink_with_wrong_client_credentials_deletes_nothing(sim, link_account, settings):
    """Cronofy answers 200 for an unknown token: any other refusal (here invalid_client,
    our misconfiguration) means the grant may still be alive, so the account stays."""
    account, sim_account = link_account()
    settings.CRONOFY_CONFERENCING = {**settings.CRONOFY_CONFERENCING, "CLIENT_SECRET": "wrong-one"}
    with pytest.raises(CronofyAPIError) as excinfo:
        linking.unlink(account)
    assert excinfo.value.status_code == 400
    assert not isinstance(excinfo.value, InvalidGrant)
    assert LinkedAccount.objects.filter(pk=account.pk).exists()
    assert sim_account.refresh_token in sim.refresh_tokens  # still granted at Cronofy


@pytest.mark.django_db
def test_unlink_of_an_already_revoked_grant(sim, link_account):
    account, sim_account = link_account()
    sim.revoke_grant(sim_account.sub)
    linking.unlink(account)  # Cronofy answers 200 for an unknown token
    assert not LinkedAccount.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("which", ["access_token", "refresh_token", "both"])
def test_unlink_with_a_lost_encryption_key_deletes_locally(
    sim, link_account, settings, caplog, which
):
    """A token no configured key decrypts can never be sent again: unlinking must
    not get stuck on it. Logged (naming the setting), then deleted locally."""
    account, sim_account = link_account(conferencing_profiles=[sim.profile("zoom")])
    sync_account(account)
    lost_key = Fernet(Fernet.generate_key())
    fields = ["access_token", "refresh_token"] if which == "both" else [which]
    LinkedAccount.objects.filter(pk=account.pk).update(
        **{
            name: EncryptedValue(lost_key.encrypt(b"a-token-from-before").decode())
            for name in fields
        }
    )
    account = LinkedAccount.objects.get(pk=account.pk)
    with caplog.at_level(logging.INFO, logger="django_cronofy_conferencing.oauth"):
        revoked = linking.unlink(account)
    assert not LinkedAccount.objects.exists()
    assert not ConferencingProfile.objects.exists()
    if which == "access_token":  # the refresh token is what revoke sends: still readable
        assert revoked is True
        assert sim.count("revoke") == 1
        return
    assert revoked is False
    assert sim.count("revoke") == 0
    [record] = [r for r in caplog.records if "cannot be decrypted" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "CRONOFY_CONFERENCING['ENCRYPTION_KEYS']" in record.getMessage()
    assert sim_account.refresh_token not in caplog.text
    assert "gAAAAA" not in caplog.text  # no ciphertext either


# -- push channel -------------------------------------------------------------


@pytest.mark.django_db
def test_the_push_channel_id_is_written_under_the_write_lock(
    sim, link_account, settings, monkeypatch
):
    settings.CRONOFY_CONFERENCING = {
        **settings.CRONOFY_CONFERENCING,
        "PUSH_NOTIFICATIONS_CALLBACK_URL": "https://example.com/cronofy/notifications/",
    }
    account, _ = link_account()
    held = {"now": False, "during_write": []}

    @contextlib.contextmanager
    def recording_write_lock(using):
        held["now"] = True
        try:
            yield
        finally:
            held["now"] = False

    real_update = QuerySet.update

    def update(self, **kwargs):
        if "channel_id" in kwargs:
            held["during_write"].append(held["now"])
        return real_update(self, **kwargs)

    monkeypatch.setattr(channels, "write_lock", recording_write_lock)
    monkeypatch.setattr(QuerySet, "update", update)
    channel_id = linking.ensure_push_channel(account)
    assert channel_id and LinkedAccount.objects.get().channel_id == channel_id
    assert held["during_write"] == [True]


# -- conferencing authorization -----------------------------------------------


@pytest.mark.django_db
def test_conferencing_authorization_refreshes_after_a_401(sim, link_account):
    account, sim_account = link_account(data_center="de")
    sim.expire_access_token(sim_account.sub)
    url = linking.create_conferencing_authorization(account, REDIRECT, "zoom")
    assert url.startswith("https://app-de.cronofy.com/conferencing_services/")
    assert [(r.endpoint, r.status) for r in sim.requests] == [
        ("conferencing_service_authorizations", 401),
        ("token", 200),
        ("conferencing_service_authorizations", 200),
    ]
