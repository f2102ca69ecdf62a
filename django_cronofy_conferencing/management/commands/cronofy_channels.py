"""Whether Cronofy still has each account's push channel: ``manage.py cronofy_channels``.

One ``GET /v1/channels`` per active account (its own token, under the rate
limit). ``--repair`` forgets ids Cronofy no longer has, adopts a channel
Cronofy has for our callback URL but we never stored, and creates missing
ones. Exit status 1 when any account is left without a channel (or could not
be checked) while ``PUSH_NOTIFICATIONS_CALLBACK_URL`` is set.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...accounts.channels import ChannelState, channel_health, repair_channel
from ...conf import app_settings
from ...cronofy.redaction import redact
from ...models import LinkedAccount
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

    def handle(self, *args, **options) -> None:
        if not app_settings.PUSH_NOTIFICATIONS_CALLBACK_URL:
            self.stdout.write(
                "CRONOFY_CONFERENCING['PUSH_NOTIFICATIONS_CALLBACK_URL'] is not set: "
                "no push channels are used."
            )
            return
        accounts = LinkedAccount.objects.active().order_by("pk")
        if options["accounts"]:
            accounts = accounts.filter(pk__in=options["accounts"])
        if options["users"]:
            accounts = accounts.filter(user__in=[resolve_user(u) for u in options["users"]])
        counts: dict[str, int] = {}
        left_without = 0
        last_error: str = ""
        for account in accounts.iterator(chunk_size=200):
            health = channel_health(account)
            line = f"account {account.pk} ({account.email or account.sub}, {account.data_center}): "
            line += LABELS.get(health.state, health.state)
            if health.channel_id:
                line += f" [{health.channel_id}]"
            if health.error is not None:
                last_error = redact(health.error)
                line += f": {last_error}"
            if options["repair"] and health.state not in (ChannelState.HEALTHY, ChannelState.ERROR):
                health = repair_channel(account, health)
                if health.state == ChannelState.HEALTHY:
                    line += f" -> repaired [{health.channel_id}]"
                else:
                    line += f" -> not repaired: {redact(health.error or health.state)}"
            counts[health.state] = counts.get(health.state, 0) + 1
            if health.state not in (ChannelState.HEALTHY, ChannelState.ERROR):
                left_without += 1
            if health.state != ChannelState.HEALTHY:
                self.stdout.write(self.style.WARNING(line))
            else:
                self.stdout.write(line)
        total = sum(counts.values())
        unchecked = counts.get(ChannelState.ERROR, 0)
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
