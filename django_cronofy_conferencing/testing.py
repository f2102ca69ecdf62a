"""A simulated Cronofy for tests and demos.

``SimulatedCronofy`` holds the state (accounts, tokens, conferencing profiles,
codes, channels) and answers requests through ``handle()``, independent of any
transport. Adapters plug it into a transport: ``ResponsesAdapter`` registers it
with the ``responses`` library (every data center's API host), so code using
``requests`` talks to it without a network. The same simulator serves every
adapter, so a test can flip a profile and see it through any of them.

    from django_cronofy_conferencing.testing import simulated_cronofy

    with simulated_cronofy() as sim:
        account = sim.add_account(conferencing_profiles=[sim.profile("zoom")])
        ...
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import html
import json
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

DEFAULT_CLIENT_ID = "sim_client_id"
DEFAULT_CLIENT_SECRET = "sim_client_secret_0123456789"

ENDPOINTS = {
    ("GET", "/v1/userinfo"): "userinfo",
    ("POST", "/oauth/token"): "token",
    ("POST", "/oauth/token/revoke"): "revoke",
    ("POST", "/v1/conferencing_service_authorizations"): "conferencing_service_authorizations",
    ("POST", "/v1/channels"): "channels",
}


def _new_id(prefix: str, length: int = 24) -> str:
    return prefix + secrets.token_hex(length // 2)


def _token() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class SimRequest:
    method: str
    path: str
    host: str
    headers: dict[str, str]
    body: bytes = b""
    query: str = ""

    def form(self) -> dict[str, str]:
        content_type = self.headers.get("content-type", "").lower()
        text = self.body.decode("utf-8", "replace") if self.body else ""
        if "json" in content_type:
            try:
                data = json.loads(text or "{}")
            except ValueError:
                return {}
            return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        return dict(parse_qsl(text))

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def bearer(self) -> str:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else ""


@dataclass
class SimResponse:
    status: int
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    exception: BaseException | type[BaseException] | None = None
    delay: float = 0.0

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> SimResponse:
        return cls(
            status, json.dumps(data), {"Content-Type": "application/json", **(headers or {})}
        )


@dataclass
class Fault:
    """An injected failure: a status/body, an exception, or a delay, ``times`` times."""

    endpoint: str
    status: int | None = None
    body: bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    exception: BaseException | type[BaseException] | None = None
    delay: float = 0.0
    times: int | None = 1  # None: forever
    sub: str | None = None


@dataclass
class SimAccount:
    sub: str
    data_center: str
    email: str
    name: str = ""
    zoneinfo: str = "Europe/London"
    account_type: str = "account"
    scope: str = "read_account"
    conferencing_profiles: list[dict[str, Any]] = field(default_factory=list)
    userinfo_body: Any = None  # an exact body to serve instead of the built one
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    expires_in: int = 3600

    def profile(self, profile_id: str) -> dict[str, Any]:
        for profile in self.conferencing_profiles:
            if profile["profile_id"] == profile_id:
                return profile
        raise KeyError(profile_id)


@dataclass
class RecordedRequest:
    endpoint: str
    method: str
    path: str
    data_center: str | None
    sub: str | None
    status: int | None
    form: dict[str, str] = field(repr=False, default_factory=dict)
    json: Any = field(repr=False, default=None)


class SimulatedCronofy:
    """In-memory Cronofy: accounts, tokens, conferencing profiles and fault injection."""

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        clock: Callable[[], float] = time.time,
        refresh_returns_refresh_token: bool = True,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.clock = clock
        self.refresh_returns_refresh_token = refresh_returns_refresh_token
        self.accounts: dict[str, SimAccount] = {}
        self.access_tokens: dict[str, tuple[str, float]] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.conferencing_authorizations: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.lock = threading.RLock()

    # -- state ------------------------------------------------------------

    @staticmethod
    def profile(
        provider_name: str = "zoom",
        *,
        profile_name: str = "user@example.com",
        connected: bool = True,
        profile_id: str | None = None,
        relink_url: str | None = None,
    ) -> dict[str, Any]:
        """A conferencing profile entry as UserInfo lists it."""
        entry: dict[str, Any] = {
            "provider_name": provider_name,
            "profile_id": profile_id or _new_id("pro_", 10),
            "profile_name": profile_name,
            "profile_connected": connected,
        }
        if not connected:
            entry["profile_relink_url"] = relink_url or _relink_url(provider_name, profile_name)
        return entry

    def add_account(
        self,
        *,
        sub: str | None = None,
        data_center: str = "us",
        email: str | None = None,
        name: str = "Jane Doe",
        conferencing_profiles: list[dict[str, Any]] | None = None,
        userinfo_body: Any = None,
        expires_in: int = 3600,
        **extra: Any,
    ) -> SimAccount:
        """An account with a live grant; its tokens are on the returned object."""
        if userinfo_body is not None and sub is None and isinstance(userinfo_body, dict):
            sub = userinfo_body.get("sub")
        sub = sub or _new_id("acc_")
        with self.lock:
            account = SimAccount(
                sub=sub,
                data_center=data_center,
                email=email if email is not None else f"{sub}@example.com",
                name=name,
                conferencing_profiles=list(conferencing_profiles or []),
                userinfo_body=userinfo_body,
                expires_in=expires_in,
                **extra,
            )
            self.accounts[sub] = account
            self._issue_tokens(account)
        return account

    def _issue_tokens(self, account: SimAccount, *, new_refresh: bool = True) -> None:
        account.access_token = _token()
        self.access_tokens[account.access_token] = (account.sub, self.clock() + account.expires_in)
        if new_refresh:
            account.refresh_token = _token()
            self.refresh_tokens[account.refresh_token] = account.sub

    def set_connected(self, sub: str, profile_id: str, connected: bool) -> dict[str, Any]:
        with self.lock:
            profile = self.accounts[sub].profile(profile_id)
            profile["profile_connected"] = connected
            if connected:
                profile.pop("profile_relink_url", None)
            else:
                profile["profile_relink_url"] = _relink_url(
                    profile["provider_name"], profile["profile_name"]
                )
            return profile

    def remove_profile(self, sub: str, profile_id: str) -> None:
        with self.lock:
            account = self.accounts[sub]
            account.conferencing_profiles = [
                p for p in account.conferencing_profiles if p["profile_id"] != profile_id
            ]

    def expire_access_token(self, sub: str) -> None:
        """Make Cronofy answer 401 to the account's current access token."""
        with self.lock:
            token = self.accounts[sub].access_token
            if token in self.access_tokens:
                self.access_tokens[token] = (sub, self.clock() - 1)

    def revoke_grant(self, sub: str) -> None:
        """The user disconnected the app: every token of the account dies."""
        with self.lock:
            for store in (self.access_tokens, self.refresh_tokens):
                for token in [
                    t for t, v in store.items() if (v[0] if isinstance(v, tuple) else v) == sub
                ]:
                    del store[token]

    def fail(self, endpoint: str, **kwargs: Any) -> Fault:
        """Inject a fault on ``endpoint`` (see ``ENDPOINTS``): ``status=``, ``body=``,
        ``headers=``, ``exception=``, ``delay=``, ``times=`` (None for ever), ``sub=``."""
        fault = Fault(endpoint, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def count(self, endpoint: str | None = None, *, status: int | None = None) -> int:
        with self.lock:
            return sum(
                1
                for r in self.requests
                if (endpoint is None or r.endpoint == endpoint)
                and (status is None or r.status == status)
            )

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(r.endpoint for r in self.requests)

    # -- browser-side flows (consent pages) -------------------------------

    def authorize(
        self,
        authorize_url: str,
        *,
        account: SimAccount | None = None,
        approve: bool = True,
    ) -> str:
        """Play the user on Cronofy's consent page; returns the redirect back to the app."""
        params = dict(parse_qsl(urlsplit(authorize_url).query))
        redirect_uri = params.get("redirect_uri", "")
        if params.get("client_id") != self.client_id:
            raise ValueError("authorize: unknown client_id")
        if params.get("response_type") != "code" or not redirect_uri:
            raise ValueError("authorize: response_type=code and redirect_uri are required")
        back: dict[str, str] = {}
        if approve:
            with self.lock:
                account = account or self.add_account(data_center=self._dc_for(authorize_url))
                code = _token()
                self.codes[code] = {
                    "sub": account.sub,
                    "redirect_uri": redirect_uri,
                    "expires_at": self.clock() + 600,
                    "used": False,
                    "scope": params.get("scope", ""),
                    "data_center": account.data_center,
                }
            back["code"] = code
        else:
            back["error"] = "access_denied"
        if "state" in params:
            back["state"] = params["state"]
        return _with_query(redirect_uri, back)

    def complete_conferencing_authorization(
        self,
        url: str,
        *,
        approve: bool = True,
        provider_name: str | None = None,
        profile_name: str = "user@example.com",
    ) -> str:
        """Play the user linking a conferencing provider; returns the redirect back."""
        auth_id = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        with self.lock:
            pending = self.conferencing_authorizations[auth_id]
            if not approve:
                return _with_query(pending["redirect_uri"], {"error": "access_denied"})
            profile = self.profile(
                provider_name or pending["provider_name"] or "zoom", profile_name=profile_name
            )
            self.accounts[pending["sub"]].conferencing_profiles.append(profile)
        return _with_query(
            pending["redirect_uri"], {"last_linked_profile_id": profile["profile_id"]}
        )

    def notification(
        self, sub: str, notification_type: str = "profile_disconnected"
    ) -> tuple[bytes, dict[str, str]]:
        """A push notification body for the account's channel and its signed headers."""
        with self.lock:
            channel_id, channel = next(
                (cid, c) for cid, c in self.channels.items() if c["sub"] == sub
            )
            body = json.dumps(
                {
                    "notification": {"type": notification_type},
                    "channel": {
                        "channel_id": channel_id,
                        "callback_url": channel["callback_url"],
                        "filters": {},
                    },
                }
            ).encode()
        return body, {"Cronofy-HMAC-SHA256": self.sign(body)}

    def sign(self, body: bytes, secret: str | None = None) -> str:
        digest = hmac.new((secret or self.client_secret).encode(), body, hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    # -- the transport-independent handler --------------------------------

    def handle(self, request: SimRequest, data_center: str | None = None) -> SimResponse:
        endpoint = ENDPOINTS.get(
            (request.method.upper(), request.path.rstrip("/") or "/"), "unknown"
        )
        token_sub = self._sub_for_token(request.bearer())
        form = request.form() if request.method.upper() == "POST" else {}
        json_body = request.json() if "json" in request.headers.get("content-type", "") else None
        with self.lock:
            fault = self._take_fault(endpoint, token_sub)
        if fault is not None and (fault.status is not None or fault.exception is not None):
            response = SimResponse(
                fault.status or 0,
                fault.body if fault.body is not None else "",
                dict(fault.headers),
                exception=fault.exception,
                delay=fault.delay,
            )
        else:
            with self.lock:
                response = self._route(endpoint, request, data_center, form, json_body)
            if fault is not None:
                response.delay = fault.delay
                if fault.body is not None:
                    response.body = fault.body
        with self.lock:
            self.requests.append(
                RecordedRequest(
                    endpoint=endpoint,
                    method=request.method.upper(),
                    path=request.path,
                    data_center=data_center,
                    sub=token_sub,
                    status=response.status if response.exception is None else None,
                    form=form,
                    json=json_body,
                )
            )
        return response

    def _take_fault(self, endpoint: str, sub: str | None) -> Fault | None:
        for fault in self.faults:
            if fault.endpoint == endpoint and (fault.sub is None or fault.sub == sub):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def _sub_for_token(self, token: str) -> str | None:
        with self.lock:
            entry = self.access_tokens.get(token)
        if entry is None or entry[1] < self.clock():
            return None
        return entry[0]

    def _route(
        self,
        endpoint: str,
        request: SimRequest,
        data_center: str | None,
        form: dict,
        json_body: Any,
    ) -> SimResponse:
        if endpoint == "token":
            return self._token(form, data_center)
        if endpoint == "revoke":
            return self._revoke(form)
        if endpoint == "unknown":
            return SimResponse.json(404, {"error": "not_found"})
        sub = self._sub_for_token(request.bearer())
        account = self.accounts.get(sub) if sub else None
        if account is None or (data_center and account.data_center != data_center):
            return SimResponse(401, "", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if endpoint == "userinfo":
            return SimResponse.json(200, self._userinfo(account))
        if endpoint == "conferencing_service_authorizations":
            return self._conferencing_authorization(account, json_body, request)
        if endpoint == "channels":
            return self._channel(account, json_body)
        return SimResponse.json(404, {"error": "not_found"})

    def _userinfo(self, account: SimAccount) -> Any:
        if account.userinfo_body is not None:
            return account.userinfo_body
        return {
            "sub": account.sub,
            "email": account.email,
            "name": account.name,
            "zoneinfo": account.zoneinfo,
            "cronofy.type": account.account_type,
            "cronofy.data": {
                "authorization": {"scope": account.scope, "status": "active"},
                "profiles": [],
                "conferencing_profiles": [dict(p) for p in account.conferencing_profiles],
            },
        }

    def _token(self, form: dict[str, str], data_center: str | None) -> SimResponse:
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return SimResponse.json(400, {"error": "invalid_client"})
        grant = form.get("grant_type")
        if grant == "authorization_code":
            code = self.codes.get(form.get("code", ""))
            if (
                code is None
                or code["used"]
                or code["expires_at"] < self.clock()
                or code["redirect_uri"] != form.get("redirect_uri")
                or (data_center and code["data_center"] != data_center)
            ):
                return SimResponse.json(400, {"error": "invalid_grant"})
            code["used"] = True
            account = self.accounts[code["sub"]]
            if code["scope"]:
                account.scope = code["scope"]
            self._issue_tokens(account)
            return SimResponse.json(
                200,
                {
                    "token_type": "bearer",
                    "access_token": account.access_token,
                    "expires_in": account.expires_in,
                    "refresh_token": account.refresh_token,
                    "scope": account.scope,
                    "account_id": account.sub,
                    "sub": account.sub,
                    "linking_profile": {
                        "provider_name": "google",
                        "profile_id": _new_id("pro_", 10),
                        "profile_name": account.email,
                    },
                },
            )
        if grant == "refresh_token":
            sub = self.refresh_tokens.get(form.get("refresh_token", ""))
            account = self.accounts.get(sub) if sub else None
            if account is None or (data_center and account.data_center != data_center):
                return SimResponse.json(400, {"error": "invalid_grant"})
            self._issue_tokens(account, new_refresh=False)
            body = {
                "token_type": "bearer",
                "access_token": account.access_token,
                "expires_in": account.expires_in,
                "scope": account.scope,
            }
            if self.refresh_returns_refresh_token:
                body["refresh_token"] = account.refresh_token
            return SimResponse.json(200, body)
        return SimResponse.json(400, {"error": "unsupported_grant_type"})

    def _revoke(self, form: dict[str, str]) -> SimResponse:
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return SimResponse.json(400, {"error": "invalid_client"})
        token = form.get("token", "")
        sub = self.refresh_tokens.get(token) or (self.access_tokens.get(token) or (None,))[0]
        if sub:
            self.revoke_grant(sub)
        return SimResponse(200, "")

    def _conferencing_authorization(
        self, account: SimAccount, body: Any, request: SimRequest
    ) -> SimResponse:
        if not isinstance(body, dict) or not isinstance(body.get("redirect_uri"), str):
            return SimResponse.json(
                422,
                {
                    "errors": {
                        "redirect_uri": [{"key": "errors.required", "description": "required"}]
                    }
                },
            )
        auth_id = _new_id("csa_", 16)
        self.conferencing_authorizations[auth_id] = {
            "sub": account.sub,
            "redirect_uri": body["redirect_uri"],
            "provider_name": body.get("provider_name") or "",
        }
        app_url = self._app_url(account.data_center)
        return SimResponse.json(
            200, {"authorization_request": {"url": f"{app_url}/conferencing_services/{auth_id}"}}
        )

    def _channel(self, account: SimAccount, body: Any) -> SimResponse:
        if not isinstance(body, dict) or not isinstance(body.get("callback_url"), str):
            return SimResponse.json(
                422,
                {
                    "errors": {
                        "callback_url": [{"key": "errors.required", "description": "required"}]
                    }
                },
            )
        channel_id = _new_id("chn_")
        self.channels[channel_id] = {"sub": account.sub, "callback_url": body["callback_url"]}
        return SimResponse.json(
            200,
            {
                "channel": {
                    "channel_id": channel_id,
                    "callback_url": body["callback_url"],
                    "filters": {},
                }
            },
        )

    @staticmethod
    def _app_url(data_center: str) -> str:
        from .datacenters import get_data_center

        return get_data_center(data_center).app_url

    @staticmethod
    def _dc_for(url: str) -> str:
        from .datacenters import get_data_centers

        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        for dc in get_data_centers().values():
            if dc.app_url == origin or dc.api_url == origin:
                return dc.id
        raise ValueError(f"{origin} is not a registered data center")


def _relink_url(provider_name: str, profile_name: str) -> str:
    # Always https: the app refuses anything else, as it must with real Cronofy.
    return "https://app.cronofy.com/v2/relink/{}?{}".format(
        provider_name, urlencode({"email": profile_name})
    )


def _with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


class ResponsesAdapter:
    """Serves the simulator to ``requests`` through a ``responses.RequestsMock``."""

    def __init__(self, sim: SimulatedCronofy, sleep: Callable[[float], None] = time.sleep) -> None:
        self.sim = sim
        self.sleep = sleep

    def install(self, mock) -> None:
        import re

        from .datacenters import get_data_centers

        for dc in get_data_centers().values():
            pattern = re.compile(re.escape(dc.api_url) + r"(/.*)?$")
            for method in ("GET", "POST", "PUT", "DELETE"):
                mock.add_callback(method, pattern, callback=self._callback(dc.id))

    def _callback(self, data_center: str):
        def callback(prepared):
            parts = urlsplit(prepared.url)
            body = prepared.body or b""
            request = SimRequest(
                method=prepared.method,
                path=parts.path,
                host=parts.netloc,
                headers={k.lower(): v for k, v in prepared.headers.items()},
                body=body.encode() if isinstance(body, str) else body,
                query=parts.query,
            )
            response = self.sim.handle(request, data_center)
            if response.delay:
                self.sleep(response.delay)
            if response.exception is not None:
                raise (
                    response.exception()
                    if isinstance(response.exception, type)
                    else response.exception
                )
            return response.status, response.headers, response.body

        return callback


@contextmanager
def simulated_cronofy(
    sim: SimulatedCronofy | None = None, **kwargs: Any
) -> Iterator[SimulatedCronofy]:
    """Route every Cronofy data center to a simulator for the ``with`` block.

    Configure ``CRONOFY_CONFERENCING['CLIENT_ID'/'CLIENT_SECRET']`` to the
    simulator's (``DEFAULT_CLIENT_ID``/``DEFAULT_CLIENT_SECRET`` by default).
    """
    import responses

    sim = sim or SimulatedCronofy(**kwargs)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        ResponsesAdapter(sim).install(mock)
        yield sim


# -- serving the simulator over real HTTP ---------------------------------------
#
# ``HTTPServerAdapter`` serves the same simulator on a loopback port, for the
# benchmark, tests with real processes (Celery workers, two ``cronofy_sync``
# commands) and demos: register it as a data center and the app talks to it
# like to Cronofy. Its API side has a configurable latency and its own rate
# limit (429 when exceeded, counted); its app side has the consent pages.


class SlidingWindowLimit:
    """The simulated server's own limit: at most ``limit`` requests in any ``period`` seconds.

    Strict (a log of arrival times, not fixed windows): a client pacing its
    requests correctly never sees a 429, one that bursts across a window
    boundary does. Rejected requests do not count.
    """

    def __init__(self, rates: Iterable[str], clock: Callable[[], float] = time.monotonic) -> None:
        from .ratelimit import parse_rate

        self.rates = [parse_rate(r) for r in rates]
        self.clock = clock
        self._logs: list[deque[float]] = [deque() for _ in self.rates]
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self.clock()
            for rate, log in zip(self.rates, self._logs, strict=True):
                while log and log[0] <= now - rate.period:
                    log.popleft()
                if len(log) >= rate.limit:
                    return False
            for log in self._logs:
                log.append(now)
            return True


def max_in_window(times: Iterable[float], seconds: float) -> int:
    """The most timestamps that fall in any window of ``seconds`` (half-open)."""
    ordered = sorted(times)
    best = start = 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


_CONSENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:34em;margin:3em auto}}
button{{font-size:1.1em;margin-right:1em}}</style></head>
<body><h1>{title}</h1><p>{text}</p>
<form method="post" action="{action}">{fields}
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form><p><small>Simulated Cronofy ({dc})</small></p></body></html>
"""


def _field(label: str, name: str, value: str = "") -> str:
    return (
        f'<p><label>{html.escape(label)} <input name="{name}" '
        f'value="{html.escape(value, quote=True)}"></label></p>'
    )


class _SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # a sync at concurrency 32+ opens its connections at once

    def __init__(self, address, handler, adapter: HTTPServerAdapter) -> None:
        self.adapter = adapter
        self.connections: set[Any] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request_thread(self, request, client_address):
        with self.connections_lock:
            self.connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.discard(request)


class _SimHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse their connections
    disable_nagle_algorithm = True
    timeout = 60  # an idle keep-alive connection is closed after this
    server: _SimHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return None
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes | str = b"", headers: dict | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for name, value in (headers or {}).items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def _dispatch(self) -> None:
        adapter = self.server.adapter
        arrived = time.monotonic()
        parts = urlsplit(self.path)
        body = self._body()
        if body is None:
            self.close_connection = True
            self._send(411, "chunked bodies are not supported", {"Content-Type": "text/plain"})
            return
        path = parts.path.rstrip("/") or "/"
        if path == "/_sim/stats" and self.command == "GET":
            self._send(
                200, json.dumps(adapter.stats(with_arrivals="arrivals" in parts.query)), _JSON
            )
            return
        if path == "/oauth/authorize":
            self._send(*adapter.authorize_page(self.command, parts.query, body))
            return
        if path.startswith("/conferencing_services/"):
            self._send(*adapter.conferencing_page(self.command, path, parts.query, body))
            return
        adapter.serve_api(self, parts, body, arrived)


_JSON = {"Content-Type": "application/json"}


class HTTPServerAdapter:
    """Serves a ``SimulatedCronofy`` over HTTP on ``host:port`` (a free port by default).

        sim = SimulatedCronofy()
        with HTTPServerAdapter(sim, "sim", latency=0.1, rate_limits=["50/s"]) as server:
            with server.registered():          # DATA_CENTERS["sim"] -> this server
                account = sim.add_account(data_center="sim")
                ...

    One origin is both the data center's ``api_url`` and its ``app_url``:

    - API: every simulator endpoint, each answered after ``latency`` seconds;
      beyond ``rate_limits`` (strict sliding windows) a 429, counted in
      ``rate_limited``. ``arrivals`` holds the arrival times (``time.monotonic``)
      of the API requests it served.
    - App: ``/oauth/authorize`` and ``/conferencing_services/<id>`` are
      consent pages with Approve/Deny buttons (what ``sim.authorize`` and
      ``sim.complete_conferencing_authorization`` play in tests).
    - ``GET /_sim/stats``: the counts as JSON, for a server in another process.

    ``push(sub, type)`` posts a signed push notification to the account's
    channel callback URL, like Cronofy does.
    """

    def __init__(
        self,
        sim: SimulatedCronofy,
        data_center_id: str = "sim",
        *,
        latency: float = 0.0,
        rate_limits: Iterable[str] = (),
        retry_after: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.sim = sim
        self.data_center_id = data_center_id
        self.latency = latency
        self.limit = SlidingWindowLimit(rate_limits) if rate_limits else None
        self.retry_after = retry_after
        self.rate_limited = 0
        self.served = 0
        self.arrivals: list[float] = []
        self._counter_lock = threading.Lock()
        self._server = _SimHTTPServer((host, port), _SimHandler, self)
        self._thread: threading.Thread | None = None
        self.host, self.port = self._server.server_address[:2]
        # The consent pages and authorization URLs name this server, whether
        # or not Django's settings know about it (the server may run alone).
        base_app_url = sim._app_url

        def app_url(data_center: str) -> str:
            return self.app_url if data_center == self.data_center_id else base_app_url(data_center)

        sim._app_url = app_url  # type: ignore[method-assign]

    # -- lifecycle --------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    api_url = app_url = url

    def start(self) -> HTTPServerAdapter:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"sim-http-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread (a server process of its own); stop with ``stop()``."""
        self._server.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        with self._server.connections_lock:
            open_connections = list(self._server.connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()

    def __enter__(self) -> HTTPServerAdapter:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- registration as a data center -------------------------------------

    def data_center_settings(self) -> dict[str, dict[str, str]]:
        """``{id: {"api_url", "app_url", "label"}}``, for the ``DATA_CENTERS`` setting."""
        return {
            self.data_center_id: {
                "api_url": self.api_url,
                "app_url": self.app_url,
                "label": f"Simulated Cronofy ({self.port})",
            }
        }

    @contextmanager
    def registered(self, **overrides: Any) -> Iterator[HTTPServerAdapter]:
        """Add this server to ``DATA_CENTERS`` (and any other ``overrides``) for the block."""
        from django.conf import settings
        from django.test import override_settings

        current = dict(getattr(settings, "CRONOFY_CONFERENCING", None) or {})
        current["DATA_CENTERS"] = {
            **(current.get("DATA_CENTERS") or {}),
            **self.data_center_settings(),
        }
        current.update(overrides)
        with override_settings(CRONOFY_CONFERENCING=current):
            yield self

    # -- counters -----------------------------------------------------------

    def max_in_window(self, seconds: float) -> int:
        """The most API requests served in any window of ``seconds``."""
        with self._counter_lock:
            arrivals = list(self.arrivals)
        return max_in_window(arrivals, seconds)

    def stats(self, *, with_arrivals: bool = False) -> dict[str, Any]:
        with self._counter_lock:
            data: dict[str, Any] = {
                "served": self.served,
                "rate_limited": self.rate_limited,
                "counts": dict(self.sim.counts()),
            }
            if with_arrivals:
                data["arrivals"] = list(self.arrivals)
        return data

    # -- the API side -----------------------------------------------------------

    def serve_api(self, handler: _SimHandler, parts: Any, body: bytes, arrived: float) -> None:
        allowed = self.limit is None or self.limit.allow()
        if self.latency:
            time.sleep(self.latency)
        if not allowed:
            with self._counter_lock:
                self.rate_limited += 1
            headers = dict(_JSON)
            if self.retry_after is not None:
                headers["Retry-After"] = str(self.retry_after)
            handler._send(429, json.dumps({"error": "rate_limited"}), headers)
            return
        request = SimRequest(
            method=handler.command,
            path=parts.path,
            host=handler.headers.get("Host", ""),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            query=parts.query,
        )
        response = self.sim.handle(request, self.data_center_id)
        with self._counter_lock:
            self.served += 1
            self.arrivals.append(arrived)
        if response.delay:
            time.sleep(response.delay)
        if response.exception is not None:
            # A transport failure: drop the connection without an answer.
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        handler._send(response.status, response.body, response.headers)

    # -- the app side: consent pages --------------------------------------------

    def _page(self, title: str, text: str, action: str, fields: str = "") -> tuple:
        page = _CONSENT_PAGE.format(
            title=html.escape(title),
            text=html.escape(text),
            action=html.escape(action, quote=True),
            fields=fields,
            dc=html.escape(self.data_center_id),
        )
        return 200, page, {"Content-Type": "text/html; charset=utf-8"}

    @staticmethod
    def _text(status: int, text: str) -> tuple:
        return status, text, {"Content-Type": "text/plain; charset=utf-8"}

    @staticmethod
    def _redirect(location: str) -> tuple:
        return 302, "", {"Location": location}

    def authorize_page(self, method: str, query: str, body: bytes) -> tuple:
        """``GET``: the OAuth consent page; ``POST``: the decision, then back to the app."""
        authorize_url = f"{self.app_url}/oauth/authorize?{query}"
        params = dict(parse_qsl(query))
        if method == "GET":
            if params.get("client_id") != self.sim.client_id:
                return self._text(400, "Unknown client_id.")
            return self._page(
                "Connect your calendar",
                "An application asks to read your Cronofy account "
                f"(scope: {params.get('scope', '')}).",
                f"/oauth/authorize?{query}",
                _field("Email (an existing simulated account, or a new one)", "email")
                + _field("Conferencing providers of a new account", "providers", "zoom"),
            )
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        approve = form.get("decision") == "approve"
        account = None
        if approve:
            account = self._account_for(form.get("email", ""), form.get("providers", ""))
        try:
            redirect = self.sim.authorize(authorize_url, account=account, approve=approve)
            return self._redirect(redirect)
        except ValueError as exc:
            return self._text(400, str(exc))

    def _account_for(self, email: str, providers: str) -> SimAccount:
        email = email.strip()
        with self.sim.lock:
            for account in self.sim.accounts.values():
                if email and account.email == email and account.data_center == self.data_center_id:
                    return account
        profiles = [
            self.sim.profile(name.strip(), profile_name=email or "user@example.com")
            for name in providers.split(",")
            if name.strip()
        ]
        return self.sim.add_account(
            data_center=self.data_center_id, email=email or None, conferencing_profiles=profiles
        )

    def conferencing_page(self, method: str, path: str, query: str, body: bytes) -> tuple:
        """``GET``: link a conferencing provider; ``POST``: the decision, then back."""
        auth_id = path.rsplit("/", 1)[-1]
        with self.sim.lock:
            pending = self.sim.conferencing_authorizations.get(auth_id)
        if pending is None:
            return self._text(404, "Unknown conferencing service authorization.")
        if method == "GET":
            provider = pending["provider_name"]
            return self._page(
                "Connect a conferencing service",
                f"Link {provider or 'a conferencing provider'} to your Cronofy account.",
                path,
                ("" if provider else _field("Provider", "provider_name", "zoom"))
                + _field("Profile name", "profile_name", "user@example.com"),
            )
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        redirect = self.sim.complete_conferencing_authorization(
            f"{self.app_url}{path}",
            approve=form.get("decision") == "approve",
            provider_name=form.get("provider_name") or None,
            profile_name=form.get("profile_name") or "user@example.com",
        )
        return self._redirect(redirect)

    # -- push notifications -----------------------------------------------------

    def push(self, sub: str, notification_type: str = "profile_disconnected", **kwargs: Any):
        """POST a notification to the account's channel callback (see ``post_notification``)."""
        return post_notification(self.sim, sub, notification_type, **kwargs)


def post_notification(
    sim: SimulatedCronofy,
    sub: str | None,
    notification_type: str = "profile_disconnected",
    *,
    channel_id: str | None = None,
    callback_url: str | None = None,
    secrets: Iterable[str] | None = None,
    signature: str | None = None,
    body: bytes | None = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    """POST a push notification to a channel's callback URL, as Cronofy does.

    By default the account's channel, signed with the simulator's client
    secret. ``secrets`` signs with each of them (comma-separated, as during a
    rotation); ``signature`` sends that header value as is (``""`` sends none);
    ``channel_id``/``callback_url``/``body`` override the notification.
    Returns the receiver's status and body.
    """
    if body is None and channel_id is None and sub is not None:
        body, _ = sim.notification(sub, notification_type)
    with sim.lock:
        if callback_url is None:
            if body is not None:
                channel_id = channel_id or json.loads(body)["channel"]["channel_id"]
            channel = sim.channels.get(channel_id or "")
            if channel is None:
                raise ValueError("post_notification: give callback_url for an unknown channel")
            callback_url = channel["callback_url"]
    if body is None:
        body = json.dumps(
            {
                "notification": {"type": notification_type},
                "channel": {"channel_id": channel_id, "callback_url": callback_url, "filters": {}},
            }
        ).encode()
    headers = {"Content-Type": "application/json"}
    if signature is None:
        signature = ",".join(sim.sign(body, secret) for secret in (secrets or [sim.client_secret]))
    if signature:
        headers["Cronofy-HMAC-SHA256"] = signature
    if urlsplit(callback_url).scheme not in ("http", "https"):
        raise ValueError("post_notification: the callback URL must be http(s)")
    request = urllib.request.Request(  # noqa: S310 (http(s) only, checked above)
        callback_url, data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextmanager
def serve_simulator(
    sim: SimulatedCronofy | None = None,
    data_center_id: str = "sim",
    *,
    register: bool = True,
    **kwargs: Any,
) -> Iterator[HTTPServerAdapter]:
    """Serve a simulator over HTTP for the block, registered as ``data_center_id``."""
    with HTTPServerAdapter(sim or SimulatedCronofy(), data_center_id, **kwargs) as server:
        if register:
            with server.registered():
                yield server
        else:
            yield server
