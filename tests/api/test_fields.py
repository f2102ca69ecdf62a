"""api.fields.ConferencingChoiceField: every choice rule through a host's booking serializer."""

from __future__ import annotations

import pytest
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from django_cronofy_conferencing.api.fields import ConferencingChoiceField
from django_cronofy_conferencing.choices import ConferencingSelection
from django_cronofy_conferencing.models import ConferencingProfile

pytestmark = pytest.mark.django_db


class BookingSerializer(serializers.Serializer):
    calendar_id = serializers.CharField(required=False)
    conferencing = ConferencingChoiceField(calendar_id_field="calendar_id")


def validate(user, data):
    request = APIRequestFactory().post("/book/")
    request.user = user
    serializer = BookingSerializer(data=data, context={"request": request})
    serializer.is_valid()
    return serializer


@pytest.mark.parametrize(
    ("choice", "conferencing"),
    [
        ("pro_zoom", {"profile_id": "pro_zoom"}),
        ("integrated", {"profile_id": "integrated"}),
        ("default", {"profile_id": "default"}),
    ],
)
def test_working_choices(booking_host, user, choice, conferencing):
    account, _ = booking_host
    for value in (f"{account.pk}:{choice}", {"account": account.pk, "choice": choice}):
        serializer = validate(user, {"conferencing": value})
        assert serializer.is_valid(), serializer.errors
        selection = serializer.validated_data["conferencing"]
        assert isinstance(selection, ConferencingSelection)
        assert (selection.account, selection.conferencing) == (account, conferencing)
        assert serializer.fields["conferencing"].to_representation(selection) == {
            "account": account.pk,
            "choice": choice,
            "conferencing": conferencing,
        }


def test_disconnected_profile_is_a_400_with_its_relink_url(booking_host, user):
    account, _ = booking_host
    errors = validate(user, {"conferencing": f"{account.pk}:pro_goto"}).errors["conferencing"]
    relink = ConferencingProfile.objects.get(profile_id="pro_goto").profile_relink_url
    assert errors["profile_id"] == "pro_goto"
    assert errors["relink_url"] == relink
    assert "GoTo" in errors["detail"] and "disconnected" in errors["detail"]


def test_removed_profile_is_refused(booking_host, user):
    errors = validate(user, {"conferencing": f"{booking_host[0].pk}:pro_gone"}).errors
    assert "removed at Cronofy" in errors["conferencing"]["detail"]
    assert "relink_url" not in errors["conferencing"]


def test_another_users_account_and_profile_are_refused(booking_host, foreign_account, user):
    errors = validate(user, {"conferencing": f"{foreign_account.pk}:pro_bobs"}).errors
    assert errors["conferencing"] == ["That Cronofy account is not one of yours."]
    errors = validate(user, {"conferencing": f"{booking_host[0].pk}:pro_bobs"}).errors
    assert "not one of this account's profiles" in errors["conferencing"]["detail"]
    assert "profile_id" not in errors["conferencing"]


def test_integrated_on_a_calendar_without_it_is_refused(booking_host, user):
    account, _ = booking_host
    data = {"conferencing": f"{account.pk}:integrated", "calendar_id": "cal_plain"}
    assert "not available" in validate(user, data).errors["conferencing"]["detail"]
    data["calendar_id"] = "cal_work"
    assert validate(user, data).is_valid()


@pytest.mark.parametrize(
    "value", [42, None, True, ["1:default"], {"account": True, "choice": "default"}, {"x": 1}]
)
def test_malformed_values_are_400_not_500(booking_host, user, value):
    serializer = validate(user, {"conferencing": value})
    assert not serializer.is_valid()
    assert "conferencing" in serializer.errors


def test_anonymous_request_matches_no_account(booking_host):
    from django.contrib.auth.models import AnonymousUser

    errors = validate(AnonymousUser(), {"conferencing": f"{booking_host[0].pk}:default"}).errors
    assert errors["conferencing"] == ["That Cronofy account is not one of yours."]
