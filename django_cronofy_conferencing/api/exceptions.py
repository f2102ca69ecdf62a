"""Map the app's ``CronofyError`` hierarchy onto DRF ``APIException`` responses.

========================== ====== =============================================
``CronofyUnavailable``     503    Cronofy down, timing out or unreachable
(a throttle)               429    ``code`` "throttled" (the user's budget, host throttles)
``RateLimited``            429    with ``Retry-After``
``ReauthorizationRequired`` 409   with ``reconnect_url``: where to connect again
other ``CronofyAPIError``  502    Cronofy answered with an error
``InvalidResponse``        502    Cronofy answered something undocumented
========================== ====== =============================================

Bodies carry fixed messages only: never the error text, so never a token. Each
is ``{"detail": ..., "code": ...}`` (the 409 adds ``reconnect_url``), so a client
tells the cases apart by ``code`` whatever the status.
The mapped exceptions go through the host's ``EXCEPTION_HANDLER`` like any
other ``APIException``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException, Throttled

from ..cronofy.applications import NoApplication
from ..exceptions import (
    CronofyAPIError,
    CronofyError,
    CronofyUnavailable,
    InvalidResponse,
    RateLimited,
    ReauthorizationRequired,
)

if TYPE_CHECKING:
    from rest_framework.request import Request

    from ..models import LinkedAccount

#: Seconds sent in ``Retry-After`` when Cronofy did not say how long to wait.
DEFAULT_RETRY_AFTER = 60


class CodedAPIException(APIException):
    """An answer whose body carries its ``code`` beside ``detail``, as the 409's does."""

    def __init__(self, detail=None, code=None) -> None:
        code = code or self.default_code
        text = str(self.default_detail if detail is None else detail)
        super().__init__({"detail": text, "code": code}, code)


class CronofyServiceUnavailable(CodedAPIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = _("Cronofy is unavailable right now. Try again later.")
    default_code = "cronofy_unavailable"


class CronofyRateLimited(CodedAPIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = _("Cronofy's rate limit was reached. Try again later.")
    default_code = "cronofy_rate_limited"

    def __init__(self, wait: float | None = None, detail=None, code=None) -> None:
        super().__init__(detail, code)
        # DRF's exception handler turns ``wait`` into the ``Retry-After`` header.
        self.wait = max(1, math.ceil(wait)) if wait is not None else DEFAULT_RETRY_AFTER


class ThrottledWithCode(Throttled):
    """DRF's 429 for a throttle (the user's budget, or the host's own throttles) with its
    ``code`` beside ``detail``, so every 429 of the API reads the same."""

    default_code = "throttled"

    def __init__(self, wait: float | None = None) -> None:
        text = str(Throttled(wait).detail)  # DRF's words, with "Expected available in ..."
        APIException.__init__(self, {"detail": text, "code": self.default_code}, self.default_code)
        self.wait = math.ceil(wait) if wait is not None else None


class CronofyReauthorizationRequired(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("This Cronofy account must be connected again.")
    default_code = "reauthorization_required"

    def __init__(self, reconnect_url: str | None = None) -> None:
        detail = {"detail": str(self.default_detail), "code": self.default_code}
        if reconnect_url:
            detail["reconnect_url"] = reconnect_url
        super().__init__(detail, self.default_code)


class CronofyBadGateway(CodedAPIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = _("Cronofy answered with an error.")
    default_code = "cronofy_error"


class CronofyInvalidResponse(CronofyBadGateway):
    default_detail = _("Cronofy answered with a response that could not be understood.")
    default_code = "cronofy_invalid_response"


def reconnect_url(request: Request | None, account: LinkedAccount | None) -> str | None:
    """The absolute URL of the browser flow that connects the account's data center again."""
    try:
        path = reverse("cronofy_conferencing:connect")
    except NoReverseMatch:
        return None
    if account is not None:
        path += "?" + urlencode({"data_center": account.data_center})
    return request.build_absolute_uri(path) if request is not None else path


def to_api_exception(exc: CronofyError, *, request=None, account=None) -> APIException | None:
    """The ``APIException`` answering ``exc``, or None for errors that are ours (a 500)."""
    if isinstance(exc, ReauthorizationRequired):
        return CronofyReauthorizationRequired(reconnect_url(request, account))
    if isinstance(exc, RateLimited):
        return CronofyRateLimited(exc.retry_after)
    if isinstance(exc, CronofyUnavailable | NoApplication):
        # NoApplication: this data center's application is gone from the settings (W004).
        return CronofyServiceUnavailable()
    if isinstance(exc, CronofyAPIError):
        return CronofyBadGateway()
    if isinstance(exc, InvalidResponse):
        return CronofyInvalidResponse()
    return None
