"""cronofy_rotate_keys: re-encrypt with the first key so old keys can be removed."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_cronofy_conferencing.exceptions import TokenDecryptionError
from django_cronofy_conferencing.fields import needs_rotation
from django_cronofy_conferencing.models import LinkedAccount

pytestmark = pytest.mark.django_db

OLD_KEYS = settings.CRONOFY_CONFERENCING["ENCRYPTION_KEYS"]
NEW_KEY = Fernet.generate_key().decode()


def keys(*values):
    return override_settings(
        CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, "ENCRYPTION_KEYS": list(values)}
    )


def rotate(*args) -> str:
    out = io.StringIO()
    call_command("cronofy_rotate_keys", *args, stdout=out)
    return out.getvalue()


def make_accounts(n: int, prefix: str = "acc") -> dict[int, tuple[str, str]]:
    plain = {}
    for i in range(n):
        access, refresh = f"{prefix}-access-{i:04d}", f"{prefix}-refresh-{i:04d}"
        account = LinkedAccount.objects.create(
            data_center="us", sub=f"{prefix}_{i}", access_token=access, refresh_token=refresh
        )
        plain[account.pk] = (access, refresh)
    return plain


def ciphertexts() -> dict[int, tuple]:
    return {
        pk: (a.ciphertext if a else "", r.ciphertext if r else "")
        for pk, a, r in LinkedAccount.objects.values_list("pk", "access_token", "refresh_token")
    }


def test_rotation_lets_the_old_key_be_removed():
    plain = make_accounts(7)  # encrypted with the old first key
    LinkedAccount.objects.create(data_center="us", sub="acc_no_tokens")  # nothing to rotate
    with keys(NEW_KEY, *OLD_KEYS):
        output = rotate("--batch-size", "3")
    assert "7 rotated, 1 already current, 0 failed" in output
    assert "older keys can be removed" in output

    with keys(NEW_KEY):  # the old keys are gone
        for pk, (access, refresh) in plain.items():
            account = LinkedAccount.objects.get(pk=pk)
            assert (account.access_token, account.refresh_token) == (access, refresh)
        assert not any(needs_rotation(c) for pair in ciphertexts().values() for c in pair)


def test_without_rotation_the_old_key_is_still_needed():
    (pk,) = make_accounts(1)
    with keys(NEW_KEY), pytest.raises(TokenDecryptionError):
        _ = LinkedAccount.objects.get(pk=pk).access_token


def test_a_second_run_finds_everything_current():
    make_accounts(4)
    with keys(NEW_KEY, *OLD_KEYS):
        rotate()
        before = ciphertexts()
        output = rotate()
    assert "0 rotated, 4 already current, 0 failed" in output
    assert ciphertexts() == before  # nothing rewritten


def test_mixed_keys_count_per_account():
    make_accounts(2, prefix="old")
    with keys(NEW_KEY, *OLD_KEYS):
        make_accounts(3, prefix="new")  # already under the new first key
        output = rotate()
    assert "2 rotated, 3 already current, 0 failed" in output


def test_undecryptable_tokens_are_reported_and_fail_the_command():
    make_accounts(2)
    stranger = Fernet(Fernet.generate_key())
    broken = LinkedAccount.objects.create(data_center="us", sub="acc_broken")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {LinkedAccount._meta.db_table} SET access_token = %s WHERE id = %s",
            [stranger.encrypt(b"lost-token-0001").decode(), broken.pk],
        )
    out = io.StringIO()
    with keys(NEW_KEY, *OLD_KEYS), pytest.raises(CommandError) as excinfo:
        call_command("cronofy_rotate_keys", stdout=out)
    assert "2 rotated, 0 already current, 1 failed (undecryptable)" in out.getvalue()
    assert f"ids {broken.pk}" in str(excinfo.value)
    assert "lost-token" not in out.getvalue() + str(excinfo.value)


def test_dry_run_changes_nothing():
    make_accounts(3)
    before = ciphertexts()
    with keys(NEW_KEY, *OLD_KEYS):
        output = rotate("--dry-run")
    assert "3 would be rotated" in output
    assert ciphertexts() == before


def test_batches_keep_queries_per_batch_constant():
    make_accounts(10)
    with keys(NEW_KEY, *OLD_KEYS), CaptureQueriesContext(connection) as queries:
        rotate("--batch-size", "5")
    updates = [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    selects = [q for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert len(updates) == 10  # one per account
    assert len(selects) == 5  # per batch: ids, locked rows; and the final empty page


def test_no_token_in_output():
    plain = make_accounts(3)
    with keys(NEW_KEY, *OLD_KEYS):
        output = rotate("--verbosity", "2")
    for access, refresh in plain.values():
        assert access not in output and refresh not in output


def test_batch_size_must_be_positive():
    with pytest.raises(CommandError, match="batch-size"):
        rotate("--batch-size", "0")
