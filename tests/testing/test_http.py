"""The simulator served over real HTTP: testing.HTTPServerAdapter and friends."""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.utils import timezone

from django_cronofy_conferencing.accounts import linking
from django_cronofy_conferencing.cronofy.datacenters import get_data_center
from django_cronofy_conferencing.exceptions import CronofyUnavailable, RateLimited
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import sync_account
from django_cronofy_conferencing.testing import (
    HTTPServerAdapter,
    SimulatedCronofy,
    SlidingWindowLimit,
    max_in_window,
    serve_simulator,
)


@pytest.fixture
def server():
    with serve_simulator(SimulatedCronofy()) as adapter:
        yield adapter


def link(sim_account) -> LinkedAccount:
    return LinkedAccount.objects.create(
        data_center=sim_account.data_center,
        sub=sim_account.sub,
        access_token=sim_account.access_token,
        refresh_token=sim_account.refresh_token,
        token_expires_at=timezone.now() + timedelta(hours=1),
    )


# -- the limit and the counters --------------------------------------------------


def test_sliding_window_limit_is_strict_across_boundaries(fake_clock):
    clock = fake_clock
    clock.now = 10.9
    limit = SlidingWindowLimit(["3/s"], clock=clock)
    assert [limit.allow() for _ in range(4)] == [True, True, True, False]
    clock.now = 11.1  # a fixed window would start afresh here; a sliding one does not
    assert limit.allow() is False
    clock.now = 11.9  # a second after the first three: room for three more
    assert [limit.allow() for _ in range(4)] == [True, True, True, False]


def test_sliding_window_limit_checks_every_rate(fake_clock):
    clock = fake_clock
    limit = SlidingWindowLimit(["2/s", "3/m"], clock=clock)
    results = []
    for step in range(6):
        clock.now = step * 1.5
        results.append(limit.allow())
    assert results == [True, True, True, False, False, False]


def test_max_in_window():
    assert max_in_window([], 1) == 0
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.2], 1) == 4  # [0.5, 1.5)
    assert max_in_window([0.0, 0.5, 1.0, 1.5], 1) == 2
    assert max_in_window([3.0, 1.0, 2.0], 1) == 1
    assert max_in_window([0.0, 0.1, 0.2], 60) == 3


# -- the API side ------------------------------------------------------------------


@pytest.mark.django_db
def test_sync_over_http(server):
    sim = server.sim
    sim_account = sim.add_account(data_center="sim", conferencing_profiles=[sim.profile("zoom")])
    account = link(sim_account)
    assert get_data_center("sim").api_url == server.url
    result = sync_account(account)
    assert result.created == 1
    assert ConferencingProfile.objects.get().provider_name == "zoom"
    assert server.served == 1
    assert server.stats()["counts"] == {"userinfo": 1}
    assert sim.requests[-1].data_center == "sim"


@pytest.mark.django_db
def test_token_refresh_over_http(server):
    sim = server.sim
    sim_account = sim.add_account(data_center="sim")
    account = link(sim_account)
    sim.expire_access_token(sim_account.sub)
    sync_account(account)
    assert sim.counts() == {"userinfo": 2, "token": 1}
    account.refresh_from_db()
    assert account.access_token == sim_account.access_token


def test_latency_delays_every_api_answer():
    with (
        HTTPServerAdapter(SimulatedCronofy(), latency=0.2) as server,
        requests.Session() as session,
    ):
        started = time.monotonic()
        response = session.get(f"{server.url}/v1/userinfo", timeout=5)
        elapsed = time.monotonic() - started
    assert response.status_code == 401  # no token: Cronofy's answer, after the latency
    assert 0.2 <= elapsed < 1.5


def test_rate_limit_answers_429_and_counts():
    with HTTPServerAdapter(SimulatedCronofy(), rate_limits=["3/m"], retry_after=7) as server:
        with requests.Session() as session:
            statuses = [
                session.get(f"{server.url}/v1/userinfo", timeout=5).status_code for _ in range(5)
            ]
            limited = session.get(f"{server.url}/v1/userinfo", timeout=5)
        # The consent pages and the stats are not API calls: never limited.
        page = requests.get(f"{server.url}/_sim/stats", timeout=5)
    assert statuses == [401, 401, 401, 429, 429]
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "7"
    assert server.rate_limited == 3
    assert server.served == 3
    assert page.json()["rate_limited"] == 3


@pytest.mark.django_db
def test_client_backs_off_and_gives_up_on_persistent_429(sleeps):
    sim = SimulatedCronofy()
    with serve_simulator(sim, rate_limits=["1/m"]) as server:
        first = link(sim.add_account(data_center="sim"))
        second = link(sim.add_account(data_center="sim"))
        sync_account(first)
        with pytest.raises(RateLimited):
            sync_account(second)
    assert server.rate_limited == 4  # the first try and MAX_RETRIES (3) retries
    assert len(sleeps) == 3  # exponential backoff between them (recorded, not slept)
    second.refresh_from_db()
    assert "rate limit" in second.last_sync_error


@pytest.mark.django_db
def test_injected_exception_drops_the_connection(server):
    sim = server.sim
    account = link(sim.add_account(data_center="sim"))
    sim.fail("userinfo", exception=ConnectionError, times=None)
    with pytest.raises(CronofyUnavailable):
        sync_account(account)


@pytest.mark.django_db
def test_injected_status_is_served(server):
    sim = server.sim
    account = link(sim.add_account(data_center="sim"))
    sim.fail("userinfo", status=503, times=1)
    sync_account(account)  # retried after the 503
    assert sim.count("userinfo", status=503) == 1
    assert sim.count("userinfo", status=200) == 1


def test_stats_endpoint_and_arrivals():
    with HTTPServerAdapter(SimulatedCronofy()) as server:
        for _ in range(3):
            requests.get(f"{server.url}/v1/userinfo", timeout=5)
        stats = requests.get(f"{server.url}/_sim/stats?arrivals=1", timeout=5).json()
    assert stats["served"] == 3
    assert stats["counts"] == {"userinfo": 3}
    assert len(stats["arrivals"]) == 3
    assert server.max_in_window(60) == 3


def test_chunked_bodies_are_refused():
    with HTTPServerAdapter(SimulatedCronofy()) as server:
        response = requests.post(
            f"{server.url}/oauth/token", data=iter([b"grant_type=x"]), timeout=5
        )
    assert response.status_code == 411


def test_stop_closes_keep_alive_connections_and_frees_the_port():
    server = HTTPServerAdapter(SimulatedCronofy()).start()
    session = requests.Session()
    assert session.get(f"{server.url}/v1/userinfo", timeout=5).status_code == 401
    port = server.port
    server.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(f"http://127.0.0.1:{port}/v1/userinfo", timeout=2)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_stop_from_another_thread_ends_serve_forever():
    """A server process serves in its main thread and stops from a signal handler's."""
    import threading

    server = HTTPServerAdapter(SimulatedCronofy())
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    assert requests.get(f"{server.url}/v1/userinfo", timeout=5).status_code == 401
    server.stop()
    serving.join(timeout=5)
    assert not serving.is_alive()  # was: polling the closed socket at full CPU, for ever


def test_stop_from_the_serving_thread_ends_serve_forever():
    """As a SIGTERM handler does in a server process: stop() on the serving thread."""
    import threading

    server = HTTPServerAdapter(SimulatedCronofy())
    port = server.port
    asked = threading.Event()

    def from_the_loop() -> None:  # called by serve_forever() on its own thread
        if asked.is_set():
            server.stop()

    server._server.service_actions = from_the_loop
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    assert requests.get(f"{server.url}/v1/userinfo", timeout=5).status_code == 401
    asked.set()
    serving.join(timeout=5)
    assert not serving.is_alive()  # was: shutdown() waiting on its own thread, for ever
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))  # closed by serve_forever() on its way out


def test_registered_adds_the_data_center_only_inside_the_block():
    from django_cronofy_conferencing.cronofy.datacenters import UnknownDataCenter

    with HTTPServerAdapter(SimulatedCronofy(), "local") as server:
        with server.registered(SYNC_CONCURRENCY=3):
            from django_cronofy_conferencing.conf import app_settings

            dc = get_data_center("local")
            assert (dc.api_url, dc.app_url) == (server.url, server.url)
            assert app_settings.SYNC_CONCURRENCY == 3
            assert get_data_center("us").api_url == "https://api.cronofy.com"
        with pytest.raises(UnknownDataCenter):
            get_data_center("local")
    assert server.data_center_settings()["local"]["api_url"] == server.url


# -- the app side: consent pages -----------------------------------------------------


def authorize_url(server, **params) -> str:
    return linking.authorization_url(
        "sim",
        redirect_uri=params.pop("redirect_uri", "http://testserver/cronofy/callback/"),
        state=params.pop("state", "st4te"),
    )


def test_oauth_consent_page_approve_then_code_exchange(server):
    url = authorize_url(server)
    assert url.startswith(f"{server.url}/oauth/authorize?")
    page = requests.get(url, timeout=5)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert 'value="approve"' in page.text
    assert 'value="deny"' in page.text
    answer = requests.post(
        url,
        data={"decision": "approve", "email": "ann@example.com", "providers": "zoom, ms_teams"},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith("http://testserver/cronofy/callback/?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st4te"]
    tokens = linking.exchange_code("sim", query["code"][0], "http://testserver/cronofy/callback/")
    account = server.sim.accounts[tokens.sub]
    assert account.email == "ann@example.com"
    assert account.data_center == "sim"
    assert [p["provider_name"] for p in account.conferencing_profiles] == ["zoom", "ms_teams"]

    # The same email again picks the same simulated account.
    again = requests.post(
        url, data={"decision": "approve", "email": "ann@example.com"}, allow_redirects=False
    )
    code = parse_qs(urlsplit(again.headers["Location"]).query)["code"][0]
    assert server.sim.codes[code]["sub"] == tokens.sub


def test_oauth_consent_page_deny(server):
    url = authorize_url(server)
    answer = requests.post(url, data={"decision": "deny"}, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query == {"error": ["access_denied"], "state": ["st4te"]}
    assert server.sim.accounts == {}


def test_oauth_consent_page_refuses_an_unknown_client(server):
    url = f"{server.url}/oauth/authorize?client_id=nope&response_type=code&redirect_uri=x"
    assert requests.get(url, timeout=5).status_code == 400
    assert requests.post(url, data={"decision": "approve"}, timeout=5).status_code == 400


def test_consent_page_escapes_what_it_echoes(server):
    url = authorize_url(server).replace("scope=read_account", "scope=%3Cscript%3Ex")
    page = requests.get(url, timeout=5)
    assert "<script>x" not in page.text
    assert "&lt;script&gt;x" in page.text


@pytest.mark.django_db
def test_conferencing_consent_page(server):
    sim = server.sim
    account = link(sim.add_account(data_center="sim"))
    url = linking.create_conferencing_authorization(
        account, "http://testserver/return/", provider_name="zoom"
    )
    assert url.startswith(f"{server.url}/conferencing_services/")
    page = requests.get(url, timeout=5)
    assert page.status_code == 200
    assert "zoom" in page.text
    answer = requests.post(
        url, data={"decision": "approve", "profile_name": "me@zoom"}, allow_redirects=False
    )
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    profile_id = query["last_linked_profile_id"][0]
    profile = sim.accounts[account.sub].profile(profile_id)
    assert (profile["provider_name"], profile["profile_name"]) == ("zoom", "me@zoom")

    denied = requests.post(url, data={"decision": "deny"}, allow_redirects=False, timeout=5)
    assert parse_qs(urlsplit(denied.headers["Location"]).query) == {"error": ["access_denied"]}
    assert requests.get(f"{server.url}/conferencing_services/csa_nope").status_code == 404


def test_unknown_api_path_is_a_json_404(server):
    response = requests.get(f"{server.url}/v1/nothing", timeout=5)
    assert response.status_code == 404
    assert json.loads(response.content) == {"error": "not_found"}


# -- the root URL and the consent pages' validation ---------------------------------


def test_root_url_says_what_it_serves(server):
    account = server.sim.add_account(
        data_center="sim", email="ann@example.com", conferencing_profiles=[server.sim.profile()]
    )
    page = requests.get(f"{server.url}/", timeout=5)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "Simulated Cronofy" in page.text
    assert "GET /v1/userinfo" in page.text and "/oauth/authorize" in page.text
    assert "ann@example.com" in page.text and "zoom (connected)" in page.text
    assert account.access_token not in page.text and account.refresh_token not in page.text
    assert server.sim.client_secret not in page.text
    assert requests.head(server.url, timeout=5).status_code == 200


@pytest.mark.parametrize("providers", ["zoom ms_teams", "zoom;ms_teams", "zoom, <b>"])
def test_consent_page_refuses_what_is_not_a_provider_name(server, providers):
    url = authorize_url(server)
    answer = requests.post(
        url,
        data={"decision": "approve", "email": "ann@example.com", "providers": providers},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 400
    assert "is not a provider name: separate names with commas" in answer.text
    assert 'value="approve"' in answer.text  # the form again, to fix and retry
    assert "<b>" not in answer.text
    assert server.sim.accounts == {}
    assert server.sim.codes == {}


@pytest.mark.django_db
def test_conferencing_page_refuses_what_is_not_a_provider_name(server):
    remote = server.sim.add_account(data_center="sim")
    account = link(remote)
    url = linking.create_conferencing_authorization(account, "http://testserver/back/")
    path = urlsplit(url).path
    answer = requests.post(
        f"{server.url}{path}",
        data={"decision": "approve", "provider_name": "zoom ms_teams"},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 400
    assert "is not a provider name" in answer.text
    assert remote.conferencing_profiles == []
