"""Deleting a user keeps their linked accounts, user-less, so their grants can still be revoked.

A cascade would delete the rows holding the only tokens that can revoke the
grants at Cronofy, leaving them alive there for ever. Instead the accounts
stay (``on_delete=SET_NULL``): the admin shows them and an operator unlinks
them; the API shows them to nobody; sync carries on.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from django_cronofy_conferencing.accounts import linking
from django_cronofy_conferencing.cronofy.tokens import TokenSet
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import sync_account
from tests.secret_scan import ScanningClient, SecretScanner

pytestmark = pytest.mark.django_db


@pytest.fixture
def orphan(sim, link_account, user):
    """Alice's synced account with a zoom profile; then Alice is deleted."""
    account, sim_account = link_account(
        user=user, email="alice@cronofy.example", conferencing_profiles=[sim.profile("zoom")]
    )
    sync_account(account)
    user.delete()
    return LinkedAccount.objects.get(pk=account.pk), sim_account


@pytest.fixture
def staff_browser(sim, django_user_model):
    client = ScanningClient(SecretScanner(sim))
    client.force_login(django_user_model.objects.create_superuser("admin", "a@example.com", None))
    return client


def test_deleting_the_user_keeps_the_account_and_its_tokens(orphan):
    account, sim_account = orphan
    assert account.user is None
    assert account.refresh_token == sim_account.refresh_token  # still able to revoke
    assert account.conferencing_profiles.present().count() == 1


def test_a_user_less_account_still_syncs(orphan, sim):
    account, sim_account = orphan
    sim.set_connected(sim_account.sub, sim_account.conferencing_profiles[0]["profile_id"], False)
    assert sync_account(account).updated == 1
    assert list(LinkedAccount.objects.due(stale_after=0)) == [account]  # cronofy_sync's pick


def test_the_api_shows_it_to_nobody(orphan, other_user):
    client = APIClient()
    client.force_authenticate(other_user)
    account, _ = orphan
    assert client.get(reverse("cronofy_conferencing_api:account-list")).json() == []
    assert client.get(reverse("cronofy_conferencing_api:conferencing-profile-list")).json() == []
    detail = reverse("cronofy_conferencing_api:account-detail", args=[account.pk])
    assert client.get(detail).status_code == 404
    assert client.delete(detail).status_code == 404
    assert LinkedAccount.objects.filter(pk=account.pk).exists()


def test_the_admin_shows_it_and_unlinks_it(orphan, staff_browser, sim):
    account, sim_account = orphan
    changelist = staff_browser.get(reverse("admin:cronofy_conferencing_linkedaccount_changelist"))
    assert changelist.status_code == 200
    assert "alice@cronofy.example" in changelist.content.decode()
    change = reverse("admin:cronofy_conferencing_linkedaccount_change", args=[account.pk])
    assert staff_browser.get(change).status_code == 200
    response = staff_browser.post(
        reverse("admin:cronofy_conferencing_linkedaccount_changelist"),
        {"action": "unlink", "_selected_action": [str(account.pk)], "index": 0, "post": "yes"},
    )
    assert response.status_code == 302
    assert not LinkedAccount.objects.exists()
    assert not ConferencingProfile.objects.exists()
    assert sim_account.refresh_token not in sim.refresh_tokens  # revoked at Cronofy


def test_a_new_user_who_links_it_again_takes_it_over(orphan, other_user):
    account, sim_account = orphan
    tokens = TokenSet(
        access_token=sim_account.access_token,
        refresh_token=sim_account.refresh_token,
        expires_in=3600,
        scope="read_account",
        sub=sim_account.sub,
    )
    result = linking.link_account(other_user, account.data_center, tokens, sync=False)
    assert result.account.pk == account.pk and not result.created
    assert LinkedAccount.objects.get().user == other_user
