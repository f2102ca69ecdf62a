"""The end-user page "My conferencing": ``cronofy_conferencing:profiles`` and its actions.

The user's linked Cronofy accounts and their conferencing profiles, with
Connect (a data center picker), Relink, Sync now, Add provider and Unlink.
Reads stored rows only (two queries whatever the number of accounts and
profiles); the actions call the sync and linking services, each behind the
per-user budget (``userlimits``), and every failure becomes a message on the
page, never an error page. Templates live in
``templates/django_cronofy_conferencing/`` and extend ``base.html``, which a
host overrides to use its own layout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from ..accounts import linking
from ..conf import app_settings
from ..cronofy import userlimits
from ..cronofy.applications import linkable_data_centers
from ..cronofy.datacenters import get_data_centers
from ..cronofy.redaction import redact
from ..db import non_atomic_requests
from ..exceptions import CronofyError, CronofyUnavailable, RateLimited, ReauthorizationRequired
from ..models import CalendarProfile, ConferencingProfile, LinkedAccount
from ..providers import LINKABLE_PROVIDERS, provider_label
from ..sync.service import sync_account

logger = logging.getLogger(__name__)

TEMPLATE_PROFILES = "django_cronofy_conferencing/profiles.html"
TEMPLATE_UNLINK = "django_cronofy_conferencing/unlink_confirm.html"


@dataclass
class ProfileRow:
    profile: Any  # a ConferencingProfile or a CalendarProfile
    label: str

    @property
    def needs_relink(self) -> bool:
        return not self.profile.profile_connected


@dataclass
class AccountRow:
    account: LinkedAccount
    label: str
    data_center_label: str
    synced_ago: str
    reauthorization_required: bool
    profiles: list[ProfileRow]
    needs_relink: int
    attention: str
    add_providers: list[dict[str, str]]
    relink_first: list[str]
    calendar_problems: list[ProfileRow] = field(default_factory=list)

    @property
    def sync_failing(self) -> bool:
        return bool(self.account.consecutive_failures) and not self.reauthorization_required


def account_label(account: LinkedAccount) -> str:
    return account.email or account.name or account.sub


def _ago(moment) -> str:
    if moment is None:
        return ""
    if timezone.now() - moment < timedelta(minutes=1):
        return _("just now")
    return _("%(time)s ago") % {"time": timesince(moment)}


def connect_data_centers() -> list[dict[str, Any]]:
    """The picker's choices: the data centers this site has a Cronofy application in
    (``applications.linkable_data_centers``), ``DEFAULT_DATA_CENTER`` first."""
    default = app_settings.DEFAULT_DATA_CENTER
    choices = [
        {"id": dc.id, "label": dc.label or dc.id, "selected": dc.id == default}
        for dc in linkable_data_centers().values()
    ]
    choices.sort(key=lambda choice: not choice["selected"])
    return choices


def _add_providers(rows: list[ProfileRow]) -> tuple[list[dict[str, str]], list[str]]:
    """The "Add" buttons, and the providers to relink instead of adding again."""
    connected = {r.profile.provider_name for r in rows if not r.needs_relink}
    broken = {r.profile.provider_name for r in rows if r.needs_relink}
    buttons, relink_first = [], []
    for name in LINKABLE_PROVIDERS:
        label = provider_label(name)
        if name in broken:
            relink_first.append(label)
        elif name in connected:
            text = _("Add another %(provider)s") % {"provider": label}
            buttons.append({"name": name, "text": text})
        else:
            buttons.append({"name": name, "text": _("Add %(provider)s") % {"provider": label}})
    return buttons, relink_first


def _profile_rows(profiles) -> list[ProfileRow]:
    rows = [ProfileRow(p, provider_label(p.provider_name)) for p in profiles]
    # Disconnected first: they are what the user came to fix.
    rows.sort(key=lambda r: (not r.needs_relink, r.label.lower(), r.profile.profile_name))
    return rows


def _attention(reauthorization: bool, needs_relink: int, has_profiles: bool) -> str:
    if reauthorization:
        return _("Reconnect your Cronofy account")
    if needs_relink:
        return ngettext(
            "%(count)d profile needs relinking", "%(count)d profiles need relinking", needs_relink
        ) % {"count": needs_relink}
    if has_profiles:
        return _("All conferencing profiles connected")
    return _("No conferencing profiles yet")


def account_rows(user) -> list[AccountRow]:
    """What the page shows of each of ``user``'s accounts (two or three queries in all)."""
    present = ConferencingProfile.objects.present()
    queryset = (
        LinkedAccount.objects.for_user(user)
        .order_by("created_at", "pk")
        .prefetch_related(
            Prefetch("conferencing_profiles", queryset=present, to_attr="present_profiles")
        )
    )
    queryset = queryset.prefetch_related(
        Prefetch(
            "calendar_profiles",
            queryset=CalendarProfile.objects.disconnected(),
            to_attr="calendar_problem_profiles",
        )
    )
    data_centers = get_data_centers()
    rows = []
    for account in queryset:
        dc = data_centers.get(account.data_center)
        reauthorization = account.status != LinkedAccount.Status.ACTIVE
        profiles = _profile_rows(account.present_profiles)
        calendar_problems = _profile_rows(account.calendar_problem_profiles)
        # A calendar profile that lost its connection breaks scheduling as surely.
        needs_relink = (
            0 if reauthorization else sum(r.needs_relink for r in profiles) + len(calendar_problems)
        )
        buttons, relink_first = _add_providers(profiles)
        rows.append(
            AccountRow(
                account=account,
                label=account_label(account),
                data_center_label=(dc.label if dc else "") or account.data_center,
                synced_ago=_ago(account.last_synced_at),
                reauthorization_required=reauthorization,
                profiles=profiles,
                needs_relink=needs_relink,
                attention=_attention(reauthorization, needs_relink, bool(profiles)),
                add_providers=buttons,
                relink_first=relink_first,
                calendar_problems=calendar_problems,
            )
        )
    # Accounts that need the user come first.
    rows.sort(key=lambda r: not (r.reauthorization_required or r.needs_relink))
    return rows


# -- views ------------------------------------------------------------------------


def _profiles_url() -> str:
    return reverse("cronofy_conferencing:profiles")


def _own_account(request: HttpRequest, account_id: int) -> LinkedAccount:
    return get_object_or_404(LinkedAccount.objects.for_user(request.user), pk=account_id)


def _over_budget(request: HttpRequest) -> HttpResponse:
    messages.error(
        request,
        _("You have asked Cronofy a lot in the last minute. Please wait a minute and try again."),
    )
    return HttpResponseRedirect(_profiles_url())


@never_cache
@login_required
@require_http_methods(["GET", "HEAD"])
def profiles(request: HttpRequest) -> HttpResponse:
    """The user's accounts and profiles, with every action."""
    return render(
        request,
        TEMPLATE_PROFILES,
        {
            "rows": account_rows(request.user),
            "data_centers": connect_data_centers(),
        },
    )


@non_atomic_requests  # calls Cronofy: no request transaction
@never_cache
@login_required
@require_POST
def sync_now(request: HttpRequest, account_id: int) -> HttpResponse:
    """POST (CSRF protected): sync one account now; the outcome is a message on the page."""
    account = _own_account(request, account_id)
    label = account_label(account)
    if account.status != LinkedAccount.Status.ACTIVE:
        messages.error(
            request,
            _("Reconnect %(account)s to Cronofy first: it cannot be synced until then.")
            % {"account": label},
        )
        return HttpResponseRedirect(_profiles_url())
    if not userlimits.allow(request.user, "sync"):
        return _over_budget(request)
    try:
        result = sync_account(account)
    except ReauthorizationRequired:
        messages.error(
            request,
            _("Cronofy no longer accepts %(account)s: reconnect it to sync it.")
            % {"account": label},
        )
    except (CronofyUnavailable, RateLimited):
        messages.error(
            request,
            _(
                "Cronofy could not be reached just now, so %(account)s was not synced. Please try "
                "again in a few minutes."
            )
            % {"account": label},
        )
    except CronofyError as exc:
        logger.warning("Sync now failed for account %s: %s", account.pk, redact(exc))
        messages.error(
            request,
            _(
                "%(account)s could not be synced: Cronofy sent an answer we could not use. "
                "Please try again later."
            )
            % {"account": label},
        )
    else:
        if result.changed:
            text = _(
                "Synced %(account)s: %(created)d added, %(updated)d changed, %(removed)d removed."
            ) % {
                "account": label,
                "created": result.created,
                "updated": result.updated,
                "removed": result.removed,
            }
        else:
            text = _("Synced %(account)s: nothing changed.") % {"account": label}
        messages.success(request, text)
    return HttpResponseRedirect(_profiles_url())


@non_atomic_requests  # POST calls Cronofy: no request transaction
@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def unlink(request: HttpRequest, account_id: int) -> HttpResponse:
    """GET: ask for confirmation; POST (CSRF protected): revoke at Cronofy, then delete."""
    account = _own_account(request, account_id)
    label = account_label(account)
    if request.method != "POST":
        return render(request, TEMPLATE_UNLINK, {"account": account, "label": label})
    if not userlimits.allow(request.user, "unlink"):
        return _over_budget(request)
    try:
        linking.unlink(account)
    except CronofyError as exc:
        logger.warning("Unlink failed for account %s: %s", account.pk, redact(exc))
        messages.error(
            request,
            _(
                "Cronofy could not be reached, so %(account)s is still linked. Please try again "
                "in a few minutes."
            )
            % {"account": label},
        )
    else:
        messages.success(
            request,
            _("Unlinked %(account)s: this site's access was revoked at Cronofy.")
            % {"account": label},
        )
    return HttpResponseRedirect(_profiles_url())
