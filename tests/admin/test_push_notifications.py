"""The push notification log in the admin: read-only, filtered by type and outcome, with a
Reprocess action; no secret on any of its pages."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from django_cronofy_conferencing.accounts import linking
from django_cronofy_conferencing.models import LinkedAccount, PushNotification
from django_cronofy_conferencing.testing import DEFAULT_CLIENT_SECRET

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:cronofy_conferencing_pushnotification_changelist")
CALLBACK = "https://example.com/cronofy/notifications/"
Outcome = PushNotification.Outcome


def change_url(pk: int) -> str:
    return reverse("admin:cronofy_conferencing_pushnotification_change", args=[pk])


@pytest.fixture
def received(sim, link_account, settings_with, scan_ciphertexts):
    """What Cronofy (and a forger) sent: a resync, an unknown type, a forgery holding the
    client secret, a notification for a channel nobody had then."""
    cache.clear()
    with settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL=CALLBACK):
        account, sim_account = link_account(email="someone@example.com")
        linking.ensure_push_channel(account)
        scan_ciphertexts()
        client = Client()

        def post(body: bytes, signature: str):
            client.post(
                "/cronofy/notifications/",
                data=body,
                content_type="application/json",
                HTTP_CRONOFY_HMAC_SHA256=signature,
            )

        for kind in ("change", "brand_new_type"):
            body, headers = sim.notification(sim_account.sub, kind)
            post(body, headers["Cronofy-HMAC-SHA256"])
        forged = json.dumps(
            {"notification": {"type": "change"}, "client_secret": DEFAULT_CLIENT_SECRET}
        ).encode()
        post(forged, sim.sign(forged, "forger"))
        orphan = json.dumps(
            {"notification": {"type": "change"}, "channel": {"channel_id": "chn_later"}}
        ).encode()
        post(orphan, sim.sign(orphan))
    cache.clear()
    return account, {n.notification_type + n.outcome: n for n in PushNotification.objects.all()}


def listed(staff_client, **params) -> list[tuple[str, str]]:
    response = staff_client.get(CHANGELIST, params)
    assert response.status_code == 200
    return sorted((n.notification_type, n.outcome) for n in response.context["cl"].result_list)


def test_the_log_lists_every_notification(staff_client, received):
    assert listed(staff_client) == [
        ("brand_new_type", "ignored"),
        ("change", "ignored"),
        ("change", "refused"),
        ("change", "resynced"),
    ]


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"outcome__exact": "refused"}, [("change", "refused")]),
        ({"notification_type": "brand_new_type"}, [("brand_new_type", "ignored")]),
        ({"signature_valid__exact": "0"}, [("change", "refused")]),
        ({"response_status__exact": "401"}, [("change", "refused")]),
        ({"q": "chn_later"}, [("change", "ignored")]),
    ],
)
def test_filters_by_type_and_outcome(staff_client, received, params, expected):
    assert listed(staff_client, **params) == expected


def test_the_type_filter_lists_the_types_received(staff_client, received):
    response = staff_client.get(CHANGELIST)
    [spec] = [
        f
        for f in response.context["cl"].filter_specs
        if getattr(f, "parameter_name", "") == "notification_type"
    ]
    assert [value for value, _ in spec.lookup_choices] == ["brand_new_type", "change"]


def test_the_log_is_read_only(staff_client, received):
    _, rows = received
    row = rows["changeresynced"]
    response = staff_client.get(change_url(row.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="_save"' not in html
    assert '<pre class="cronofy-push-body">' in html
    assert staff_client.post(change_url(row.pk), {"outcome": "failed"}).status_code == 403
    add = reverse("admin:cronofy_conferencing_pushnotification_add")
    assert staff_client.get(add).status_code == 403
    delete = reverse("admin:cronofy_conferencing_pushnotification_delete", args=[row.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    assert 'value="delete_selected"' not in staff_client.get(CHANGELIST).content.decode()
    row.refresh_from_db()
    assert row.outcome == Outcome.RESYNCED


def test_no_secret_on_any_page(staff_client, received):
    """The staff client scans every response for tokens and the client secret; the forged
    body carried the client secret, the log shows it redacted."""
    _, rows = received
    staff_client.get(CHANGELIST)
    for row in rows.values():
        html = staff_client.get(change_url(row.pk)).content.decode()
        assert "Cronofy-HMAC-SHA256" not in html
    forged = rows["changerefused"]
    html = staff_client.get(change_url(forged.pk)).content.decode()
    assert "[redacted]" in html


def test_reprocess(staff_client, received, sim):
    account, rows = received
    orphan = rows["changeignored"]
    LinkedAccount.objects.filter(pk=account.pk).update(channel_id="chn_later")
    forged = rows["changerefused"]
    before = sim.count("userinfo")
    response = staff_client.post(
        CHANGELIST,
        {
            "action": "reprocess_selected",
            "_selected_action": [orphan.pk, forged.pk],
            "index": 0,
        },
        follow=True,
    )
    messages = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert messages == [
        ("success", "Reprocessed 1 notification: resynced."),
        (
            "warning",
            "Not reprocessed: 1 notification whose signature did not hold (it may not come "
            "from Cronofy).",
        ),
    ]
    assert sim.count("userinfo") == before + 1
    orphan.refresh_from_db()
    assert (orphan.outcome, orphan.account_id) == (Outcome.RESYNCED, account.pk)
    assert orphan.reprocessed_at is not None
    forged.refresh_from_db()
    assert forged.outcome == Outcome.REFUSED and forged.reprocessed_at is None


def test_reprocess_acts_on_a_bounded_number(staff_client, received, monkeypatch):
    from django_cronofy_conferencing.admin import PushNotificationAdmin

    _, rows = received
    monkeypatch.setattr(PushNotificationAdmin, "reprocess_max", 1)
    signed = [r.pk for r in rows.values() if r.signature_valid]
    response = staff_client.post(
        CHANGELIST,
        {"action": "reprocess_selected", "_selected_action": signed, "index": 0},
        follow=True,
    )
    texts = [str(m) for m in response.context["messages"]]
    assert texts[0].startswith("2 more selected notifications were not reprocessed")
    assert PushNotification.objects.filter(reprocessed_at__isnull=False).count() == 1


def test_reprocess_needs_the_change_permission(received, scanning_client, django_user_model):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password=None, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_pushnotification"))
    html = scanning_client(viewer).get(CHANGELIST).content.decode()
    assert 'value="reprocess_selected"' not in html
