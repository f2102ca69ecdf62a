"""OpenTelemetry spans and metrics (the ``otel`` extra: ``opentelemetry-api`` only).

Without ``opentelemetry-api`` every function here does nothing. With it, spans
and measurements go to whatever tracer and meter providers the host set up
(the SDK and an exporter are the host's choice); the providers are looked up
at each use, not at import, so a host that configures OpenTelemetry after
Django started still gets them. Until then the API's no-op providers cost
next to nothing.

What is recorded (names in ``SPAN_*`` and ``METRIC_*``):

- a client span per Cronofy HTTP attempt, with the HTTP semantic conventions
  (``http.request.method``, ``http.response.status_code``, ``server.address``,
  ``server.port``, ``url.scheme``, ``url.template``, ``error.type``,
  ``http.request.resend_count``) and ``cronofy.data_center``;
- a span per account sync (``cronofy.sync_account``), per token refresh and per
  sweep (``cronofy.sync_accounts``, ``cronofy.queue_due_accounts``);
- counters of Cronofy calls (by endpoint and status), of sync outcomes and of
  push notifications (by type and outcome); histograms of call durations and
  of rate-limit waits.

Attributes are chosen, never copied from a request: methods, statuses, hosts,
endpoint templates (ids replaced by ``{placeholders}``, never a query string),
account ids, data centers, exception class names. Never a token, a code, a
secret, an email or a raw URL path.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .. import __version__

try:  # the ``otel`` extra
    from opentelemetry import context as otel_context
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
except ImportError:  # not installed: every function below is a no-op
    otel_context = otel_metrics = otel_trace = None

__all__ = [
    "INSTRUMENTATION_NAME",
    "CronofyCall",
    "current_context",
    "enabled",
    "endpoint_template",
    "mark_error",
    "record_push_notification",
    "record_rate_limit_wait",
    "record_sync",
    "span",
    "traced",
]

INSTRUMENTATION_NAME = "django_cronofy_conferencing"

SPAN_SYNC_ACCOUNT = "cronofy.sync_account"
SPAN_SYNC_ACCOUNTS = "cronofy.sync_accounts"
SPAN_QUEUE_DUE_ACCOUNTS = "cronofy.queue_due_accounts"
SPAN_REFRESH = "cronofy.refresh_access_token"

METRIC_CALLS = "cronofy_conferencing.cronofy.calls"
METRIC_CALL_DURATION = "http.client.request.duration"
METRIC_SYNCS = "cronofy_conferencing.syncs"
METRIC_RATE_LIMIT_WAIT = "cronofy_conferencing.rate_limit.wait"
METRIC_PUSH_NOTIFICATIONS = "cronofy_conferencing.push_notifications"

F = TypeVar("F", bound=Callable[..., Any])


def enabled() -> bool:
    """Whether ``opentelemetry-api`` is installed (what is recorded depends on the host's SDK)."""
    return otel_trace is not None


# -- providers, looked up at each use ------------------------------------------------

_lock = threading.Lock()
_cache: dict[str, tuple[Any, Any]] = {}


def _tracer() -> Any:
    if otel_trace is None:
        return None
    provider = otel_trace.get_tracer_provider()
    cached = _cache.get("tracer")
    if cached is not None and cached[0] is provider:
        return cached[1]
    tracer = provider.get_tracer(INSTRUMENTATION_NAME, __version__)
    with _lock:
        _cache["tracer"] = (provider, tracer)
    return tracer


class _Instruments:
    def __init__(self, meter: Any) -> None:
        self.calls = meter.create_counter(
            METRIC_CALLS, unit="{call}", description="Cronofy API calls by endpoint and status."
        )
        self.call_duration = meter.create_histogram(
            METRIC_CALL_DURATION, unit="s", description="Duration of Cronofy API calls."
        )
        self.syncs = meter.create_counter(
            METRIC_SYNCS, unit="{sync}", description="Account syncs by outcome."
        )
        self.rate_limit_wait = meter.create_histogram(
            METRIC_RATE_LIMIT_WAIT,
            unit="s",
            description="Time a Cronofy call waited for its slot in the application's rate limit.",
        )
        self.push_notifications = meter.create_counter(
            METRIC_PUSH_NOTIFICATIONS,
            unit="{notification}",
            description="Push notifications received, by type and outcome.",
        )


def _instruments() -> _Instruments | None:
    if otel_metrics is None:
        return None
    provider = otel_metrics.get_meter_provider()
    cached = _cache.get("instruments")
    if cached is not None and cached[0] is provider:
        return cached[1]
    instruments = _Instruments(provider.get_meter(INSTRUMENTATION_NAME, __version__))
    with _lock:
        _cache["instruments"] = (provider, instruments)
    return instruments


# -- spans -----------------------------------------------------------------------------


class _NoSpan:
    """What ``span`` yields without OpenTelemetry: accepts everything, records nothing."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        pass

    def is_recording(self) -> bool:
        return False

    def end(self) -> None:
        pass


NO_SPAN = _NoSpan()


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attribute values OpenTelemetry accepts (no None)."""
    return {k: v for k, v in (attributes or {}).items() if v is not None}


def current_context() -> Any:
    """The active context, to carry into a thread (``span(..., context=...)``)."""
    return otel_context.get_current() if otel_context is not None else None


@contextmanager
def span(
    name: str, attributes: Mapping[str, Any] | None = None, *, context: Any = None
) -> Iterator[Any]:
    """An internal span, current inside the block; an exception marks it failed
    (``error.type``: the class name, never the message) and propagates."""
    tracer = _tracer()
    if tracer is None:
        yield NO_SPAN
        return
    token = otel_context.attach(context) if context is not None else None
    try:
        with tracer.start_as_current_span(
            name,
            attributes=_clean(attributes),
            record_exception=False,
            set_status_on_exception=False,
        ) as current:
            try:
                yield current
            except BaseException as exc:
                mark_error(current, type(exc).__name__)
                raise
    finally:
        if token is not None:
            otel_context.detach(token)


def mark_error(current: Any, error_type: str) -> None:
    """Mark a span failed with ``error.type`` (a class name or a status code)."""
    if otel_trace is None or not current.is_recording():
        return
    current.set_attribute("error.type", error_type)
    current.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, error_type))


def traced(name: str, attributes: Callable[..., Mapping[str, Any]] | None = None) -> Callable:
    """Decorate a function with a span; ``attributes(*args, **kwargs)`` gives its attributes."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if otel_trace is None:
                return function(*args, **kwargs)
            with span(name, attributes(*args, **kwargs) if attributes else None):
                return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


# -- Cronofy calls -----------------------------------------------------------------------

# Path segments that are ids: replaced in ``url.template`` (and the calls metric) so that
# neither an id (a calendar id may be an email address) nor a cardinality explosion gets in.
_ID_AFTER = {"calendars": "{calendar_id}", "channels": "{channel_id}"}
# Cronofy's ids: a three-letter prefix (``cal_``, ``pro_``, ``chn_``, ``acc_``...), or digits;
# anything with ``@`` or an escape is treated as one too.
_ID_LIKE = re.compile(r"^(?:[a-z]{3}_[A-Za-z0-9_-]{4,}|\d+|.*[@%].*)$")


def endpoint_template(path: str) -> str:
    """``/v1/calendars/cal_123/events?tzid=...`` -> ``/v1/calendars/{calendar_id}/events``."""
    segments = urlsplit(path).path.split("/")
    template = []
    for index, segment in enumerate(segments):
        previous = segments[index - 1] if index else ""
        if previous in _ID_AFTER and segment:
            template.append(_ID_AFTER[previous])
        elif segment and _ID_LIKE.match(segment):
            template.append("{id}")
        else:
            template.append(segment)
    return "/".join(template) or "/"


class CronofyCall:
    """One HTTP attempt to Cronofy: a client span and its metrics (``start``, then ``end``)."""

    __slots__ = ("attributes", "span", "started")

    def __init__(self, attributes: dict[str, Any], current: Any, started: float) -> None:
        self.attributes = attributes
        self.span = current
        self.started = started

    @classmethod
    def start(
        cls, method: str, path: str, api_url: str, data_center: str, attempt: int = 0
    ) -> CronofyCall:
        parts = urlsplit(api_url)
        template = endpoint_template(path)
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "server.address": parts.hostname or "",
            "server.port": parts.port or (443 if parts.scheme == "https" else 80),
            "url.scheme": parts.scheme,
            "url.template": template,
            "cronofy.data_center": data_center,
        }
        if attempt:
            attributes["http.request.resend_count"] = attempt
        tracer = _tracer()
        current = NO_SPAN
        if tracer is not None:
            current = tracer.start_span(
                f"{method} {template}",
                kind=otel_trace.SpanKind.CLIENT,
                attributes=attributes,
            )
        return cls(attributes, current, time.monotonic())

    def end(self, *, status_code: int | None = None, error: BaseException | None = None) -> None:
        """End the attempt: its status code (any answer) and/or the error it ends in."""
        if status_code is not None:
            self.span.set_attribute("http.response.status_code", status_code)
        error_type = None
        if error is not None:
            error_type = type(error).__name__
        elif status_code is not None and status_code >= 400:
            error_type = str(status_code)
        if error_type is not None:
            mark_error(self.span, error_type)
        self.span.end()
        instruments = _instruments()
        if instruments is None:
            return
        attributes = {
            "http.request.method": self.attributes["http.request.method"],
            "server.address": self.attributes["server.address"],
            "url.template": self.attributes["url.template"],
            "cronofy.data_center": self.attributes["cronofy.data_center"],
        }
        if status_code is not None:
            attributes["http.response.status_code"] = status_code
        if error_type is not None:
            attributes["error.type"] = error_type
        instruments.calls.add(1, attributes)
        instruments.call_duration.record(time.monotonic() - self.started, attributes)


# -- metrics -----------------------------------------------------------------------------


def record_rate_limit_wait(seconds: float | None, data_center: str) -> None:
    """How long a call waited for its rate-limit slot (0 when it did not wait)."""
    instruments = _instruments()
    if instruments is not None:
        wait = max(0.0, float(seconds or 0.0))
        instruments.rate_limit_wait.record(wait, {"cronofy.data_center": data_center})


def record_sync(outcome: str, error: BaseException | None = None) -> None:
    """One account sync: ``changed``, ``unchanged`` or ``failed`` (with ``error.type``)."""
    instruments = _instruments()
    if instruments is None:
        return
    attributes = {"cronofy.sync.outcome": outcome}
    if error is not None:
        attributes["error.type"] = type(error).__name__
    instruments.syncs.add(1, attributes)


def record_push_notification(notification_type: str, outcome: str) -> None:
    """One push notification answered; ``notification_type`` from a bounded set."""
    instruments = _instruments()
    if instruments is not None:
        instruments.push_notifications.add(
            1,
            {
                "cronofy.notification.type": notification_type,
                "cronofy.notification.outcome": outcome,
            },
        )
