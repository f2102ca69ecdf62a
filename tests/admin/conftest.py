"""Fixtures of the admin tests: a superuser's scanning staff_client, simulator-backed accounts."""

from __future__ import annotations

import pytest

from django_cronofy_conferencing.models import LinkedAccount


@pytest.fixture
def admin_user(django_user_model):
    # No password: hashing one costs more than the rest of a test.
    return django_user_model.objects.create_superuser("admin", "admin@example.com", None)


@pytest.fixture
def staff_client(scanning_client, admin_user):
    return scanning_client(admin_user)


@pytest.fixture
def scan_ciphertexts(scanner):
    """Add every stored token ciphertext to the scanner (call after creating rows)."""

    def add() -> None:
        for access, refresh in LinkedAccount.objects.values_list("access_token", "refresh_token"):
            for value in (access, refresh):
                if value:
                    scanner.add(getattr(value, "ciphertext", value))

    return add


@pytest.fixture
def accounts(link_account, sim, user, other_user, scan_ciphertexts):
    """Two simulator-backed accounts; Alice's synced with a zoom and a disconnected teams."""
    from django_cronofy_conferencing.sync import sync_account

    alice, _alice_sim = link_account(
        user=user,
        email="alice@cronofy.example",
        conferencing_profiles=[
            sim.profile("zoom", profile_name="alice@zoom.example"),
            sim.profile("ms_teams", profile_name="alice@teams.example", connected=False),
        ],
    )
    sync_account(alice)
    bob, _bob_sim = link_account(user=other_user, email="bob@cronofy.example", data_center="uk")
    sync_account(bob)
    bob.account_type = "service_account"
    bob.status = LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    bob.save(update_fields=["account_type", "status"])
    alice.refresh_from_db()
    bob.refresh_from_db()
    scan_ciphertexts()
    return alice, bob
