"""The example site's own pages: what a host project writes around the app.

The user's page ("My conferencing": accounts, profiles, Connect, Relink,
Sync now, Add provider, Unlink) is the app's packaged
``cronofy_conferencing:profiles``, in this site's layout through
``templates/django_cronofy_conferencing/base.html``. What is left here:

- ``simulator_*``: the demo's control page for the simulated Cronofy (only
  while ``manage.py demo`` serves one, for staff).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.providers import provider_label
from django_cronofy_conferencing.testing import NoPushChannel

from . import simulator

logger = logging.getLogger(__name__)


def site_context(request: HttpRequest) -> dict:
    """Template context for every page (a context processor)."""
    return {
        "simulator_running": simulator.current() is not None,
        "cronofy_real": getattr(settings, "CRONOFY_REAL", False),
    }


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
    except NoPushChannel:
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
