"""API serializers: exact fields, never a token, derived last_seen_at, input validation."""

from __future__ import annotations

import inspect
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from django_cronofy_conferencing.api import serializers as api_serializers
from django_cronofy_conferencing.api.serializers import (
    ConferencingAuthorizationRequestSerializer,
    ConferencingProfileFilterSerializer,
    ConferencingProfileSerializer,
    LinkedAccountSerializer,
)
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount


def all_serializer_classes():
    return [
        obj
        for _, obj in inspect.getmembers(api_serializers, inspect.isclass)
        if issubclass(obj, serializers.BaseSerializer)
        and obj.__module__ == api_serializers.__name__
    ]


@pytest.mark.parametrize("serializer_class", all_serializer_classes(), ids=lambda c: c.__name__)
def test_no_serializer_has_a_token_field(serializer_class):
    fields = serializer_class().fields
    for name, field in fields.items():
        assert "token" not in name
        assert "token" not in (field.source or "")
        assert "secret" not in name


def test_linked_account_serializer_output(db, user):
    account = LinkedAccount.objects.create(
        user=user,
        data_center="uk",
        sub="acc_123",
        email="a@example.com",
        access_token="plain-access-token-value",
        refresh_token="plain-refresh-token-value",
        token_expires_at=timezone.now() + timedelta(hours=1),
    )
    ConferencingProfile.objects.create(account=account, profile_id="p1", profile_connected=True)
    ConferencingProfile.objects.create(account=account, profile_id="p2", profile_connected=False)
    annotated = LinkedAccount.objects.with_profile_counts().get(pk=account.pk)
    data = LinkedAccountSerializer(annotated).data
    assert list(data) == [
        "id",
        "data_center",
        "sub",
        "email",
        "name",
        "zoneinfo",
        "account_type",
        "status",
        "last_synced_at",
        "last_sync_error",
        "consecutive_failures",
        "created_at",
        "conferencing_profiles_total",
        "conferencing_profiles_connected",
    ]
    assert data["data_center"] == "uk"
    assert (data["conferencing_profiles_total"], data["conferencing_profiles_connected"]) == (2, 1)
    rendered = JSONRenderer().render(data).decode()
    assert "plain-access-token-value" not in rendered
    assert "plain-refresh-token-value" not in rendered
    assert "token" not in rendered


def test_linked_account_serializer_is_read_only():
    serializer = LinkedAccountSerializer()
    assert all(field.read_only for field in serializer.fields.values())
    assert all(field.read_only for field in ConferencingProfileSerializer().fields.values())


@pytest.fixture
def profile(db, user):
    synced_at = timezone.now() - timedelta(minutes=5)
    account = LinkedAccount.objects.create(
        user=user, data_center="us", sub="acc_1", last_synced_at=synced_at
    )
    return ConferencingProfile.objects.create(
        account=account,
        profile_id="pro_1",
        provider_name="zoom",
        profile_name="me@zoom.example",
        profile_connected=False,
        profile_relink_url="https://app.cronofy.com/v2/relink/zoom",
    )


def test_profile_serializer_output(profile):
    data = ConferencingProfileSerializer(profile).data
    assert list(data) == [
        "profile_id",
        "provider_name",
        "profile_name",
        "profile_connected",
        "profile_relink_url",
        "account",
        "first_seen_at",
        "connection_changed_at",
        "last_seen_at",
        "preferred",
    ]
    assert data["profile_id"] == "pro_1"
    assert data["preferred"] is False
    assert data["account"] == profile.account_id
    assert data["profile_relink_url"] == "https://app.cronofy.com/v2/relink/zoom"
    # Without the viewset's annotation it falls back to the account's last sync.
    assert data["last_seen_at"] == serializers.DateTimeField().to_representation(
        profile.account.last_synced_at
    )


def test_last_seen_at_uses_the_annotation(profile, django_assert_num_queries):
    from django.db.models import F

    LinkedAccount.objects.filter(pk=profile.account_id).update(
        preferred_conferencing_profile_id="pro_1"
    )
    annotated = ConferencingProfile.objects.annotate(
        account_last_synced_at=F("account__last_synced_at"),
        account_preferred_id=F("account__preferred_conferencing_profile_id"),
    ).get(pk=profile.pk)
    with django_assert_num_queries(0):
        data = ConferencingProfileSerializer(annotated).data
    assert data["last_seen_at"] is not None
    assert data["preferred"] is True


def test_last_seen_at_of_a_removed_profile_is_null(profile):
    profile.removed_at = timezone.now()
    assert ConferencingProfileSerializer(profile).data["last_seen_at"] is None


def test_last_seen_at_of_a_never_synced_account_is_null(profile):
    profile.account.last_synced_at = None
    assert ConferencingProfileSerializer(profile).data["last_seen_at"] is None


@pytest.mark.parametrize(
    "data,valid",
    [
        ({}, True),
        ({"provider_name": "zoom"}, True),
        ({"provider_name": ""}, True),
        ({"provider_name": "google_meet_api"}, True),
        ({"provider_name": "a b"}, False),
        ({"provider_name": "zoom?x=1"}, False),
        ({"redirect_uri": "https://example.com/back"}, True),
        ({"redirect_uri": "http://localhost:8000/back?x=1"}, True),
        ({"redirect_uri": "ftp://example.com/back"}, False),
        ({"redirect_uri": "//example.com/back"}, False),
        ({"redirect_uri": "/back"}, False),
        ({"redirect_uri": "data:text/html,hi"}, False),
    ],
)
def test_conferencing_authorization_request(data, valid):
    assert ConferencingAuthorizationRequestSerializer(data=data).is_valid() is valid


@pytest.mark.parametrize(
    "data,expected",
    [
        ({"profile_connected": "true"}, {"profile_connected": True}),
        ({"profile_connected": "false"}, {"profile_connected": False}),
        ({"account": "12"}, {"account": 12}),
        ({"provider_name": "ms_teams"}, {"provider_name": "ms_teams"}),
        ({"profile_connected": "nope"}, None),
        ({"account": "-1"}, None),
    ],
)
def test_filter_serializer(data, expected):
    serializer = ConferencingProfileFilterSerializer(data=data)
    if expected is None:
        assert not serializer.is_valid()
        json.dumps(serializer.errors)  # the usual DRF error shape: serializable
    else:
        assert serializer.is_valid(), serializer.errors
        assert serializer.validated_data == expected
