"""Whether Cronofy still has each account's push channel: ``manage.py cronofy_channels``.

One ``GET /v1/channels`` per active account (its own token, in the background lane of
the rate limit), the oldest confirmation first: a channel Cronofy lists is confirmed
(the account is then polled only every ``SYNC_CONFIRM_AFTER``), one it no longer lists
loses its confirmation. Run it daily (cron, Celery beat or Django's tasks:
``check_channels_task``); ``--unconfirmed`` visits only the accounts not confirmed
within the window. ``--repair`` forgets ids Cronofy no longer has, adopts a channel
Cronofy has for our callback URL but we never stored, and creates missing ones. Exit
status 1 when any account is left without a channel (or could not be checked) while
``PUSH_NOTIFICATIONS_CALLBACK_URL`` is set.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...accounts.channels import (
    ChannelHealth,
    ChannelState,
    check_channels,
    confirmation_sweep,
)
from ...conf import app_settings
from ...cronofy.redaction import redact
from ..utils import account_id, resolve_user

LABELS = {
    ChannelState.HEALTHY: "healthy",
    ChannelState.MISSING: "missing: no channel",
    ChannelState.UNRECORDED: "unrecorded: Cronofy has a channel we never stored",
    ChannelState.STALE: "stale: Cronofy no longer has this channel",
    ChannelState.ERROR: "not checked: Cronofy could not be asked",
}


class Command(BaseCommand):
    help = (
        "Check that Cronofy still has each active account's push notification channel; "
        "--repair recreates missing ones. Exits with status 1 when any account is left "
        "without a channel."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--repair",
            action="store_true",
            help="Forget stale channel ids, adopt unrecorded channels, create missing ones.",
        )
        parser.add_argument(
            "--account", action="append", type=account_id, default=[], dest="accounts", metavar="ID"
        )
        parser.add_argument("--user", action="append", default=[], dest="users", metavar="USER")
        parser.add_argument(
            "--unconfirmed",
            action="store_true",
            help="Only accounts whose push channel Cronofy has not confirmed within "
            "SYNC_CONFIRM_AFTER (the others need no call).",
        )

    def handle(self, *args, **options) -> None:
        if not app_settings.PUSH_NOTIFICATIONS_CALLBACK_URL:
            self.stdout.write(
                "CRONOFY_CONFERENCING['PUSH_NOTIFICATIONS_CALLBACK_URL'] is not set: "
                "no push channels are used."
            )
            return
        accounts = confirmation_sweep(unconfirmed=options["unconfirmed"])
        if options["accounts"]:
            accounts = accounts.filter(pk__in=options["accounts"])
        if options["users"]:
            accounts = accounts.filter(user__in=[resolve_user(u) for u in options["users"]])
        last_error: list[str] = [""]  # the last "could not ask Cronofy", for the summary

        def report(health: ChannelHealth, repaired: ChannelHealth | None) -> None:
            account = health.account
            line = f"account {account.pk} ({account.email or account.sub}, {account.data_center}): "
            line += LABELS.get(health.state, health.state)
            if health.channel_id:
                line += f" [{health.channel_id}]"
            if health.error is not None:
                last_error[0] = redact(health.error)
                line += f": {last_error[0]}"
            if repaired is not None:
                if repaired.state == ChannelState.HEALTHY:
                    line += f" -> repaired [{repaired.channel_id}]"
                else:
                    line += f" -> not repaired: {redact(repaired.error or repaired.state)}"
            if (repaired or health).state != ChannelState.HEALTHY:
                self.stdout.write(self.style.WARNING(line))
            else:
                self.stdout.write(line)

        counts = check_channels(accounts, repair=options["repair"], each=report)
        left_without = sum(
            n
            for state, n in counts.items()
            if state not in (ChannelState.HEALTHY, ChannelState.ERROR)
        )
        total = sum(counts.values())
        unchecked = counts.get(ChannelState.ERROR, 0)
        last_error = last_error[0]
        summary = ", ".join(f"{n} {LABELS[s].split(':')[0]}" for s, n in sorted(counts.items()))
        self.stdout.write(f"{total} accounts checked: {summary or 'none'}.")
        if total and unchecked == total:
            # Not "N accounts have no working channel": nothing is known about them.
            raise CommandError(
                f"Nothing could be checked: Cronofy could not be asked about any of the "
                f"{total} {'account' if total == 1 else 'accounts'} ({last_error}). "
                "Try again once Cronofy can be reached; --repair cannot help before that."
            )
        problems = []
        if left_without:
            hint = "" if options["repair"] else " Run with --repair to fix them."
            noun = "account has" if left_without == 1 else "accounts have"
            problems.append(f"{left_without} {noun} no working channel.{hint}")
        if unchecked:
            noun = "account" if unchecked == 1 else "accounts"
            problems.append(
                f"{unchecked} {noun} could not be checked (Cronofy could not be asked); "
                "run again later."
            )
        if problems:
            raise CommandError(" ".join(problems))
