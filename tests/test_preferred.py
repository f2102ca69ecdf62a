"""The preferred (default) conferencing profile: stored per account, listed first by the
choices, resolved by ``conferencing_for(account, "preferred")``, picked first by the form."""

from __future__ import annotations

import pytest
from django import forms

from django_cronofy_conferencing.accounts.preferences import set_preferred
from django_cronofy_conferencing.choices import (
    PREFERRED,
    ConferencingUnavailable,
    conferencing_choices,
    conferencing_for,
    select,
)
from django_cronofy_conferencing.forms import ConferencingChoiceField
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import sync_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def host(link_account, sim, user):
    """Alice's account: two connected Zooms and a disconnected GoTo, as a sync stored them."""
    account, sim_account = link_account(
        user=user,
        email="alice@example.com",
        conferencing_profiles=[
            sim.profile("zoom", profile_id="pro_a", profile_name="a@zoom"),
            sim.profile("zoom", profile_id="pro_b", profile_name="b@zoom"),
            sim.profile("go_to", profile_id="pro_goto", connected=False),
        ],
    )
    sync_account(account)
    account.refresh_from_db()
    return account, sim_account


def prefer(account: LinkedAccount, profile_id: str) -> LinkedAccount:
    set_preferred(ConferencingProfile.objects.get(account=account, profile_id=profile_id))
    account.refresh_from_db()
    return account


def test_nothing_is_preferred_until_the_user_chooses(host):
    account, _ = host
    result = conferencing_choices(account)
    assert result.preferred is None
    assert [c.value for c in result.available][:2] == ["pro_a", "pro_b"]
    with pytest.raises(ConferencingUnavailable, match="No default conferencing profile") as caught:
        conferencing_for(account, PREFERRED)
    assert caught.value.profile is None and caught.value.relink_url is None


def test_the_preferred_profile_comes_first_and_is_flagged(host):
    account = prefer(host[0], "pro_b")
    result = conferencing_choices(account)
    assert [c.value for c in result.available] == ["pro_b", "pro_a", "default"]
    assert result.available[0].preferred is True
    assert not any(c.preferred for c in result.available[1:])
    assert result.preferred.value == "pro_b"


def test_conferencing_for_preferred_returns_it(host, django_assert_max_num_queries):
    account = prefer(host[0], "pro_b")
    with django_assert_max_num_queries(1):
        assert conferencing_for(account, "preferred") == {"profile_id": "pro_b"}


def test_a_broken_preferred_profile_raises_with_its_relink_url(host):
    account = prefer(host[0], "pro_goto")
    result = conferencing_choices(account)
    assert result.preferred is None  # not available: listed with the unavailable ones
    assert [p.profile_id for p in result.unavailable] == ["pro_goto"]
    with pytest.raises(ConferencingUnavailable) as caught:
        conferencing_for(account, "preferred")
    assert caught.value.profile.profile_id == "pro_goto"
    assert caught.value.relink_url and caught.value.relink_url.startswith("https://")
    assert caught.value.relink_url in str(caught.value)


def test_a_removed_preferred_profile_raises_and_works_again_when_it_comes_back(host, sim):
    account, sim_account = host
    account = prefer(account, "pro_a")
    removed = sim.accounts[sim_account.sub].conferencing_profiles[0]
    sim.remove_profile(sim_account.sub, "pro_a")
    sync_account(account)
    with pytest.raises(ConferencingUnavailable, match="removed"):
        conferencing_for(account, "preferred")
    # Cronofy lists it again: the user's choice still stands (stored by profile id).
    sim.accounts[sim_account.sub].conferencing_profiles.append(removed)
    sync_account(account)
    account.refresh_from_db()
    assert conferencing_for(account, "preferred") == {"profile_id": "pro_a"}


def test_a_sync_keeps_the_preference(host):
    account = prefer(host[0], "pro_b")
    sync_account(account)
    account.refresh_from_db()
    assert account.preferred_conferencing_profile_id == "pro_b"


def test_set_preferred_replaces_and_unsets(host):
    account, _ = host
    a = ConferencingProfile.objects.get(account=account, profile_id="pro_a")
    b = ConferencingProfile.objects.get(account=account, profile_id="pro_b")
    assert set_preferred(a) is True
    assert set_preferred(a) is False  # already
    assert set_preferred(b) is True
    assert set_preferred(a, False) is False  # not the preferred one
    account.refresh_from_db()
    assert account.preferred_conferencing_profile_id == "pro_b"
    assert set_preferred(b, False) is True
    account.refresh_from_db()
    assert account.preferred_conferencing_profile_id == ""


def test_set_preferred_stamps_the_account_for_the_open_page(host):
    account, _ = host
    before = account.updated_at
    set_preferred(ConferencingProfile.objects.get(account=account, profile_id="pro_a"))
    account.refresh_from_db()
    assert account.updated_at > before


def test_select_takes_preferred_for_the_users_account(host, user):
    account = prefer(host[0], "pro_a")
    selection = select(LinkedAccount.objects.for_user(user), f"{account.pk}:preferred")
    assert selection.conferencing == {"profile_id": "pro_a"}


class BookingForm(forms.Form):
    conferencing = ConferencingChoiceField()

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["conferencing"].limit_to(user)


def test_the_form_offers_the_preferred_profile_first(host, user):
    account = prefer(host[0], "pro_b")
    html = str(BookingForm(user=user)["conferencing"])
    assert html.index(f'value="{account.pk}:pro_b"') < html.index(f'value="{account.pk}:pro_a"')
