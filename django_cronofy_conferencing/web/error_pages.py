"""The browser flow's error and outcome pages: one template, a message the user
can act on, a status that says what happened, and never a token (errors are
redacted before they are logged)."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render, resolve_url
from django.utils.translation import gettext as _

from ..conf import app_settings
from ..cronofy.redaction import redact
from ..exceptions import CronofyError, CronofyUnavailable, RateLimited

logger = logging.getLogger("django_cronofy_conferencing.web.views")

TEMPLATE_ERROR = "django_cronofy_conferencing/error.html"


def error_page(
    request: HttpRequest, title: str, message: str, *, status: int = 400, retry_url: str = ""
) -> HttpResponse:
    """The app's error page (``status`` 200 for outcomes that are no error, like a refusal)."""
    context = {
        "title": title,
        "message": message,
        "retry_url": retry_url,
        "continue_url": resolve_url(app_settings.LINK_REDIRECT_URL),
    }
    return render(request, TEMPLATE_ERROR, context, status=status)


def unknown_data_center(request: HttpRequest, message: str) -> HttpResponse:
    return error_page(request, _("Unknown data center"), message)


def invalid_provider(request: HttpRequest, retry_url: str = "") -> HttpResponse:
    return error_page(
        request,
        _("Unknown provider"),
        _("That conferencing provider name is not valid."),
        retry_url=retry_url,
    )


def over_budget(request: HttpRequest, retry_url: str = "") -> HttpResponse:
    return error_page(
        request,
        _("Too many requests"),
        _("You have made many requests to Cronofy in a short time. Please wait a minute."),
        status=429,
        retry_url=retry_url,
    )


def unavailable(request: HttpRequest, exc: CronofyError, retry_url: str) -> HttpResponse:
    logger.warning("Cronofy call failed in the browser flow: %s", redact(exc))
    if isinstance(exc, CronofyUnavailable | RateLimited):
        return error_page(
            request,
            _("Cronofy is not available"),
            _("Cronofy could not be reached just now. Please try again in a few minutes."),
            status=503,
            retry_url=retry_url,
        )
    return error_page(
        request,
        _("Something went wrong"),
        _("Cronofy sent an answer we could not use. Please try again."),
        status=502,
        retry_url=retry_url,
    )


def denied(request: HttpRequest, retry_url: str) -> HttpResponse:
    return error_page(
        request,
        _("Cronofy was not linked"),
        _(
            "You chose not to give access to your Cronofy account, so nothing was "
            "linked. You can connect it at any time."
        ),
        status=200,
        retry_url=retry_url,
    )
