"""manage.py cronofy_channels against the simulator: healthy, missing, stale, unrecorded,
--repair, exit status."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_cronofy_conferencing.accounts import channels
from django_cronofy_conferencing.models import LinkedAccount

pytestmark = pytest.mark.django_db

CALLBACK = "https://example.com/cronofy/notifications/"


@pytest.fixture(autouse=True)
def push_configured():
    with override_settings(
        CRONOFY_CONFERENCING={
            **settings.CRONOFY_CONFERENCING,
            "PUSH_NOTIFICATIONS_CALLBACK_URL": CALLBACK,
        }
    ):
        yield


def run(*args) -> tuple[str, CommandError | None]:
    out = io.StringIO()
    try:
        call_command("cronofy_channels", *args, stdout=out, stderr=io.StringIO())
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


@pytest.fixture
def fleet(sim, link_account):
    """healthy, stale (Cronofy closed it), missing (never created), unrecorded."""
    made = {}
    for name in ("healthy", "stale", "missing", "unrecorded"):
        account, sim_account = link_account(data_center="de" if name == "stale" else "us")
        if name != "missing":
            channels.ensure_push_channel(account)
        made[name] = (account, sim_account)
    sim.close_channel(made["stale"][0].channel_id)
    LinkedAccount.objects.filter(pk=made["unrecorded"][0].pk).update(channel_id="")
    sim.requests.clear()  # the tests count what the command calls
    return made


def test_each_state_is_reported_and_the_exit_status_is_1(sim, fleet):
    out, error = run()
    lines = dict(line.split(": ", 1) for line in out.splitlines()[:-1])
    states = {
        name: lines[f"account {a.pk} ({a.email or a.sub}, {a.data_center})"]
        for name, (a, _) in fleet.items()
    }
    assert states["healthy"].startswith("healthy [chn_")
    assert states["stale"].startswith("stale")
    assert states["missing"] == "missing: no channel"
    assert states["unrecorded"].startswith("unrecorded")
    assert "4 accounts checked" in out.splitlines()[-1]
    assert error is not None and "3 accounts have no working channel" in str(error)
    assert "--repair" in str(error)
    # Looking changes nothing, here or at Cronofy.
    assert sim.count("channels") == 0
    assert sim.count("list_channels") == 4


def test_repair_forgets_stale_ids_adopts_unrecorded_and_creates_missing(sim, fleet):
    unrecorded_id = next(
        cid for cid, c in sim.channels.items() if c["sub"] == fleet["unrecorded"][1].sub
    )
    stale_id = fleet["stale"][0].channel_id
    out, error = run("--repair")
    assert error is None, out
    assert out.count("-> repaired") == 3
    stored = {name: LinkedAccount.objects.get(pk=a.pk).channel_id for name, (a, _) in fleet.items()}
    assert stored["unrecorded"] == unrecorded_id  # adopted: no second channel
    assert stored["stale"] not in ("", stale_id)
    assert stored["missing"]
    assert sim.count("channels") == 2  # created for stale and missing only
    created = [r for r in sim.requests if r.endpoint == "channels"]
    assert {r.data_center for r in created} == {"de", "us"}
    # Now every account is healthy: exit status 0, nothing more to do.
    out, error = run()
    assert error is None
    assert "4 accounts checked: 4 healthy." in out


def test_an_unreachable_cronofy_is_not_checked_and_fails(sim, fleet):
    sim.fail("list_channels", status=503, times=None)
    out, error = run("--account", str(fleet["healthy"][0].pk))
    assert "not checked" in out and "503" in out
    assert error is not None


def test_with_cronofy_unreachable_it_says_that_nothing_could_be_checked(sim, fleet):
    """Not "4 accounts have no working channel. Run with --repair": nothing is known."""
    sim.fail("list_channels", status=503, times=None)
    out, error = run()
    assert out.splitlines()[-1] == "4 accounts checked: 4 not checked."
    assert error is not None and error.returncode == 1
    message = str(error)
    assert message.startswith(
        "Nothing could be checked: Cronofy could not be asked about any of the 4 accounts ("
    )
    assert "503" in message and "no working channel" not in message
    assert "Run with --repair" not in message


def test_some_unchecked_accounts_are_told_apart_from_missing_channels(sim, fleet):
    sim.fail("list_channels", status=503, times=None, sub=fleet["healthy"][1].sub)
    sim.fail("list_channels", status=503, times=None, sub=fleet["missing"][1].sub)
    out, error = run()
    assert "4 accounts checked: 2 not checked, 1 stale, 1 unrecorded." in out
    assert str(error) == (
        "2 accounts have no working channel. Run with --repair to fix them. "
        "2 accounts could not be checked (Cronofy could not be asked); run again later."
    )


@pytest.mark.parametrize("value", [str(2**63), "\u0661"], ids=["past-64-bits", "arabic-indic"])
def test_an_account_option_that_is_no_id_is_refused_by_the_parser(sim, fleet, value):
    _, error = run("--account", value)
    assert error is not None and "invalid account id value" in str(error)
    assert sim.count() == 0


def test_without_a_callback_url_there_is_nothing_to_check(sim, fleet):
    with override_settings(
        CRONOFY_CONFERENCING={
            **settings.CRONOFY_CONFERENCING,
            "PUSH_NOTIFICATIONS_CALLBACK_URL": "",
        }
    ):
        out, error = run()
    assert error is None
    assert "is not set" in out
    assert sim.count() == 0


def test_a_relink_reuses_the_stored_channel(sim, link_account):
    account, _ = link_account()
    first = channels.ensure_push_channel(account)
    assert channels.ensure_push_channel(account) == first
    assert sim.count("channels") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"channels": "x"},
        {"channels": [{"callback_url": CALLBACK}]},
        [],
        {"channels": [{"channel_id": "a b"}]},
    ],
)
def test_a_malformed_channel_list_is_an_error_and_changes_nothing(sim, link_account, body):
    import json

    account, _ = link_account()
    channels.ensure_push_channel(account)
    stored = account.channel_id
    sim.fail(
        "list_channels",
        status=200,
        body=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    health = channels.channel_health(account)
    assert health.state == channels.ChannelState.ERROR
    assert "Invalid channels response" in str(health.error)
    assert LinkedAccount.objects.get().channel_id == stored
