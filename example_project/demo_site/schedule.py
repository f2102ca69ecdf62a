"""The example's "Schedule a meeting" page: a host's booking form with the app's picker.

- ``schedule``: calendar, title, time and ``ConferencingChoiceField``; on submit the
  event is upserted at Cronofy (here the simulator) through the app's client with the
  ``conferencing`` object the field gave, then the user lands on the event's page.
- ``event_detail``: reads the event back (``GET /v1/events``) and shows its
  conferencing: "being generated" while Cronofy answers ``{"pending": true}``,
  then the join link.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from django_cronofy_conferencing.accounts import tokens
from django_cronofy_conferencing.choices import ConferencingUnavailable, conferencing_for
from django_cronofy_conferencing.cronofy.client import CronofyClient, get_client
from django_cronofy_conferencing.cronofy.redaction import redact
from django_cronofy_conferencing.exceptions import (
    AccessTokenRejected,
    CronofyError,
    CronofyValidationError,
    ReauthorizationRequired,
)
from django_cronofy_conferencing.forms import ConferencingChoiceField
from django_cronofy_conferencing.models import CalendarProfile, LinkedAccount
from django_cronofy_conferencing.providers import provider_label

logger = logging.getLogger(__name__)


def calendar_choices(user) -> list[tuple[str, str]]:
    """``"<account>:<calendar_id>"`` for the writable calendars of connected calendar profiles."""
    profiles = (
        CalendarProfile.objects.connected()
        .filter(account__in=LinkedAccount.objects.for_user(user).active())
        .order_by("account_id", "provider_name", "profile_name")
    )
    return [
        (
            f"{profile.account_id}:{calendar['calendar_id']}",
            f"{calendar.get('calendar_name') or calendar['calendar_id']} "
            f"({provider_label(profile.provider_name)}, {profile.profile_name})",
        )
        for profile in profiles
        for calendar in profile.writable_calendars()
    ]


class ScheduleForm(forms.Form):
    calendar = forms.ChoiceField(label="Calendar")
    summary = forms.CharField(label="Title", max_length=1024, initial="Interview")
    start = forms.DateTimeField(
        label="Starts (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M"],
    )
    minutes = forms.TypedChoiceField(
        label="Length",
        coerce=int,
        choices=[(30, "30 minutes"), (45, "45 minutes"), (60, "1 hour")],
        initial=30,
    )
    conferencing = ConferencingChoiceField(label="Conferencing")

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["calendar"].choices = calendar_choices(user)
        self.fields["conferencing"].limit_to(user)
        tomorrow = (timezone.now() + timedelta(days=1)).replace(
            hour=15, minute=0, second=0, microsecond=0
        )
        self.fields["start"].initial = tomorrow.astimezone(UTC).replace(tzinfo=None)

    def clean(self):
        data = super().clean()
        selection, calendar = data.get("conferencing"), data.get("calendar")
        if selection is None or not calendar:
            return data
        account_id, calendar_id = calendar.split(":", 1)
        if int(account_id) != selection.account.pk:
            self.add_error(
                "conferencing", "Pick conferencing of the account whose calendar the event is on."
            )
            return data
        try:  # "integrated" must work on this very calendar
            conferencing_for(selection.account, selection.choice, calendar_id=calendar_id)
        except ConferencingUnavailable as exc:
            self.add_error("conferencing", str(exc))
        data["calendar_id"] = calendar_id
        return data

    def event(self) -> dict:
        data = self.cleaned_data
        start = data["start"].replace(tzinfo=UTC) if data["start"].tzinfo is None else data["start"]
        end = start + timedelta(minutes=data["minutes"])
        return {
            "event_id": "demo-" + secrets.token_hex(8),
            "summary": data["summary"],
            "start": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tzid": "Etc/UTC",
            "conferencing": data["conferencing"].conferencing,
        }


def _call(account: LinkedAccount, method: str, *args, **kwargs):
    """A Cronofy call with the account's token, refreshed once on a 401 (as sync does)."""
    client: CronofyClient = get_client(account.data_center)
    token = tokens.ensure_access_token(account, client=client)
    try:
        return getattr(client, method)(token, *args, **kwargs)
    except AccessTokenRejected:
        token = tokens.refresh_access_token(account, rejected_token=token, client=client)
        return getattr(client, method)(token, *args, **kwargs)


@transaction.non_atomic_requests  # calls Cronofy: never inside ATOMIC_REQUESTS' transaction
@login_required
def schedule(request: HttpRequest) -> HttpResponse:
    form = ScheduleForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        selection = form.cleaned_data["conferencing"]
        event = form.event()
        try:
            _call(selection.account, "upsert_event", form.cleaned_data["calendar_id"], event)
        except CronofyValidationError as exc:
            for field, problems in exc.errors.items():
                for problem in problems:
                    form.add_error(None, f"Cronofy: {field} {problem['description']}")
        except ReauthorizationRequired:
            form.add_error(None, "Cronofy no longer accepts this account: connect it again.")
        except CronofyError as exc:
            logger.warning("Event upsert failed: %s", redact(exc))
            form.add_error(None, "Cronofy could not create the event just now. Try again.")
        else:
            messages.success(request, f"“{event['summary']}” was sent to Cronofy.")
            return redirect(
                "event_detail", account_id=selection.account.pk, event_id=event["event_id"]
            )
    unavailable = form.fields["conferencing"].unavailable_error
    return render(
        request,
        "demo_site/schedule.html",
        {
            "form": form,
            "relink_url": unavailable.relink_url if unavailable is not None else None,
            "stale": form.fields["conferencing"].stale,
        },
    )


@transaction.non_atomic_requests
@login_required
def event_detail(request: HttpRequest, account_id: int, event_id: str) -> HttpResponse:
    account = get_object_or_404(LinkedAccount.objects.for_user(request.user), pk=account_id)
    try:
        events = _call(account, "read_events", tzid="Etc/UTC")["events"]
    except CronofyError as exc:
        logger.warning("Reading events failed: %s", redact(exc))
        messages.error(request, "Cronofy could not be reached to read the event. Try again.")
        events = []
    event = next((e for e in events if e.get("event_id") == event_id), None)
    if event is None and events:
        raise Http404("No such event.")
    conferencing = (event or {}).get("conferencing") or {}
    return render(
        request,
        "demo_site/event.html",
        {
            "account": account,
            "event": event,
            "event_id": event_id,
            "pending": bool(conferencing.get("pending")),
            "join_url": conferencing.get("join_url", ""),
            "provider": provider_label(conferencing.get("provider_name"))
            if conferencing.get("provider_name")
            else conferencing.get("provider_description", ""),
            "read_at": datetime.now(UTC),
        },
    )
