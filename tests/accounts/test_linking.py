"""linking: authorization URL, code exchange, link, unlink, push channel, conferencing
authorization (above sync)."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet
from django.db.models import QuerySet
from django.utils import timezone

from django_cronofy_conferencing.accounts import channels, linking
from django_cronofy_conferencing.cronofy.datacenters import BUILTIN_DATA_CENTERS
from django_cronofy_conferencing.cronofy.tokens import TokenSet
from django_cronofy_conferencing.exceptions import (
    CronofyAPIError,
    CronofyUnavailable,
    InvalidGrant,
    RateLimited,
)
from django_cronofy_conferencing.fields import EncryptedValue
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import sync_account

DATA_CENTERS = sorted(BUILTIN_DATA_CENTERS)
REDIRECT = "https://example.com/cronofy/callback/"


def code_for(sim, sim_account, redirect_uri=REDIRECT) -> str:
    url = linking.authorization_url(sim_account.data_center, redirect_uri=redirect_uri, state="s")
    return parse_qs(urlsplit(sim.authorize(url, account=sim_account)).query)["code"][0]


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


# -- survivors of the mutation audit (issue #10 item 10) --------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["javascript:alert(document.cookie)", "data:text/html,x", "//evil.example/x", ""]
)
def test_a_conferencing_authorization_url_that_is_no_web_url_is_refused(sim, link_account, url):
    """The URL is handed to the browser as a redirect: never a javascript: URL."""
    import json

    from django_cronofy_conferencing.exceptions import InvalidResponse

    account, _ = link_account()
    body = json.dumps({"authorization_request": {"url": url}})
    sim.fail("conferencing_service_authorizations", status=200, body=body)
    with pytest.raises(InvalidResponse):
        linking.create_conferencing_authorization(account, REDIRECT, "zoom")


@pytest.mark.django_db
def test_relink_reuses_the_existing_push_channel(sim, user, settings_with):
    sim_account = sim.add_account()
    tokens = TokenSet(
        access_token=sim_account.access_token,
        refresh_token=sim_account.refresh_token,
        expires_in=3600,
        scope="read_account",
        sub=sim_account.sub,
    )
    with settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL="https://example.com/cronofy/n/"):
        first = linking.link_account(user, "us", tokens).account
        again = linking.link_account(user, "us", tokens).account
    assert first.pk == again.pk
    assert again.channel_id == first.channel_id != ""
    assert sim.count("channels") == 1


@pytest.mark.django_db
def test_unlink_of_an_account_without_a_stored_token_calls_nothing(sim, user):
    account = LinkedAccount.objects.create(
        user=user, data_center="us", sub="acc_no_token", access_token="", refresh_token=""
    )
    assert linking.unlink(account) is True
    assert not LinkedAccount.objects.filter(pk=account.pk).exists()
    assert sim.count() == 0


@pytest.mark.django_db(transaction=True)
def test_link_reads_the_account_under_its_row_lock(sim, user, other_user, row_lock_holder):
    """PostgreSQL, two connections: the account is given to another user while the link
    waits on its row. Under the lock the link sees it and refuses; without the lock it
    read the old owner first and moved the account back (AccountLinkConflict missed)."""
    sim_account = sim.add_account()
    account = LinkedAccount.objects.create(
        user=user,
        data_center="us",
        sub=sim_account.sub,
        access_token="at-before-000000",
        refresh_token="rt-before-000000",
    )
    tokens = TokenSet(
        access_token=sim_account.access_token,
        refresh_token=sim_account.refresh_token,
        expires_in=3600,
        scope="read_account",
        sub=sim_account.sub,
    )

    def give_away():
        LinkedAccount.objects.filter(pk=account.pk).update(user=other_user)

    with row_lock_holder(account.pk, give_away), pytest.raises(linking.AccountLinkConflict):
        linking.link_account(user, "us", tokens, sync=False)
    stored = LinkedAccount.objects.get(pk=account.pk)
    assert stored.user == other_user
    assert stored.access_token == "at-before-000000"


@pytest.mark.django_db
def test_a_code_exchange_must_return_a_refresh_token(sim):
    import json

    from django_cronofy_conferencing.exceptions import InvalidResponse

    sim_account = sim.add_account()
    code = code_for(sim, sim_account)
    body = json.dumps({"token_type": "bearer", "access_token": "at-only-0000000000", "sub": "a"})
    sim.fail("token", status=200, body=body)
    with pytest.raises(InvalidResponse, match="refresh_token"):
        linking.exchange_code("us", code, REDIRECT)


@pytest.mark.django_db
def test_linked_tokens_are_remembered_for_redaction(sim, user):
    from django_cronofy_conferencing.cronofy.redaction import REDACTED, redact

    tokens = TokenSet(
        access_token="at-linked-never-sent-1234",
        refresh_token="rt-linked-never-sent-5678",
        expires_in=3600,
        scope="read_account",
        sub="acc_remembered",
    )
    linking.link_account(user, "us", tokens, sync=False)
    assert redact("at-linked-never-sent-1234 rt-linked-never-sent-5678") == (
        f"{REDACTED} {REDACTED}"
    )
