"""The management commands' shared helpers."""

from __future__ import annotations

import pytest
from django.core.management import CommandError

from django_cronofy_conferencing.management import utils
from django_cronofy_conferencing.management.commands import cronofy_link, cronofy_sync

pytestmark = pytest.mark.django_db


def test_resolve_user_by_username_or_id(user, other_user):
    assert utils.resolve_user("alice") == user
    assert utils.resolve_user(str(other_user.pk)) == other_user


def test_an_all_digit_username_that_is_no_id(django_user_model):
    numeric = django_user_model.objects.create_user("90210")
    assert utils.resolve_user("90210") == numeric


def test_an_unknown_user():
    with pytest.raises(CommandError, match="No user with username or id 'nobody'"):
        utils.resolve_user("nobody")


def test_both_commands_use_it():
    assert cronofy_link.resolve_user is utils.resolve_user
    assert cronofy_sync.resolve_user is utils.resolve_user


ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x660 + i) for i in range(10)))


@pytest.mark.parametrize("kind", ["superscript-two", "arabic-indic-id", "past-any-id"])
def test_only_ascii_digits_in_range_are_ids(user, kind):
    """Issue 20 §2.5's sibling: superscript two was a ValueError, the user's own id in
    Arabic-Indic digits named that user."""
    value = {
        "superscript-two": "\u00b2",
        "arabic-indic-id": str(user.pk).translate(ARABIC_INDIC),
        "past-any-id": "9" * 30,
    }[kind]
    with pytest.raises(CommandError, match="No user with username or id"):
        utils.resolve_user(value)


def test_a_username_of_digits_past_any_id_is_still_a_username(django_user_model):
    named = django_user_model.objects.create_user("9" * 30)
    assert utils.resolve_user("9" * 30) == named
