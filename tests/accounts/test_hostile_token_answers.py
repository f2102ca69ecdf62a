"""Hostile token answers (issue 20 §2.4) through the paths that store tokens: a refresh
records the failure on the account and leaves its tokens intact; the OAuth callback
answers the error page (502), never a 500, and links nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from django_cronofy_conferencing.accounts import linking
from django_cronofy_conferencing.accounts.tokens import ensure_access_token
from django_cronofy_conferencing.exceptions import InvalidResponse
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_account

pytestmark = pytest.mark.django_db

#: The value of one key of an otherwise ordinary token answer, as JSON text.
HOSTILE = {
    "expires-1e12": ("expires_in", "1e12"),
    "expires-10-12": ("expires_in", "1000000000000"),
    "expires-2-63": ("expires_in", "9223372036854775808"),
    "scope-lone-surrogate": ("scope", '"read_account \\ud800"'),
    "scope-nul": ("scope", '"read_account\\u0000"'),
    "access-token-nul": ("access_token", '"at_\\u0000"'),
}


def hostile_answer(key: str, value: str, *, sub: str = "") -> str:
    fields = {
        "token_type": "bearer",
        "access_token": "at_new_0123456789",
        "refresh_token": "rt_new_0123456789",
        "expires_in": 3600,
        "scope": "read_account",
    }
    if sub:
        fields["sub"] = sub
    fields.pop(key)
    return json.dumps(fields)[:-1] + f', "{key}": {value}}}'


def stored_tokens(account: LinkedAccount) -> tuple:
    row = LinkedAccount.objects.filter(pk=account.pk).values_list(
        "access_token", "refresh_token", "token_expires_at", "scope", "status"
    )
    return tuple(getattr(v, "ciphertext", v) for v in row.get())


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_refresh_answered_with_a_hostile_body_is_recorded_and_stores_nothing(
    sim, link_account, case
):
    account, _ = link_account(token_expires_in=10)  # within the margin: refreshed first
    before = stored_tokens(account)
    sim.fail("token", status=200, body=hostile_answer(*HOSTILE[case]))

    with pytest.raises(InvalidResponse, match="Invalid token response"):
        sync_account(account)

    assert stored_tokens(account) == before
    account.refresh_from_db()
    assert account.status == LinkedAccount.Status.ACTIVE
    assert account.consecutive_failures == 1  # recorded once, not by refresh and sync both
    assert account.last_sync_error.startswith("Invalid token response: ")
    assert sim.count("userinfo") == 0


def test_a_refresh_for_another_caller_records_the_failure_too(sim, link_account):
    """Not only a sync refreshes: a conferencing authorization or a channel check does."""
    account, _ = link_account()
    LinkedAccount.objects.filter(pk=account.pk).update(
        token_expires_at=timezone.now() - timedelta(minutes=1)
    )
    account.refresh_from_db()
    sim.fail("token", status=200, body=hostile_answer(*HOSTILE["expires-2-63"]))
    with pytest.raises(InvalidResponse):
        ensure_access_token(account)
    account.refresh_from_db()
    assert account.consecutive_failures == 1
    assert "expires_in must be at most" in account.last_sync_error


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_the_callback_answers_an_error_page_for_a_hostile_code_exchange(
    scanning_client, user, sim, case
):
    browser = scanning_client(user)
    response = browser.post(reverse("cronofy_conferencing:connect"))
    sim_account = sim.add_account()
    back = sim.authorize(response["Location"], account=sim_account)
    sim.fail("token", status=200, body=hostile_answer(*HOSTILE[case], sub=sim_account.sub))

    response = browser.get(back)

    assert response.status_code == 502
    assert b"Cronofy" in response.content
    assert not LinkedAccount.objects.exists()


def test_exchange_code_refuses_a_hostile_answer(sim):
    sim_account = sim.add_account()
    url = linking.authorization_url("us", redirect_uri="https://example.com/cb/", state="s")
    sim.authorize(url, account=sim_account)
    sim.fail("token", status=200, body=hostile_answer(*HOSTILE["scope-nul"], sub="acc_1"))
    with pytest.raises(InvalidResponse, match="scope"):
        linking.exchange_code("us", "any-code", "https://example.com/cb/")
