"""Re-encrypting every stored token under the first key of ``ENCRYPTION_KEYS``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.fernet import InvalidToken
from django.db import router, transaction

from ..db import write_lock
from ..fields import EncryptedValue, get_fernet, needs_rotation
from ..models import LinkedAccount

TOKEN_FIELDS = ("access_token", "refresh_token")


@dataclass
class RotationReport:
    """What ``rotate_token_encryption`` did (or would do), counted in accounts."""

    rotated: int = 0
    current: int = 0
    failed: int = 0
    #: Accounts with a token no configured key decrypts (their other token is rotated).
    failed_ids: list[int] = field(default_factory=list)


def rotate_token_encryption(
    batch_size: int = 500,
    *,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RotationReport:
    """Re-encrypt every stored token with the first key of ``ENCRYPTION_KEYS``.

    Accounts are processed ``batch_size`` at a time, each batch in one
    transaction under the rows' lock, so a concurrent token refresh is never
    overwritten with an older token. Tokens are never decrypted to plain text
    here except inside ``MultiFernet.rotate``. ``dry_run`` counts without
    writing; ``progress`` is called with the last account id of each batch.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    report = RotationReport()
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
            return report
        last_pk = pks[-1]
        _rotate_batch(using, pks, dry_run, report)
        if progress is not None:
            progress(last_pk)


def _rotate_batch(using: str, pks: list[int], dry_run: bool, report: RotationReport) -> None:
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
                report.failed += 1
                report.failed_ids.append(pk)
            elif updates:
                report.rotated += 1
            else:
                report.current += 1
            if updates and not dry_run:
                # Decryptable tokens of a partly broken account are rotated too.
                LinkedAccount.objects.using(using).filter(pk=pk).update(**updates)
