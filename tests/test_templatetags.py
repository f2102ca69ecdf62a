"""``{% load cronofy_conferencing %}{% cronofy_attention %}``: the banner for a host's layout."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.template import Context, RequestContext, Template
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import Resolver404, resolve

from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_account

pytestmark = pytest.mark.django_db

TAG = Template("{% load cronofy_conferencing %}{% cronofy_attention %}")


def render(user, path: str = "/somewhere/") -> str:
    request = RequestFactory().get(path)
    request.user = user
    try:
        request.resolver_match = resolve(path)
    except Resolver404:  # a host page this test does not route
        request.resolver_match = None
    return TAG.render(RequestContext(request, {}))


def text_of(source: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", source))).strip()


@pytest.fixture
def linked(link_account, sim, user):
    def make(*profiles, owner=None, **kwargs):
        account, sim_account = link_account(
            user=owner or user, conferencing_profiles=list(profiles), **kwargs
        )
        sync_account(account)
        return account, sim_account

    return make


def test_nothing_at_all_when_all_is_well(user, linked, sim):
    linked(sim.profile("zoom"), calendar_profiles=[sim.calendar_profile("google")])
    assert render(user) == ""


def test_nothing_for_a_user_without_accounts_or_anonymous(user):
    assert render(user) == ""
    assert render(AnonymousUser()) == ""
    # No request in the context at all (a template rendered outside a view).
    assert TAG.render(Context({})) == ""


def test_names_each_broken_profile_with_its_relink_link_and_the_page(user, linked, sim):
    linked(
        sim.profile("zoom", profile_name="work@zoom"),
        sim.profile("go_to", profile_name="me@goto", connected=False),
        sim.profile("ms_teams", profile_name="me@teams", connected=False),
        calendar_profiles=[sim.calendar_profile("apple", profile_name="home@x", connected=False)],
    )
    source = render(user)
    text = text_of(source)
    assert "GoTo (me@goto) needs relinking" in text
    assert "Microsoft Teams (me@teams) needs relinking" in text
    assert "Apple calendar (home@x) needs relinking" in text
    assert "Zoom" not in text  # it works
    assert "3 things need you" in text
    relinks = re.findall(
        r'<a href="(https://[^"]+)" target="_blank" rel="noopener noreferrer">', source
    )
    assert len(relinks) == 3
    assert '<a href="/cronofy/">Open My conferencing</a>' in source
    assert "cronofy_conferencing.css" in source
    assert 'aria-labelledby="cc-banner-title"' in source


def test_an_account_to_reconnect_is_named_without_its_unknown_profiles(user, linked, sim):
    account, _ = linked(sim.profile("go_to", connected=False), email="alice@example.com")
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    text = text_of(render(user))
    assert "alice@example.com must be reconnected" in text
    assert "Reconnect your calendar" in text
    assert "GoTo" not in text  # its state is unknown until it is reconnected
    assert "one thing needs you" in text


def test_several_accounts_say_which_is_which(user, linked, sim):
    linked(sim.profile("zoom", connected=False, profile_name="z"), email="work@example.com")
    linked(sim.profile("zoom", connected=False, profile_name="z"), email="home@example.com")
    text = text_of(render(user))
    assert "(work@example.com)" in text and "(home@example.com)" in text


def test_another_users_profiles_are_never_shown(user, other_user, linked, sim):
    linked(sim.profile("go_to", connected=False, profile_name="bobs-goto"), owner=other_user)
    assert render(user) == ""
    linked(sim.profile("zoom", connected=False, profile_name="alices-zoom"))
    source = render(user)
    assert "alices-zoom" in source and "bobs-goto" not in source
    assert "bobs-goto" in render(other_user) and "alices-zoom" not in render(other_user)


def test_not_on_the_page_itself(user, linked, sim):
    linked(sim.profile("go_to", connected=False))
    assert render(user, "/cronofy/") == ""
    assert render(user, "/cronofy/accounts/1/unlink/") != ""


def test_at_most_three_queries_whatever_the_number_of_accounts(user, linked, sim):
    linked(sim.profile("go_to", connected=False))

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert render(user)
        return len(queries)

    few = count()
    assert few <= 3
    for _ in range(4):
        linked(
            sim.profile("zoom", connected=False),
            sim.profile("go_to", connected=False),
            calendar_profiles=[sim.calendar_profile("apple", connected=False)],
        )
    account = LinkedAccount.objects.filter(user=user).first()
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    assert count() == few


def test_the_template_is_overridable(user, linked, sim, tmp_path, settings):
    linked(sim.profile("go_to", connected=False, profile_name="me@goto"))
    folder = tmp_path / "django_cronofy_conferencing"
    folder.mkdir()
    (folder / "attention.html").write_text(
        "<p class=host-banner>{% for item in attention.conferencing %}"
        "{{ item.label }}|{{ item.relink_url }}{% endfor %}|{{ page_url }}</p>"
    )
    templates = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    with override_settings(TEMPLATES=templates):
        source = Template("{% load cronofy_conferencing %}{% cronofy_attention %}").render(
            Context({"user": user})
        )
    assert source.startswith("<p class=host-banner>GoTo (me@goto)|https://")
    assert source.endswith("|/cronofy/</p>")


def test_no_token_in_the_banner(user, linked, sim, scanner):
    linked(sim.profile("go_to", connected=False))
    source = render(user)
    for secret in scanner.secrets():
        assert secret not in source
