"""Helpers shared by the management commands."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

#: The largest primary key a database holds (64-bit); SQLite overflows past it.
MAX_ID = 2**63 - 1


def resolve_user(value: str):
    """The user named by ``value``: an id (digits), else a username.

    An all-digit value that is no user's id is tried as a username too.
    Raises ``CommandError`` when neither matches.
    """
    User = get_user_model()
    user = None
    # ASCII digits only: "²".isdigit() is true too (int() refuses it) and int() reads
    # Arabic-Indic digits as numbers.
    if value.isascii() and value.isdigit() and int(value) <= MAX_ID:
        user = User._default_manager.filter(pk=int(value)).first()
    if user is None:
        user = User._default_manager.filter(**{User.USERNAME_FIELD: value}).first()
    if user is None:
        raise CommandError(f"No user with username or id {value!r}.")
    return user


def account_id(text: str) -> int:
    """An ``--account`` value: ASCII digits naming a possible primary key (argparse
    reports anything else, instead of an ``OverflowError`` from SQLite later)."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_ID:
        raise ValueError(text)
    return int(text)


account_id.__name__ = "account id"  # how argparse names it: "invalid account id value"
