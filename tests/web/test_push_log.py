"""The push notification log: every notification the receiver answers is kept
(``PushNotification``) with what the app did, in one INSERT; Reprocess; pruning; no secret."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cronofy_conferencing.accounts import linking
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount, PushNotification
from django_cronofy_conferencing.signals import account_gdpr_requested
from django_cronofy_conferencing.testing import DEFAULT_CLIENT_SECRET
from django_cronofy_conferencing.web import push_log
from django_cronofy_conferencing.web.notifications import reprocess
from tests.web.conftest import CALLBACK

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("push_configured")]

URL = "/cronofy/notifications/"
Outcome = PushNotification.Outcome


@pytest.fixture
def channelled(sim, link_account):
    from django_cronofy_conferencing.sync import sync_account

    account, sim_account = link_account(
        email="nobody.should.see.this@example.com",
        conferencing_profiles=[sim.profile("zoom")],
    )
    sync_account(account)
    linking.ensure_push_channel(account)
    return account, sim_account


def post(client, body: bytes, signature: str | None):
    headers = {} if signature is None else {"HTTP_CRONOFY_HMAC_SHA256": signature}
    return client.post(URL, data=body, content_type="application/json", **headers)


def send(client, sim, sim_account, kind="profile_disconnected"):
    body, headers = sim.notification(sim_account.sub, kind)
    return post(client, body, headers["Cronofy-HMAC-SHA256"]), body


def only() -> PushNotification:
    [row] = PushNotification.objects.all()
    return row


# -- each outcome ------------------------------------------------------------------------


def test_a_valid_notification_is_kept_with_what_was_done(push_client, sim, channelled):
    account, sim_account = channelled
    sim.set_connected(sim_account.sub, sim_account.conferencing_profiles[0]["profile_id"], False)
    response, body = send(push_client, sim, sim_account)
    assert response.status_code == 200
    row = only()
    assert row.notification_type == "profile_disconnected"
    assert row.channel_id == account.channel_id
    assert row.account_id == account.pk
    assert row.signature_valid is True
    assert row.outcome == Outcome.RESYNCED
    assert row.error == "" and row.detail == ""
    assert row.response_status == 200
    assert json.loads(row.body) == json.loads(body)  # a signed body is kept whole
    assert row.body_size == len(body)
    assert row.received_at is not None and row.reprocessed_at is None
    assert ConferencingProfile.objects.get().profile_connected is False


def test_a_forged_notification_is_kept_bounded_and_unlinked(push_client, sim, channelled):
    account, _ = channelled
    padding = "x" * 10_000
    body = json.dumps(
        {
            "notification": {"type": "change", "pad": padding},
            "channel": {"channel_id": account.channel_id},
        }
    ).encode()
    response = post(push_client, body, sim.sign(body, "not-the-secret"))
    assert response.status_code == 401
    row = only()
    assert row.signature_valid is False
    assert row.outcome == Outcome.REFUSED
    assert row.response_status == 401
    assert row.account is None  # nothing a forger claims is trusted
    assert (row.notification_type, row.channel_id) == ("change", account.channel_id)
    assert len(row.body.encode()) <= PushNotification.UNSIGNED_BODY_LIMIT
    assert row.body_size == len(body) and row.body_truncated
    assert sim.count("userinfo") == 1  # the fixture's sync only


def test_an_unsigned_notification(push_client, sim, channelled):
    _, sim_account = channelled
    body, _ = sim.notification(sim_account.sub, "change")
    assert post(push_client, body, None).status_code == 401
    row = only()
    assert (row.signature_valid, row.outcome) == (False, Outcome.REFUSED)
    assert not row.body_truncated and json.loads(row.body)


def test_an_unknown_type_is_kept_as_ignored(push_client, sim, channelled):
    account, sim_account = channelled
    response, _ = send(push_client, sim, sim_account, "something_new")
    assert response.json() == {"status": "ok", "ignored": True}
    row = only()
    assert (row.outcome, row.detail) == (Outcome.IGNORED, "a type the app ignores")
    assert row.notification_type == "something_new" and row.account_id == account.pk


def test_an_unknown_channel_is_kept_as_ignored(push_client, sim, channelled):
    body = json.dumps(
        {"notification": {"type": "change"}, "channel": {"channel_id": "chn_nobody"}}
    ).encode()
    assert post(push_client, body, sim.sign(body)).json()["ignored"] is True
    row = only()
    assert (row.outcome, row.detail) == (Outcome.IGNORED, "no account has the channel")
    assert (row.channel_id, row.account, row.signature_valid) == ("chn_nobody", None, True)


def test_a_debounced_notification(push_client, sim, channelled):
    _, sim_account = channelled
    send(push_client, sim, sim_account, "change")
    send(push_client, sim, sim_account, "conferencing_profile_disconnected")
    first, second = PushNotification.objects.order_by("pk")
    assert first.outcome == Outcome.RESYNCED
    assert second.outcome == Outcome.DEBOUNCED
    assert second.detail == "resynced within PUSH_RESYNC_DEBOUNCE"


def test_a_failed_resync_keeps_its_error(push_client, sim, channelled):
    account, sim_account = channelled
    sim.fail("userinfo", status=503, times=None)
    response, _ = send(push_client, sim, sim_account)
    assert response.status_code == 200
    row = only()
    assert row.outcome == Outcome.FAILED
    assert "Cronofy failed with HTTP 503 on GET /v1/userinfo" in row.error
    assert row.account_id == account.pk


def test_an_inactive_account_is_ignored_with_why(push_client, sim, channelled):
    account, sim_account = channelled
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    send(push_client, sim, sim_account)
    row = only()
    assert (row.outcome, row.detail) == (
        Outcome.IGNORED,
        "the account is reauthorization required",
    )


def test_verification_and_gdpr(push_client, sim, channelled):
    _, sim_account = channelled
    received = []

    def handler(sender, account, **kwargs):
        received.append(account.pk)

    account_gdpr_requested.connect(handler, dispatch_uid="push-log-gdpr")
    try:
        send(push_client, sim, sim_account, "verification")
        send(push_client, sim, sim_account, "gdpr_requested")
    finally:
        account_gdpr_requested.disconnect(dispatch_uid="push-log-gdpr")
    verification, gdpr = PushNotification.objects.order_by("pk")
    assert verification.outcome == Outcome.ACKNOWLEDGED
    assert gdpr.outcome == Outcome.SIGNAL_SENT and len(received) == 1


@pytest.mark.django_db(transaction=True)  # enqueued on commit
def test_a_queued_resync(push_client, sim, channelled, settings_with, monkeypatch):
    from django_cronofy_conferencing import tasks

    _, sim_account = channelled
    monkeypatch.setattr(tasks.sync_account_task, "delay", lambda *args, **kwargs: None)
    with settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL=CALLBACK, TASK_QUEUE="celery"):
        send(push_client, sim, sim_account)
    assert only().outcome == Outcome.QUEUED


def test_a_malformed_body_is_kept_as_malformed(push_client, sim):
    body = b'{"notification": {"type": 7}}'
    assert post(push_client, body, sim.sign(body)).status_code == 400
    row = only()
    assert (row.outcome, row.response_status, row.notification_type) == (
        Outcome.MALFORMED,
        400,
        "",
    )


def test_a_body_with_nul_bytes_is_stored(push_client, sim):
    """PostgreSQL text cannot hold NUL: the kept body replaces it (a forger's body is no 500)."""
    body = b'{"notification": {"type": "change"}}\x00\x00'
    assert post(push_client, body, sim.sign(body, "wrong")).status_code == 401
    assert "\x00" not in only().body


def test_an_error_inside_the_receiver_is_kept_and_propagates(push_client, sim, channelled):
    _, sim_account = channelled

    def broken(sender, **kwargs):
        raise RuntimeError("a host's handler failed")

    account_gdpr_requested.connect(broken, dispatch_uid="push-log-broken")
    try:
        with pytest.raises(RuntimeError):
            send(push_client, sim, sim_account, "gdpr_requested")
    finally:
        account_gdpr_requested.disconnect(dispatch_uid="push-log-broken")
    row = only()
    assert (row.outcome, row.error, row.response_status) == (Outcome.FAILED, "RuntimeError", 500)


def test_push_log_days_zero_keeps_none(push_client, sim, channelled, settings_with):
    _, sim_account = channelled
    with settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL=CALLBACK, PUSH_LOG_DAYS=0):
        response, _ = send(push_client, sim, sim_account)
    assert response.status_code == 200
    assert not PushNotification.objects.exists()


def test_a_database_error_while_logging_never_changes_the_answer(
    push_client, sim, channelled, monkeypatch
):
    from django.db import DatabaseError

    _, sim_account = channelled

    def fail(**kwargs):
        raise DatabaseError("the log table is gone")

    monkeypatch.setattr(PushNotification.objects, "create", fail)
    response, _ = send(push_client, sim, sim_account)
    assert response.status_code == 200


# -- the receiver's cost does not grow with the table -------------------------------------


def receiver_queries(push_client, sim, sim_account) -> list[str]:
    cache.clear()  # no debounce: the same path each time
    with CaptureQueriesContext(connection) as ctx:
        send(push_client, sim, sim_account, "verification")
    return [q["sql"] for q in ctx.captured_queries]


def test_the_receiver_adds_one_insert_whatever_the_tables_size(push_client, sim, channelled):
    _, sim_account = channelled
    before = receiver_queries(push_client, sim, sim_account)
    PushNotification.objects.bulk_create(
        [PushNotification(outcome="resynced", notification_type="change") for _ in range(5000)]
    )
    after = receiver_queries(push_client, sim, sim_account)
    # The channel's accounts, its confirmation (a signed notification), then the one INSERT.
    assert len(before) == len(after) == 3
    assert after[-1].startswith('INSERT INTO "cronofy_conferencing_pushnotification"')
    assert "DELETE" not in " ".join(after)  # pruning is never the receiver's


# -- no secret in any stored field --------------------------------------------------------


def test_no_secret_and_no_signature_is_stored(push_client, sim, channelled, scanner):
    _account, sim_account = channelled
    # A forger's body carrying the client secret and a token; a valid one; a failure.
    token = sim_account.access_token
    forged = json.dumps(
        {"client_secret": DEFAULT_CLIENT_SECRET, "access_token": token, "note": token}
    ).encode()
    post(push_client, forged, sim.sign(forged, "wrong"))
    signatures = []
    for kind in ("change", "profile_disconnected"):
        body, headers = sim.notification(sim_account.sub, kind)
        signatures.append(headers["Cronofy-HMAC-SHA256"])
        post(push_client, body, headers["Cronofy-HMAC-SHA256"])
        cache.clear()
    sim.fail("userinfo", status=500, times=None, body=f'{{"echo": "{token}"}}')
    body, headers = sim.notification(sim_account.sub, "change")
    signatures.append(headers["Cronofy-HMAC-SHA256"])
    post(push_client, body, headers["Cronofy-HMAC-SHA256"])
    secrets = scanner.secrets() | set(signatures)
    rows = list(PushNotification.objects.values())
    assert len(rows) == 4
    for row in rows:
        text = json.dumps(row, default=str)
        for secret in secrets:
            assert secret not in text


# -- Reprocess ------------------------------------------------------------------------------


def test_reprocess_after_the_channel_is_repaired(push_client, sim, channelled):
    """Ignored for an unknown channel; the channel is repaired; Reprocess resyncs."""
    account, sim_account = channelled
    channel_id = account.channel_id
    LinkedAccount.objects.filter(pk=account.pk).update(channel_id="")
    send(push_client, sim, sim_account)
    row = only()
    assert (row.outcome, row.account) == (Outcome.IGNORED, None)
    LinkedAccount.objects.filter(pk=account.pk).update(channel_id=channel_id)
    before = sim.count("userinfo")
    reprocess(row)
    row.refresh_from_db()
    assert (row.outcome, row.account_id, row.detail) == (Outcome.RESYNCED, account.pk, "")
    assert row.reprocessed_at is not None
    assert sim.count("userinfo") == before + 1
    assert PushNotification.objects.count() == 1  # the same row, not a new one


def test_reprocess_is_not_debounced(push_client, sim, channelled):
    _, sim_account = channelled
    send(push_client, sim, sim_account)
    before = sim.count("userinfo")
    reprocess(only())
    assert sim.count("userinfo") == before + 1


def test_a_forged_notification_is_never_reprocessed(push_client, sim, channelled):
    _, sim_account = channelled
    body, _ = sim.notification(sim_account.sub, "change")
    post(push_client, body, "bm90IHRoZSByaWdodCBvbmU=")
    with pytest.raises(ValueError, match="never reprocessed"):
        reprocess(only())
    assert sim.count("userinfo") == 1


def test_reprocess_outside_a_request_writes_no_new_row(sim, channelled):
    account, _ = channelled
    row = PushNotification.objects.create(
        notification_type="gdpr_requested",
        channel_id=account.channel_id,
        signature_valid=True,
        outcome=Outcome.FAILED,
        error="RuntimeError",
    )
    reprocess(row)
    row.refresh_from_db()
    assert (row.outcome, row.error) == (Outcome.SIGNAL_SENT, "")
    assert PushNotification.objects.count() == 1


# -- pruning --------------------------------------------------------------------------------


def aged(*days: float) -> None:
    now = timezone.now()
    PushNotification.objects.bulk_create(
        [PushNotification(outcome="resynced", received_at=now - timedelta(days=d)) for d in days]
    )


def test_prune_keeps_push_log_days(settings_with):
    aged(0, 1, 29.9, 30.1, 45, 400)
    assert PushNotification.objects.prune(chunk_size=2) == 3
    assert PushNotification.objects.count() == 3
    with settings_with(PUSH_LOG_DAYS=1):
        assert PushNotification.objects.prune() == 2  # 1 and 29.9 days old
    with settings_with(PUSH_LOG_DAYS=0):  # keeps none
        assert PushNotification.objects.prune() == 1
    assert not PushNotification.objects.exists()


def test_cronofy_sync_prunes_the_log(sim):
    aged(1, 31)
    call_command("cronofy_sync", stdout=StringIO())
    assert PushNotification.objects.count() == 1
    aged(31)
    call_command("cronofy_sync", "--dry-run", stdout=StringIO())  # a dry run changes nothing
    assert PushNotification.objects.count() == 2


def test_the_prune_tasks():
    from django_cronofy_conferencing import tasks
    from django_cronofy_conferencing.queueing import django_tasks

    aged(1, 31, 32)
    assert tasks.prune_push_notifications_task() == 2
    aged(33)
    assert django_tasks.prune_push_notifications_task.call() == 1
    assert PushNotification.objects.count() == 1


def test_note_outside_a_notification_does_nothing():
    push_log.note(outcome=Outcome.FAILED, error="nothing listens")
    assert not PushNotification.objects.exists()
