"""manage.py cronofy_remind: off, due reminders sent once, --dry-run, exit status, bad settings;
and the same work as a Celery task and a Django task."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_cronofy_conferencing.models import RelinkReminder
from django_cronofy_conferencing.sync import sync_account

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]
ON = {"DAYS": [0, 1, 3, 7], "PAGE_URL": "https://host.example/cronofy/"}


def run(*args) -> tuple[str, str, CommandError | None]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("cronofy_remind", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), exc
    return out.getvalue(), err.getvalue(), None


@pytest.fixture
def broken(link_account, sim, user):
    account, _ = link_account(
        user=user, conferencing_profiles=[sim.profile("zoom", connected=False, profile_name="z")]
    )
    sync_account(account)
    return account


def test_off_by_default_says_so(broken):
    out, _, error = run()
    assert error is None
    assert "CRONOFY_CONFERENCING['RELINK_REMINDERS'] is not set" in out
    assert mail.outbox == []


def test_sends_what_is_due_once(broken, settings_with):
    with settings_with(RELINK_REMINDERS=ON):
        out, _, error = run()
        again, _, _ = run()
    assert error is None
    assert out.strip() == "1 relink reminder(s) due: 1 emailed, 0 signal only, 0 failed."
    assert again.strip() == "0 relink reminder(s) due: 0 emailed, 0 signal only, 0 failed."
    assert [m.subject for m in mail.outbox] == ["Zoom (z) needs relinking"]


def test_dry_run_sends_and_records_nothing(broken, settings_with):
    with settings_with(RELINK_REMINDERS=ON):
        out, _, error = run("--dry-run")
    assert error is None
    assert "1 relink reminder(s) due; nothing was sent" in out
    assert mail.outbox == [] and not RelinkReminder.objects.exists()


def test_a_failed_email_is_exit_status_1(broken, settings_with):
    with (
        settings_with(RELINK_REMINDERS=ON),
        override_settings(EMAIL_BACKEND="tests.accounts.test_reminders.FailingBackend"),
    ):
        out, err, error = run("-v", "2")
    assert isinstance(error, CommandError)
    assert "1 relink reminder(s) could not be emailed" in str(error)
    assert "1 failed" in out
    assert "ConnectionRefusedError" in err


def test_bad_settings_are_a_clear_error(settings_with):
    with settings_with(RELINK_REMINDERS={"DAYS": "daily"}):
        _, _, error = run()
    assert isinstance(error, CommandError)
    assert "CRONOFY_CONFERENCING['RELINK_REMINDERS']['DAYS']" in str(error)


def test_the_command_is_listed_with_its_help():
    result = subprocess.run(
        [sys.executable, "manage.py", "help", "cronofy_remind"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--dry-run" in result.stdout and "RELINK_REMINDERS" in result.stdout


# -- the tasks ------------------------------------------------------------------------


def test_the_celery_task_keeps_its_public_name_and_sends(broken, settings_with):
    pytest.importorskip("celery")
    from django_cronofy_conferencing.tasks import send_relink_reminders_task

    assert (
        send_relink_reminders_task.name
        == "django_cronofy_conferencing.tasks.send_relink_reminders_task"
    )
    with settings_with(RELINK_REMINDERS=ON):
        summary = send_relink_reminders_task.apply().get()
    assert summary == {"due": 1, "sent": 1, "signal_only": 0, "failed": 0}
    assert len(mail.outbox) == 1


def test_the_django_task_sends(broken, settings_with):
    pytest.importorskip("django_tasks_db")
    from django_cronofy_conferencing.queueing.django_tasks import send_relink_reminders_task

    with settings_with(RELINK_REMINDERS=ON):
        summary = send_relink_reminders_task.call()
        again = send_relink_reminders_task.call()
    assert summary == {"due": 1, "sent": 1, "signal_only": 0, "failed": 0}
    assert again["due"] == 0
    assert len(mail.outbox) == 1
