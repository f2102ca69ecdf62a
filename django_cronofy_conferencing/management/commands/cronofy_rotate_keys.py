"""Re-encrypt every stored Cronofy token with the first key of ENCRYPTION_KEYS.

Key rotation: put the new key first in ``ENCRYPTION_KEYS`` (keep the old ones
after it), deploy, run this command, then remove the old keys. Accounts are
processed in batches, each under a row lock so a concurrent token refresh is
never overwritten with an older token. Tokens never pass through Python as
plain text here except inside ``MultiFernet.rotate``; nothing is printed but
counts.
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import router, transaction

from ...db import write_lock
from ...fields import EncryptedValue, get_fernet, needs_rotation
from ...models import LinkedAccount

TOKEN_FIELDS = ("access_token", "refresh_token")


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
        counts = {"rotated": 0, "current": 0, "failed": 0}
        failed_ids: list[int] = []
        using = router.db_for_write(LinkedAccount)
        last_pk = 0
        while True:
            pks = list(
                LinkedAccount.objects.using(using)
                .filter(pk__gt=last_pk)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not pks:
                break
            last_pk = pks[-1]
            self._rotate_batch(using, pks, dry_run, counts, failed_ids)
            if options["verbosity"] >= 2:
                self.stdout.write(f"... up to account id {last_pk}")

        verb = "would be rotated" if dry_run else "rotated"
        self.stdout.write(
            f"Accounts: {counts['rotated']} {verb}, {counts['current']} already current, "
            f"{counts['failed']} failed (undecryptable)."
        )
        if counts["failed"]:
            shown = ", ".join(str(pk) for pk in failed_ids[:20])
            more = " ..." if len(failed_ids) > 20 else ""
            raise CommandError(
                f"{counts['failed']} account(s) have tokens no configured key can decrypt "
                f"(ids {shown}{more}). Keep the old keys until these are relinked or deleted."
            )
        if not dry_run:
            self.stdout.write(
                self.style.SUCCESS(
                    "Every token is encrypted with the first key; older keys can be removed."
                )
            )

    def _rotate_batch(
        self,
        using: str,
        pks: list[int],
        dry_run: bool,
        counts: dict[str, int],
        failed_ids: list[int],
    ) -> None:
        fernet = get_fernet()
        with write_lock(using), transaction.atomic(using=using):
            rows = (
                LinkedAccount.objects.using(using)
                .select_for_update()
                .filter(pk__in=pks)
                .order_by("pk")
                .values_list("pk", *TOKEN_FIELDS)
            )
            for pk, *values in rows:
                updates: dict[str, EncryptedValue] = {}
                failed = False
                for name, value in zip(TOKEN_FIELDS, values, strict=True):
                    if not isinstance(value, EncryptedValue) or not value.ciphertext:
                        continue
                    if not needs_rotation(value.ciphertext):
                        continue
                    try:
                        rotated = fernet.rotate(value.ciphertext.encode("ascii"))
                    except (InvalidToken, UnicodeError):
                        failed = True
                        continue
                    updates[name] = EncryptedValue(rotated.decode("ascii"))
                if failed:
                    counts["failed"] += 1
                    failed_ids.append(pk)
                elif updates:
                    counts["rotated"] += 1
                else:
                    counts["current"] += 1
                if updates and not dry_run:
                    # Decryptable tokens of a partly broken account are rotated too.
                    LinkedAccount.objects.using(using).filter(pk=pk).update(**updates)
