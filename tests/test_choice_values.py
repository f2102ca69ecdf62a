"""Conferencing choice values that are no account id or no profile id (issue 20 §2.5):
a validation error in the form field, the DRF field and ``select``, never a
``ValueError``, a ``DataError`` (PostgreSQL) or another account read from non-ASCII
digits. Only ASCII digits are account ids; only printable ASCII names a profile."""

from __future__ import annotations

import pytest
from django import forms
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from django_cronofy_conferencing.api.fields import ConferencingChoiceField as APIChoiceField
from django_cronofy_conferencing.choices import conferencing_for, parse_account_id, select
from django_cronofy_conferencing.exceptions import ConferencingUnavailable, InvalidSelection
from django_cronofy_conferencing.forms import ConferencingChoiceField
from django_cronofy_conferencing.models import LinkedAccount

pytestmark = pytest.mark.django_db

# Digits that str.isdigit() accepts; int() reads the first and last kinds as numbers.
ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x660 + i) for i in range(10)))
SUPERSCRIPT = str.maketrans(
    "0123456789", "\u2070\u00b9\u00b2\u00b3" + "".join(chr(0x2074 + i) for i in range(6))
)
FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + i) for i in range(10)))
SUPER_TWO, ARABIC_ONE, FULLWIDTH_ONE = "\u00b2", "\u0661", "\uff11"


def hostile_values(pk: int) -> list[str]:
    """Values that must be refused for the account ``pk`` (its own id in other digits)."""
    return [
        f"{str(pk).translate(ARABIC_INDIC)}:default",
        f"{str(pk).translate(SUPERSCRIPT)}:default",
        f"{str(pk).translate(FULLWIDTH)}:default",
        f"{SUPER_TWO}:default",
        f"{ARABIC_ONE}:default",
        f"{pk}:\x00",
        f"{pk}:pro_\x00zoom",
        f"{pk}:pro_\ud800",
        f"{pk}:pro zoom",
        f"{pk}:" + "p" * 256,
        f"{2**63}:default",
        "9" * 40 + ":default",
        f"0{pk}:default",
        f"-{pk}:default",
    ]


class BookingForm(forms.Form):
    conferencing = ConferencingChoiceField()

    def __init__(self, *args, user, account=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["conferencing"].limit_to(user, account=account)


class BookingSerializer(serializers.Serializer):
    conferencing = APIChoiceField()


def api_errors(user, value):
    request = APIRequestFactory().post("/book/")
    request.user = user
    serializer = BookingSerializer(data={"conferencing": value}, context={"request": request})
    assert not serializer.is_valid()
    return serializer.errors["conferencing"]


@pytest.fixture
def account(booking_host):
    return booking_host[0]


def test_the_hostile_values_name_the_users_own_account(account):
    """Each would be the user's own, valid pick were non-ASCII digits taken as digits."""
    assert f"{account.pk}:default" not in hostile_values(account.pk)
    assert int(str(account.pk).translate(ARABIC_INDIC)) == account.pk  # what int() does


def test_select_refuses_each_as_a_choice_error(account, user):
    """An account id in other digits names no account; a bad choice names no profile."""
    accounts = LinkedAccount.objects.for_user(user)
    for value in hostile_values(account.pk):
        with pytest.raises((InvalidSelection, ConferencingUnavailable)):
            select(accounts, value)
    assert select(accounts, f"{account.pk}:default").conferencing == {"profile_id": "default"}


def test_the_form_field_gives_a_validation_error(account, user):
    for value in hostile_values(account.pk):
        form = BookingForm({"conferencing": value}, user=user)
        assert not form.is_valid(), value
        assert form.errors["conferencing"], value
    assert BookingForm({"conferencing": f"{account.pk}:default"}, user=user).is_valid()


def test_the_form_field_for_one_account_refuses_a_bare_hostile_choice(account, user):
    """With ``account`` given a bare value is the choice: it never reaches the database."""
    for value in ("\x00", "pro_\ud800", "p" * 256, SUPER_TWO):
        form = BookingForm({"conferencing": value}, user=user, account=account)
        assert not form.is_valid()
        assert "not one this account has" in form.errors["conferencing"][0]


def test_the_drf_field_answers_400(account, user):
    for value in hostile_values(account.pk):
        assert api_errors(user, value), value
    pk = str(account.pk)
    for data in (
        {"account": pk.translate(ARABIC_INDIC), "choice": "default"},
        {"account": pk.translate(SUPERSCRIPT), "choice": "default"},
        {"account": account.pk, "choice": "\x00"},
        {"account": 2**64, "choice": "default"},
        {"account": -account.pk, "choice": "default"},
    ):
        assert api_errors(user, data), data


@pytest.mark.parametrize("choice", ["\x00", "pro_\x00", "pro_\ud800", "p" * 256, SUPER_TWO, " "])
def test_conferencing_for_refuses_what_no_profile_id_can_be(account, choice):
    with pytest.raises(ConferencingUnavailable, match="not one this account has"):
        conferencing_for(account, choice)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1), ("42", 42), (str(2**63 - 1), 2**63 - 1), (str(2**63), None), ("0", None)]
    + [
        (value, None)
        for value in ("01", SUPER_TWO, ARABIC_ONE, FULLWIDTH_ONE, "-1", "+1", " 1", "1 ", "", "1.0")
    ],
)
def test_parse_account_id(text, expected):
    assert parse_account_id(text) == expected


def test_the_api_account_filter_takes_ascii_digits_only(scanning_client, account, user):
    client = scanning_client(user, api=True)
    url = "/api/cronofy/conferencing-profiles/"
    assert client.get(url, {"account": str(account.pk)}).status_code == 200
    for value in (str(account.pk).translate(ARABIC_INDIC), str(account.pk).translate(FULLWIDTH)):
        response = client.get(url, {"account": value})
        assert response.status_code == 400
        assert "account" in response.json()
