"""Re-encrypt every stored Cronofy token with the first key of ENCRYPTION_KEYS.

Key rotation: put the new key first in ``ENCRYPTION_KEYS`` (keep the old ones
after it), deploy, run this command, then remove the old keys. The work is
``rotation.rotate_token_encryption`` (batches, each under a row lock); this
command parses the options and prints counts, nothing else.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...accounts.rotation import rotate_token_encryption


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored Cronofy token with the first key of "
        "CRONOFY_CONFERENCING['ENCRYPTION_KEYS'], in batches; reports how many accounts "
        "were rotated, already current, or could not be decrypted with any key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=500,
            help="Accounts per transaction (default 500).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be rotated without writing anything.",
        )

    def handle(self, *args, **options) -> None:
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        dry_run = options["dry_run"]
        progress = None
        if options["verbosity"] >= 2:

            def progress(last_pk: int) -> None:
                self.stdout.write(f"... up to account id {last_pk}")

        report = rotate_token_encryption(batch_size, dry_run=dry_run, progress=progress)

        verb = "would be rotated" if dry_run else "rotated"
        self.stdout.write(
            f"Accounts: {report.rotated} {verb}, {report.current} already current, "
            f"{report.failed} failed (undecryptable)."
        )
        if report.failed:
            shown = ", ".join(str(pk) for pk in report.failed_ids[:20])
            more = " ..." if len(report.failed_ids) > 20 else ""
            raise CommandError(
                f"{report.failed} account(s) have tokens no configured key can decrypt "
                f"(ids {shown}{more}). Keep the old keys until these are relinked or deleted."
            )
        if not dry_run:
            self.stdout.write(
                self.style.SUCCESS(
                    "Every token is encrypted with the first key; older keys can be removed."
                )
            )
