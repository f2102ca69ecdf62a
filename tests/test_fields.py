"""EncryptedTextField: ciphertext in the column, plain text in Python, key rotation."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.core import serializers
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.db import connection
from django.test import override_settings

from django_cronofy_conferencing.exceptions import TokenDecryptionError
from django_cronofy_conferencing.fields import (
    EncryptedValue,
    configured_keys,
    decrypt,
    derive_key_from_secret_key,
    encrypt,
    needs_rotation,
)
from django_cronofy_conferencing.models import LinkedAccount

pytestmark = pytest.mark.django_db

ACCESS = "P531x88i05Ld2yXHIQ7WjiEyqlmOHsgI"
REFRESH = "3gBYG1XamYDUEXUyybbummQWEe5YqPmf"
OLD_KEY = "GI0i4TOcO9BJJV725ma6TI48G5GMQ3oVAM4A9O6nfXA="  # tests/settings.py's first key
NEW_KEY = Fernet.generate_key().decode()


def keys_settings(settings, *keys):
    return {**settings.CRONOFY_CONFERENCING, "ENCRYPTION_KEYS": list(keys)}


def raw_columns(pk) -> tuple[str, str]:
    table = LinkedAccount._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT access_token, refresh_token FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()


def make_account(**kwargs) -> LinkedAccount:
    return LinkedAccount.objects.create(
        data_center="us",
        sub=kwargs.pop("sub", "acc_fields"),
        access_token=ACCESS,
        refresh_token=REFRESH,
        **kwargs,
    )


def test_the_column_holds_fernet_ciphertext_only(settings):
    account = make_account()
    access_raw, refresh_raw = raw_columns(account.pk)
    for raw, plain in ((access_raw, ACCESS), (refresh_raw, REFRESH)):
        assert plain not in raw
        assert raw.startswith("gAAAAA")  # Fernet version byte + timestamp
        fernet = MultiFernet([Fernet(k) for k in settings.CRONOFY_CONFERENCING["ENCRYPTION_KEYS"]])
        assert fernet.decrypt(raw.encode()).decode() == plain
    assert access_raw != refresh_raw


def test_encryption_is_randomized():
    assert encrypt(ACCESS) != encrypt(ACCESS)
    assert decrypt(encrypt(ACCESS)) == ACCESS


def test_plain_text_in_python_after_loading():
    account = make_account()
    loaded = LinkedAccount.objects.get(pk=account.pk)
    assert isinstance(loaded.__dict__["access_token"], EncryptedValue)  # not decrypted yet
    assert loaded.access_token == ACCESS
    assert loaded.refresh_token == REFRESH
    held = loaded.__dict__["access_token"]
    # Decrypted once and cached, but the instance never holds the plain text itself.
    assert isinstance(held, EncryptedValue) and held.plaintext == ACCESS
    loaded.refresh_from_db()
    assert loaded.access_token == ACCESS


def test_saving_an_untouched_token_keeps_its_ciphertext():
    account = make_account()
    before = raw_columns(account.pk)
    loaded = LinkedAccount.objects.get(pk=account.pk)
    loaded.name = "Renamed"
    loaded.save()
    assert raw_columns(account.pk) == before


def test_changing_a_token_re_encrypts_it():
    account = make_account()
    account.access_token = "new-access-token-123"
    account.save(update_fields=["access_token"])
    access_raw, _ = raw_columns(account.pk)
    assert "new-access-token-123" not in access_raw
    assert LinkedAccount.objects.get(pk=account.pk).access_token == "new-access-token-123"


def test_empty_token_stays_empty():
    account = LinkedAccount.objects.create(data_center="us", sub="acc_empty")
    assert raw_columns(account.pk) == ("", "")
    loaded = LinkedAccount.objects.get(pk=account.pk)
    assert (loaded.access_token, loaded.refresh_token) == ("", "")
    assert loaded.has_tokens is False
    assert LinkedAccount.objects.get(pk=make_account().pk).has_tokens is True


def test_rotating_keys_keeps_old_rows_readable(settings):
    account = make_account()
    old_raw = raw_columns(account.pk)
    with override_settings(CRONOFY_CONFERENCING=keys_settings(settings, NEW_KEY, OLD_KEY)):
        loaded = LinkedAccount.objects.get(pk=account.pk)
        assert (loaded.access_token, loaded.refresh_token) == (ACCESS, REFRESH)
        assert needs_rotation(old_raw[0]) is True
        # New writes use the new first key.
        fresh = make_account(sub="acc_new")
        new_raw = raw_columns(fresh.pk)[0]
        assert needs_rotation(new_raw) is False
        Fernet(NEW_KEY.encode()).decrypt(new_raw.encode())
    # Back on the old keys only, the row written with the new key is unreadable.
    with pytest.raises(TokenDecryptionError):
        LinkedAccount.objects.get(pk=fresh.pk).access_token  # noqa: B018


def test_only_the_new_key_raises_a_clear_error(settings):
    account = make_account()
    with override_settings(CRONOFY_CONFERENCING=keys_settings(settings, NEW_KEY)):
        loaded = LinkedAccount.objects.get(pk=account.pk)  # loading does not decrypt
        assert loaded.sub == "acc_fields"
        with pytest.raises(TokenDecryptionError) as excinfo:
            loaded.access_token  # noqa: B018
    message = str(excinfo.value)
    assert "CRONOFY_CONFERENCING['ENCRYPTION_KEYS']" in message
    assert ACCESS not in message and REFRESH not in message
    assert raw_columns(account.pk)[0] not in message
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__


def test_values_list_returns_encrypted_values_with_a_blank_repr():
    make_account()
    value = LinkedAccount.objects.values_list("access_token", flat=True).get()
    assert isinstance(value, EncryptedValue)
    assert repr(value) == str(value) == "<EncryptedValue>"
    assert ACCESS not in repr(value)
    assert value.decrypt() == ACCESS
    row = LinkedAccount.objects.values("refresh_token").get()
    assert repr(row) == "{'refresh_token': <EncryptedValue>}"


@pytest.mark.parametrize(
    "lookup", ["access_token", "access_token__exact", "refresh_token__in", "access_token__contains"]
)
def test_lookups_other_than_isnull_are_refused(lookup):
    make_account()
    value = [ACCESS] if lookup.endswith("__in") else ACCESS
    with pytest.raises(FieldError, match="Unsupported lookup"):
        list(LinkedAccount.objects.filter(**{lookup: value}))


def test_isnull_lookup_is_allowed():
    make_account()
    assert LinkedAccount.objects.filter(access_token__isnull=False).count() == 1


def test_serializers_get_ciphertext_and_round_trip():
    account = make_account()
    text = serializers.serialize("json", LinkedAccount.objects.all())
    assert ACCESS not in text and REFRESH not in text
    fields = json.loads(text)[0]["fields"]
    assert decrypt(fields["access_token"]) == ACCESS  # ciphertext (maybe re-encrypted)
    assert raw_columns(account.pk)[0] != ACCESS

    LinkedAccount.objects.all().delete()
    for obj in serializers.deserialize("json", text):
        obj.save()
    loaded = LinkedAccount.objects.get(pk=account.pk)
    assert (loaded.access_token, loaded.refresh_token) == (ACCESS, REFRESH)


def test_full_clean_works_with_plain_tokens():
    account = make_account()
    loaded = LinkedAccount.objects.get(pk=account.pk)
    loaded.full_clean()
    assert loaded.access_token == ACCESS


def test_configured_keys_validation(settings):
    for bad, where in (
        ("not-a-list", "must be a non-empty list"),
        ([], "must be a non-empty list"),
        (["short"], "['ENCRYPTION_KEYS'][0] is not a valid Fernet key"),
        ([NEW_KEY, 12], "['ENCRYPTION_KEYS'][1] is not a valid Fernet key"),
    ):
        with override_settings(
            CRONOFY_CONFERENCING=keys_settings(settings, *[]) | {"ENCRYPTION_KEYS": bad}
        ):
            with pytest.raises(ImproperlyConfigured) as excinfo:
                configured_keys()
            assert where in str(excinfo.value)
            assert "CRONOFY_CONFERENCING" in str(excinfo.value)


def test_keys_derived_from_secret_key_when_unset(settings):
    config = {**settings.CRONOFY_CONFERENCING, "ENCRYPTION_KEYS": None}
    with override_settings(CRONOFY_CONFERENCING=config, SECRET_KEY="one-secret"):
        assert configured_keys() == [derive_key_from_secret_key("one-secret")]
        ciphertext = encrypt(ACCESS)
    with (
        override_settings(CRONOFY_CONFERENCING=config, SECRET_KEY="another-secret"),
        pytest.raises(TokenDecryptionError),
    ):
        decrypt(ciphertext)


# -- survivors of tools/mutate.py (issue #10 item 10) -----------------------------------


def test_the_field_defaults_and_their_deconstruction():
    from django_cronofy_conferencing.fields import EncryptedTextField

    field = EncryptedTextField()
    assert (field.editable, field.blank, field.default) == (False, True, "")
    assert field.deconstruct()[3] == {}
    custom = EncryptedTextField(editable=True, blank=False, default="x")
    assert custom.deconstruct()[3] == {"editable": True, "blank": False, "default": "x"}


def test_encrypted_values_compare_by_ciphertext():
    from django_cronofy_conferencing.fields import EncryptedValue

    assert EncryptedValue("gAAAA-one") == EncryptedValue("gAAAA-one")
    assert EncryptedValue("gAAAA-one") != EncryptedValue("gAAAA-two")
    assert EncryptedValue("gAAAA-one") != "gAAAA-one"


def test_an_empty_value_never_needs_rotation():
    from django_cronofy_conferencing.fields import needs_rotation

    assert needs_rotation("") is False


def test_the_instance_never_holds_a_plain_token():
    """Assigning a plain token encrypts it at once: what the ORM is handed to save
    (``pre_save``, ``QuerySet.create``'s kwargs via ``sealed``) is ciphertext, so a
    database error reported with Django's frames' variables shows no token."""
    from django_cronofy_conferencing.fields import sealed

    account = LinkedAccount(data_center="us", sub="acc_sealed", access_token=ACCESS)
    field = LinkedAccount._meta.get_field("access_token")
    for held in (account.__dict__["access_token"], field.pre_save(account, add=True)):
        assert isinstance(held, EncryptedValue)
        assert ACCESS not in repr(held) and ACCESS not in held.ciphertext
    assert account.access_token == ACCESS
    before = account.__dict__["access_token"].ciphertext
    account.access_token = ACCESS  # the same token again: the same ciphertext
    assert account.__dict__["access_token"].ciphertext == before
    account.access_token = REFRESH
    assert account.__dict__["access_token"].ciphertext != before
    assert repr(sealed(ACCESS)) == "<EncryptedValue>" and sealed("") == ""
    account.save()
    assert LinkedAccount.objects.get(pk=account.pk).access_token == REFRESH


def test_a_pickled_token_keeps_only_its_ciphertext():
    import pickle

    account = make_account()
    assert account.access_token == ACCESS
    data = pickle.dumps(account)
    assert ACCESS.encode() not in data
    assert pickle.loads(data).access_token == ACCESS


def test_a_token_decrypted_from_the_database_is_remembered_for_redaction():
    """A process that never sent the token (a worker that only read the row) still masks
    it: an error body that repeats it is redacted."""
    import secrets

    from django_cronofy_conferencing.cronofy.redaction import redact

    token = "at-" + secrets.token_urlsafe(24)
    account = LinkedAccount.objects.create(
        data_center="us", sub="acc_remember", access_token=EncryptedValue(encrypt(token))
    )
    loaded = LinkedAccount.objects.get(pk=account.pk)
    assert token in redact(f"echo {token}")  # not known yet: only read, never used
    assert loaded.access_token == token
    assert token not in redact(f"echo {token}")


def test_loaddata_encrypts_a_plain_token_that_only_looks_like_ciphertext():
    """A fixture value starting like a Fernet token but not one (no configured key
    decrypts it) is a plain token: stored encrypted, not as is."""
    looks_like = "gAAAAA" + "B" * 40
    text = json.dumps(
        [
            {
                "model": "cronofy_conferencing.linkedaccount",
                "pk": 991,
                "fields": {
                    "data_center": "us",
                    "sub": "acc_loaded",
                    "access_token": looks_like,
                    "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": "2026-01-01T00:00:00Z",
                },
            }
        ]
    )
    for obj in serializers.deserialize("json", text):
        obj.save()
    raw = raw_columns(991)[0]
    assert raw != looks_like and looks_like not in raw
    assert decrypt(raw) == looks_like
    assert LinkedAccount.objects.get(pk=991).access_token == looks_like
