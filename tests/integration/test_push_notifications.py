"""Push notifications end to end over real HTTP.

The app runs in Django's live server; Cronofy is the HTTP simulator, which
creates the channel (``POST /v1/channels``) when the account is linked and
then POSTs notifications to the live server's receiver, which syncs back
against the simulator. Needs no external service: runs in every run.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings

from django_cronofy_conferencing.accounts import linking
from django_cronofy_conferencing.cronofy.tokens import TokenSet
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.testing import SimulatedCronofy, serve_simulator

pytestmark = pytest.mark.django_db(transaction=True)

NEW_SECRET = "the_next_client_secret_2468"


@pytest.fixture
def cronofy(live_server, user):
    """(server, sim account, linked account) with a channel pointing at the live server."""
    sim = SimulatedCronofy()
    callback = f"{live_server.url}/cronofy/notifications/"
    with (
        serve_simulator(sim, latency=0.01) as server,
        server.registered(PUSH_NOTIFICATIONS_CALLBACK_URL=callback),
    ):
        sim_account = sim.add_account(
            data_center="sim", conferencing_profiles=[sim.profile("zoom", profile_name="a@zoom")]
        )
        tokens = TokenSet(
            access_token=sim_account.access_token,
            refresh_token=sim_account.refresh_token,
            expires_in=3600,
            scope="read_account",
            sub=sim_account.sub,
        )
        result = linking.link_account(user, "sim", tokens)  # first sync, then the channel
        account = result.account
        assert account.channel_id
        assert sim.channels[account.channel_id]["callback_url"] == callback
        yield server, sim_account, account


def zoom_profile() -> ConferencingProfile:
    return ConferencingProfile.objects.get(provider_name="zoom")


def set_zoom(server, sim_account, connected: bool) -> None:
    profile_id = sim_account.conferencing_profiles[0]["profile_id"]
    server.sim.set_connected(sim_account.sub, profile_id, connected)


def userinfo_calls(server) -> int:
    return server.sim.count("userinfo")


def test_verification(cronofy):
    server, sim_account, _ = cronofy
    status, body = server.push(sim_account.sub, "verification")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}


def test_signed_profile_disconnected_shows_the_relink_url(cronofy):
    server, sim_account, _ = cronofy
    assert zoom_profile().profile_connected is True
    set_zoom(server, sim_account, False)
    before = userinfo_calls(server)
    status, _ = server.push(sim_account.sub, "profile_disconnected")
    assert status == 200
    assert userinfo_calls(server) == before + 1
    profile = zoom_profile()
    assert profile.profile_connected is False
    assert profile.profile_relink_url.startswith("https://app.cronofy.com/v2/relink/zoom")

    # Replayed: harmless, nothing duplicated.
    for _ in range(2):
        assert server.push(sim_account.sub, "profile_disconnected")[0] == 200
    assert ConferencingProfile.objects.count() == 1
    assert zoom_profile().profile_connected is False

    # Reconnected at Cronofy; once the debounce window is over (the cache forgets
    # it), a change notification brings it back.
    set_zoom(server, sim_account, True)
    cache.clear()
    assert server.push(sim_account.sub, "change")[0] == 200
    assert zoom_profile().profile_connected is True
    assert zoom_profile().profile_relink_url == ""


@pytest.mark.parametrize("signature", ["", "d3Jvbmc=", "not-base64!"])
def test_unsigned_or_wrongly_signed_is_refused(cronofy, signature):
    server, sim_account, _ = cronofy
    set_zoom(server, sim_account, False)
    before = userinfo_calls(server)
    status, _ = server.push(sim_account.sub, "profile_disconnected", signature=signature)
    assert status == 401
    assert userinfo_calls(server) == before
    assert zoom_profile().profile_connected is True


def test_rotated_secret(cronofy):
    server, sim_account, _ = cronofy
    set_zoom(server, sim_account, False)
    old_secret = server.sim.credentials_for("sim")[1]
    current = settings.CRONOFY_CONFERENCING
    sim_application = current["APPLICATIONS"]["sim"]

    def with_sim_application(**values):
        applications = {**current["APPLICATIONS"], "sim": {**sim_application, **values}}
        return override_settings(CRONOFY_CONFERENCING={**current, "APPLICATIONS": applications})

    with with_sim_application(CLIENT_SECRET=NEW_SECRET, PREVIOUS_CLIENT_SECRETS=[old_secret]):
        # Cronofy still signs with the previous secret: accepted.
        assert server.push(sim_account.sub, "profile_disconnected")[0] == 200
        assert zoom_profile().profile_connected is False
        # During the switch it sends both values.
        both = [NEW_SECRET, old_secret]
        assert server.push(sim_account.sub, "verification", secrets=both)[0] == 200
        # A secret that is neither: refused.
        other = ["some_other_secret_1357"]
        assert server.push(sim_account.sub, "verification", secrets=other)[0] == 401
        # The default data center's secret is another application's: refused.
        default_secret = [current["CLIENT_SECRET"]]
        assert server.push(sim_account.sub, "verification", secrets=default_secret)[0] == 401
    with with_sim_application(CLIENT_SECRET=NEW_SECRET, PREVIOUS_CLIENT_SECRETS=[]):
        assert server.push(sim_account.sub, "verification")[0] == 401
        assert server.push(sim_account.sub, "verification", secrets=[NEW_SECRET])[0] == 200


def test_unknown_channel_and_unknown_type_are_ignored(cronofy):
    server, sim_account, account = cronofy
    set_zoom(server, sim_account, False)
    before = userinfo_calls(server)
    status, body = server.push(
        None,
        "profile_disconnected",
        channel_id="chn_unknown",
        callback_url=server.sim.channels[account.channel_id]["callback_url"],
    )
    assert (status, json.loads(body)) == (200, {"status": "ok", "ignored": True})
    status, body = server.push(sim_account.sub, "brand_new_type")
    assert (status, json.loads(body)) == (200, {"status": "ok", "ignored": True})
    assert userinfo_calls(server) == before
    assert zoom_profile().profile_connected is True


def test_notification_for_an_account_that_must_reconnect_calls_nothing(cronofy):
    server, sim_account, account = cronofy
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    before = userinfo_calls(server)
    assert server.push(sim_account.sub, "profile_disconnected")[0] == 200
    assert userinfo_calls(server) == before


def test_conferencing_profile_disconnected_shows_the_relink_url(cronofy):
    """Cronofy's recommended signal for conferencing, end to end over HTTP."""
    server, sim_account, account = cronofy
    set_zoom(server, sim_account, False)
    status, body = server.push(sim_account.sub, "conferencing_profile_disconnected")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    profile = zoom_profile()
    assert profile.profile_connected is False
    assert profile.profile_relink_url.startswith("https://app.cronofy.com/v2/relink/zoom")
    assert profile.connection_changed_at is not None
    account.refresh_from_db()
    assert account.last_sync_error == ""
