"""Send the relink reminders that are due: ``manage.py cronofy_remind``.

Run it from cron (or Celery beat: ``django_cronofy_conferencing.tasks.send_relink_reminders_task``;
Django's tasks: ``queueing.django_tasks.send_relink_reminders_task``) every hour or so. With
``RELINK_REMINDERS = {"DAYS": [0, 1, 3, 7]}``, each user whose conferencing profile
disconnected gets one email per step until it works again (``accounts.reminders``).
Safe to run in several processes at once: each step goes out once. Exit status 1
when any email could not be sent.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...accounts.reminders import reminder_settings, send_due_reminders


class Command(BaseCommand):
    help = (
        "Send the relink reminders that are due (CRONOFY_CONFERENCING['RELINK_REMINDERS']): "
        "one email per step after a conferencing profile disconnected, until it works again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count the reminders that are due; send and record nothing.",
        )

    def handle(self, *args, **options) -> None:
        try:
            config = reminder_settings()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if config is None:
            self.stdout.write(
                "CRONOFY_CONFERENCING['RELINK_REMINDERS'] is not set: no reminders are sent."
            )
            return
        result = send_due_reminders(dry_run=options["dry_run"])
        if options["dry_run"]:
            self.stdout.write(f"{result.due} relink reminder(s) due; nothing was sent (--dry-run).")
            return
        self.stdout.write(
            f"{result.due} relink reminder(s) due: {result.sent} emailed, "
            f"{result.signal_only} signal only, {result.failed} failed."
        )
        if options["verbosity"] >= 2:
            for error in result.errors:
                self.stderr.write(f"  {error}")
        if result.failed:
            raise CommandError(
                f"{result.failed} relink reminder(s) could not be emailed (see the log)."
            )
