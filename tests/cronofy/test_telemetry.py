"""OpenTelemetry (``cronofy/telemetry.py``, the ``otel`` extra) with the SDK's in-memory
exporters (a test dependency only): spans and attributes of a sync, a refresh, a 401
retry, an error and a sweep; the metrics; no secret in any attribute; a provider set
after import is used; and without ``opentelemetry`` nothing breaks."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
)
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from django_cronofy_conferencing.cronofy import telemetry
from django_cronofy_conferencing.sync import sync_account, sync_accounts

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


class Collecting(SpanProcessor):
    """Hands finished spans to the exporter only while a test of this module runs (the
    provider stays set for the rest of the session: OpenTelemetry allows one)."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter
        self.active = False

    def on_end(self, span) -> None:
        if self.active:
            self.exporter.export([span])


_installed: dict[str, object] = {}


def install_providers() -> tuple[Collecting, InMemoryMetricReader]:
    """The host's part: an SDK provider for traces and one for metrics, set once, after
    the app was imported (it looks them up when it records)."""
    if not _installed:
        processor = Collecting(InMemorySpanExporter())
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(processor)
        trace.set_tracer_provider(tracer_provider)
        reader = InMemoryMetricReader(
            preferred_temporality={
                Counter: AggregationTemporality.DELTA,
                Histogram: AggregationTemporality.DELTA,
            }
        )
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _installed.update(processor=processor, reader=reader)
    assert trace.get_tracer_provider() is not None
    return _installed["processor"], _installed["reader"]  # type: ignore[return-value]


class Recorded:
    def __init__(self, processor: Collecting, reader: InMemoryMetricReader) -> None:
        self.processor = processor
        self.reader = reader

    def spans(self, name: str | None = None) -> list:
        found = list(self.processor.exporter.get_finished_spans())
        return [s for s in found if name is None or s.name == name]

    def points(self, metric: str) -> list[tuple[dict, float]]:
        """(attributes, value) of each data point of ``metric`` since the last call."""
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name != metric:
                        continue
                    for point in item.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:
                            value = point.count
                        found.append((dict(point.attributes), value))
        return found

    def all_points(self) -> list[tuple[str, dict]]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    for point in item.data.data_points:
                        found.append((item.name, dict(point.attributes)))
        return found


@pytest.fixture
def otel():
    processor, reader = install_providers()
    processor.exporter.clear()
    reader.get_metrics_data()  # drop what other tests recorded (delta temporality)
    processor.active = True
    yield Recorded(processor, reader)
    processor.active = False
    processor.exporter.clear()


def by_id(spans) -> dict:
    return {span.context.span_id: span for span in spans}


def parent_of(span, spans):
    return by_id(spans).get(span.parent.span_id) if span.parent else None


# -- spans ----------------------------------------------------------------------------------


def test_a_sync(otel, sim, link_account):
    account, _ = link_account(email="a.person@example.com", conferencing_profiles=[sim.profile()])
    sync_account(account)
    [call] = otel.spans("GET /v1/userinfo")
    [sync] = otel.spans(telemetry.SPAN_SYNC_ACCOUNT)
    assert call.kind == SpanKind.CLIENT
    assert parent_of(call, otel.spans()) is sync
    assert dict(call.attributes) == {
        "http.request.method": "GET",
        "http.response.status_code": 200,
        "server.address": "api.cronofy.com",
        "server.port": 443,
        "url.scheme": "https",
        "url.template": "/v1/userinfo",
        "cronofy.data_center": "us",
    }
    assert call.status.status_code == StatusCode.UNSET
    assert dict(sync.attributes) == {
        "cronofy.account.id": account.pk,
        "cronofy.data_center": "us",
        "cronofy.sync.outcome": "changed",
    }
    sync_account(account)  # nothing new at Cronofy
    assert otel.spans(telemetry.SPAN_SYNC_ACCOUNT)[-1].attributes["cronofy.sync.outcome"] == (
        "unchanged"
    )


def test_a_refresh(otel, sim, link_account):
    account, _ = link_account(token_expires_in=60)  # within TOKEN_REFRESH_MARGIN
    sync_account(account)
    spans = otel.spans()
    [sync] = otel.spans(telemetry.SPAN_SYNC_ACCOUNT)
    [refresh] = otel.spans(telemetry.SPAN_REFRESH)
    [token] = otel.spans("POST /oauth/token")
    [userinfo] = otel.spans("GET /v1/userinfo")
    assert parent_of(refresh, spans) is sync
    assert parent_of(token, spans) is refresh
    assert parent_of(userinfo, spans) is sync
    assert token.attributes["http.response.status_code"] == 200
    assert token.attributes["url.template"] == "/oauth/token"
    assert dict(refresh.attributes) == {
        "cronofy.account.id": account.pk,
        "cronofy.data_center": "us",
    }
    assert token.end_time <= userinfo.start_time  # refreshed first


def test_a_401_retry(otel, sim, link_account):
    account, sim_account = link_account()
    sim.expire_access_token(sim_account.sub)
    sync_account(account)
    names = [s.name for s in sorted(otel.spans(), key=lambda s: s.start_time)]
    assert names == [
        telemetry.SPAN_SYNC_ACCOUNT,
        "GET /v1/userinfo",
        telemetry.SPAN_REFRESH,
        "POST /oauth/token",
        "GET /v1/userinfo",
    ]
    rejected, accepted = otel.spans("GET /v1/userinfo")
    assert rejected.attributes["http.response.status_code"] == 401
    assert rejected.attributes["error.type"] == "AccessTokenRejected"
    assert rejected.status.status_code == StatusCode.ERROR
    assert accepted.attributes["http.response.status_code"] == 200
    assert "error.type" not in accepted.attributes
    [sync] = otel.spans(telemetry.SPAN_SYNC_ACCOUNT)
    assert sync.status.status_code == StatusCode.UNSET
    assert sync.attributes["cronofy.sync.outcome"] == "unchanged"  # no profile to change


def test_an_error(otel, sim, link_account):
    from django_cronofy_conferencing.exceptions import CronofyUnavailable

    account, _ = link_account()
    sim.fail("userinfo", status=503, times=None)
    with pytest.raises(CronofyUnavailable):
        sync_account(account)
    attempts = otel.spans("GET /v1/userinfo")
    assert len(attempts) == 4  # MAX_RETRIES = 3
    assert [a.attributes.get("http.request.resend_count") for a in attempts] == [None, 1, 2, 3]
    for attempt in attempts:
        assert attempt.attributes["http.response.status_code"] == 503
        assert attempt.attributes["error.type"] == "CronofyUnavailable"
        assert attempt.status.status_code == StatusCode.ERROR
        assert attempt.events == ()  # no exception event: its message is not an attribute
    [sync] = otel.spans(telemetry.SPAN_SYNC_ACCOUNT)
    assert sync.attributes["error.type"] == "CronofyUnavailable"
    assert sync.attributes["cronofy.sync.outcome"] == "failed"
    assert sync.status.status_code == StatusCode.ERROR
    assert otel.points(telemetry.METRIC_SYNCS) == [
        ({"cronofy.sync.outcome": "failed", "error.type": "CronofyUnavailable"}, 1)
    ]


def test_a_connection_error_has_no_status_code(otel, sim, link_account):
    import requests

    from django_cronofy_conferencing.exceptions import CronofyUnavailable

    account, _ = link_account()
    sim.fail("userinfo", exception=requests.ConnectionError("refused"), times=None)
    with pytest.raises(CronofyUnavailable):
        sync_account(account)
    for attempt in otel.spans("GET /v1/userinfo"):
        assert "http.response.status_code" not in attempt.attributes
        assert attempt.attributes["error.type"] == "CronofyUnavailable"


def test_a_sweep(otel, sim, link_account):
    accounts = [link_account(conferencing_profiles=[sim.profile()])[0] for _ in range(3)]
    report = sync_accounts(accounts, concurrency=2)
    assert report.synced == 3
    spans = otel.spans()
    [sweep] = otel.spans(telemetry.SPAN_SYNC_ACCOUNTS)
    assert sweep.attributes["cronofy.accounts.synced"] == 3
    assert sweep.attributes["cronofy.accounts.failed"] == 0
    per_account = otel.spans(telemetry.SPAN_SYNC_ACCOUNT)
    assert sorted(s.attributes["cronofy.account.id"] for s in per_account) == sorted(
        a.pk for a in accounts
    )
    for span in per_account:  # fetched in threads, still children of the sweep
        assert parent_of(span, spans) is sweep
    for call in otel.spans("GET /v1/userinfo"):
        assert parent_of(call, spans).name == telemetry.SPAN_SYNC_ACCOUNT
    assert otel.points(telemetry.METRIC_SYNCS) == [({"cronofy.sync.outcome": "changed"}, 3)]


def test_a_queued_sweep(otel, link_account, django_capture_on_commit_callbacks):
    from django_cronofy_conferencing.queueing.jobs import fan_out_due

    link_account()
    queued = []
    with django_capture_on_commit_callbacks(execute=True):
        fan_out_due(None, lambda pk, stamp: queued.append(pk))
    [span] = otel.spans(telemetry.SPAN_QUEUE_DUE_ACCOUNTS)
    assert span.attributes["cronofy.accounts.queued"] == len(queued) == 1


# -- metrics --------------------------------------------------------------------------------


def test_calls_by_endpoint_and_status(otel, sim, link_account):
    account, _ = link_account()
    sync_account(account)
    sim.fail("userinfo", status=503, times=1)
    sync_account(account)
    calls = otel.points(telemetry.METRIC_CALLS)
    base = {
        "http.request.method": "GET",
        "server.address": "api.cronofy.com",
        "url.template": "/v1/userinfo",
        "cronofy.data_center": "us",
    }
    assert sorted(calls, key=lambda p: p[0]["http.response.status_code"]) == [
        ({**base, "http.response.status_code": 200}, 2),
        ({**base, "http.response.status_code": 503, "error.type": "CronofyUnavailable"}, 1),
    ]


def test_rate_limit_waits(otel, sim, link_account, settings_with):
    account, _ = link_account()
    with settings_with(RATE_LIMITS=["100000/s"]):
        sync_account(account)
    [(attributes, count)] = otel.points(telemetry.METRIC_RATE_LIMIT_WAIT)
    assert attributes == {"cronofy.data_center": "us"} and count == 1


def test_push_notifications_by_type_and_outcome(otel, sim, link_account, settings_with):
    from django.test import Client

    from django_cronofy_conferencing.accounts import linking

    account, sim_account = link_account()
    with settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL="https://example.com/n/"):
        linking.ensure_push_channel(account)
        body, headers = sim.notification(sim_account.sub, "change")
        client = Client()
        for signature in (headers["Cronofy-HMAC-SHA256"], "d3Jvbmc="):
            client.post(
                "/cronofy/notifications/",
                data=body,
                content_type="application/json",
                HTTP_CRONOFY_HMAC_SHA256=signature,
            )
        forged_type = json.dumps({"notification": {"type": "x" * 200}}).encode()
        client.post("/cronofy/notifications/", data=forged_type, content_type="application/json")
    points = sorted(
        (a["cronofy.notification.type"], a["cronofy.notification.outcome"], v)
        for a, v in otel.points(telemetry.METRIC_PUSH_NOTIFICATIONS)
    )
    # A forger's type never becomes a metric attribute: bounded cardinality.
    assert points == [("change", "resynced", 1), ("unverified", "refused", 2)]


# -- no secret in any attribute -------------------------------------------------------------


def test_no_secret_token_code_or_email_in_any_attribute(otel, sim, link_account, scanner, user):
    """A link (code exchange), a refresh, a 401, errors, an event read with a query string,
    an upsert to a calendar whose id is an email: every attribute of every span, event and
    metric point is scanned."""
    from django_cronofy_conferencing.accounts import linking
    from django_cronofy_conferencing.cronofy.client import get_client
    from django_cronofy_conferencing.exceptions import CronofyError

    email = "secret.person@example.com"
    sim_account = sim.add_account(email=email, conferencing_profiles=[sim.profile()])
    redirect = "https://example.com/cronofy/callback/"
    url = linking.authorization_url("us", redirect_uri=redirect, state="state-value-123")
    code = dict(
        p.split("=") for p in sim.authorize(url, account=sim_account).split("?")[1].split("&")
    )["code"]
    tokens = linking.exchange_code("us", code, redirect)
    result = linking.link_account(user, "us", tokens)
    account = result.account
    sim.expire_access_token(sim_account.sub)
    sync_account(account)
    account.refresh_from_db()
    client = get_client("us")
    token = account.access_token
    with contextlib.suppress(CronofyError):
        client.read_events(token, from_date="2025-01-01", include_managed="true")
    with contextlib.suppress(CronofyError):
        client.upsert_event(token, email, {"event_id": "e1", "summary": "x"})
    sim.fail("userinfo", status=500, times=None, body=json.dumps({"echo": token, "email": email}))
    with pytest.raises(CronofyError):
        sync_account(account)
    secrets = scanner.secrets() | {code, email, sim_account.sub, "state-value-123"}
    spans = otel.spans()
    assert len(spans) >= 8
    texts = []
    for span in spans:
        texts.append(span.name)
        texts.append(json.dumps(dict(span.attributes), default=str))
        texts.append(str(span.status.description))
        for event in span.events:
            texts.append(event.name + json.dumps(dict(event.attributes), default=str))
        if "url.template" in span.attributes:
            assert "?" not in span.attributes["url.template"]
    for name, attributes in otel.all_points():
        texts.append(name + json.dumps(attributes, default=str))
    everything = "\n".join(texts)
    for secret in secrets:
        assert secret not in everything, "a secret, code or email reached OpenTelemetry"
    assert "/v1/calendars/{calendar_id}/events" in everything
    assert "/v1/events" in everything


@pytest.mark.parametrize(
    "path,template",
    [
        ("/v1/userinfo", "/v1/userinfo"),
        ("/v1/events?tzid=Etc/UTC&from=2025-01-01", "/v1/events"),
        ("/v1/calendars/cal_n23kjnwrw2/events", "/v1/calendars/{calendar_id}/events"),
        ("/v1/calendars/someone%40example.com/events", "/v1/calendars/{calendar_id}/events"),
        ("/v1/channels/chn_54794b4c", "/v1/channels/{channel_id}"),
        ("/v1/conferencing_service_authorizations", "/v1/conferencing_service_authorizations"),
        ("/v1/free_busy", "/v1/free_busy"),
        ("/v1/things/someone@example.com", "/v1/things/{id}"),
        ("/oauth/token/revoke", "/oauth/token/revoke"),
    ],
)
def test_endpoint_templates(path, template):
    assert telemetry.endpoint_template(path) == template


# -- the provider is looked up when used; without the extra, nothing breaks ---------------


def run_script(*parts: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    script = "\n".join(textwrap.dedent(part) for part in parts)
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SYNC_ONE = """
    def sync_one():
        from django.utils import timezone
        from django_cronofy_conferencing.models import LinkedAccount
        from django_cronofy_conferencing.sync import sync_account
        from django_cronofy_conferencing.testing import simulated_cronofy
        with simulated_cronofy() as sim:
            remote = sim.add_account(conferencing_profiles=[sim.profile("zoom")])
            account = LinkedAccount.objects.create(
                data_center="us", sub=remote.sub, access_token=remote.access_token,
                refresh_token=remote.refresh_token,
                token_expires_at=timezone.now() + timezone.timedelta(hours=1))
            return sync_account(account)
"""


def test_a_provider_set_after_import_gets_spans():
    completed = run_script(
        """
        import os
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        import django
        django.setup()
        from django.core.management import call_command
        call_command("migrate", verbosity=0)
        """,
        SYNC_ONE,
        """
        sync_one()  # no provider yet: the API's no-op
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)  # the host configures it late
        sync_one()
        print(sorted(span.name for span in exporter.get_finished_spans()))
        """,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip() == "['GET /v1/userinfo', 'cronofy.sync_account']"


def test_the_app_works_without_opentelemetry():
    """Every module imports, the checks pass, a sync, the status and the push receiver
    run, with opentelemetry unimportable (the ``otel`` extra not installed)."""
    completed = run_script(
        """
        import importlib, os, pkgutil, sys
        sys.modules["opentelemetry"] = None  # import opentelemetry -> ImportError
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        import django
        django.setup()
        import django_cronofy_conferencing as app
        for info in pkgutil.walk_packages(app.__path__, app.__name__ + "."):
            importlib.import_module(info.name)
        from django_cronofy_conferencing.cronofy import telemetry
        assert not telemetry.enabled()
        from django.core.management import call_command
        call_command("check")
        call_command("migrate", verbosity=0)
        """,
        SYNC_ONE,
        """
        print("sync:", sync_one().created)
        from django.test import Client
        answer = Client().post("/cronofy/notifications/", data=b"{}",
                               content_type="application/json")
        print("push:", answer.status_code)
        call_command("cronofy_status", "--json")
        """,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "sync: 1" in completed.stdout
    assert "push: 401" in completed.stdout
    assert '"accounts"' in completed.stdout
