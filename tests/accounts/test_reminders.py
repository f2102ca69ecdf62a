"""Relink reminders (``RELINK_REMINDERS``): each step once, stops when fixed, templates,
the signal, no secret; two processes racing (interleaved here; two PostgreSQL
connections at once below)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_cronofy_conferencing import signals
from django_cronofy_conferencing.accounts import reminders
from django_cronofy_conferencing.accounts.reminders import (
    claim,
    find_due,
    reminder_settings,
    send_due_reminders,
)
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount, RelinkReminder
from django_cronofy_conferencing.sync import sync_account
from django_cronofy_conferencing.testing import DEFAULT_CLIENT_SECRET

pytestmark = pytest.mark.django_db

DAYS = [0, 1, 3, 7]
PAGE = "https://host.example/cronofy/"


@pytest.fixture
def reminders_on(settings_with):
    with settings_with(RELINK_REMINDERS={"DAYS": DAYS, "PAGE_URL": PAGE}):
        yield


@pytest.fixture
def broken(link_account, sim, user, reminders_on):
    """Alice's account: Zoom connected, GoTo disconnected by a sync; ``.disconnected_at``."""
    account, sim_account = link_account(
        user=user,
        email="alice@example.com",
        conferencing_profiles=[
            sim.profile("zoom", profile_id="pro_zoom"),
            sim.profile("go_to", profile_id="pro_goto", profile_name="alice@goto"),
        ],
    )
    sync_account(account)
    sim.set_connected(sim_account.sub, "pro_goto", False)
    sync_account(account)
    profile = ConferencingProfile.objects.get(profile_id="pro_goto")
    assert profile.connection_changed_at is not None
    return account, sim_account, profile


def at(profile, days: float, hours: float = 0):
    return profile.disconnected_since + timedelta(days=days, hours=hours)


@pytest.fixture
def due_signals():
    log: list[tuple[str, int]] = []

    def handler(sender, profile, step, **kwargs):
        assert sender is ConferencingProfile
        log.append((profile.profile_id, step))

    signals.relink_reminder_due.connect(handler, weak=False)
    yield log
    signals.relink_reminder_due.disconnect(handler)


# -- the schedule -----------------------------------------------------------------------


def test_off_by_default(link_account, sim, user, due_signals):
    account, _ = link_account(
        user=user, conferencing_profiles=[sim.profile("zoom", connected=False)]
    )
    sync_account(account)
    assert reminder_settings() is None
    result = send_due_reminders()
    assert result.as_dict() == {"due": 0, "sent": 0, "signal_only": 0, "failed": 0}
    assert mail.outbox == [] and due_signals == [] and not RelinkReminder.objects.exists()


def test_each_step_goes_out_once(broken, due_signals):
    _, _, profile = broken
    sent_on = []
    for day in (0, 0.5, 1, 1, 2, 3, 3.5, 6, 7, 8, 30, 60):
        before = len(mail.outbox)
        send_due_reminders(now=at(profile, day))
        send_due_reminders(now=at(profile, day))  # twice in a row: nothing more
        if len(mail.outbox) > before:
            sent_on.append(day)
        assert len(mail.outbox) - before <= 1
    assert sent_on == [0, 1, 3, 7]
    assert due_signals == [("pro_goto", 0), ("pro_goto", 1), ("pro_goto", 3), ("pro_goto", 7)]
    assert sorted(RelinkReminder.objects.values_list("step", flat=True)) == [0, 1, 3, 7]


def test_nothing_before_the_first_step(broken, settings_with):
    _, _, profile = broken
    with settings_with(RELINK_REMINDERS={"DAYS": [2, 5]}):
        assert send_due_reminders(now=at(profile, 1, 23)).due == 0
        assert send_due_reminders(now=at(profile, 2)).sent == 1
    assert mail.outbox[0].subject == "GoTo (alice@goto) needs relinking"


def test_a_late_run_sends_the_latest_step_only(broken, due_signals):
    _, _, profile = broken
    send_due_reminders(now=at(profile, 4))  # the command did not run for four days
    assert due_signals == [("pro_goto", 3)]
    assert len(mail.outbox) == 1
    send_due_reminders(now=at(profile, 5))
    assert len(mail.outbox) == 1
    send_due_reminders(now=at(profile, 7))
    assert due_signals == [("pro_goto", 3), ("pro_goto", 7)]


def test_a_profile_first_seen_disconnected_counts_from_then(link_account, sim, user, reminders_on):
    account, _ = link_account(
        user=user, conferencing_profiles=[sim.profile("zoom", profile_id="pro_z", connected=False)]
    )
    sync_account(account)
    profile = ConferencingProfile.objects.get(profile_id="pro_z")
    assert profile.connection_changed_at is None
    assert profile.disconnected_since == profile.first_seen_at
    assert send_due_reminders(now=at(profile, 0)).sent == 1


# -- stops when fixed --------------------------------------------------------------------


def test_stops_when_the_profile_works_again(broken, sim):
    account, sim_account, profile = broken
    send_due_reminders(now=at(profile, 0))
    sim.set_connected(sim_account.sub, "pro_goto", True)
    sync_account(account)
    assert send_due_reminders(now=at(profile, 1)).due == 0
    assert send_due_reminders(now=at(profile, 7)).due == 0
    assert len(mail.outbox) == 1
    # Its rows are forgotten: the disconnection is over.
    assert not RelinkReminder.objects.exists()


def test_a_new_disconnection_starts_the_steps_again(broken, sim):
    account, sim_account, profile = broken
    send_due_reminders(now=at(profile, 0))
    sim.set_connected(sim_account.sub, "pro_goto", True)
    sync_account(account)
    sim.set_connected(sim_account.sub, "pro_goto", False)
    sync_account(account)
    profile.refresh_from_db()
    assert send_due_reminders(now=at(profile, 0)).sent == 1
    assert len(mail.outbox) == 2
    assert mail.outbox[1].subject == "GoTo (alice@goto) needs relinking"


def test_stops_when_the_profile_is_removed(broken, sim):
    account, sim_account, profile = broken
    send_due_reminders(now=at(profile, 0))
    sim.remove_profile(sim_account.sub, "pro_goto")
    sync_account(account)
    assert send_due_reminders(now=at(profile, 1)).due == 0
    assert len(mail.outbox) == 1


def test_stops_when_the_account_is_unlinked(broken):
    account, _, profile = broken
    send_due_reminders(now=at(profile, 0))
    account.delete()
    assert send_due_reminders(now=at(profile, 1)).due == 0
    assert not RelinkReminder.objects.exists()


def test_an_account_that_needs_reauthorization_gets_none(broken):
    account, _, profile = broken
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    assert send_due_reminders(now=at(profile, 0)).due == 0


def test_a_profile_reconnected_after_it_was_found_due_is_not_claimed(broken, sim):
    """The claim reads the profile again under its account's row lock."""
    account, sim_account, profile = broken
    config = reminder_settings()
    [due] = find_due(config, now=at(profile, 0))
    sim.set_connected(sim_account.sub, "pro_goto", True)
    sync_account(account)
    assert claim(due) is False
    assert not RelinkReminder.objects.exists()


# -- two processes racing ------------------------------------------------------------------


def test_two_runs_interleaved_send_each_step_once(broken, due_signals):
    """Both find the step due before either claims it: only the first claim sends."""
    _, _, profile = broken
    config = reminder_settings()
    first, second = reminders.RemindResult(), reminders.RemindResult()
    found_by_first = find_due(config, now=at(profile, 0))
    found_by_second = find_due(config, now=at(profile, 0))
    assert len(found_by_first) == len(found_by_second) == 1
    reminders.deliver(found_by_first[0], config, first)
    reminders.deliver(found_by_second[0], config, second)
    assert (first.sent, second.sent) == (1, 0)
    assert len(mail.outbox) == 1 and len(due_signals) == 1


@pytest.mark.django_db(transaction=True)
def test_two_connections_racing_on_postgresql_send_each_step_once(
    link_account, sim, user, settings_with, monkeypatch
):
    """Two threads, each with its own PostgreSQL connection, run the whole send at once;
    a barrier holds both right before the claim so that both have found the step due."""
    if connection.vendor != "postgresql":
        pytest.skip("runs in the PostgreSQL run of the suite (DATABASE_URL=postgres://...)")
    account, sim_account = link_account(
        user=user, conferencing_profiles=[sim.profile("go_to", profile_id="pro_g")]
    )
    sync_account(account)
    sim.set_connected(sim_account.sub, "pro_g", False)
    sync_account(account)
    profile = ConferencingProfile.objects.get(profile_id="pro_g")
    barrier = threading.Barrier(2, timeout=20)
    original = reminders.claim

    def claim_together(reminder):
        barrier.wait()
        return original(reminder)

    monkeypatch.setattr(reminders, "claim", claim_together)
    results, errors = [], []

    def run():
        try:
            results.append(send_due_reminders(now=at(profile, 1)))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    with settings_with(RELINK_REMINDERS={"DAYS": DAYS, "PAGE_URL": PAGE}):
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert sorted(r.sent for r in results) == [0, 1]
    assert len(mail.outbox) == 1
    assert list(RelinkReminder.objects.values_list("step", flat=True)) == [1]


# -- the signal and EMAIL ------------------------------------------------------------------


def test_email_false_sends_the_signal_only(broken, settings_with, due_signals):
    _, _, profile = broken
    with settings_with(RELINK_REMINDERS={"DAYS": DAYS, "EMAIL": False}):
        result = send_due_reminders(now=at(profile, 0))
        assert send_due_reminders(now=at(profile, 0)).due == 0
    assert result.as_dict() == {"due": 1, "sent": 0, "signal_only": 1, "failed": 0}
    assert mail.outbox == []
    assert due_signals == [("pro_goto", 0)]


def test_a_failing_receiver_does_not_stop_the_email(broken, caplog):
    _, _, profile = broken

    def broken_receiver(**kwargs):
        raise RuntimeError("the host's messaging is down")

    signals.relink_reminder_due.connect(broken_receiver)
    try:
        assert send_due_reminders(now=at(profile, 0)).sent == 1
    finally:
        signals.relink_reminder_due.disconnect(broken_receiver)
    assert "receiver failed" in caplog.text


@pytest.mark.parametrize("change", [{"email": ""}, {"is_active": False}])
def test_users_without_an_address_or_inactive_get_the_signal_only(
    broken, user, change, due_signals
):
    _, _, profile = broken
    type(user).objects.filter(pk=user.pk).update(**change)
    result = send_due_reminders(now=at(profile, 0))
    assert (result.sent, result.signal_only) == (0, 1)
    assert mail.outbox == [] and due_signals == [("pro_goto", 0)]


def test_a_failed_send_is_counted_and_not_repeated(broken, caplog):
    _, _, profile = broken
    with override_settings(EMAIL_BACKEND="tests.accounts.test_reminders.FailingBackend"):
        result = send_due_reminders(now=at(profile, 0))
    assert (result.due, result.failed) == (1, 1)
    assert "Could not email the relink reminder (day 0)" in caplog.text
    # At most once: the step is not sent again; the next one comes as planned.
    assert send_due_reminders(now=at(profile, 0, 1)).due == 0
    assert send_due_reminders(now=at(profile, 1)).sent == 1


class FailingBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("SMTP is down")


# -- the message -----------------------------------------------------------------------------


def test_the_email_has_the_relink_url_and_the_page(broken, settings):
    _, _, profile = broken
    send_due_reminders(now=at(profile, 0))
    [email] = mail.outbox
    assert email.to == ["alice@example.com"]
    assert email.from_email == settings.DEFAULT_FROM_EMAIL
    assert email.subject == "GoTo (alice@goto) needs relinking"
    assert profile.profile_relink_url.startswith("https://")
    assert profile.profile_relink_url in email.body
    assert PAGE in email.body
    assert "Hello alice," in email.body
    assert "meetings that should use it may go out without a video link" in email.body
    [(html, kind)] = email.alternatives
    assert kind == "text/html"
    assert f'href="{profile.profile_relink_url.replace("&", "&amp;")}"' in html
    assert f'href="{PAGE}"' in html
    assert "Relink GoTo" in html


def test_later_steps_say_it_is_a_reminder(broken):
    _, _, profile = broken
    send_due_reminders(now=at(profile, 0))
    send_due_reminders(now=at(profile, 1))
    assert mail.outbox[1].subject == "Reminder: GoTo (alice@goto) still needs relinking"


def test_from_email_and_the_page_url_from_the_push_callback(broken, settings_with):
    _, _, profile = broken
    with settings_with(
        RELINK_REMINDERS={"DAYS": DAYS, "FROM_EMAIL": "meetings@host.example"},
        PUSH_NOTIFICATIONS_CALLBACK_URL="https://app.host.example/cronofy/notifications/",
    ):
        send_due_reminders(now=at(profile, 0))
    [email] = mail.outbox
    assert email.from_email == "meetings@host.example"
    assert "https://app.host.example/cronofy/" in email.body


def test_without_a_page_url_the_email_still_has_the_relink_link(broken, settings_with):
    _, _, profile = broken
    with settings_with(RELINK_REMINDERS={"DAYS": DAYS}):
        send_due_reminders(now=at(profile, 0))
    [email] = mail.outbox
    assert profile.profile_relink_url in email.body
    assert "All your conferencing" not in email.body


def test_no_token_or_secret_in_any_message(broken, scanner):
    account, _, profile = broken
    for day in DAYS:
        send_due_reminders(now=at(profile, day))
    assert len(mail.outbox) == 4
    secrets = scanner.secrets() | {DEFAULT_CLIENT_SECRET}
    account.refresh_from_db()
    secrets |= {account.access_token, account.refresh_token}
    for email in mail.outbox:
        message = email.message().as_string()
        everything = "\n".join(
            [email.subject, email.body, message, *(a[0] for a in email.alternatives)]
        )
        for secret in secrets:
            assert secret not in everything


def test_the_templates_are_overridable(broken, tmp_path, settings):
    _, _, profile = broken
    folder = tmp_path / "django_cronofy_conferencing" / "email"
    folder.mkdir(parents=True)
    (folder / "relink_reminder_subject.txt").write_text("Fix {{ provider }}, day {{ step }}")
    (folder / "relink_reminder.txt").write_text("{{ relink_url }} | {{ page_url }}")
    (folder / "relink_reminder.html").write_text(
        "<a href='{{ relink_url }}'>{{ profile_label }}</a>"
    )
    templates = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    with override_settings(TEMPLATES=templates):
        send_due_reminders(now=at(profile, 0))
    [email] = mail.outbox
    assert email.subject == "Fix GoTo, day 0"
    assert email.body == f"{profile.profile_relink_url} | {PAGE}"
    assert email.alternatives[0][0].endswith(">GoTo (alice@goto)</a>")


# -- cost, dry run, settings ---------------------------------------------------------------


def test_finding_due_reminders_costs_the_same_for_many_profiles(
    link_account, sim, user, reminders_on
):
    def broken_account():
        account, _ = link_account(
            user=user,
            conferencing_profiles=[sim.profile("zoom", connected=False) for _ in range(3)],
        )
        sync_account(account)

    broken_account()
    config = reminder_settings()

    def cost() -> int:
        with CaptureQueriesContext(connection) as queries:
            find_due(config)
        return len(queries)

    few = cost()
    for _ in range(5):
        broken_account()
    assert cost() == few == 2


def test_dry_run_claims_and_sends_nothing(broken, due_signals):
    _, _, profile = broken
    assert send_due_reminders(now=at(profile, 0), dry_run=True).due == 1
    assert mail.outbox == [] and due_signals == [] and not RelinkReminder.objects.exists()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ([0, 1], "RELINK_REMINDERS'] must be None or a dict"),
        ({"DAYS": []}, "['DAYS'] must be a non-empty list"),
        ({"DAYS": [1, 1]}, "['DAYS'] must be a non-empty list"),
        ({"DAYS": [-1]}, "['DAYS'] must be a non-empty list"),
        ({"DAYS": [True]}, "['DAYS'] must be a non-empty list"),
        ({"DAYS": [0], "EMAIL": "no"}, "['EMAIL'] must be True or False"),
        ({"DAYS": [0], "DAY": [1]}, "['DAY'] is not a reminder setting"),
        ({"DAYS": [0], "PAGE_URL": "/cronofy/"}, "['PAGE_URL'] must be the absolute"),
        ({"DAYS": [0], "FROM_EMAIL": 3}, "['FROM_EMAIL'] must be an email address"),
    ],
)
def test_bad_settings_name_the_key(settings_with, value, words):
    with settings_with(RELINK_REMINDERS=value), pytest.raises(ImproperlyConfigured) as caught:
        send_due_reminders()
    assert "CRONOFY_CONFERENCING['RELINK_REMINDERS']" in str(caught.value)
    assert words in str(caught.value)
