"""Browser flow: link a Cronofy account (connect, callback), add a conferencing provider.

Mounted by the host with ``path("cronofy/", include("django_cronofy_conferencing.urls"))``.
Every page extends ``django_cronofy_conferencing/base.html``, which a host
project overrides to put them in its own layout. No page, message or log
line carries a token.

No GET changes anything: starting a flow (``connect``, conferencing connect)
is a POST (CSRF protected), and the one GET that calls Cronofy, the return
from Cronofy's conferencing page, does so once per flow the user started (a
single-use value in its URL). Every view that calls Cronofy spends from the
user's budget (``userlimits``).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods

from ..accounts import linking
from ..accounts import state as oauth_state
from ..conf import app_settings
from ..cronofy import userlimits
from ..cronofy.applications import linkable_data_centers
from ..cronofy.datacenters import UnknownDataCenter
from ..cronofy.redaction import redact
from ..db import non_atomic_requests
from ..exceptions import CronofyError, InvalidGrant, ReauthorizationRequired
from ..models import LinkedAccount
from ..providers import LINKABLE_PROVIDER_CHOICES, provider_label
from ..sync.service import sync_account
from ..wording import words
from .error_pages import (
    TEMPLATE_ERROR,
    denied,
    error_page,
    invalid_provider,
    over_budget,
    unavailable,
    unknown_data_center,
)

logger = logging.getLogger(__name__)

__all__ = [
    "TEMPLATE_CONFERENCING_CONNECT",
    "TEMPLATE_CONNECT",
    "TEMPLATE_ERROR",  # in error_pages; importable from here as before
    "callback",
    "conferencing_connect",
    "conferencing_return",
    "conferencing_return_url",
    "connect",
]

TEMPLATE_CONFERENCING_CONNECT = "django_cronofy_conferencing/conferencing_connect.html"
TEMPLATE_CONNECT = "django_cronofy_conferencing/connect.html"

# Cronofy's provider names are short lowercase identifiers (zoom, ms_teams, go_to, ...).
_PROVIDER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}\Z")  # not "$": it allows a final newline
_PROFILE_ID = re.compile(r"^[\x21-\x7e]{1,255}\Z")


def _connect_url(data_center: str = "", provider_name: str = "") -> str:
    url = reverse("cronofy_conferencing:connect")
    params = {"data_center": data_center, "provider_name": provider_name}
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{url}?{query}" if query else url


#: A longer ``next`` is ignored: it is kept in the session with each pending state.
MAX_NEXT_URL = 2048


def _safe_next(request: HttpRequest, value: str | None) -> str:
    if (
        value
        and len(value) <= MAX_NEXT_URL
        and url_has_allowed_host_and_scheme(
            value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    ):
        return value
    return ""


#: What the request shows instead of the authorization code once the callback has it
#: (the mask Django's exception reports use).
WITHHELD = "********************"


def _take_code(request: HttpRequest) -> str | None:
    """The callback's ``code``, then withheld from the request itself.

    An error report of this request (Django's technical 500 page, the
    ``AdminEmailHandler`` mail, an error tracker) shows its query string three
    times: ``GET``, ``META["QUERY_STRING"]`` and the URL (the request's repr in
    every frame). No reporter filter reaches all three, so once read, the code
    leaves the request: ``GET`` and the query string carry ``WITHHELD`` instead.
    """
    code = request.GET.get("code")
    if code is None:
        return None
    query = request.GET.copy()
    query.setlist("code", [WITHHELD])
    masked = query.urlencode(safe="*")
    request.META["QUERY_STRING"] = masked
    request.GET = QueryDict(masked, encoding=request.encoding)
    return code


def _provider_name(value: str | None) -> str | None:
    """'' when absent, None when present but not a plausible provider name."""
    if not value:
        return ""
    return value if _PROVIDER_NAME.match(value) else None


# -- linking an account -------------------------------------------------------


@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def connect(request: HttpRequest) -> HttpResponse:
    """GET: a page with a button; POST (CSRF protected): off to Cronofy's authorization page.

    ``data_center`` (default ``DEFAULT_DATA_CENTER``), optional
    ``provider_name`` (passed on to Cronofy) and ``next`` (a local URL to land
    on afterwards instead of ``LINK_REDIRECT_URL``), from the query string on
    GET and the form on POST. Only the POST issues an OAuth ``state``, so
    another site cannot start flows in a user's session (each one would push
    out a pending state of the user's own).
    """
    params = request.POST if request.method == "POST" else request.GET
    dc_id = params.get("data_center") or app_settings.DEFAULT_DATA_CENTER
    linkable = linkable_data_centers()
    dc = linkable.get(dc_id) if isinstance(dc_id, str) else None
    if dc is None:
        # Unknown, or known but without a Cronofy application here: refused before
        # any redirect, and nothing is stored.
        known = ", ".join(linkable) or _("none is configured")
        return unknown_data_center(
            request,
            _(
                "Accounts cannot be linked from that Cronofy data center here. "
                "Choose one of: %(known)s."
            )
            % {"known": known},
        )
    provider_name = _provider_name(params.get("provider_name"))
    if provider_name is None:
        return invalid_provider(request)
    next_url = _safe_next(request, params.get("next"))
    if request.method != "POST":
        context = {"data_center": dc, "provider_name": provider_name, "next_url": next_url}
        return render(request, TEMPLATE_CONNECT, context)
    redirect_uri = request.build_absolute_uri(reverse("cronofy_conferencing:callback"))
    state = oauth_state.issue(
        request,
        data_center=dc.id,
        redirect_uri=redirect_uri,
        provider_name=provider_name,
        next_url=next_url,
    )
    url = linking.authorization_url(
        dc, redirect_uri=redirect_uri, state=state, provider_name=provider_name or None
    )
    return HttpResponseRedirect(url)


@non_atomic_requests  # calls Cronofy (code exchange, first sync): no request transaction
@sensitive_variables("code", "tokens")
@never_cache
@login_required
@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    """Cronofy sends the browser back here with ``code`` and ``state`` (or ``error``)."""
    code = _take_code(request)
    error = request.GET.get("error")
    # Counted before the state is used up: the user may reload this page a
    # minute later (the code lasts ten). No link to it: it carries the code.
    calls_cronofy = not error and code and request.GET.get("state")
    if calls_cronofy and not userlimits.allow(request.user, "oauth_callback"):
        return over_budget(request)
    try:
        pending = oauth_state.consume(request, request.GET.get("state"))
    except oauth_state.InvalidState as exc:
        if error == "access_denied":
            # Harmless whatever the state: nothing is stored, the user is told.
            return denied(request, _connect_url())
        logger.info("Cronofy OAuth callback refused: %s", exc)
        return error_page(
            request,
            _("This link has expired"),
            _(
                "This Cronofy authorization was already used, has expired, or was "
                "started in another browser session. Nothing was linked. Please start again."
            ),
            retry_url=_connect_url(),
        )
    retry_url = _connect_url(pending.data_center, pending.provider_name)
    not_linked = _("Cronofy could not link your account")
    if error:
        if error == "access_denied":
            return denied(request, retry_url)
        logger.info("Cronofy OAuth callback with error %r", redact(error)[:64])
        return error_page(
            request,
            not_linked,
            _("Cronofy did not complete the authorization. Nothing was linked."),
            retry_url=retry_url,
        )
    if not code or len(code) > 512:
        return error_page(
            request,
            not_linked,
            _("Cronofy sent no authorization code. Nothing was linked."),
            retry_url=retry_url,
        )
    try:
        dc = linkable_data_centers().get(pending.data_center)
        if dc is None:
            raise UnknownDataCenter(pending.data_center)
        tokens = linking.exchange_code(dc.id, code, pending.redirect_uri)
        result = linking.link_account(request.user, dc, tokens)
    except UnknownDataCenter:
        return unknown_data_center(
            request, _("That Cronofy data center is no longer configured. Nothing was linked.")
        )
    except InvalidGrant:
        return error_page(
            request,
            _("This link has expired"),
            _(
                "Cronofy did not accept the authorization code (it expires after "
                "10 minutes and works once). Nothing was linked. Please start again."
            ),
            retry_url=retry_url,
        )
    except linking.AccountLinkConflict as exc:
        return error_page(request, _("Account already linked"), str(exc), status=409)
    except CronofyError as exc:
        return unavailable(request, exc, retry_url)

    account = result.account
    label = account.email or account.name or account.sub
    if result.sync_error is None:
        messages.success(
            request,
            _("Your %(noun)s %(account)s is linked.") % {"noun": words().account, "account": label},
        )
    else:
        messages.warning(
            request,
            _(
                "Your %(noun)s %(account)s is linked, but its conferencing "
                "profiles could not be loaded yet. They will be loaded on the next sync."
            )
            % {"noun": words().account, "account": label},
        )
    return HttpResponseRedirect(pending.next_url or resolve_url(app_settings.LINK_REDIRECT_URL))


# -- conferencing providers ---------------------------------------------------


def _own_account(request: HttpRequest, account_id: int) -> LinkedAccount:
    return get_object_or_404(LinkedAccount.objects.for_user(request.user), pk=account_id)


@non_atomic_requests  # POST calls Cronofy: no request transaction
@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def conferencing_connect(request: HttpRequest, account_id: int) -> HttpResponse:
    """GET: a form; POST (CSRF protected): send the browser to Cronofy to add a provider."""
    account = _own_account(request, account_id)
    if request.method != "POST":
        return render(
            request,
            TEMPLATE_CONFERENCING_CONNECT,
            {"account": account, "providers": LINKABLE_PROVIDER_CHOICES},
        )
    provider_name = _provider_name(request.POST.get("provider_name"))
    if provider_name is None:
        return invalid_provider(
            request, reverse("cronofy_conferencing:conferencing_connect", args=[account.pk])
        )
    retry_url = reverse("cronofy_conferencing:conferencing_connect", args=[account.pk])
    if not userlimits.allow(request.user, "conferencing_authorization"):
        return over_budget(request, retry_url)
    redirect_uri = conferencing_return_url(request, account)
    try:
        url = linking.create_conferencing_authorization(
            account, redirect_uri, provider_name or None
        )
    except ReauthorizationRequired:
        return error_page(
            request,
            _("Connect Cronofy again"),
            _(
                "Cronofy no longer accepts this account's authorization. Connect your "
                "Cronofy account again, then add the conferencing provider."
            ),
            status=409,
            retry_url=_connect_url(account.data_center),
        )
    except CronofyError as exc:
        return unavailable(request, exc, retry_url)
    return HttpResponseRedirect(url)


def conferencing_return_url(request: HttpRequest, account: LinkedAccount) -> str:
    """The absolute URL Cronofy sends the browser back to, with a new single-use flow value."""
    flow = oauth_state.issue_return(request.user, account.pk)
    return request.build_absolute_uri(
        reverse("cronofy_conferencing:conferencing_return", args=[account.pk, flow])
    )


@non_atomic_requests  # syncs from Cronofy: no request transaction
@never_cache
@login_required
@require_GET
def conferencing_return(request: HttpRequest, account_id: int, flow: str = "") -> HttpResponse:
    """Cronofy sends the browser back with ``last_linked_profile_id`` or ``error``.

    Syncs the account once per flow: ``flow`` is the single-use value issued
    when the user started it. Without one (reused, forged, expired, or a
    return URL from before this value existed) nothing is called or written:
    the profile appears at the next sync.
    """
    account = _own_account(request, account_id)
    retry_url = reverse("cronofy_conferencing:conferencing_connect", args=[account.pk])
    title = _("No conferencing provider was added")
    error = request.GET.get("error")
    if error == "access_denied":
        message = _(
            "You chose not to connect a conferencing provider. You can add one at any time."
        )
        return error_page(request, title, message, status=200, retry_url=retry_url)
    if error:
        message = _("Cronofy did not complete the connection.")
        return error_page(request, title, message, retry_url=retry_url)
    profile_id = request.GET.get("last_linked_profile_id", "")
    if not _PROFILE_ID.match(profile_id):
        message = _("Cronofy did not say which conferencing profile was added.")
        return error_page(request, title, message, retry_url=retry_url)
    if not oauth_state.consume_return(request.user, account.pk, flow) or not userlimits.allow(
        request.user, "conferencing_return"
    ):
        messages.info(
            request,
            _("Your conferencing provider was connected. It will appear after the next sync."),
        )
        return HttpResponseRedirect(resolve_url(app_settings.LINK_REDIRECT_URL))
    try:
        sync_account(account)
    except CronofyError as exc:
        logger.warning(
            "Sync after linking a conferencing profile failed for account %s: %s",
            account.pk,
            redact(exc),
        )
        messages.warning(
            request,
            _(
                "Your conferencing provider was connected, but it could not be loaded "
                "yet. It will appear after the next sync."
            ),
        )
        return HttpResponseRedirect(resolve_url(app_settings.LINK_REDIRECT_URL))
    profile = account.conferencing_profiles.present().filter(profile_id=profile_id).first()
    if profile is None:
        messages.info(
            request,
            _("Your conferencing provider was connected. It will appear after the next sync."),
        )
    else:
        messages.success(
            request,
            _("%(provider)s profile %(name)s is connected.")
            % {
                "provider": provider_label(profile.provider_name),
                "name": profile.profile_name or profile.profile_id,
            },
        )
    return HttpResponseRedirect(resolve_url(app_settings.LINK_REDIRECT_URL))
