"""Fixtures the browser-flow tests share: a logged-in scanning client, a synced account
of its user, and per-user budgets that start fresh."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from django_cronofy_conferencing.sync import sync_account


@pytest.fixture(autouse=True)
def _fresh_budgets():
    """The per-user budget lives in the cache, and user ids repeat between tests."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def browser(scanning_client, user):
    """Logged in as ``user``; every response is scanned for tokens and the secret."""
    return scanning_client(user)


@pytest.fixture
def linked(link_account, sim, user):
    """``linked(*profiles, **kwargs)`` -> an account of ``user``, synced once."""

    def make(*profiles, **kwargs):
        account, sim_account = link_account(
            user=user, conferencing_profiles=list(profiles), **kwargs
        )
        sync_account(account)
        return account, sim_account

    return make


#: Where push notifications are sent (``PUSH_NOTIFICATIONS_CALLBACK_URL``).
CALLBACK = "https://example.com/cronofy/notifications/"


@pytest.fixture
def push_configured(settings_with):
    """Push channels on (``PUSH_NOTIFICATIONS_CALLBACK_URL``), debounces fresh."""
    cache.clear()
    with settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL=CALLBACK):
        yield
    cache.clear()


@pytest.fixture
def push_client():
    """Cronofy's side of the receiver: no session, CSRF enforced (the view is exempt)."""
    return Client(enforce_csrf_checks=True)
