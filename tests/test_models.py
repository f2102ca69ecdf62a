"""LinkedAccount and ConferencingProfile: constraints, helpers, querysets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount

pytestmark = pytest.mark.django_db


def account(sub="acc_1", data_center="us", **kwargs) -> LinkedAccount:
    return LinkedAccount.objects.create(sub=sub, data_center=data_center, **kwargs)


def profile(acc, profile_id, connected=True, removed=False, **kwargs) -> ConferencingProfile:
    return ConferencingProfile.objects.create(
        account=acc,
        profile_id=profile_id,
        provider_name=kwargs.pop("provider_name", "zoom"),
        profile_connected=connected,
        removed_at=timezone.now() if removed else None,
        **kwargs,
    )


def test_status_values():
    assert LinkedAccount.Status.ACTIVE == "active"
    assert LinkedAccount.Status.REAUTHORIZATION_REQUIRED == "reauthorization_required"
    assert LinkedAccount.Status.REVOKED == "revoked"
    assert account().status == LinkedAccount.Status.ACTIVE


def test_account_is_unique_per_data_center_and_sub():
    account("acc_1", "us")
    account("acc_1", "uk")  # same id, other data center: another account
    with pytest.raises(IntegrityError), transaction.atomic():
        account("acc_1", "us")


def test_profile_is_unique_per_account():
    a, b = account("acc_1"), account("acc_2")
    profile(a, "pro_1")
    profile(b, "pro_1")
    with pytest.raises(IntegrityError), transaction.atomic():
        profile(a, "pro_1")


def test_profiles_are_deleted_with_their_account():
    a = account()
    profile(a, "pro_1")
    a.delete()
    assert not ConferencingProfile.objects.exists()


def test_related_name_and_defaults():
    a = account()
    p = profile(a, "pro_1")
    assert list(a.conferencing_profiles.all()) == [p]
    assert p.first_seen_at is not None
    assert (p.connection_changed_at, p.removed_at, p.profile_relink_url) == (None, None, "")
    assert (a.userinfo, a.consecutive_failures, a.last_sync_error) == ({}, 0, "")


def test_profile_queryset_helpers():
    a = account()
    profile(a, "pro_on")
    profile(a, "pro_off", connected=False)
    profile(a, "pro_gone", removed=True)
    profile(a, "pro_gone_off", connected=False, removed=True)
    qs = ConferencingProfile.objects

    def pids(q):
        return sorted(q.values_list("profile_id", flat=True))

    assert pids(qs.present()) == ["pro_off", "pro_on"]
    assert pids(qs.removed()) == ["pro_gone", "pro_gone_off"]
    assert pids(qs.connected()) == ["pro_on"]
    assert pids(qs.disconnected()) == ["pro_off"]


def test_for_user(user, other_user):
    mine, theirs = account("acc_1", user=user), account("acc_2", user=other_user)
    profile(mine, "pro_mine")
    profile(theirs, "pro_theirs")
    assert list(LinkedAccount.objects.for_user(user)) == [mine]
    assert list(
        ConferencingProfile.objects.for_user(user).values_list("profile_id", flat=True)
    ) == ["pro_mine"]
    assert not LinkedAccount.objects.for_user(AnonymousUser()).exists()
    assert not ConferencingProfile.objects.for_user(AnonymousUser()).exists()
    assert not LinkedAccount.objects.for_user(None).exists()


def test_active_and_due():
    now = timezone.now()
    never = account("acc_never")
    stale = account("acc_stale", last_synced_at=now - timedelta(hours=2))
    fresh = account("acc_fresh", last_synced_at=now - timedelta(minutes=5))
    account("acc_dead", status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED)
    account("acc_revoked", status=LinkedAccount.Status.REVOKED)
    assert LinkedAccount.objects.active().count() == 3
    assert set(LinkedAccount.objects.due(now=now)) == {never, stale}  # SYNC_STALE_AFTER 3600
    assert set(LinkedAccount.objects.due(stale_after=60, now=now)) == {never, stale, fresh}
    assert set(LinkedAccount.objects.due(stale_after=10_000, now=now)) == {never}


def test_with_profile_counts():
    a, b = account("acc_1"), account("acc_2")
    profile(a, "pro_1")
    profile(a, "pro_2", connected=False)
    profile(a, "pro_3", removed=True)
    counted = {x.sub: x for x in LinkedAccount.objects.with_profile_counts()}
    assert (counted["acc_1"].profiles_total, counted["acc_1"].profiles_connected) == (2, 1)
    assert (counted["acc_2"].profiles_total, counted["acc_2"].profiles_connected) == (0, 0)
    assert b.pk == counted["acc_2"].pk


def test_token_expires_within():
    now = timezone.now()
    a = account(token_expires_at=now + timedelta(seconds=100))
    assert a.token_expires_within(300, now=now) is True
    assert a.token_expires_within(50, now=now) is False
    assert account("acc_2").token_expires_within(300) is False  # unknown expiry


def test_last_seen_at_is_derived_from_the_account():
    synced = timezone.now()
    a = account(last_synced_at=synced)
    assert profile(a, "pro_1").last_seen_at == synced
    assert profile(a, "pro_2", removed=True).last_seen_at is None


def test_str_and_repr_show_no_token():
    a = account(email="jane@example.com", access_token="tok-access-123", refresh_token="tok-r-456")
    assert str(a) == "jane@example.com (us)"
    assert str(account("acc_2")) == "acc_2 (us)"
    for text in (str(a), repr(a)):
        assert "tok-access-123" not in text and "tok-r-456" not in text
    p = profile(a, "pro_1", profile_name="Jane's Zoom")
    assert str(p) == "Zoom: Jane's Zoom"  # the provider's name for people
    assert str(profile(a, "pro_2")) == "Zoom: pro_2"


def test_relink_url_validator_accepts_https_only():
    a = account()
    p = profile(a, "pro_1", connected=False, profile_relink_url="https://app.cronofy.com/relink")
    p.full_clean()
    p.profile_relink_url = "javascript:alert(1)"
    with pytest.raises(ValidationError) as excinfo:
        p.full_clean()
    assert "profile_relink_url" in excinfo.value.message_dict


def test_token_fields_are_not_editable():
    field = LinkedAccount._meta.get_field("access_token")
    assert field.editable is False
    from django.forms import modelform_factory

    form = modelform_factory(LinkedAccount, fields="__all__")
    assert "access_token" not in form.base_fields
    assert "refresh_token" not in form.base_fields
