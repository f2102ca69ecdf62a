"""The per-user budget of Cronofy calls a user can set off from the pages."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.test import override_settings

from django_cronofy_conferencing.cronofy import userlimits

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def rate(value):
    return override_settings(
        CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, "API_SYNC_THROTTLE_RATE": value}
    )


def test_a_user_gets_the_rate_then_is_refused(user):
    with rate("3/m"):
        assert [userlimits.allow(user, "sync") for _ in range(4)] == [True, True, True, False]


def test_all_actions_share_one_budget(user):
    with rate("2/m"):
        assert userlimits.allow(user, "sync")
        assert userlimits.allow(user, "unlink")
        assert not userlimits.allow(user, "add_provider")


def test_each_user_has_a_budget_of_their_own(user, other_user):
    with rate("1/m"):
        assert userlimits.allow(user, "sync")
        assert not userlimits.allow(user, "sync")
        assert userlimits.allow(other_user, "sync")


def test_the_window_ends(user, monkeypatch):
    now = [1_000_020.0]
    monkeypatch.setattr(userlimits.time, "time", lambda: now[0])
    with rate("1/m"):
        assert userlimits.allow(user, "sync")
        assert not userlimits.allow(user, "sync")
        now[0] += 60
        assert userlimits.allow(user, "sync")


def test_none_disables_it(user):
    with rate(None):
        assert all(userlimits.allow(user, "sync") for _ in range(50))


def test_anonymous_users_have_no_budget():
    assert not userlimits.allow(AnonymousUser(), "sync")
    assert not userlimits.allow(None, "sync")
