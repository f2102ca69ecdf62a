"""Fixtures for the API tests: scanning API clients per user, accounts with profiles."""

from __future__ import annotations

import itertools
import secrets

import pytest
from django.utils import timezone

from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount

_numbers = itertools.count(1)


@pytest.fixture
def anon_client(scanning_client):
    return scanning_client(api=True)


@pytest.fixture
def alice_client(scanning_client, user):
    return scanning_client(user, api=True)


@pytest.fixture
def bob_client(scanning_client, other_user):
    return scanning_client(other_user, api=True)


@pytest.fixture
def make_account(scanner):
    """A ``LinkedAccount`` with stored tokens (registered with the scanner) and profiles.

    ``profiles`` is a list of dicts of ``ConferencingProfile`` fields.
    """

    def make(user, *, profiles=(), **fields) -> LinkedAccount:
        n = next(_numbers)
        access, refresh = f"at-{secrets.token_hex(16)}", f"rt-{secrets.token_hex(16)}"
        scanner.add(access, refresh)
        fields.setdefault("data_center", "us")
        fields.setdefault("sub", f"acc_test{n:06d}")
        fields.setdefault("email", f"user{n}@example.com")
        fields.setdefault("last_synced_at", timezone.now())
        account = LinkedAccount.objects.create(
            user=user, access_token=access, refresh_token=refresh, **fields
        )
        ConferencingProfile.objects.bulk_create(
            [
                ConferencingProfile(
                    account=account,
                    **{
                        "profile_id": f"pro_{n}_{i}",
                        "provider_name": "zoom",
                        "profile_connected": True,
                        **profile,
                    },
                )
                for i, profile in enumerate(profiles)
            ]
        )
        return account

    return make
