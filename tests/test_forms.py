"""ConferencingChoiceField: every choice rule through a host's booking form."""

from __future__ import annotations

import pytest
from django import forms

from django_cronofy_conferencing.choices import ConferencingSelection
from django_cronofy_conferencing.forms import ConferencingChoiceField
from django_cronofy_conferencing.models import ConferencingProfile
from django_cronofy_conferencing.sync import sync_account

pytestmark = pytest.mark.django_db


class BookingForm(forms.Form):
    conferencing = ConferencingChoiceField()

    def __init__(self, *args, user, calendar_id=None, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["conferencing"]
        field.calendar_id = calendar_id
        field.limit_to(user)


def submit(user, value, **kwargs) -> BookingForm:
    form = BookingForm({"conferencing": value}, user=user, **kwargs)
    form.is_valid()
    return form


def test_options_are_the_users_choices_with_disconnected_ones_disabled(booking_host, user):
    account, _ = booking_host
    html = str(BookingForm(user=user)["conferencing"])
    pk = account.pk
    assert f'value="{pk}:pro_zoom"' in html
    assert f'value="{pk}:integrated"' in html and f'value="{pk}:default"' in html
    assert f'<option value="{pk}:pro_goto" disabled>' in html
    assert "disconnected, relink to use it" in html
    assert "pro_gone" not in html  # removed


def test_another_users_accounts_are_not_offered(booking_host, foreign_account, user):
    html = str(BookingForm(user=user)["conferencing"])
    assert f'value="{foreign_account.pk}:' not in html


@pytest.mark.parametrize(
    ("choice", "conferencing"),
    [
        ("pro_zoom", {"profile_id": "pro_zoom"}),
        ("integrated", {"profile_id": "integrated"}),
        ("default", {"profile_id": "default"}),
    ],
)
def test_working_choices_clean_to_cronofys_conferencing_object(
    booking_host, user, choice, conferencing
):
    account, _ = booking_host
    form = submit(user, f"{account.pk}:{choice}")
    assert form.is_valid(), form.errors
    selection = form.cleaned_data["conferencing"]
    assert isinstance(selection, ConferencingSelection)
    assert (selection.account, selection.conferencing) == (account, conferencing)


def test_disconnected_profile_is_refused_with_its_relink_url(booking_host, user):
    account, _ = booking_host
    form = submit(user, f"{account.pk}:pro_goto")
    assert not form.is_valid()
    [message] = form.errors["conferencing"]
    relink = ConferencingProfile.objects.get(profile_id="pro_goto").profile_relink_url
    assert "GoTo" in message and relink in message
    assert form.fields["conferencing"].unavailable_error.relink_url == relink
    assert form.errors.as_data()["conferencing"][0].code == "unavailable"


def test_removed_profile_is_refused(booking_host, user):
    form = submit(user, f"{booking_host[0].pk}:pro_gone")
    assert "was removed at Cronofy" in form.errors["conferencing"][0]


def test_another_users_account_or_profile_is_refused(booking_host, foreign_account, user):
    form = submit(user, f"{foreign_account.pk}:pro_bobs")
    assert form.errors["conferencing"] == ["That Cronofy account is not one of yours."]
    form = submit(user, f"{booking_host[0].pk}:pro_bobs")
    assert "pro_bobs is not one of this account" in form.errors["conferencing"][0]


def test_integrated_without_a_capable_calendar_is_refused(booking_host, user):
    form = submit(user, f"{booking_host[0].pk}:integrated", calendar_id="cal_plain")
    assert "not available" in form.errors["conferencing"][0]
    form = submit(user, f"{booking_host[0].pk}:integrated", calendar_id="cal_work")
    assert form.is_valid()


def test_a_profile_disconnected_after_the_page_was_shown_is_refused(booking_host, sim, user):
    """The options are a snapshot; the submitted value is checked against fresh rows."""
    account, sim_account = booking_host
    value = f"{account.pk}:pro_zoom"
    assert value in dict(BookingForm(user=user).fields["conferencing"].choices)
    sim.set_connected(sim_account.sub, "pro_zoom", False)
    sync_account(account)
    assert "disconnected" in submit(user, value).errors["conferencing"][0]


def test_required_and_malformed_values(booking_host, user):
    assert submit(user, "").errors["conferencing"] == ["Choose a conferencing option."]
    assert submit(user, "nonsense").errors["conferencing"] == ["Choose a conferencing option."]


def test_several_accounts_are_grouped_by_account(booking_host, link_account, sim, user):
    second, _ = link_account(user=user, email="work@example.com")
    sync_account(second)
    groups = BookingForm(user=user).fields["conferencing"].choices
    assert [label for label, _options in groups] == ["alice@example.com", "work@example.com"]


def test_anonymous_user_gets_no_options(booking_host, django_user_model):
    from django.contrib.auth.models import AnonymousUser

    form = BookingForm({"conferencing": f"{booking_host[0].pk}:default"}, user=AnonymousUser())
    assert list(form.fields["conferencing"].choices) == []
    assert not form.is_valid()
