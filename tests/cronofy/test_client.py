"""CronofyClient: retries, backoff, Retry-After, error mapping; faults through sync_account;
sessions that read the environment (proxies, CA bundle) once, not per request."""

from __future__ import annotations

import email.utils
import json
import random
import time

import pytest
import requests

from django_cronofy_conferencing import exceptions
from django_cronofy_conferencing.accounts import linking
from django_cronofy_conferencing.cronofy.client import (
    USER_AGENT,
    CronofyClient,
    client_credentials,
    get_client,
)
from django_cronofy_conferencing.cronofy.datacenters import UnknownDataCenter
from django_cronofy_conferencing.cronofy.errors import ERROR_BODY_LIMIT
from django_cronofy_conferencing.cronofy.transport import new_session, parse_retry_after
from django_cronofy_conferencing.exceptions import (
    AccessTokenRejected,
    CronofyAPIError,
    CronofyUnavailable,
    CronofyValidationError,
    InvalidGrant,
    InvalidResponse,
    RateLimited,
    ReauthorizationRequired,
)
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import SyncResult, sync_account

BACKOFF = 0.5  # tests/settings.py RETRY_BACKOFF
MAX_RETRIES = 3  # the default


def assert_backoff(delays: list[float], backoff: float = BACKOFF) -> None:
    """Each delay is in [half, all] of backoff * 2**attempt (exponential, with jitter)."""
    for attempt, delay in enumerate(delays):
        ceiling = backoff * 2**attempt
        assert ceiling / 2 <= delay <= ceiling, (attempt, delay)


def stored(account) -> list[tuple]:
    return list(
        ConferencingProfile.objects.filter(account=account)
        .order_by("profile_id")
        .values_list("profile_id", "profile_connected", "profile_relink_url", "removed_at")
    )


@pytest.fixture
def synced_before_faults(link_account, sim):
    """An account with two profiles, synced_before_faults once; faults are injected after."""
    account, sim_account = link_account(
        conferencing_profiles=[
            sim.profile("zoom", profile_id="pro_a"),
            sim.profile("go_to", profile_id="pro_b", connected=False),
        ]
    )
    sync_account(account)
    sim.requests.clear()
    return account, sim_account, stored(account)


# -- faults through sync_account ---------------------------------------------------

TRANSIENT = [
    ("read-timeout", {"exception": requests.ReadTimeout}),
    ("connect-timeout", {"exception": requests.ConnectTimeout}),
    ("connection-reset", {"exception": requests.ConnectionError("Connection reset by peer")}),
    ("http-500", {"status": 500}),
    ("http-502", {"status": 502, "body": "<html>Bad Gateway</html>"}),
    ("http-503", {"status": 503}),
    ("http-504", {"status": 504}),
]


@pytest.mark.django_db
@pytest.mark.parametrize("fault", [t[1] for t in TRANSIENT], ids=[t[0] for t in TRANSIENT])
def test_transient_fault_then_success(synced_before_faults, sim, sleeps, fault):
    account, sim_account, _ = synced_before_faults
    sim.set_connected(sim_account.sub, "pro_b", True)
    sim.fail("userinfo", **fault)

    assert sync_account(account) == SyncResult(updated=1, unchanged=1)

    assert sim.count("userinfo") == 2
    assert len(sleeps) == 1
    assert_backoff(sleeps)
    assert {row[0]: row[1] for row in stored(account)} == {"pro_a": True, "pro_b": True}


@pytest.mark.django_db
def test_500_502_503_then_success(synced_before_faults, sim, sleeps):
    account, _, before = synced_before_faults
    for status in (500, 502, 503):
        sim.fail("userinfo", status=status)
    assert sync_account(account) == SyncResult(unchanged=2)
    assert [r.status for r in sim.requests] == [500, 502, 503, 200]
    assert len(sleeps) == 3
    assert_backoff(sleeps)
    assert stored(account) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fault, error",
    [
        ({"status": 500}, CronofyUnavailable),
        ({"status": 503, "body": '{"error": "maintenance"}'}, CronofyUnavailable),
        ({"exception": requests.ReadTimeout}, CronofyUnavailable),
        ({"exception": requests.ConnectionError}, CronofyUnavailable),
        ({"status": 429}, RateLimited),
    ],
    ids=["500", "503", "timeout", "connection-error", "429"],
)
def test_failing_forever_is_bounded(synced_before_faults, sim, sleeps, fault, error):
    account, sim_account, before = synced_before_faults
    sim.set_connected(sim_account.sub, "pro_a", False)  # must not land
    sim.fail("userinfo", times=None, **fault)

    with pytest.raises(error) as excinfo:
        sync_account(account)

    assert sim.count("userinfo") == MAX_RETRIES + 1
    assert len(sleeps) == MAX_RETRIES
    assert_backoff(sleeps)
    assert stored(account) == before
    account.refresh_from_db()
    assert account.consecutive_failures == 1
    assert account.last_sync_error == str(excinfo.value)


@pytest.mark.django_db
def test_429_with_retry_after_is_honoured(synced_before_faults, sim, sleeps):
    account, _, _ = synced_before_faults
    sim.fail("userinfo", status=429, headers={"Retry-After": "7"})
    assert sync_account(account) == SyncResult(unchanged=2)
    assert sleeps == [7.0]
    assert sim.count("userinfo") == 2


@pytest.mark.django_db
def test_429_with_an_http_date_retry_after(synced_before_faults, sim, sleeps):
    account, _, _ = synced_before_faults
    when = email.utils.formatdate(usegmt=True)  # now: no wait, but a valid date
    sim.fail("userinfo", status=429, headers={"Retry-After": when})
    sync_account(account)
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 1


@pytest.mark.django_db
def test_429_without_retry_after_backs_off(synced_before_faults, sim, sleeps):
    account, _, _ = synced_before_faults
    sim.fail("userinfo", status=429, times=2)
    sync_account(account)
    assert len(sleeps) == 2
    assert_backoff(sleeps)


@pytest.mark.django_db
def test_retry_after_beyond_the_cap_raises_without_sleeping(
    synced_before_faults, sim, sleeps, settings
):
    account, _, before = synced_before_faults
    sim.fail("userinfo", status=429, headers={"Retry-After": "31"}, times=None)
    with pytest.raises(RateLimited) as excinfo:
        sync_account(account)
    assert sleeps == []
    assert excinfo.value.retry_after == 31
    assert excinfo.value.status_code == 429
    assert sim.count("userinfo") == 1
    assert stored(account) == before


@pytest.mark.django_db
def test_total_wait_is_capped(synced_before_faults, sim, sleeps, settings, settings_with):
    account, _, _ = synced_before_faults
    with settings_with(MAX_RETRIES=10, RETRY_BACKOFF=10, RETRY_MAX_WAIT=30):
        sim.fail("userinfo", status=503, times=None)
        with pytest.raises(CronofyUnavailable):
            sync_account(account)
    assert 0 < sum(sleeps) <= 30
    assert sim.count("userinfo") == len(sleeps) + 1 < 11
    assert_backoff(sleeps, backoff=10)


@pytest.mark.django_db
def test_repeated_retry_after_stops_at_the_cap(
    synced_before_faults, sim, sleeps, settings, settings_with
):
    account, _, _ = synced_before_faults
    with settings_with(MAX_RETRIES=10, RETRY_MAX_WAIT=20):
        sim.fail("userinfo", status=429, headers={"Retry-After": "7"}, times=None)
        with pytest.raises(RateLimited):
            sync_account(account)
    assert sleeps == [7.0, 7.0]  # a third 7 s wait would pass 20 s
    assert sim.count("userinfo") == 3


@pytest.mark.django_db
def test_zero_retries(synced_before_faults, sim, sleeps, settings, settings_with):
    account, _, _ = synced_before_faults
    with settings_with(MAX_RETRIES=0):
        sim.fail("userinfo", status=502)
        with pytest.raises(CronofyUnavailable):
            sync_account(account)
    assert sleeps == [] and sim.count("userinfo") == 1


@pytest.mark.django_db
@pytest.mark.parametrize("status", [402, 403, 404, 422, 423])
def test_other_4xx_are_api_errors_without_retry(synced_before_faults, sim, sleeps, payload, status):
    account, _, before = synced_before_faults
    sim.fail("userinfo", status=status, body='{"errors": {}}')
    with pytest.raises(CronofyAPIError) as excinfo:
        sync_account(account)
    # A 422 is the validation subclass (its ``errors`` for a form): still a CronofyAPIError.
    expected = CronofyValidationError if status == 422 else CronofyAPIError
    assert type(excinfo.value) is expected
    assert excinfo.value.status_code == status
    assert f"HTTP {status}" in str(excinfo.value)
    assert sleeps == [] and sim.count("userinfo") == 1
    assert stored(account) == before


# -- the request loop, called directly ------------------------------------------------


@pytest.fixture
def us_client(sim):
    return get_client("us")


def test_non_idempotent_post_is_not_retried_on_read_timeout(sim, us_client, sleeps):
    account = sim.add_account()
    sim.fail("channels", exception=requests.ReadTimeout)
    with pytest.raises(CronofyUnavailable, match="timed out"):
        us_client.create_channel(account.access_token, "https://example.com/hook")
    assert sim.count("channels") == 1
    assert sleeps == []


@pytest.mark.parametrize("fault", [{"status": 503}, {"exception": requests.ConnectionError}])
def test_non_idempotent_post_is_not_retried_on_5xx_or_reset(sim, us_client, sleeps, fault):
    account = sim.add_account()
    sim.fail("conferencing_service_authorizations", **fault)
    with pytest.raises(CronofyUnavailable):
        us_client.create_conferencing_service_authorization(account.access_token, "https://e.x/r")
    assert sim.count("conferencing_service_authorizations") == 1
    assert sleeps == []


def test_non_idempotent_post_is_retried_on_connect_timeout_and_429(sim, us_client, sleeps):
    account = sim.add_account()
    sim.fail("channels", exception=requests.ConnectTimeout)  # never reached Cronofy
    sim.fail("channels", status=429, headers={"Retry-After": "2"})  # Cronofy did not act
    body = us_client.create_channel(account.access_token, "https://example.com/hook")
    assert body["channel"]["callback_url"] == "https://example.com/hook"
    assert sim.count("channels") == 3
    assert len(sleeps) == 2 and sleeps[1] == 2.0


def test_code_exchange_is_not_retried(sim, us_client, sleeps):
    sim.fail("token", exception=requests.ReadTimeout)
    with pytest.raises(CronofyUnavailable):
        linking.exchange_code("us", "some-code-value", "https://example.com/cb")
    assert sim.count("token") == 1 and sleeps == []


@pytest.mark.django_db
def test_invalid_client_is_not_invalid_grant(link_account, sim, settings, sleeps, settings_with):
    account, _ = link_account(token_expires_in=-60)
    with (
        settings_with(CLIENT_SECRET="a-wrong-client-secret"),
        pytest.raises(CronofyAPIError) as excinfo,
    ):
        sync_account(account)
    assert not isinstance(excinfo.value, ReauthorizationRequired)
    assert excinfo.value.status_code == 400
    assert "invalid_client" in str(excinfo.value)
    account.refresh_from_db()
    assert account.status == LinkedAccount.Status.ACTIVE
    assert sleeps == []


def test_invalid_grant_from_the_token_endpoint(sim, us_client):
    sim.fail("token", status=400, body='{"error": "invalid_grant"}')
    with pytest.raises(InvalidGrant) as excinfo:
        us_client.request_token(
            {"grant_type": "refresh_token", "refresh_token": "x" * 10}, idempotent=True
        )
    assert excinfo.value.error == "invalid_grant"
    assert isinstance(excinfo.value, ReauthorizationRequired)


def test_invalid_grant_body_outside_oauth_is_a_plain_api_error(sim, us_client):
    account = sim.add_account()
    sim.fail("userinfo", status=400, body='{"error": "invalid_grant"}')
    with pytest.raises(CronofyAPIError) as excinfo:
        us_client.userinfo(account.access_token)
    assert not isinstance(excinfo.value, ReauthorizationRequired)


@pytest.mark.parametrize("offset", [1, 5, 20])
def test_the_error_body_is_redacted_before_it_is_cut(sim, us_client, offset, monkeypatch):
    """A secret straddling the client's length limit must not leave its head behind."""
    # The exception keeps a shorter excerpt still: lift that to see the client's cut.
    monkeypatch.setattr(exceptions, "MAX_BODY_IN_MESSAGE", 10 * ERROR_BODY_LIMIT)
    account = sim.add_account()
    token = account.access_token
    filler = "."  # not "x": another test remembers "xxxxxxxxxx" as a secret
    body = filler * (ERROR_BODY_LIMIT - offset) + token + " and more"
    sim.fail("userinfo", status=400, body=body)
    with pytest.raises(CronofyAPIError) as excinfo:
        us_client.userinfo(token)
    kept = excinfo.value.body
    head = ERROR_BODY_LIMIT - offset
    assert kept[:head] == filler * head
    assert kept[head:].startswith("[redacted]"[:offset])  # never the token's first characters
    assert len(kept) <= ERROR_BODY_LIMIT


def test_401_maps_to_access_token_rejected(sim, us_client, sleeps):
    with pytest.raises(AccessTokenRejected) as excinfo:
        us_client.userinfo("not-a-token-we-know")
    assert excinfo.value.status_code == 401
    assert sleeps == []


def test_non_json_success_body_is_invalid_response(sim, us_client):
    account = sim.add_account()
    sim.fail("channels", status=200, body="OK")
    with pytest.raises(InvalidResponse, match="Invalid channel response: the body is not JSON"):
        us_client.create_channel(account.access_token, "https://example.com/hook")


def test_user_agent_accept_and_timeouts(sim, settings, monkeypatch, settings_with):
    with settings_with(CONNECT_TIMEOUT=2, REQUEST_TIMEOUT=9):
        client = CronofyClient("us")
    seen = {}
    original = client.session.send

    def spy(prepared, **kwargs):
        seen.update(kwargs, url=prepared.url, headers=dict(prepared.headers))
        return original(prepared, **kwargs)

    monkeypatch.setattr(client.session, "send", spy)
    account = sim.add_account()
    for _ in range(2):  # the second from the prepared template
        seen.clear()
        client.userinfo(account.access_token)
        assert seen["timeout"] == (2.0, 9.0)
        assert seen["url"] == "https://api.cronofy.com/v1/userinfo"
        assert seen["headers"]["Accept"] == "application/json"
        assert seen["headers"]["Authorization"] == f"Bearer {account.access_token}"
        assert seen["headers"]["User-Agent"] == USER_AGENT
        assert seen["stream"] is True
    assert USER_AGENT.startswith("django-cronofy-conferencing/")


def test_custom_user_agent(settings, settings_with):
    with settings_with(USER_AGENT="acme-scheduler/2.0"):
        assert CronofyClient("uk").session.headers["User-Agent"] == "acme-scheduler/2.0"


def test_one_session_per_client_and_one_client_per_thread(sim):
    assert get_client("us") is get_client("us")
    assert get_client("us") is not get_client("uk")
    assert get_client("us").session is get_client("us").session
    assert get_client("uk").data_center.api_url == "https://api-uk.cronofy.com"


def test_clients_are_rebuilt_when_settings_change(settings, settings_with):
    before = get_client("us")
    with settings_with(REQUEST_TIMEOUT=3):
        after = get_client("us")
        assert after is not before
        assert after.timeout[1] == 3.0


def test_unknown_data_center_cannot_be_called():
    with pytest.raises(UnknownDataCenter):
        CronofyClient("https://evil.example")


def test_injected_sleep_and_rng(sim):
    delays = []
    client = CronofyClient("us", sleep=delays.append, rng=random.Random(1))
    account = sim.add_account()
    sim.fail("userinfo", status=500, times=2)
    client.userinfo(account.access_token)
    expected = random.Random(1)
    assert delays == [0.25 + expected.uniform(0, 0.25), 0.5 + expected.uniform(0, 0.5)]


def test_client_credentials_name_the_missing_key(settings, settings_with):
    from django.core.exceptions import ImproperlyConfigured

    for key, value in (("CLIENT_SECRET", ""), ("CLIENT_ID", None)):
        with (
            settings_with(**{key: value}),
            pytest.raises(ImproperlyConfigured, match=rf"CRONOFY_CONFERENCING\['{key}'\]"),
        ):
            client_credentials("us")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("", None),
        (None, None),
        ("-5", None),
        ("soon", None),
        ("1.5", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_in_the_future():
    now = 1_700_000_000.0
    when = email.utils.formatdate(now + 42, usegmt=True)
    assert parse_retry_after(when, now=now) == pytest.approx(42, abs=1)


# -- sessions: the environment is read once ---------------------------------------


def test_proxies_from_the_environment_are_kept(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = CronofyClient("us")
    assert client.session.proxies["https"] == "http://proxy.internal:3128"
    assert client.session.trust_env is False


def test_no_proxy_is_honoured(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "api-uk.cronofy.com")
    assert new_session("https://api-uk.cronofy.com").proxies == {}
    assert new_session("https://api.cronofy.com").proxies["https"] == "http://proxy.internal:3128"


def test_ca_bundle_from_the_environment(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert new_session("https://api.cronofy.com").verify == str(bundle)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert new_session("https://api.cronofy.com").verify is True


def test_a_given_session_is_used_as_is():
    session = requests.Session()
    assert CronofyClient("us", session=session).session is session
    assert session.trust_env is True


# -- adversarial: deadlines, sizes, odd headers (issue #10) ---------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("9" * 400, 86400.0),  # was OverflowError in math.ceil downstream
        ("86401", 86400.0),
        ("²", None),  # str.isdigit() is true for it; float() is not
        ("١٢", None),  # Arabic-Indic digits
        ("x" * 10_000, None),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 86400.0),
    ],
)
def test_parse_retry_after_odd_values_are_capped_or_absent(value, expected):
    assert parse_retry_after(value) == expected


@pytest.mark.django_db
def test_429_with_hundreds_of_digits_is_rate_limited_not_overflow(
    synced_before_faults, sim, sleeps, settings
):
    account, _, _ = synced_before_faults
    sim.fail("userinfo", status=429, headers={"Retry-After": "9" * 400}, times=None)
    with pytest.raises(RateLimited) as caught:
        sync_account(account)
    assert caught.value.retry_after == 86400.0
    assert sleeps == []  # beyond RETRY_MAX_WAIT: raised at once


def test_a_trickled_body_ends_at_the_deadline(slow_server, settings_with):
    """REQUEST_TIMEOUT bounds a read; REQUEST_DEADLINE bounds the call.

    Before: each byte reset the 2 s read timeout, so 400 bytes 0.05 s apart
    kept the call 20 s. After: it ends at the 0.5 s deadline.
    """
    slow_server.answer(b'{"sub": "' + b"x" * 400 + b'"}', chunk=1, pause=0.05)
    with settings_with(REQUEST_TIMEOUT=2, REQUEST_DEADLINE=0.5):
        client = CronofyClient("slow")
    started = time.monotonic()
    with pytest.raises(CronofyUnavailable, match="REQUEST_DEADLINE"):
        client.userinfo("at-trickle-000000000000")
    assert time.monotonic() - started < 1.5
    assert slow_server.requests_seen == 1  # no retry: no time left, and it may have arrived


def test_slow_headers_are_bounded_by_the_deadline_too(slow_server, settings_with):
    slow_server.answer(b"{}", chunk=1, pause=0.3, content_length=2)
    with settings_with(REQUEST_TIMEOUT=0.2, REQUEST_DEADLINE=0.5, MAX_RETRIES=3):
        client = CronofyClient("slow")
    started = time.monotonic()
    with pytest.raises(CronofyUnavailable):
        client.userinfo("at-trickle-000000000000")
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("method", ["userinfo", "token"])
def test_a_trickled_status_line_and_headers_end_at_the_deadline(slow_server, settings_with, method):
    """REQUEST_DEADLINE covers the whole call, the status line and headers included.

    Before: a server that sends its head a byte every 50 ms resets the 2 s read
    timeout with each byte, and http.client reads up to 64 KiB of headers: the
    call lasted until the head was complete (12 s here; 20.1 s in the review with
    one byte a second). After: it ends at the 0.5 s deadline, as a deadline error.
    """
    slow_server.answer(b"{}", head_pause=0.05, head_bytes=200)
    with settings_with(REQUEST_TIMEOUT=2, REQUEST_DEADLINE=0.5, MAX_RETRIES=3):
        client = CronofyClient("slow")
    started = time.monotonic()
    with pytest.raises(CronofyUnavailable, match="REQUEST_DEADLINE"):
        if method == "userinfo":
            client.userinfo("at-trickle-000000000000")
        else:
            client.request_token(
                {"grant_type": "refresh_token", "refresh_token": "rt-trickle-0000000000"},
                idempotent=False,
            )
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, elapsed
    assert slow_server.requests_seen == 1  # no time left for a retry
    assert slow_server.head_bytes_sent < 40


def test_trickled_headers_over_https_end_at_the_deadline(settings_with, tmp_path, monkeypatch):
    """The same over TLS (urllib3's HTTPSConnection, an SSL socket under the reads)."""
    from tests.slow_server import SlowServer, self_signed_certificate

    certificate = self_signed_certificate(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    with SlowServer(tls=certificate) as server:
        server.answer(b'{"ok": true}')
        dc = {"tls": {"api_url": server.url, "app_url": server.url}}
        with settings_with(DATA_CENTERS=dc, REQUEST_TIMEOUT=2, REQUEST_DEADLINE=0.5):
            client = CronofyClient("tls")
        assert client.userinfo("at-tls-0000000000000000") == {"ok": True}  # TLS works
        server.answer(b"{}", head_pause=0.05, head_bytes=200)
        started = time.monotonic()
        with pytest.raises(CronofyUnavailable, match="REQUEST_DEADLINE"):
            client.userinfo("at-tls-0000000000000000")
        assert time.monotonic() - started < 1.0
        assert server.head_bytes_sent < 40


def test_trickled_headers_through_an_http_proxy_end_at_the_deadline(
    slow_server, settings_with, monkeypatch
):
    """Through the environment's HTTP proxy (the slow server plays the proxy): the
    proxy's connections are bounded too (``DeadlineAdapter.proxy_manager_for``)."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", slow_server.url)
    slow_server.answer(b"{}", head_pause=0.05, head_bytes=200)
    dc = {"proxied": {"api_url": "http://api.cronofy.invalid", "app_url": "http://x.invalid"}}
    with settings_with(DATA_CENTERS=dc, REQUEST_TIMEOUT=2, REQUEST_DEADLINE=0.5):
        client = CronofyClient("proxied")
    started = time.monotonic()
    with pytest.raises(CronofyUnavailable, match="REQUEST_DEADLINE"):
        client.userinfo("at-proxied-000000000000")
    assert time.monotonic() - started < 1.0
    assert slow_server.requests_seen == 1


def test_a_silent_server_ends_at_the_deadline_as_a_deadline_error(slow_server, settings_with):
    """Nothing at all after the request: the read timeout is capped at the time left."""
    slow_server.answer(b"{}", head_pause=30, head_bytes=1)
    with settings_with(REQUEST_TIMEOUT=10, REQUEST_DEADLINE=0.3, MAX_RETRIES=3):
        client = CronofyClient("slow")
    started = time.monotonic()
    with pytest.raises(CronofyUnavailable, match="REQUEST_DEADLINE"):
        client.userinfo("at-silent-0000000000000")
    assert time.monotonic() - started < 1.0
    assert slow_server.requests_seen == 1


def test_the_deadline_leaves_a_healthy_connection_reusable(slow_server, settings_with):
    """A quick answer inside the deadline: read whole, and the next call works too."""
    slow_server.answer(b'{"ok": true}')
    with settings_with(REQUEST_TIMEOUT=2, REQUEST_DEADLINE=0.5):
        client = CronofyClient("slow")
    assert client.userinfo("at-quick-00000000000000") == {"ok": True}
    assert client.userinfo("at-quick-00000000000000") == {"ok": True}
    assert slow_server.requests_seen == 2


def test_a_huge_body_is_refused_without_reading_it(slow_server, settings_with):
    """A 20 MB UserInfo body: refused at the 1 MB cap; at most the cap is read."""
    body = b'{"sub": "acc_1", "junk": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    slow_server.answer(body, content_length=None)  # no length: the cap must stop the read
    with settings_with(MAX_RESPONSE_BYTES=1024 * 1024):
        client = CronofyClient("slow")
    with pytest.raises(InvalidResponse, match="MAX_RESPONSE_BYTES"):
        client.userinfo("at-huge-00000000000000")
    # The server could write what loopback's socket buffers take, never the 20 MB.
    assert slow_server.bytes_sent < 12 * 1024 * 1024


def test_a_declared_huge_body_is_refused_before_reading(slow_server, settings_with):
    slow_server.answer(b"{}", content_length=20 * 1024 * 1024)
    with settings_with(MAX_RESPONSE_BYTES=1024 * 1024):
        client = CronofyClient("slow")
    with pytest.raises(InvalidResponse, match="MAX_RESPONSE_BYTES"):
        client.userinfo("at-huge-00000000000000")


def test_a_body_at_the_cap_is_read(slow_server, settings_with):
    body = b'{"a": "' + b"x" * (1000 - 9) + b'"}'
    assert len(body) == 1000
    slow_server.answer(body)
    with settings_with(MAX_RESPONSE_BYTES=1000):
        client = CronofyClient("slow")
    assert client.userinfo("at-cap-000000000000000") == {"a": "x" * 991}
    slow_server.answer(body + b" ")
    with pytest.raises(InvalidResponse):
        client.userinfo("at-cap-000000000000000")


def test_a_huge_error_body_is_cut_not_refused(slow_server, settings_with):
    slow_server.answer(b"E" * (3 * 1024 * 1024), status=400)
    with settings_with(MAX_RESPONSE_BYTES=1024 * 1024):
        client = CronofyClient("slow")
    with pytest.raises(CronofyAPIError) as caught:
        client.userinfo("at-err-000000000000000")
    assert caught.value.status_code == 400


def test_the_default_caps_are_documented_settings():
    client = CronofyClient("us")
    assert client.deadline == 30.0
    assert client.max_body == 5 * 1024 * 1024


@pytest.mark.django_db
def test_retries_stop_at_the_deadline(synced_before_faults, sim, settings_with, fake_clock):
    """Waits count against the deadline: no retry is slept for that could not finish."""
    account, _, _ = synced_before_faults
    sim.fail("userinfo", status=503, times=None)
    with settings_with(REQUEST_DEADLINE=3, RETRY_MAX_WAIT=100, MAX_RETRIES=10):
        client = CronofyClient("us", sleep=fake_clock.sleep, clock=fake_clock)
    with pytest.raises(CronofyUnavailable):
        client.userinfo(account.access_token)
    assert sum(fake_clock.slept) < 3
    assert sim.count("userinfo") == len(fake_clock.slept) + 1


@pytest.mark.django_db
def test_every_credential_sent_is_remembered_for_redaction(sim):
    from django_cronofy_conferencing.cronofy.redaction import REDACTED, redact

    account = sim.add_account()
    CronofyClient("us").userinfo(account.access_token)
    assert redact(f"echo {account.access_token}") == f"echo {REDACTED}"


def test_a_header_value_with_a_line_break_is_refused_before_sending(sim):
    client = CronofyClient("us", max_retries=0)
    account = sim.add_account()
    client.userinfo(account.access_token)  # the template exists
    calls = len(sim.requests)
    with pytest.raises(CronofyUnavailable):
        client.userinfo(account.access_token + "\r\nX-Injected: 1")
    assert len(sim.requests) == calls


def test_a_422_repeating_the_token_is_redacted_in_every_part_of_its_errors(sim):
    """Cronofy's 422 ``errors`` go to forms next to their fields: a field name, key or
    description that repeats a secret the call sent is masked."""
    account = sim.add_account()
    token = account.access_token
    body = (
        '{"errors": {"event_id": [{"key": "errors.' + token + '", "description": "'
        "not valid: " + token + '"}], "x' + token + '": []}}'
    )
    sim.fail("userinfo", status=422, body=body)
    with pytest.raises(CronofyValidationError) as caught:
        CronofyClient("us").userinfo(token)
    errors = caught.value.errors
    assert token not in repr(errors) and token not in str(caught.value)
    assert errors["event_id"][0]["description"].startswith("not valid: ")


def test_a_422_is_bounded_field_by_field(sim):
    """At most 50 fields, 10 problems each; names and keys 100 characters, descriptions 500."""
    account = sim.add_account()
    many = {f"f{i:02d}": [{"key": "k", "description": "d"}] * 12 for i in range(60)}
    long = {"n" * 120: [{"key": "k" * 150, "description": "d" * 600}]}
    for body in (many, long):
        sim.fail("userinfo", status=422, body=json.dumps({"errors": body}))
        with pytest.raises(CronofyValidationError) as caught:
            CronofyClient("us").userinfo(account.access_token)
        errors = caught.value.errors
        if body is many:
            assert len(errors) == 50
            assert all(len(problems) == 10 for problems in errors.values())
        else:
            assert errors == {"n" * 100: [{"key": "k" * 100, "description": "d" * 500}]}


def test_an_error_keeps_2000_characters_of_its_body(sim, monkeypatch):
    """The documented bound, as a number: 2000 characters of the (redacted) body."""
    monkeypatch.setattr(exceptions, "MAX_BODY_IN_MESSAGE", 100_000)
    account = sim.add_account()
    sim.fail("userinfo", status=400, body="." * 5000)
    with pytest.raises(CronofyAPIError) as caught:
        CronofyClient("us").userinfo(account.access_token)
    assert ERROR_BODY_LIMIT == 2000
    assert caught.value.body == "." * 2000


@pytest.mark.parametrize(("length", "named"), [(63, True), (64, False)])
def test_an_oauth_error_code_is_named_up_to_63_characters(sim, length, named):
    code = "e" * length
    sim.fail("token", status=400, body=json.dumps({"error": code}))
    with pytest.raises(CronofyAPIError) as caught:
        CronofyClient("us").request_token({"grant_type": "refresh_token"}, idempotent=False)
    assert (f"({code})" in str(caught.value)) is named
