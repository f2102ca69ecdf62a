"""rotation: re-encrypt every token with the first key, under the rows' lock."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.test import override_settings

from django_cronofy_conferencing.accounts.rotation import rotate_token_encryption
from django_cronofy_conferencing.models import LinkedAccount


def _keys(*keys: str):
    return override_settings(
        CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, "ENCRYPTION_KEYS": list(keys)}
    )


@pytest.mark.django_db
def test_rotation_re_encrypts_and_keeps_the_tokens():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with _keys(old):
        account = LinkedAccount.objects.create(
            data_center="us", sub="acc_rot", access_token="at-rot-1", refresh_token="rt-rot-1"
        )
    with _keys(new, old):
        report = rotate_token_encryption()
        assert (report.rotated, report.current, report.failed) == (1, 0, 0)
        assert rotate_token_encryption().current == 1  # idempotent
    with _keys(new):
        stored = LinkedAccount.objects.get(pk=account.pk)
        assert (stored.access_token, stored.refresh_token) == ("at-rot-1", "rt-rot-1")


@pytest.mark.django_db(transaction=True)
def test_rotation_never_writes_back_a_token_refreshed_meanwhile(row_lock_holder):
    """PostgreSQL, two connections: a refresh that commits while rotation waits on the
    row is kept. Without the row lock, rotation wrote the old token back over it."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with _keys(old):
        account = LinkedAccount.objects.create(
            data_center="us", sub="acc_rot2", access_token="at-old", refresh_token="rt-old"
        )

        def refresh():
            LinkedAccount.objects.filter(pk=account.pk).update(access_token="at-refreshed")

    with _keys(new, old):
        # The refresh writes with the old key (a process not yet redeployed).
        with _keys(old), row_lock_holder(account.pk, refresh), _keys(new, old):
            rotate_token_encryption()
        assert LinkedAccount.objects.get(pk=account.pk).access_token == "at-refreshed"
