"""The OAuth state: random, single use, bound to the session and user, expiring."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory, override_settings

from django_cronofy_conferencing.accounts import state as oauth_state

pytestmark = pytest.mark.django_db

REDIRECT = "https://testserver/cronofy/callback/"


@pytest.fixture
def clock(monkeypatch):
    now = {"t": 1_700_000_000.0}
    monkeypatch.setattr(oauth_state, "_now", lambda: now["t"])
    return now


def make_request(user, session=None):
    request = RequestFactory().get("/")
    request.session = session if session is not None else SessionStore()
    request.user = user
    return request


def test_round_trip_remembers_what_the_callback_needs(user, clock):
    request = make_request(user)
    value = oauth_state.issue(
        request, data_center="uk", redirect_uri=REDIRECT, provider_name="zoom", next_url="/x/"
    )
    pending = oauth_state.consume(make_request(user, request.session), value)
    assert pending.data_center == "uk"
    assert pending.redirect_uri == REDIRECT
    assert pending.provider_name == "zoom"
    assert pending.next_url == "/x/"
    assert pending.user_id == str(user.pk)


def test_values_are_random_and_long(user, clock):
    request = make_request(user)
    values = {oauth_state.issue(request, data_center="us", redirect_uri=REDIRECT) for _ in range(5)}
    assert len(values) == 5
    assert all(len(v) >= 40 for v in values)


def test_single_use(user, clock):
    request = make_request(user)
    value = oauth_state.issue(request, data_center="us", redirect_uri=REDIRECT)
    oauth_state.consume(request, value)
    with pytest.raises(oauth_state.InvalidState):
        oauth_state.consume(request, value)


@pytest.mark.parametrize("value", [None, "", "forged-state-value", "x" * 500])
def test_missing_or_forged(user, clock, value):
    request = make_request(user)
    oauth_state.issue(request, data_center="us", redirect_uri=REDIRECT)
    with pytest.raises(oauth_state.InvalidState):
        oauth_state.consume(request, value)


def test_expires_after_state_max_age(user, clock):
    request = make_request(user)
    value = oauth_state.issue(request, data_center="us", redirect_uri=REDIRECT)
    clock["t"] += 601
    with pytest.raises(oauth_state.InvalidState, match="expired"):
        oauth_state.consume(request, value)
    # And it is gone, not merely refused.
    clock["t"] -= 601
    with pytest.raises(oauth_state.InvalidState):
        oauth_state.consume(request, value)


def test_valid_just_before_expiry(user, clock):
    request = make_request(user)
    value = oauth_state.issue(request, data_center="us", redirect_uri=REDIRECT)
    clock["t"] += 599
    assert oauth_state.consume(request, value).data_center == "us"


def test_max_age_is_a_setting(user, clock, settings):
    settings.CRONOFY_CONFERENCING = {**settings.CRONOFY_CONFERENCING, "STATE_MAX_AGE": 30}
    request = make_request(user)
    value = oauth_state.issue(request, data_center="us", redirect_uri=REDIRECT)
    clock["t"] += 31
    with pytest.raises(oauth_state.InvalidState):
        oauth_state.consume(request, value)


def test_another_session_cannot_use_it(user, clock):
    mine = make_request(user)
    value = oauth_state.issue(mine, data_center="us", redirect_uri=REDIRECT)
    theirs = make_request(user)  # same user, another browser session
    with pytest.raises(oauth_state.InvalidState):
        oauth_state.consume(theirs, value)
    # Still usable in the session it belongs to.
    assert oauth_state.consume(mine, value).data_center == "us"


def test_another_user_in_the_same_session_cannot_use_it(user, other_user, clock):
    session = SessionStore()
    value = oauth_state.issue(make_request(user, session), data_center="us", redirect_uri=REDIRECT)
    with pytest.raises(oauth_state.InvalidState, match="another user"):
        oauth_state.consume(make_request(other_user, session), value)
    with pytest.raises(oauth_state.InvalidState):
        oauth_state.consume(make_request(AnonymousUser(), session), value)


def test_survives_session_save_and_load(user, clock):
    session = SessionStore()
    value = oauth_state.issue(make_request(user, session), data_center="de", redirect_uri=REDIRECT)
    session.save()
    reloaded = SessionStore(session_key=session.session_key)
    assert oauth_state.consume(make_request(user, reloaded), value).data_center == "de"


def test_several_tabs_keep_a_bounded_number(user, clock):
    request = make_request(user)
    values = []
    for _ in range(oauth_state.MAX_PENDING + 3):
        values.append(oauth_state.issue(request, data_center="us", redirect_uri=REDIRECT))
        clock["t"] += 1
    assert len(request.session[oauth_state.SESSION_KEY]) == oauth_state.MAX_PENDING
    with pytest.raises(oauth_state.InvalidState):
        oauth_state.consume(request, values[0])
    for value in values[-oauth_state.MAX_PENDING :]:
        oauth_state.consume(request, value)


def test_expired_entries_are_pruned_on_issue(user, clock):
    request = make_request(user)
    oauth_state.issue(request, data_center="us", redirect_uri=REDIRECT)
    clock["t"] += 3600
    fresh = oauth_state.issue(request, data_center="us", redirect_uri=REDIRECT)
    assert list(request.session[oauth_state.SESSION_KEY]) == [fresh]


@override_settings(SESSION_SERIALIZER="django.contrib.sessions.serializers.JSONSerializer")
def test_session_content_is_json_serializable(user, clock):
    import json

    request = make_request(user)
    oauth_state.issue(request, data_center="us", redirect_uri=REDIRECT, provider_name="zoom")
    json.dumps(request.session[oauth_state.SESSION_KEY])
