"""The example site's own pages: what a host project writes around the app.

- ``home``: the user's linked Cronofy accounts and their conferencing profiles,
  with Connect Cronofy, Add Zoom / Microsoft Teams / GoTo, Sync now, Unlink and,
  for a disconnected profile, its Relink link.
- ``sync_now`` and ``unlink``: the app's ``sync_account`` and ``linking.unlink``
  behind plain forms.
- ``simulator_*``: the demo's control page for the simulated Cronofy (only
  while ``manage.py demo`` serves one, for staff).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_http_methods, require_POST

from django_cronofy_conferencing import linking
from django_cronofy_conferencing.applications import linkable_data_centers
from django_cronofy_conferencing.conf import app_settings
from django_cronofy_conferencing.datacenters import get_data_centers
from django_cronofy_conferencing.exceptions import (
    CronofyError,
    CronofyUnavailable,
    RateLimited,
    ReauthorizationRequired,
)
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.providers import LINKABLE_PROVIDERS, provider_label
from django_cronofy_conferencing.redaction import redact
from django_cronofy_conferencing.sync import sync_account

from . import simulator

logger = logging.getLogger(__name__)

#: The "Add ..." buttons: providers Cronofy documents for conferencing service authorization.
ADDABLE_PROVIDERS = [(name, provider_label(name)) for name in LINKABLE_PROVIDERS]


def site_context(request: HttpRequest) -> dict:
    """Template context for every page (a context processor)."""
    return {
        "simulator_running": simulator.current() is not None,
        "cronofy_real": getattr(settings, "CRONOFY_REAL", False),
    }


def data_center_options() -> list[dict]:
    """The "Connect Cronofy" choices: the data centers with a Cronofy application here."""
    default = app_settings.DEFAULT_DATA_CENTER
    options = []
    for dc in linkable_data_centers().values():
        options.append(
            {
                "id": dc.id,
                "label": dc.label or dc.id,
                "selected": dc.id == default,
                "disabled": False,
            }
        )
    options.sort(key=lambda o: (o["disabled"], not o["selected"]))
    return options


def _ago(moment) -> str:
    """'just now', '5 minutes ago', ... ('' for never)."""
    if moment is None:
        return ""
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment)} ago"


def _own_account(request: HttpRequest, pk: int) -> LinkedAccount:
    return get_object_or_404(LinkedAccount.objects.for_user(request.user), pk=pk)


def _label(account: LinkedAccount) -> str:
    return account.email or account.name or account.sub


@login_required
def home(request: HttpRequest) -> HttpResponse:
    profiles = ConferencingProfile.objects.present().order_by(
        "provider_name", "profile_name", "profile_id"
    )
    accounts = list(
        LinkedAccount.objects.for_user(request.user)
        .order_by("created_at", "pk")
        .prefetch_related(Prefetch("conferencing_profiles", queryset=profiles))
    )
    data_centers = get_data_centers()
    rows = []
    for account in accounts:
        dc = data_centers.get(account.data_center)
        rows.append(
            {
                "account": account,
                "synced_ago": _ago(account.last_synced_at),
                "data_center_label": (dc.label if dc else "") or account.data_center,
                "needs_reconnect": account.status != LinkedAccount.Status.ACTIVE,
                "profiles": [
                    {"profile": p, "label": provider_label(p.provider_name)}
                    for p in account.conferencing_profiles.all()
                ],
            }
        )
    return render(
        request,
        "demo_site/home.html",
        {
            "rows": rows,
            "data_centers": data_center_options(),
            "addable_providers": ADDABLE_PROVIDERS,
        },
    )


@transaction.non_atomic_requests  # calls Cronofy: never inside ATOMIC_REQUESTS' transaction
@login_required
@require_POST
def sync_now(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_account(request, pk)
    try:
        result = sync_account(account)
    except ReauthorizationRequired:
        messages.error(
            request,
            f"Cronofy no longer accepts {_label(account)}: connect it again to sync it.",
        )
    except (CronofyUnavailable, RateLimited):
        messages.error(request, "Cronofy could not be reached just now. Try again in a minute.")
    except CronofyError as exc:
        # Recorded on the account too (last_sync_error); the text is redacted.
        logger.warning("Sync now failed for account %s: %s", account.pk, redact(exc))
        messages.error(request, f"{_label(account)} could not be synced. Try again later.")
    else:
        if result.changed:
            messages.success(
                request,
                f"Synced {_label(account)}: {result.created} added, {result.updated} changed, "
                f"{result.removed} removed.",
            )
        else:
            messages.success(request, f"Synced {_label(account)}: nothing changed.")
    return redirect("home")


@transaction.non_atomic_requests  # calls Cronofy: never inside ATOMIC_REQUESTS' transaction
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def unlink(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: ask for confirmation; POST: revoke at Cronofy, then delete."""
    account = _own_account(request, pk)
    if request.method != "POST":
        return render(request, "demo_site/unlink_confirm.html", {"account": account})
    label = _label(account)
    try:
        linking.unlink(account)
    except (CronofyUnavailable, RateLimited):
        messages.error(
            request, f"Cronofy could not be reached, so {label} is still linked. Try again later."
        )
    else:
        messages.success(request, f"Unlinked {label}: access was revoked at Cronofy.")
    return redirect("home")


# -- the demo's simulator control page ------------------------------------------------


def _running() -> simulator.RunningSimulator:
    running = simulator.current()
    if running is None:
        raise Http404("The simulated Cronofy runs only under `manage.py demo`.")
    return running


@staff_member_required
def simulator_page(request: HttpRequest) -> HttpResponse:
    running = _running()
    with running.sim.lock:
        sim_accounts = [
            {
                "sub": a.sub,
                "email": a.email,
                "profiles": [
                    {**p, "label": provider_label(p["provider_name"])}
                    for p in a.conferencing_profiles
                ],
                "has_channel": any(c["sub"] == a.sub for c in running.sim.channels.values()),
            }
            for a in running.sim.accounts.values()
            if a.data_center == simulator.DATA_CENTER
        ]
    linked = dict(
        LinkedAccount.objects.filter(data_center=simulator.DATA_CENTER).values_list(
            "sub", "user__username"
        )
    )
    for entry in sim_accounts:
        entry["linked_to"] = linked.get(entry["sub"])
    return render(
        request,
        "demo_site/simulator.html",
        {"sim_accounts": sim_accounts, "sim_url": running.url, "stats": running.server.stats()},
    )


def _push(request: HttpRequest, running, sub: str, kind: str) -> None:
    try:
        status, _body = running.server.push(sub, kind)
    except StopIteration:
        messages.warning(
            request, "That account has no push channel (it is not linked to this site)."
        )
    except OSError as exc:
        messages.error(request, f"The push notification could not be delivered: {exc}")
    else:
        messages.info(
            request,
            f"Simulated Cronofy sent a signed '{kind}' notification: the site said {status}.",
        )


@staff_member_required
@require_POST
def simulator_profile(request: HttpRequest) -> HttpResponse:
    """Connect or disconnect a profile at the simulated Cronofy, then push a notification."""
    running = _running()
    sub = request.POST.get("sub", "")
    profile_id = request.POST.get("profile_id", "")
    connected = request.POST.get("connected") == "1"
    try:
        profile = running.sim.set_connected(sub, profile_id, connected)
    except KeyError:
        raise Http404("No such simulated profile.") from None
    state = "reconnected" if connected else "disconnected"
    messages.success(
        request, f"{provider_label(profile['provider_name'])} profile {state} at Cronofy."
    )
    if request.POST.get("push") == "1":
        _push(request, running, sub, "change" if connected else "profile_disconnected")
    return redirect("home" if request.POST.get("next") == "home" else "simulator")


@staff_member_required
@require_POST
def simulator_push(request: HttpRequest) -> HttpResponse:
    """Send a signed push notification for an account's channel."""
    running = _running()
    kind = request.POST.get("type", "change")
    if kind not in ("change", "profile_disconnected", "verification"):
        kind = "change"
    sub = request.POST.get("sub", "")
    if sub not in running.sim.accounts:
        raise Http404("No such simulated account.")
    _push(request, running, sub, kind)
    return redirect("simulator")
