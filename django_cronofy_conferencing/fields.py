"""A text field that is plain text in Python and Fernet ciphertext in the column.

The first key of ``ENCRYPTION_KEYS`` encrypts; every key decrypts, so keys can
be rotated by putting a new one first and running ``cronofy_rotate_keys``.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.query_utils import DeferredAttribute

from .conf import SETTINGS_NAME, app_settings, on_reload
from .cronofy.redaction import remember_secret
from .exceptions import TokenDecryptionError

KEYS_SETTING = f"{SETTINGS_NAME}['ENCRYPTION_KEYS']"


def derive_key_from_secret_key(secret_key: str) -> bytes:
    """A Fernet key from SECRET_KEY, for projects that set no ENCRYPTION_KEYS."""
    digest = hashlib.sha256(b"django-cronofy-conferencing:token-key:" + secret_key.encode())
    return base64.urlsafe_b64encode(digest.digest())


def configured_keys() -> list[bytes]:
    """The keys in order, validated; raises ImproperlyConfigured naming the setting."""
    keys = app_settings.ENCRYPTION_KEYS
    if keys is None:
        return [derive_key_from_secret_key(settings.SECRET_KEY)]
    if isinstance(keys, str | bytes) or not isinstance(keys, list | tuple) or not keys:
        raise ImproperlyConfigured(f"{KEYS_SETTING} must be a non-empty list of Fernet keys.")
    result = []
    for index, key in enumerate(keys):
        raw = key.encode() if isinstance(key, str) else key
        try:
            Fernet(raw)
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"{KEYS_SETTING}[{index}] is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes; make one with "
                "cryptography.fernet.Fernet.generate_key())."
            ) from None
        result.append(raw)
    return result


@cache
def get_fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in configured_keys()])


on_reload(get_fernet.cache_clear)


def encrypt(value: str) -> str:
    return get_fernet().encrypt(value.encode()).decode("ascii")


def decrypt(ciphertext: str) -> str:
    try:
        return get_fernet().decrypt(ciphertext.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise TokenDecryptionError(
            f"A stored Cronofy token cannot be decrypted with any key in {KEYS_SETTING}. "
            "Put back the key it was encrypted with (keep old keys after the first "
            "until cronofy_rotate_keys has run)."
        ) from None


def _decrypts(ciphertext: str) -> bool:
    try:
        get_fernet().decrypt(ciphertext.encode("ascii"))
    except (InvalidToken, UnicodeError):
        return False
    return True


def needs_rotation(ciphertext: str) -> bool:
    """True when the value was not encrypted with the current first key."""
    if not ciphertext:
        return False
    first = Fernet(configured_keys()[0])
    try:
        first.decrypt(ciphertext.encode("ascii"))
    except InvalidToken:
        return True
    return False


class EncryptedValue:
    """A token as the model holds it: its ciphertext, and its plain text once known.

    What the column gives (``from_db_value``: decrypted on first attribute
    access, so listing accounts never decrypts and one bad row does not break
    a changelist), and what assigning a plain token stores (``seal``: encrypted
    at once). So the values Django's ORM handles while saving (``Model._save_table``'s
    ``values``, ``QuerySet.create``'s ``kwargs``) are these, never plain text:
    a database error reported with its frames' local variables (Django's
    technical 500 page, ``AdminEmailHandler``, an error tracker) shows
    ``<EncryptedValue>``. ``values()``/``values_list()`` return them as is;
    a pickle keeps only the ciphertext.
    """

    __slots__ = ("ciphertext", "plaintext")

    def __init__(self, ciphertext: str, plaintext: str | None = None) -> None:
        self.ciphertext = ciphertext
        self.plaintext = plaintext

    @classmethod
    def seal(cls, plaintext: str) -> EncryptedValue:
        """Encrypt ``plaintext`` under the first key now."""
        return cls(encrypt(plaintext), plaintext)

    def __repr__(self) -> str:
        return "<EncryptedValue>"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.ciphertext)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EncryptedValue) and other.ciphertext == self.ciphertext

    def __hash__(self) -> int:
        return hash(self.ciphertext)

    def __reduce__(self) -> tuple:
        return (EncryptedValue, (self.ciphertext,))

    def decrypt(self) -> str:
        if self.plaintext is None:
            self.plaintext = decrypt(self.ciphertext)
        return self.plaintext


def sealed(plaintext: str) -> EncryptedValue | str:
    """``plaintext`` encrypted for an ``EncryptedTextField`` (``""`` stays ``""``).

    Pass this rather than the plain token to ``create()``/``update()``, so no
    frame of the ORM holds the plain token while the statement runs.
    """
    return EncryptedValue.seal(plaintext) if plaintext else plaintext


class EncryptedAttribute(DeferredAttribute):
    # A data descriptor (it has __set__), so every assignment passes here: a
    # plain token is encrypted at once and the instance holds only an
    # ``EncryptedValue`` (never plain text in ``__dict__``). Every plain token
    # the process holds is remembered by ``redaction``, so an error body or
    # message that repeats it is masked.
    def __set__(self, instance, value):
        if isinstance(value, str) and value:
            remember_secret(value)
            current = instance.__dict__.get(self.field.attname)
            if isinstance(current, EncryptedValue) and current.plaintext == value:
                return  # unchanged: keep its ciphertext (no new write, no new encryption)
            value = EncryptedValue.seal(value)
        instance.__dict__[self.field.attname] = value

    def __get__(self, instance, cls=None):
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, EncryptedValue):
            if value.plaintext is None:
                remember_secret(value.decrypt())
            return value.plaintext
        return value


class EncryptedTextField(models.TextField):
    """Stores ``encrypt(value)``; an empty string stays empty (no token).

    Encryption is randomized, so lookups other than ``isnull`` cannot match and
    are refused rather than silently returning nothing.
    """

    description = "Text encrypted with Fernet"
    descriptor_class = EncryptedAttribute

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("editable", False)
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        for key in ("editable", "blank", "default"):
            kwargs.pop(key, None)
        if self.editable:
            kwargs["editable"] = True
        if not self.blank:
            kwargs["blank"] = False
        if self.default != "":
            kwargs["default"] = self.default
        return name, path, args, kwargs

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        # The ``EncryptedValue`` itself: the ORM never sees the plain token, and an
        # untouched token is written back as the same ciphertext.
        return model_instance.__dict__.get(self.attname)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, EncryptedValue):
            return value
        value = super().to_python(value)
        # Deserializers (loaddata) hand back what value_to_string wrote: ciphertext,
        # which must be stored as is, not encrypted a second time.
        if isinstance(value, str) and value.startswith("gAAAAA") and _decrypts(value):
            return EncryptedValue(value)
        return value

    def get_prep_value(self, value: Any) -> Any:
        if isinstance(value, EncryptedValue):
            return value.ciphertext
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return value
        return EncryptedValue(value)

    def value_to_string(self, obj: models.Model) -> str:
        # Serializers (dumpdata) get the ciphertext, never the plain token.
        raw = obj.__dict__.get(self.attname)
        if isinstance(raw, EncryptedValue):
            return raw.ciphertext
        return encrypt(raw) if raw else ""

    def get_lookup(self, lookup_name: str):
        if lookup_name != "isnull":
            return None
        return super().get_lookup(lookup_name)


def stored_ciphertext(instance: models.Model, attname: str) -> bool:
    """Whether a token is stored, without decrypting it."""
    return bool(instance.__dict__.get(attname))
