"""The end-user page "My conferencing": ``cronofy_conferencing:profiles`` and its actions.

The user's linked accounts and their conferencing profiles, with Connect (a
data center picker when there is a choice), Relink, Sync now, Add provider,
Make default and Unlink. Reads stored rows only (three queries whatever the
number of accounts and profiles); the actions call the sync and linking
services, each behind the per-user budget (``userlimits``), and every failure
becomes a message on the page, never an error page. Templates live in
``templates/django_cronofy_conferencing/`` and extend ``base.html``, which a
host overrides to use its own layout.

The page updates itself while it is open (``static/.../cronofy_conferencing.js``,
no framework; without JavaScript the page works as before): every few seconds,
and when the tab comes back into view, it asks ``profiles_section`` for the
accounts section with the ``ETag`` it has. That costs one query (``section_etag``)
and answers 304 while nothing changed; when something did, the new section (the
``includes/accounts.html`` the page itself renders) replaces the old one. Coming
back from a Relink tab, the script asks ``sync_after_relink`` to sync that
account once, within the user's budget.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max, Prefetch, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import parse_etags
from django.utils.timesince import timesince
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from .. import wording
from ..accounts import linking, preferences
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
from ..wording import Words, account_label, words
from . import attention

logger = logging.getLogger(__name__)

TEMPLATE_PROFILES = "django_cronofy_conferencing/profiles.html"
TEMPLATE_SECTION = "django_cronofy_conferencing/includes/accounts.html"
TEMPLATE_UNLINK = "django_cronofy_conferencing/unlink_confirm.html"

#: Milliseconds between two polls of the open page (while the tab is visible).
POLL_INTERVAL_MS = 3000
#: Part of every section ETag: bump it when the section's markup changes.
SECTION_REVISION = "1"

_PROFILE_ID = re.compile(r"^[\x21-\x7e]{1,255}\Z")


@dataclass
class ProfileRow:
    profile: Any  # a ConferencingProfile or a CalendarProfile
    label: str  # the provider, for people ("Zoom", "Apple")
    name: str = ""  # the profile's own name, else the label
    added_hint: str = ""  # "added 3 March 2026", when the name alone does not tell it apart
    preferred: bool = False
    # What the open page announces when this row changes (see cronofy_conferencing.js).
    say_now: str = ""
    say_added: str = ""
    say_removed: str = ""

    @property
    def needs_relink(self) -> bool:
        return not self.profile.profile_connected


@dataclass
class SummaryLine:
    """One line of an account's summary: what works, what needs the user, and where."""

    text: str
    tone: str  # "ok" or "warning"
    href: str = ""  # the item it is about (an in-page link)


@dataclass
class AccountRow:
    account: LinkedAccount
    label: str
    data_center_label: str  # blank when the site offers one data center only
    synced_ago: str
    reauthorization_required: bool
    profiles: list[ProfileRow]
    conferencing_broken: int
    attention: str
    add_providers: list[dict[str, str]]
    relink_first: list[str]
    calendar_problems: list[ProfileRow] = field(default_factory=list)
    summary: list[SummaryLine] = field(default_factory=list)
    say_now: str = ""  # what the open page announces when the account's state changes

    @property
    def needs_relink(self) -> int:
        """Profiles of both kinds the user must relink (none known while reauthorizing)."""
        if self.reauthorization_required:
            return 0
        return self.conferencing_broken + len(self.calendar_problems)

    @property
    def needs_attention(self) -> bool:
        return self.reauthorization_required or bool(self.needs_relink)

    @property
    def state(self) -> str:
        return "reauthorization" if self.reauthorization_required else "active"

    @property
    def sync_failing(self) -> bool:
        return bool(self.account.consecutive_failures) and not self.reauthorization_required


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


def _profile_rows(profiles, *, calendar: bool = False, preferred_id: str = "") -> list[ProfileRow]:
    """Rows for people: duplicates told apart by name, then by when they were added."""
    profiles = list(profiles)
    twice = wording.duplicated_providers(profiles)
    same_name = Counter((p.provider_name, p.profile_name) for p in profiles)
    # Two of a kind added the same day are told apart by the time as well.
    same_day = Counter(
        (p.provider_name, p.profile_name, timezone.localdate(p.first_seen_at)) for p in profiles
    )
    rows = []
    for p in profiles:
        label = provider_label(p.provider_name)
        named = p.provider_name in twice
        spoken = (
            wording.calendar_label(p, named=named)
            if calendar
            else wording.conferencing_label(p, named=named)
        )
        hint = ""
        if same_name[(p.provider_name, p.profile_name)] > 1:
            moment = timezone.localtime(p.first_seen_at)
            day = (p.provider_name, p.profile_name, moment.date())
            fmt = "DATETIME_FORMAT" if same_day[day] > 1 else "DATE_FORMAT"
            hint = _("added %(date)s") % {"date": date_format(moment, fmt)}
        rows.append(
            ProfileRow(
                profile=p,
                label=label,
                name=p.profile_name or label,
                added_hint=hint,
                preferred=bool(preferred_id) and p.profile_id == preferred_id,
                say_now=(
                    wording.sentence_connected_again(spoken)
                    if p.profile_connected
                    else wording.sentence_needs_relinking(spoken)
                ),
                say_added=(
                    wording.sentence_added(spoken)
                    if p.profile_connected
                    else wording.sentence_needs_relinking(spoken)
                ),
                say_removed=wording.sentence_removed(spoken),
            )
        )
    # Disconnected first: they are what the user came to fix.
    rows.sort(
        key=lambda r: (not r.needs_relink, r.label.lower(), r.profile.profile_name, r.profile.pk)
    )
    return rows


def _summary(
    profiles: list[ProfileRow], calendar_problems: list[ProfileRow], sync_failing: bool
) -> list[SummaryLine]:
    """Conferencing and calendars counted apart, each line linking to its first item."""
    lines = []
    broken = [r for r in profiles if r.needs_relink]
    if broken:
        text = ngettext(
            "%(count)d conferencing profile needs relinking",
            "%(count)d conferencing profiles need relinking",
            len(broken),
        ) % {"count": len(broken)}
        lines.append(SummaryLine(text, "warning", f"#cc-profile-{broken[0].profile.pk}"))
    elif not sync_failing:
        # No green all-clear over a failing sync: what is shown may be out of date.
        if profiles:
            lines.append(SummaryLine(_("All conferencing profiles connected"), "ok"))
        else:
            lines.append(SummaryLine(_("No conferencing profiles yet"), "ok"))
    if calendar_problems:
        text = ngettext(
            "%(count)d calendar needs relinking",
            "%(count)d calendars need relinking",
            len(calendar_problems),
        ) % {"count": len(calendar_problems)}
        lines.append(
            SummaryLine(text, "warning", f"#cc-calendar-{calendar_problems[0].profile.pk}")
        )
    return lines


def _data_center_label(account: LinkedAccount, data_centers, linkable) -> str:
    """Shown only when the site offers a choice of data center (or the account's is gone)."""
    if len(linkable) <= 1 and account.data_center in linkable:
        return ""
    dc = data_centers.get(account.data_center)
    return (dc.label if dc else "") or account.data_center


def account_rows(user, service: Words | None = None) -> list[AccountRow]:
    """What the page shows of each of ``user``'s accounts (three queries in all)."""
    service = service or words()
    present = ConferencingProfile.objects.present()
    queryset = (
        LinkedAccount.objects.for_user(user)
        .order_by("created_at", "pk")
        .prefetch_related(
            Prefetch("conferencing_profiles", queryset=present, to_attr="present_profiles"),
            Prefetch(
                "calendar_profiles",
                queryset=CalendarProfile.objects.disconnected(),
                to_attr="calendar_problem_profiles",
            ),
        )
    )
    data_centers = get_data_centers()
    linkable = linkable_data_centers()
    rows = []
    for account in queryset:
        reauthorization = account.status != LinkedAccount.Status.ACTIVE
        label = account_label(account)
        profiles = _profile_rows(
            account.present_profiles, preferred_id=account.preferred_conferencing_profile_id
        )
        calendar_problems = _profile_rows(account.calendar_problem_profiles, calendar=True)
        broken = sum(r.needs_relink for r in profiles)
        buttons, relink_first = _add_providers(profiles)
        sync_failing = bool(account.consecutive_failures) and not reauthorization
        rows.append(
            AccountRow(
                account=account,
                label=label,
                data_center_label=_data_center_label(account, data_centers, linkable),
                synced_ago=_ago(account.last_synced_at),
                reauthorization_required=reauthorization,
                profiles=profiles,
                conferencing_broken=broken,
                attention=_("Reconnect your %(account)s") % {"account": service.account}
                if reauthorization
                else "",
                add_providers=buttons,
                relink_first=relink_first,
                calendar_problems=calendar_problems,
                summary=(
                    [] if reauthorization else _summary(profiles, calendar_problems, sync_failing)
                ),
                say_now=(
                    _("%(account)s must be reconnected") % {"account": label}
                    if reauthorization
                    else _("%(account)s is connected again") % {"account": label}
                ),
            )
        )
    # Accounts that need the user come first.
    rows.sort(key=lambda r: not r.needs_attention)
    return rows


def section_etag(user) -> str:
    """The accounts section's version, in one query: it changes with any write to one
    of the user's accounts (every sync, failure, relink and preference stamps
    ``updated_at``; profile rows are only written by a sync), a link or an unlink."""
    state = LinkedAccount.objects.for_user(user).aggregate(
        accounts=Count("pk"), ids=Sum("pk"), changed=Max("updated_at")
    )
    changed = state["changed"].isoformat() if state["changed"] else ""
    settings_part = f"{app_settings.PRODUCT_NAME}|{sorted(linkable_data_centers())}"
    raw = (
        f"{SECTION_REVISION}|{user.pk}|{state['accounts']}|{state['ids']}|{changed}|"
        f"{get_language()}|{settings_part}"
    )
    return '"' + hashlib.sha256(raw.encode()).hexdigest()[:32] + '"'


# -- views ------------------------------------------------------------------------


def _profiles_url() -> str:
    return reverse("cronofy_conferencing:profiles")


def _own_account(request: HttpRequest, account_id: int) -> LinkedAccount:
    return get_object_or_404(LinkedAccount.objects.for_user(request.user), pk=account_id)


def _over_budget(request: HttpRequest) -> HttpResponse:
    messages.error(
        request,
        _("You have asked a lot in the last minute. Please wait a minute and try again."),
    )
    return HttpResponseRedirect(_profiles_url())


def _section_context(user) -> dict[str, Any]:
    service = words()
    return {"rows": account_rows(user, service), "words": service}


@never_cache
@login_required
@require_http_methods(["GET", "HEAD"])
def profiles(request: HttpRequest) -> HttpResponse:
    """The user's accounts and profiles, with every action."""
    context = _section_context(request.user)
    context.update(
        data_centers=connect_data_centers(),
        section_etag=section_etag(request.user),
        poll_interval=POLL_INTERVAL_MS,
    )
    return render(request, TEMPLATE_PROFILES, context)


@never_cache
@require_http_methods(["GET", "HEAD"])
def profiles_section(request: HttpRequest) -> HttpResponse:
    """The accounts section alone, for the open page: 304 while its ``ETag`` still holds.

    One query when nothing changed. No login redirect: a script must not swap a
    login form into the page (403 instead; the full page still redirects).
    """
    if not request.user.is_authenticated:
        return HttpResponse(status=403)
    etag = section_etag(request.user)
    offered = parse_etags(request.headers.get("If-None-Match", ""))
    if etag in {tag.removeprefix("W/") for tag in offered}:  # a weak match (RFC 9110)
        response = HttpResponseNotModified()
    else:
        response = render(request, TEMPLATE_SECTION, _section_context(request.user))
    response["ETag"] = etag
    return response


def _outcome_message(label: str, result, before, after) -> str:
    said = attention.outcomes(before, after)
    if said:
        return _("Synced %(account)s: %(outcomes)s.") % {
            "account": label,
            "outcomes": ". ".join(said),
        }
    if result.changed:
        return _("Synced %(account)s: its details were updated.") % {"account": label}
    return _("Synced %(account)s: nothing changed.") % {"account": label}


@non_atomic_requests  # calls Cronofy: no request transaction
@never_cache
@login_required
@require_POST
def sync_now(request: HttpRequest, account_id: int) -> HttpResponse:
    """POST (CSRF protected): sync one account now; the outcome is a message on the page."""
    account = _own_account(request, account_id)
    label = account_label(account)
    service = words()
    if account.status != LinkedAccount.Status.ACTIVE:
        messages.error(
            request,
            _("Reconnect %(account)s first: it cannot be synced until then.") % {"account": label},
        )
        return HttpResponseRedirect(_profiles_url())
    if not userlimits.allow(request.user, "sync"):
        return _over_budget(request)
    before = attention.snapshot(account)
    try:
        result = sync_account(account)
    except ReauthorizationRequired:
        messages.error(
            request,
            _("%(service)s no longer accepts %(account)s: reconnect it to sync it.")
            % {"service": service.service_first, "account": label},
        )
    except (CronofyUnavailable, RateLimited):
        messages.error(
            request,
            _(
                "%(service)s could not be reached just now, so %(account)s was not synced. "
                "Please try again in a few minutes."
            )
            % {"service": service.service_first, "account": label},
        )
    except CronofyError as exc:
        logger.warning("Sync now failed for account %s: %s", account.pk, redact(exc))
        messages.error(
            request,
            _(
                "%(account)s could not be synced: %(service)s sent an answer we could not use. "
                "Please try again later."
            )
            % {"account": label, "service": service.service},
        )
    else:
        after = attention.snapshot(account) if result.changed else before
        messages.success(request, _outcome_message(label, result, before, after))
    return HttpResponseRedirect(_profiles_url())


@non_atomic_requests  # calls Cronofy: no request transaction
@never_cache
@require_POST
def sync_after_relink(request: HttpRequest, account_id: int) -> HttpResponse:
    """POST (CSRF protected), from the open page when the user comes back from a Relink
    tab: sync that account once, within the user's budget. Answers a status only
    (204 synced, 409 must reconnect first, 429 over budget, 503 not reached): the
    page shows the outcome through its next poll, never through a message."""
    if not request.user.is_authenticated:
        return HttpResponse(status=403)
    account = _own_account(request, account_id)
    if account.status != LinkedAccount.Status.ACTIVE:
        return HttpResponse(status=409)
    if not userlimits.allow(request.user, "sync"):
        return HttpResponse(status=429)
    try:
        sync_account(account)
    except CronofyError as exc:  # recorded on the account: the page shows it
        logger.info("Sync after relink failed for account %s: %s", account.pk, redact(exc))
        return HttpResponse(status=503)
    return HttpResponse(status=204)


@never_cache
@login_required
@require_POST
def set_preferred(request: HttpRequest, account_id: int) -> HttpResponse:
    """POST (CSRF protected) ``profile_id``: make it the account's default for new meetings."""
    account = _own_account(request, account_id)
    profile_id = request.POST.get("profile_id", "")
    profile = None
    if _PROFILE_ID.match(profile_id):
        profile = (
            ConferencingProfile.objects.present()
            .filter(account_id=account.pk, profile_id=profile_id)
            .first()
        )
    if profile is None:
        messages.error(request, _("That conferencing profile is no longer there."))
        return HttpResponseRedirect(_profiles_url())
    profile.account = account
    preferences.set_preferred(profile)
    twice = ConferencingProfile.objects.present().filter(
        account_id=account.pk, provider_name=profile.provider_name
    )
    label = wording.conferencing_label(profile, named=twice.count() > 1)
    messages.success(
        request, _("New meetings will use %(profile)s by default.") % {"profile": label}
    )
    return HttpResponseRedirect(_profiles_url())


@non_atomic_requests  # POST calls Cronofy: no request transaction
@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def unlink(request: HttpRequest, account_id: int) -> HttpResponse:
    """GET: ask for confirmation; POST (CSRF protected): revoke at Cronofy, then delete."""
    account = _own_account(request, account_id)
    label = account_label(account)
    service = words()
    if request.method != "POST":
        context = {"account": account, "label": label, "words": service}
        return render(request, TEMPLATE_UNLINK, context)
    if not userlimits.allow(request.user, "unlink"):
        return _over_budget(request)
    try:
        linking.unlink(account)
    except CronofyError as exc:
        logger.warning("Unlink failed for account %s: %s", account.pk, redact(exc))
        messages.error(
            request,
            _(
                "%(service)s could not be reached, so %(account)s is still linked. Please try "
                "again in a few minutes."
            )
            % {"service": service.service_first, "account": label},
        )
    else:
        messages.success(
            request,
            _("Unlinked %(account)s: this site's access to it was revoked.") % {"account": label},
        )
    return HttpResponseRedirect(_profiles_url())
