"""fleet_http: UserInfo over aiohttp keeps ``CronofyClient.userinfo``'s contract.

Most tests run twice (``way``): through ``CronofyClient.userinfo`` (requests) and
``AsyncUserInfo.userinfo`` (aiohttp), against the same real loopback servers, and
expect the same answer, exception and message: a sync cannot tell which fetched.
"""

from __future__ import annotations

import asyncio
import time
from importlib.util import find_spec

import pytest

from django_cronofy_conferencing.client import CronofyClient
from django_cronofy_conferencing.exceptions import (
    AccessTokenRejected,
    CronofyAPIError,
    CronofyUnavailable,
    InvalidResponse,
    RateLimited,
)
from django_cronofy_conferencing.ratelimit import RateLimiter, parse_rate
from django_cronofy_conferencing.testing import SimulatedCronofy, serve_simulator

from .conftest import require_service

TOKEN = "at-fleet-http-0123456789abcdef"


@pytest.fixture(autouse=True)
def _aiohttp():
    require_service(find_spec("aiohttp") is not None, "aiohttp (pip install -e '.[test]')")


def fetch(way: str, data_center: str, token: str = TOKEN, **client_kwargs):
    """UserInfo of ``token`` from ``data_center``, the ``way`` asked for."""
    client = CronofyClient(data_center, **client_kwargs)
    if way == "requests":
        return client.userinfo(token)
    from django_cronofy_conferencing import fleet_http

    async def main():
        async with fleet_http.new_session(4) as session:
            return await fleet_http.AsyncUserInfo(client, session).userinfo(token)

    return asyncio.run(main())


def outcome(way: str, data_center: str, token: str = TOKEN, **client_kwargs):
    """What ``fetch`` returned, or the exception's type, message and body."""
    try:
        return fetch(way, data_center, token, **client_kwargs)
    except Exception as exc:
        return type(exc), str(exc), getattr(exc, "body", None)


@pytest.fixture(params=["requests", "aiohttp"])
def way(request):
    return request.param


@pytest.fixture
def served():
    """A simulated Cronofy over loopback HTTP, data center "sim", with one account."""
    sim = SimulatedCronofy()
    with serve_simulator(sim, "sim") as server:
        server.account = sim.add_account(
            data_center="sim", conferencing_profiles=[sim.profile("zoom")]
        )
        yield server


def test_the_body_and_the_headers_are_the_clients(served, way, monkeypatch):
    seen = []
    handle = served.sim.handle
    monkeypatch.setattr(
        served.sim, "handle", lambda request, dc: seen.append(request) or handle(request, dc)
    )
    account = served.account
    body = fetch(way, "sim", account.access_token)
    assert body["sub"] == account.sub
    assert body["cronofy.data"]["conferencing_profiles"][0]["provider_name"] == "zoom"
    assert served.sim.requests[-1].sub == account.sub  # the token was the account's
    headers = seen[-1].headers
    assert headers["authorization"] == f"Bearer {account.access_token}"
    assert headers["accept"] == "application/json"
    assert headers["user-agent"].startswith("django-cronofy-conferencing/")
    assert "cookie" not in headers


@pytest.mark.parametrize(
    "fault, attempts",
    [
        ({"status": 401, "body": '{"error": "unauthorized"}'}, 1),
        ({"status": 500, "body": "boom", "times": None}, 4),
        ({"status": 429, "headers": {"Retry-After": "2"}, "times": None}, 4),
        ({"status": 400, "body": '{"error": "bad", "echo": "%(token)s"}'}, 1),
        ({"status": 200, "body": "not json"}, 1),
        ({"status": 200, "body": b"\xff\xfe not utf-8"}, 1),
        ({"exception": ConnectionResetError, "times": None}, 4),
        ({"status": 503, "times": 2}, 3),  # then the answer
    ],
    ids=["401", "500", "429", "400-echoing-the-token", "not-json", "not-utf8", "dropped", "503x2"],
)
def test_errors_and_retries_are_the_same_either_way(served, fault, attempts, sleeps):
    """Each fault, once per way: the same outcome, the same attempts, the same waits."""
    token = served.account.access_token
    if isinstance(fault.get("body"), str):
        fault = {**fault, "body": fault["body"] % {"token": token}}
    results, counts, waits = {}, {}, {}
    for way in ("requests", "aiohttp"):
        served.sim.clear_faults()
        served.sim.fail("userinfo", **fault)
        before, sleeps[:] = served.sim.count("userinfo"), []
        results[way] = outcome(way, "sim", token, rng=__import__("random").Random(7))
        counts[way] = served.sim.count("userinfo") - before
        waits[way] = list(sleeps)
    assert results["aiohttp"] == results["requests"]
    assert counts["aiohttp"] == counts["requests"] == attempts
    assert waits["aiohttp"] == waits["requests"]
    if fault.get("status") == 429:
        assert waits["aiohttp"] == [2.0, 2.0, 2.0]
    assert token not in repr(results["aiohttp"])


def test_a_401_is_access_token_rejected_and_a_429_keeps_retry_after(served):
    served.sim.fail("userinfo", status=401)
    with pytest.raises(AccessTokenRejected):
        fetch("aiohttp", "sim", served.account.access_token)
    served.sim.fail("userinfo", status=429, headers={"Retry-After": "7"}, times=None)
    with pytest.raises(RateLimited) as caught:
        fetch("aiohttp", "sim", served.account.access_token, max_retries=0)
    assert caught.value.retry_after == 7.0


def test_a_refused_connection_is_cronofy_unavailable(settings_with, way, sleeps):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with settings_with(DATA_CENTERS={"gone": {"api_url": url, "app_url": url}}):
        error = outcome(way, "gone", max_retries=1)
    assert error[0] is CronofyUnavailable
    assert error[1] == "Could not reach Cronofy for GET /v1/userinfo (gone): ConnectionError."
    assert len(sleeps) == 1


def test_a_trickled_body_ends_at_the_deadline(slow_server, settings_with, way):
    slow_server.answer(b'{"sub": "' + b"x" * 400 + b'"}', chunk=1, pause=0.05)
    with settings_with(REQUEST_TIMEOUT=2, REQUEST_DEADLINE=0.5):
        started = time.monotonic()
        error = outcome(way, "slow")
    assert error[:2] == (
        CronofyUnavailable,
        "Cronofy did not answer GET /v1/userinfo (slow) within REQUEST_DEADLINE (0.5 s).",
    )
    assert time.monotonic() - started < 1.5
    assert slow_server.requests_seen == 1  # no retry: no time left


def test_slow_headers_are_bounded_by_the_read_timeout_then_the_deadline(
    slow_server, settings_with, way
):
    slow_server.answer(b"{}", chunk=1, pause=0.3, content_length=2)
    with settings_with(REQUEST_TIMEOUT=0.2, REQUEST_DEADLINE=0.5, MAX_RETRIES=3):
        started = time.monotonic()
        error = outcome(way, "slow")
    assert error[0] is CronofyUnavailable
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "streamed"])
def test_a_huge_body_is_refused_at_the_cap(slow_server, settings_with, way, declared):
    body = b'{"sub": "acc_1", "junk": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    slow_server.answer(body, content_length=len(body) if declared else None)
    with settings_with(MAX_RESPONSE_BYTES=256 * 1024):
        error = outcome(way, "slow")
    assert error[:2] == (
        InvalidResponse,
        "Invalid response to GET /v1/userinfo (slow): the body is larger than "
        "MAX_RESPONSE_BYTES (262144 bytes).",
    )
    # The server could write what loopback's socket buffers take, never the 20 MB.
    assert slow_server.bytes_sent < 12 * 1024 * 1024


def test_a_body_at_the_cap_is_read_and_one_byte_more_is_not(slow_server, settings_with, way):
    body = b'{"a": "' + b"x" * 991 + b'"}'
    slow_server.answer(body)
    with settings_with(MAX_RESPONSE_BYTES=1000):
        assert fetch(way, "slow") == {"a": "x" * 991}
        slow_server.answer(body + b" ")
        assert outcome(way, "slow")[0] is InvalidResponse


def test_a_huge_error_body_is_cut_not_refused(slow_server, settings_with, way):
    slow_server.answer(b"E" * (3 * 1024 * 1024), status=400)
    error = outcome(way, "slow")
    assert error[0] is CronofyAPIError
    assert error[1] == "Cronofy answered HTTP 400 on GET /v1/userinfo (slow)."
    assert error[2] == "E" * 300  # what an exception keeps of a body


def test_a_redirect_is_not_followed_with_the_token(slow_server, served, way):
    """The bearer token goes to the data center's API host only: a 3xx is an answer
    (not JSON here), and the place it points to is never asked."""
    before = served.sim.count()
    slow_server.answer(b"", status=302, headers={"Location": f"{served.url}/v1/userinfo"})
    error = outcome(way, "slow", served.account.access_token)
    assert error[:2] == (InvalidResponse, "Invalid UserInfo response: the body is not JSON.")
    assert served.sim.count() == before


# -- rate-limit slots on the event loop (LoopClaims) -----------------------------


class CountingLimiter(RateLimiter):
    """A limiter on the local-memory cache whose round trips are counted."""

    def __init__(self, clock, *rates: str, margin: float | None = None) -> None:
        super().__init__([parse_rate(r) for r in rates], clock=clock, safety_margin=margin)
        self.round_trips: list[int] = []

    def reserve_many(self, count: int) -> list[float]:
        self.round_trips.append(count)
        return super().reserve_many(count)


def slots(claims, count: int, clock) -> list[float]:
    """Take ``count`` slots one after another, as ``count`` requests would; their times.

    The waits are not slept here: each request's start is its slot's time.
    """
    from django_cronofy_conferencing import fleet_http

    taken = []

    async def take_one():
        at = claims._take()
        if at is None:
            future = asyncio.get_running_loop().create_future()
            claims._waiting.append(future)
            claims._claim()
            at = await future
        taken.append(at)

    async def main():
        for _ in range(count):
            await take_one()

    assert isinstance(claims, fleet_http.LoopClaims)
    asyncio.run(main())
    return taken


def loop_claims(limiter, demand=None):
    from django_cronofy_conferencing.fleet_http import LoopClaims

    return LoopClaims(limiter, demand=demand)


def test_slots_are_claimed_a_block_per_round_trip_and_used_in_order(fake_clock):
    limiter = CountingLimiter(fake_clock, "10/s", margin=0.0)
    claims = loop_claims(limiter)
    times = slots(claims, 20, fake_clock)
    assert times == pytest.approx([1000.0 + 0.1 * i for i in range(20)])
    assert limiter.round_trips == [8, 8, 8]  # not 20


def test_demand_caps_the_block(fake_clock):
    limiter = CountingLimiter(fake_clock, "10/s", margin=0.0)
    claims = loop_claims(limiter, demand=lambda: 2)
    slots(claims, 3, fake_clock)
    assert limiter.round_trips == [2, 2]


def claim_together(claims, count: int) -> list[float]:
    """The slots ``count`` requests waiting in the same turn of the loop get."""

    async def main():
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(count)]
        claims._waiting.extend(futures)
        claims._claim()
        return [await f for f in futures]

    return asyncio.run(main())


def test_requests_waiting_together_share_one_round_trip(fake_clock):
    limiter = CountingLimiter(fake_clock, "10/s", margin=0.0)
    claims = loop_claims(limiter, demand=lambda: 0)
    assert claim_together(claims, 5) == pytest.approx([1000.0 + 0.1 * i for i in range(5)])
    assert limiter.round_trips == [5]


def test_a_slot_held_too_long_is_dropped_not_used_late(fake_clock):
    """A held slot is used while at most ``max_lateness`` old: later, it could put one
    request too many into a window."""
    limiter = CountingLimiter(fake_clock, "50/s")  # 3% margin: 15 ms of lateness
    assert limiter.max_lateness == pytest.approx(0.015)
    claims = loop_claims(limiter)
    first = slots(claims, 1, fake_clock)[0]
    fake_clock.now = first + 0.0206 * 2 + 0.014  # the third held slot is 14 ms old
    assert slots(claims, 1, fake_clock)[0] == pytest.approx(first + 0.0206 * 2)
    fake_clock.now += 1.0  # all the others are stale now
    fresh = slots(claims, 1, fake_clock)[0]
    assert fresh >= fake_clock.now
    assert limiter.round_trips == [8, 8]


def test_a_cache_outage_fails_open_without_holding_slots(fake_clock, monkeypatch, caplog):
    limiter = CountingLimiter(fake_clock, "10/s", margin=0.0)

    def down():
        raise ConnectionError("cache down")

    monkeypatch.setattr(limiter, "_adder", lambda: lambda items: down())
    claims = loop_claims(limiter)
    assert slots(claims, 2, fake_clock) == [1000.0, 1000.0]  # now, unpaced
    assert limiter.round_trips == [8, 8]  # nothing held from the fail-open answer
    assert "unreachable" in caplog.text


# -- TLS: requests' trust store -------------------------------------------------------


def test_tls_verifies_against_the_sessions_trust_store(monkeypatch, tmp_path):
    """The bundle ``transport.new_session`` took from REQUESTS_CA_BUNDLE, else certifi."""
    import ssl

    import requests

    from django_cronofy_conferencing.fleet_http import TLS

    tls = TLS()
    context = tls.context(True)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # certifi's, as requests uses
    assert tls.context(requests.certs.where()) is context  # one per bundle
    with pytest.raises(OSError):
        tls.context("/nonexistent/ca.pem")  # the bundle named, or nothing
    assert tls.context(str(tmp_path)).verify_mode == ssl.CERT_REQUIRED  # a CA directory
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    with pytest.raises(OSError):  # the environment, read once by the client's session
        fleet_http_for("us")


def fleet_http_for(data_center: str):
    from django_cronofy_conferencing import fleet_http

    async def make():
        async with fleet_http.new_session(1) as session:
            return fleet_http.AsyncUserInfo(CronofyClient(data_center), session)

    return asyncio.run(make())


def test_only_https_data_centers_get_a_tls_context(settings_with):
    url = "http://127.0.0.1:9"
    with settings_with(DATA_CENTERS={"local": {"api_url": url, "app_url": url}}):
        secure, plain = fleet_http_for("us").ssl, fleet_http_for("local").ssl
    assert secure is not None and secure.verify_mode.name == "CERT_REQUIRED"
    assert plain is None
