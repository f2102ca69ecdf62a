"""The push notification receiver: signatures, types, channels, resync, Celery hand-off."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from unittest import mock

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_cronofy_conferencing.accounts import linking
from django_cronofy_conferencing.conf import app_settings
from django_cronofy_conferencing.cronofy.tokens import TokenSet
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount, PushNotification
from django_cronofy_conferencing.signals import account_gdpr_requested
from django_cronofy_conferencing.testing import DEFAULT_CLIENT_SECRET
from django_cronofy_conferencing.web.notifications import (
    MAX_BODY_BYTES,
    RESYNC_TYPES,
    signature_valid,
)
from tests.web.conftest import CALLBACK

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("push_configured")]

URL = "/cronofy/notifications/"
OLD_SECRET = "old_client_secret_98765"


def _base():
    from django.conf import settings

    return dict(settings.CRONOFY_CONFERENCING)


@pytest.fixture
def channelled(sim, link_account):
    """A linked account with a zoom profile, synced, with a push channel."""
    account, sim_account = link_account(conferencing_profiles=[sim.profile("zoom")])
    from django_cronofy_conferencing.sync import sync_account

    sync_account(account)
    linking.ensure_push_channel(account)
    assert account.channel_id
    return account, sim_account


def post(push_client, body: bytes, signature: str | None = None, **extra):
    headers = {} if signature is None else {"HTTP_CRONOFY_HMAC_SHA256": signature}
    return push_client.post(URL, data=body, content_type="application/json", **headers, **extra)


def notification(channel_id: str, kind: str) -> bytes:
    return json.dumps(
        {
            "notification": {"type": kind},
            "channel": {"channel_id": channel_id, "callback_url": CALLBACK, "filters": {}},
        }
    ).encode()


def disconnect_zoom(sim, sim_account) -> None:
    sim.set_connected(sim_account.sub, sim_account.conferencing_profiles[0]["profile_id"], False)


def test_url_name():
    assert reverse("cronofy_conferencing:notifications") == URL


def test_linking_creates_a_channel_for_the_callback_url(sim, user):
    sim_account = sim.add_account(conferencing_profiles=[sim.profile("zoom")])
    tokens = TokenSet(
        access_token=sim_account.access_token,
        refresh_token=sim_account.refresh_token,
        expires_in=3600,
        scope="read_account",
        sub=sim_account.sub,
    )
    result = linking.link_account(user, "us", tokens)
    channel_id = result.account.channel_id
    assert channel_id
    assert LinkedAccount.objects.get().channel_id == channel_id
    assert sim.channels[channel_id] == {"sub": sim_account.sub, "callback_url": CALLBACK}
    assert sim.requests[-1].json == {"callback_url": CALLBACK}


def test_signed_profile_disconnected_resyncs_the_account(push_client, sim, channelled):
    _account, sim_account = channelled
    disconnect_zoom(sim, sim_account)
    body, headers = sim.notification(sim_account.sub, "profile_disconnected")
    before = sim.count("userinfo")
    response = post(push_client, body, headers["Cronofy-HMAC-SHA256"])
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert sim.count("userinfo") == before + 1
    profile = ConferencingProfile.objects.get()
    assert profile.profile_connected is False
    assert profile.profile_relink_url.startswith("https://app.cronofy.com/v2/relink/zoom")


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "bm90IHRoZSByaWdodCBvbmU=",
        "not base64 at all!",
        ",,,",
    ],
    ids=["missing", "empty", "wrong", "garbage", "commas"],
)
def test_missing_or_wrong_signature_is_401_and_nothing_happens(
    push_client, sim, channelled, signature
):
    _account, sim_account = channelled
    disconnect_zoom(sim, sim_account)
    body, _ = sim.notification(sim_account.sub, "profile_disconnected")
    before = len(sim.requests)
    response = post(push_client, body, signature)
    assert response.status_code == 401
    assert len(sim.requests) == before
    assert ConferencingProfile.objects.get().profile_connected is True


def test_signature_of_another_body_is_refused(push_client, sim, channelled):
    _, sim_account = channelled
    body, headers = sim.notification(sim_account.sub, "profile_disconnected")
    tampered = body.replace(b"profile_disconnected", b"change")
    assert post(push_client, tampered, headers["Cronofy-HMAC-SHA256"]).status_code == 401


def test_signature_with_an_unknown_secret_is_refused(push_client, sim, channelled):
    _, sim_account = channelled
    body, _ = sim.notification(sim_account.sub, "verification")
    assert post(push_client, body, sim.sign(body, OLD_SECRET)).status_code == 401


def test_rotated_secret_is_accepted_while_listed(push_client, sim, channelled, settings_with):
    _account, sim_account = channelled
    disconnect_zoom(sim, sim_account)
    body, _ = sim.notification(sim_account.sub, "profile_disconnected")
    with settings_with(
        PUSH_NOTIFICATIONS_CALLBACK_URL=CALLBACK,
        CLIENT_SECRET="the_new_client_secret_123",
        PREVIOUS_CLIENT_SECRETS=[OLD_SECRET, DEFAULT_CLIENT_SECRET],
    ):
        # Signed with a previous secret only.
        assert post(push_client, body, sim.sign(body, OLD_SECRET)).status_code == 200
        # Several values while Cronofy rotates: any one that matches will do.
        both = f"{sim.sign(body, 'unknown_secret_000')}, {sim.sign(body, OLD_SECRET)}"
        assert post(push_client, body, both).status_code == 200
    assert ConferencingProfile.objects.get().profile_connected is False
    with settings_with(CLIENT_SECRET="the_new_client_secret_123"):
        assert post(push_client, body, sim.sign(body, OLD_SECRET)).status_code == 401


def test_signature_valid_helper():
    body = b'{"notification": {"type": "verification"}}'
    from django_cronofy_conferencing.testing import SimulatedCronofy

    good = SimulatedCronofy().sign(body)
    assert signature_valid(body, good)
    assert signature_valid(body, f"x, {good}")
    assert not signature_valid(body, None)
    assert not signature_valid(body, good[:-4])
    assert not signature_valid(body + b" ", good)


def test_no_client_secret_configured_refuses_everything(
    push_client, sim, channelled, settings_with
):
    _, sim_account = channelled
    body, headers = sim.notification(sim_account.sub, "verification")
    with settings_with(CLIENT_SECRET="", PREVIOUS_CLIENT_SECRETS=[]):
        assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 401


def test_verification_is_acknowledged_without_a_sync(push_client, sim, channelled):
    _, sim_account = channelled
    body, headers = sim.notification(sim_account.sub, "verification")
    before = len(sim.requests)
    assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    assert len(sim.requests) == before


@pytest.mark.parametrize("kind", ["something_new", "profile_updated", "conferencing_assigned"])
def test_unknown_types_are_acknowledged_and_ignored(push_client, sim, channelled, kind, caplog):
    _, sim_account = channelled
    body, headers = sim.notification(sim_account.sub, kind)
    before = len(sim.requests)
    response = post(push_client, body, headers["Cronofy-HMAC-SHA256"])
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "ignored": True}
    assert len(sim.requests) == before
    assert f"Cronofy push notification {kind!r} ignored." in caplog.text


def test_unknown_channel_is_acknowledged_and_ignored(push_client, sim, channelled):
    body = notification("chn_unknown", "profile_disconnected")
    before = len(sim.requests)
    response = post(push_client, body, sim.sign(body))
    assert response.status_code == 200
    assert response.json()["ignored"] is True
    assert len(sim.requests) == before


def test_notification_without_channel_is_ignored(push_client, sim):
    body = json.dumps({"notification": {"type": "change"}}).encode()
    assert post(push_client, body, sim.sign(body)).status_code == 200
    assert sim.requests == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'"text"',
        b'{"notification": {"type": 7}}',
        b'{"notification": {"type": "change"}, "channel": {"channel_id": 5}}',
        b"\xff\xfe",
        b"[" * 30_000 + b"]" * 30_000,
    ],
    ids=["broken", "array", "string", "type-not-text", "channel-not-text", "not-utf8", "deep"],
)
def test_malformed_body_with_a_valid_signature_is_400(push_client, sim, body):
    assert post(push_client, body, sim.sign(body)).status_code == 400


def test_body_size_limit(push_client, sim, channelled):
    body = b'{"pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = post(push_client, body, sim.sign(body))
    assert response.status_code == 413


def test_only_post_is_allowed(push_client):
    assert push_client.get(URL).status_code == 405
    assert push_client.put(URL).status_code == 405


@pytest.mark.parametrize("kind", sorted(RESYNC_TYPES))
def test_every_resync_type_resyncs_the_account(push_client, sim, channelled, kind):
    _, sim_account = channelled
    disconnect_zoom(sim, sim_account)
    body, headers = sim.notification(sim_account.sub, kind)
    before = sim.count("userinfo")
    assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).json() == {"status": "ok"}
    assert sim.count("userinfo") == before + 1
    assert ConferencingProfile.objects.get().profile_connected is False


def test_resyncs_are_debounced_per_account_whatever_the_type(
    push_client, sim, channelled, settings
):
    _, sim_account = channelled
    before = sim.count("userinfo")
    for kind in ["change", "conferencing_profile_disconnected", "profile_disconnected", "change"]:
        body, headers = sim.notification(sim_account.sub, kind)
        assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    assert sim.count("userinfo") == before + 1
    # The window passes (the cache forgets the key): the next one syncs again.
    cache.clear()
    body, headers = sim.notification(sim_account.sub, "conferencing_profile_disconnected")
    assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    assert sim.count("userinfo") == before + 2


def test_the_debounce_window_is_the_setting(
    push_client, sim, channelled, monkeypatch, settings_with
):
    """The key lives PUSH_RESYNC_DEBOUNCE seconds (an expiry that never comes would mute
    the account for good)."""
    _, sim_account = channelled
    added = []
    real_add = cache.add

    def add(key, value, timeout=None, **kwargs):
        added.append((key, timeout))
        return real_add(key, value, timeout=timeout, **kwargs)

    monkeypatch.setattr(cache, "add", add)
    with settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL=CALLBACK, PUSH_RESYNC_DEBOUNCE=42):
        body, headers = sim.notification(sim_account.sub, "change")
        post(push_client, body, headers["Cronofy-HMAC-SHA256"])
    assert [t for k, t in added if "push-resync" in k] == [42]


def test_a_replay_storm_costs_one_sync(push_client, sim, channelled):
    _, sim_account = channelled
    body, headers = sim.notification(sim_account.sub, "conferencing_profile_disconnected")
    before = sim.counts()
    for _ in range(200):
        assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    after = sim.counts()
    assert after["userinfo"] - before["userinfo"] == 1
    assert sum(after.values()) - sum(before.values()) == 1


def test_replayed_notification_is_harmless(push_client, sim, channelled):
    _, sim_account = channelled
    disconnect_zoom(sim, sim_account)
    body, headers = sim.notification(sim_account.sub, "profile_disconnected")
    for _ in range(3):
        assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    assert ConferencingProfile.objects.count() == 1
    profile = ConferencingProfile.objects.get()
    assert profile.profile_connected is False
    assert profile.connection_changed_at is not None


def test_failed_sync_is_recorded_and_still_acknowledged(push_client, sim, channelled, caplog):
    account, sim_account = channelled
    sim.fail("userinfo", status=500, times=None)
    body, headers = sim.notification(sim_account.sub, "profile_disconnected")
    assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    account.refresh_from_db()
    assert account.consecutive_failures == 1
    assert "500" in account.last_sync_error
    assert f"Sync of Cronofy account {account.pk} after profile_disconnected failed" in (
        caplog.text
    )


def test_dead_grant_marks_the_account_and_is_acknowledged(push_client, sim, channelled):
    account, sim_account = channelled
    sim.revoke_grant(sim_account.sub)
    body, headers = sim.notification(sim_account.sub, "profile_disconnected")
    assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    account.refresh_from_db()
    assert account.status == LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    # Later notifications for it call nothing: the user must connect again.
    before = len(sim.requests)
    assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    assert len(sim.requests) == before


@pytest.mark.django_db(transaction=True)  # enqueued on commit: no test transaction around it
def test_with_celery_the_sync_is_queued(push_client, sim, channelled, settings_with, caplog):
    account, sim_account = channelled
    body, headers = sim.notification(sim_account.sub, "profile_disconnected")
    before = len(sim.requests)
    with (
        settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL=CALLBACK, TASK_QUEUE="celery"),
        mock.patch("django_cronofy_conferencing.tasks.sync_account_task.delay") as delay,
    ):
        assert app_settings.TASK_QUEUE == "celery"
        assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    delay.assert_called_once_with(account.pk, lane="push")  # background: the fleet's share
    assert len(sim.requests) == before
    assert f"Queued the sync of Cronofy account {account.pk} (profile_disconnected)" in (
        caplog.text
    )


@pytest.mark.django_db(transaction=True)  # enqueued on commit: no test transaction around it
def test_with_celery_down_the_sync_happens_now(push_client, sim, channelled, settings_with):
    _account, sim_account = channelled
    disconnect_zoom(sim, sim_account)
    body, headers = sim.notification(sim_account.sub, "profile_disconnected")
    with (
        settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL=CALLBACK, TASK_QUEUE="celery"),
        mock.patch(
            "django_cronofy_conferencing.tasks.sync_account_task.delay",
            side_effect=ConnectionError("broker down"),
        ),
    ):
        assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    assert ConferencingProfile.objects.get().profile_connected is False


def test_the_receiver_never_echoes_secrets(push_client, sim, channelled):
    _, sim_account = channelled
    body, headers = sim.notification(sim_account.sub, "profile_disconnected")
    response = post(push_client, body, headers["Cronofy-HMAC-SHA256"])
    assert DEFAULT_CLIENT_SECRET.encode() not in response.content
    assert sim_account.access_token.encode() not in response.content


# -- Cronofy's published test vector, and one application per data center ------------


@pytest.fixture
def vector(payload):
    """cronofy-csharp HmacVerification.cs and cronofy-ruby client_spec.rb (tests/payloads/sdk)."""
    return payload("sdk/hmac_vector")


def test_cronofys_published_hmac_vector_verifies(vector):
    body, secrets = vector["body"].encode(), [vector["secret"]]
    assert len(body) == vector["body_length"]
    assert signature_valid(body, vector["signature"], secrets)
    for example in vector["multi_value_examples"] + vector["single_value_rejections"]:
        assert signature_valid(body, example["header"], secrets) is example["valid"], example
    # The vector's secret is no configured application's: refused by default.
    assert not signature_valid(body, vector["signature"])


@pytest.fixture
def two_applications(sim, link_account):
    """A channelled account in "us" and one in "de" (each data center's own application)."""
    made = {}
    for dc in ("us", "de"):
        account, sim_account = link_account(
            data_center=dc, conferencing_profiles=[sim.profile("zoom")]
        )
        linking.ensure_push_channel(account)
        made[dc] = (account, sim_account)
    return made


def test_a_notification_must_be_signed_by_its_channels_application(
    push_client, sim, two_applications
):
    _, de = two_applications["de"]
    body, headers = sim.notification(de.sub, "conferencing_profile_disconnected")
    us_secret, de_secret = sim.credentials_for("us")[1], sim.credentials_for("de")[1]
    assert headers["Cronofy-HMAC-SHA256"] == sim.sign(body, de_secret)
    before = sim.count("userinfo")
    # Another data center's application cannot sign for this channel.
    assert post(push_client, body, sim.sign(body, us_secret)).status_code == 401
    assert sim.count("userinfo") == before
    assert post(push_client, body, sim.sign(body, de_secret)).status_code == 200
    userinfo = [r for r in sim.requests if r.endpoint == "userinfo"][-1]
    assert (userinfo.data_center, userinfo.sub) == ("de", de.sub)


def test_a_previous_secret_of_the_channels_application_is_accepted(
    push_client, sim, two_applications, settings_with
):
    _, de = two_applications["de"]
    body, headers = sim.notification(de.sub, "profile_disconnected")
    old = sim.credentials_for("de")[1]
    applications = {
        **app_settings.APPLICATIONS,
        "de": {**app_settings.APPLICATIONS["de"], "CLIENT_SECRET": "de-new-secret-000"},
    }
    with settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL=CALLBACK, APPLICATIONS=applications):
        assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 401
    applications["de"]["PREVIOUS_CLIENT_SECRETS"] = ["", old]
    with settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL=CALLBACK, APPLICATIONS=applications):
        assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
        # An empty previous secret is never an HMAC key.
        forged = base64.b64encode(hmac.new(b"", body, hashlib.sha256).digest()).decode()
        assert post(push_client, body, forged).status_code == 401


def test_gdpr_requested_sends_the_signal_and_calls_nothing(push_client, sim, channelled):
    account, sim_account = channelled
    received = []
    handler = mock.Mock(side_effect=lambda **kwargs: received.append(kwargs["account"].pk))
    account_gdpr_requested.connect(handler, dispatch_uid="test-gdpr")
    try:
        body, headers = sim.notification(sim_account.sub, "gdpr_requested")
        before = len(sim.requests)
        assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).json() == {"status": "ok"}
    finally:
        account_gdpr_requested.disconnect(dispatch_uid="test-gdpr")
    assert received == [account.pk]
    assert len(sim.requests) == before


@pytest.mark.parametrize(
    "channel_id",
    ["chn_\x00abc", "chn_\udcff", "chn_" + "x" * 300, "chn with space", 42, ["chn_1"], "chn_1\n"],
    ids=["nul", "lone-surrogate", "too-long", "space", "number", "list", "trailing-newline"],
)
def test_an_odd_channel_id_is_a_400_when_signed_and_reaches_no_query(
    push_client, sim, channelled, channel_id, django_assert_num_queries, settings_with
):
    text = json.dumps(
        {"notification": {"type": "change"}, "channel": {"channel_id": channel_id}},
        ensure_ascii=True,
    )
    body = text.encode()
    before = len(sim.requests)
    with (
        settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL=CALLBACK, PUSH_LOG_DAYS=0),
        django_assert_num_queries(0),
    ):
        assert post(push_client, body, sim.sign(body)).status_code == 400
        assert post(push_client, body, sim.sign(body, "not-a-secret")).status_code == 401
    # With the push log (PUSH_LOG_DAYS): one INSERT each, the odd id not in it.
    with CaptureQueriesContext(connection) as queries:
        assert post(push_client, body, sim.sign(body)).status_code == 400
        assert post(push_client, body, sim.sign(body, "not-a-secret")).status_code == 401
    assert [q["sql"].split()[:3] for q in queries.captured_queries] == [
        ["INSERT", "INTO", '"cronofy_conferencing_pushnotification"']
    ] * 2
    assert list(PushNotification.objects.values_list("channel_id", "outcome")) == [
        ("", "refused"),
        ("", "malformed"),
    ]
    assert len(sim.requests) == before


def test_an_empty_channel_id_matches_no_account(push_client, sim, link_account):
    """Accounts without a channel store "": a notification naming "" is not theirs."""
    account, _ = link_account()
    assert account.channel_id == ""
    body = json.dumps({"notification": {"type": "change"}, "channel": {"channel_id": ""}}).encode()
    response = post(push_client, body, sim.sign(body))
    assert response.json() == {"status": "ok", "ignored": True}
    assert sim.count("userinfo") == 0


def test_without_a_queue_the_receiver_makes_one_bounded_attempt(push_client, sim, channelled):
    """No retry loop inside Cronofy's request: one 503 is one call, recorded, answered 200."""
    account, sim_account = channelled
    sim.fail("userinfo", status=503, times=None)
    body, headers = sim.notification(sim_account.sub, "conferencing_profile_disconnected")
    before = sim.count("userinfo")
    assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    assert sim.count("userinfo") == before + 1
    account.refresh_from_db()
    assert account.consecutive_failures == 1
    assert "503" in account.last_sync_error


# -- survivors of the mutation audit (issue #10 item 10) --------------------------------


def _signed_with_empty_key(body: bytes) -> str:
    import base64
    import hashlib
    import hmac

    return base64.b64encode(hmac.new(b"", body, hashlib.sha256).digest()).decode()


@pytest.mark.parametrize(
    "config",
    [
        {"PREVIOUS_CLIENT_SECRETS": [""]},
        {"PREVIOUS_CLIENT_SECRETS": ["", OLD_SECRET]},
        {"CLIENT_SECRET": "", "PREVIOUS_CLIENT_SECRETS": [OLD_SECRET]},
    ],
    ids=["empty-previous", "empty-among-previous", "empty-current"],
)
def test_an_empty_secret_is_never_an_hmac_key(push_client, sim, channelled, settings_with, config):
    """Anyone can compute an HMAC with an empty key: such a signature must never pass."""
    account, sim_account = channelled
    disconnect_zoom(sim, sim_account)
    body = notification(account.channel_id, "profile_disconnected")
    before = sim.count("userinfo")
    with settings_with(**config):
        assert post(push_client, body, _signed_with_empty_key(body)).status_code == 401
    assert sim.count("userinfo") == before


@pytest.mark.parametrize(
    "channel_id", ["\\u0000", "chan_\\u0000x", "\\ud800", "chan_\\udfff", "chan_x\\n"]
)
def test_a_channel_id_that_cannot_be_stored_never_reaches_the_database(
    push_client, sim, channelled, channel_id
):
    """Issue #10 item 5: NUL or a lone surrogate in a signed push was a 500 on PostgreSQL."""
    body = (
        '{"notification": {"type": "profile_disconnected"}, '
        f'"channel": {{"channel_id": "{channel_id}"}}}}'
    ).encode()
    before = sim.count("userinfo")
    response = post(push_client, body, sim.sign(body))
    assert response.status_code in (200, 400)
    assert sim.count("userinfo") == before


# -- issue 20: signature before any query, debounce closed, GDPR debounced ---------


@pytest.mark.parametrize("channel", ["known", "unknown"])
@pytest.mark.parametrize("signature", ["none", "garbage", "another-secret", "another-body"])
def test_an_unsigned_or_forged_notification_reads_nothing(
    push_client, sim, channelled, django_assert_num_queries, channel, signature
):
    """Before: the channel's accounts were read first (1 query), so the answer's timing
    told an anonymous caller whether a channel id exists (1.0 vs 2.9 ms in the review).
    After: the signature is checked against every configured application's secrets
    first; a forged request reads nothing, whatever channel it names: its one query is
    the push log's INSERT (issue 23), the same for a known and an unknown channel."""
    account, _ = channelled
    channel_id = account.channel_id if channel == "known" else "chn_nobody_has_this"
    body = notification(channel_id, "conferencing_profile_disconnected")
    offered = {
        "none": None,
        "garbage": "bm90IGEgc2lnbmF0dXJl",
        "another-secret": sim.sign(body, "not-a-configured-secret"),
        "another-body": sim.sign(body + b" "),
    }[signature]
    before = len(sim.requests)
    with django_assert_num_queries(1) as queries:
        assert post(push_client, body, offered).status_code == 401
    assert queries.captured_queries[0]["sql"].startswith(
        'INSERT INTO "cronofy_conferencing_pushnotification"'
    )
    assert len(sim.requests) == before


@pytest.fixture
def cache_down(settings, settings_with):
    """RATE_LIMIT_CACHE is a Redis cache nothing listens to (a real connection refusal)."""
    caches = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"socket_connect_timeout": 0.5},
        },
    }
    settings.CACHES = caches
    with settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL=CALLBACK, RATE_LIMIT_CACHE="down"):
        yield


def test_with_the_cache_down_replays_cost_no_cronofy_call(
    push_client, sim, channelled, cache_down, caplog
):
    """Before: the debounce failed open, 30 replays made 30 Cronofy calls. After: fail
    closed, 503 (Cronofy delivers it again later), no call."""
    _, sim_account = channelled
    body, headers = sim.notification(sim_account.sub, "conferencing_profile_disconnected")
    before = sim.counts()
    for _ in range(30):
        response = post(push_client, body, headers["Cronofy-HMAC-SHA256"])
        assert response.status_code == 503
        assert response["Retry-After"] == "60"
    assert sim.counts() == before
    # Operators get the cache's error with its traceback, and why nothing was done.
    warnings = [r for r in caplog.records if r.getMessage().startswith("Cache unavailable")]
    assert warnings and all(r.exc_info for r in warnings)
    assert "answered 503" in caplog.text
    # What needs no debounce still works without the cache.
    body, headers = sim.notification(sim_account.sub, "verification")
    assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200


@pytest.fixture
def gdpr_signals():
    received: list[int] = []

    def handler(sender, account, **kwargs):
        received.append(account.pk)

    account_gdpr_requested.connect(handler, dispatch_uid="test-gdpr-debounce")
    yield received
    account_gdpr_requested.disconnect(dispatch_uid="test-gdpr-debounce")


def test_gdpr_requested_is_debounced_per_account(push_client, sim, two_applications, gdpr_signals):
    """Before: 20 replays of one gdpr_requested sent the signal 20 times. After: once
    per account and PUSH_RESYNC_DEBOUNCE window; another account's is its own."""
    (us, us_sim), (de, de_sim) = two_applications["us"], two_applications["de"]
    body, headers = sim.notification(us_sim.sub, "gdpr_requested")
    for _ in range(20):
        assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    assert gdpr_signals == [us.pk]
    body, headers = sim.notification(de_sim.sub, "gdpr_requested")
    assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    assert gdpr_signals == [us.pk, de.pk]
    cache.clear()  # the window passes
    body, headers = sim.notification(us_sim.sub, "gdpr_requested")
    assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    assert gdpr_signals == [us.pk, de.pk, us.pk]


def test_gdpr_requested_with_the_cache_down_is_delivered_again(
    push_client, sim, channelled, cache_down, gdpr_signals
):
    _, sim_account = channelled
    body, headers = sim.notification(sim_account.sub, "gdpr_requested")
    for _ in range(3):
        assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 503
    assert gdpr_signals == []


# -- issue 20 §3: what the mutation audit found untested ----------------------------


def test_each_account_has_its_own_debounce_window(push_client, sim, two_applications):
    """One key for every account would swallow the second account's resync."""
    before = sim.count("userinfo")
    for dc in ("us", "de"):
        _, sim_account = two_applications[dc]
        body, headers = sim.notification(sim_account.sub, "conferencing_profile_disconnected")
        assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    assert sim.count("userinfo") == before + 2


def test_a_push_for_a_dead_account_leaves_its_window_alone(push_client, sim, channelled):
    """A notification for an account that needs reauthorization does nothing, and
    does not open a window: relinked, its next notification resyncs at once."""
    account, sim_account = channelled
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    body, headers = sim.notification(sim_account.sub, "profile_disconnected")
    before = sim.count("userinfo")
    assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    assert sim.count("userinfo") == before
    LinkedAccount.objects.filter(pk=account.pk).update(status=LinkedAccount.Status.ACTIVE)
    assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    assert sim.count("userinfo") == before + 1


def padded(channel_id: str, size: int) -> bytes:
    """A verification notification of exactly ``size`` bytes."""
    head = notification(channel_id, "verification")[:-1] + b', "pad": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_refused(
    push_client, sim, channelled
):
    account, _ = channelled
    assert MAX_BODY_BYTES == 64 * 1024
    body = padded(account.channel_id, 64 * 1024)
    assert post(push_client, body, sim.sign(body)).status_code == 200
    longer = padded(account.channel_id, 64 * 1024 + 1)
    assert post(push_client, longer, sim.sign(longer)).status_code == 413


@pytest.mark.parametrize(("size", "status"), [(64 * 1024, 200), (64 * 1024 + 1, 413)])
def test_a_body_without_content_length_is_bounded_too(sim, channelled, size, status):
    """Under ASGI a chunked body comes without Content-Length: the body read counts."""
    import io

    from django.core.handlers.asgi import ASGIRequest

    from django_cronofy_conferencing.web.notifications import receive

    account, _ = channelled
    body = padded(account.channel_id, size)
    scope = {
        "type": "http",
        "method": "POST",
        "path": URL,
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"cronofy-hmac-sha256", sim.sign(body).encode()),
        ],
    }
    request = ASGIRequest(scope, io.BytesIO(body))
    assert request.headers.get("Content-Length") is None
    assert receive(request).status_code == status


def test_signature_valid_with_a_misconfigured_setting_is_false(settings_with, caplog):
    """The helper itself (hosts call it too): a broken APPLICATIONS setting refuses."""
    body = b'{"notification": {"type": "verification"}}'
    with settings_with(APPLICATIONS="not a dict"):
        assert signature_valid(body, "Zm9yZ2Vk") is False
    assert "misconfigured" in caplog.text


def test_a_signature_with_stray_characters_is_refused(push_client, sim, channelled):
    """Strict base64: a valid HMAC with characters outside the alphabet is no signature."""
    _, sim_account = channelled
    body, headers = sim.notification(sim_account.sub, "verification")
    good = headers["Cronofy-HMAC-SHA256"]
    assert post(push_client, body, good).status_code == 200
    assert post(push_client, body, good[:4] + "*" + good[4:]).status_code == 401


def test_a_gdpr_request_is_logged(push_client, sim, channelled, caplog):
    account, sim_account = channelled
    body, headers = sim.notification(sim_account.sub, "gdpr_requested")
    assert post(push_client, body, headers["Cronofy-HMAC-SHA256"]).status_code == 200
    assert f"Cronofy account {account.pk}: GDPR request received" in caplog.text


def test_a_debounce_of_zero_still_keeps_a_one_second_window(
    push_client, sim, channelled, monkeypatch, settings_with
):
    _, sim_account = channelled
    added = []
    real_add = cache.add

    def add(key, value, timeout=None, **kwargs):
        added.append(timeout)
        return real_add(key, value, timeout=timeout, **kwargs)

    monkeypatch.setattr(cache, "add", add)
    with settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL=CALLBACK, PUSH_RESYNC_DEBOUNCE=0):
        body, headers = sim.notification(sim_account.sub, "change")
        post(push_client, body, headers["Cronofy-HMAC-SHA256"])
    assert added == [1]
