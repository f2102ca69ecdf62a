"""The simulated Cronofy's state and its transport-independent request handler."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .events import (
    EventStore,
    set_calendar_profile_connected,
)
from .events import (
    calendar as sim_calendar,
)
from .events import (
    calendar_profile as sim_calendar_profile,
)
from .events import (
    generate as generate_event_conferencing,
)
from .events import (
    handle as handle_events,
)
from .events import (
    match_endpoint as match_events_endpoint,
)

DEFAULT_CLIENT_ID = "sim_client_id"
DEFAULT_CLIENT_SECRET = "sim_client_secret_0123456789"


def simulated_application(data_center: str) -> dict[str, str]:
    """The simulator's Cronofy application in ``data_center`` (other than the default
    one), in the form of ``CRONOFY_CONFERENCING["APPLICATIONS"][data_center]``."""
    return {
        "CLIENT_ID": f"{DEFAULT_CLIENT_ID}_{data_center}",
        "CLIENT_SECRET": f"{DEFAULT_CLIENT_SECRET}_{data_center}",
    }


def simulated_applications(data_centers: Any) -> dict[str, dict[str, str]]:
    """``APPLICATIONS`` for the simulator's applications in ``data_centers``::

    CRONOFY_CONFERENCING["APPLICATIONS"] = simulated_applications(["uk", "de"])
    """
    return {dc: simulated_application(dc) for dc in data_centers}


ENDPOINTS = {
    ("GET", "/v1/userinfo"): "userinfo",
    ("POST", "/oauth/token"): "token",
    ("POST", "/oauth/token/revoke"): "revoke",
    ("POST", "/v1/conferencing_service_authorizations"): "conferencing_service_authorizations",
    ("POST", "/v1/channels"): "channels",
    ("GET", "/v1/channels"): "list_channels",
}


def _new_id(prefix: str, length: int = 24) -> str:
    return prefix + secrets.token_hex(length // 2)


def _token() -> str:
    return secrets.token_urlsafe(24)


class NoPushChannel(LookupError):
    """``notification()`` for an account that has no push channel at the simulator."""


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
    calendar_profiles: list[dict[str, Any]] = field(default_factory=list)  # see events.py
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
    """In-memory Cronofy: accounts, tokens, conferencing profiles and fault injection.

    Like Cronofy, each data center has its own application: ``client_id`` /
    ``client_secret`` in ``default_data_center`` (None: the host's
    ``DEFAULT_DATA_CENTER``), ``applications[dc]`` (``{"CLIENT_ID", "CLIENT_SECRET"}``)
    where given, else ``simulated_application(dc)``. Credentials of another data
    center's application are refused (``invalid_client``), as Cronofy does.
    """

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        clock: Callable[[], float] = time.time,
        refresh_returns_refresh_token: bool = True,
        applications: dict[str, dict[str, str]] | None = None,
        default_data_center: str | None = None,
        code_response_omits: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.applications = dict(applications or {})
        self.default_data_center = default_data_center
        #: Keys left out of the authorization-code token response, as in shapes seen in
        #: Cronofy's SDK test suites (e.g. {"sub", "account_id", "linking_profile"}).
        self.code_response_omits = frozenset(code_response_omits)
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
        self.events = EventStore()
        #: The client's waits between retries under ``simulated_cronofy()`` (not slept).
        self.retry_waits: list[float] = []
        self.lock = threading.RLock()

    # -- applications -------------------------------------------------------

    def credentials_for(self, data_center: str | None) -> tuple[str, str]:
        """(client id, client secret) of the application in ``data_center``."""
        default = self.default_data_center
        if default is None:
            try:
                from ..conf import app_settings

                default = app_settings.DEFAULT_DATA_CENTER
            except Exception:  # no Django settings: a stand-alone simulator
                default = "us"
        if data_center in self.applications:
            entry = self.applications[data_center]
            return entry["CLIENT_ID"], entry["CLIENT_SECRET"]
        if data_center is None or data_center == default:
            return self.client_id, self.client_secret
        entry = simulated_application(data_center)
        return entry["CLIENT_ID"], entry["CLIENT_SECRET"]

    def _client_ok(self, form: dict[str, str], data_center: str | None) -> bool:
        client_id, client_secret = self.credentials_for(data_center)
        return hmac.compare_digest(form.get("client_id", ""), client_id) and hmac.compare_digest(
            form.get("client_secret", ""), client_secret
        )

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

    #: Calendar profiles and events (``testing.events``).
    calendar_profile = staticmethod(sim_calendar_profile)
    calendar = staticmethod(sim_calendar)

    def set_calendar_profile_connected(
        self, sub: str, profile_id: str, connected: bool
    ) -> dict[str, Any]:
        with self.lock:
            return set_calendar_profile_connected(self.accounts[sub], profile_id, connected)

    def generate_conferencing(self, sub: str | None = None) -> None:
        """Run the pending conferencing generation now (see ``EventStore.pending_reads``)."""
        generate_event_conferencing(self, sub)

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
        data_center = self._dc_for(authorize_url)
        if params.get("client_id") != self.credentials_for(data_center)[0]:
            raise ValueError(f"authorize: unknown client_id for data center {data_center!r}")
        if params.get("response_type") != "code" or not redirect_uri:
            raise ValueError("authorize: response_type=code and redirect_uri are required")
        back: dict[str, str] = {}
        if approve:
            with self.lock:
                account = account or self.add_account(data_center=data_center)
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
        self, sub: str, notification_type: str = "profile_disconnected", **fields: Any
    ) -> tuple[bytes, dict[str, str]]:
        """A push notification body for the account's channel and its headers, signed
        with the secret of the account's data center's application."""
        with self.lock:
            account = self.accounts.get(sub)
            found = [(cid, c) for cid, c in self.channels.items() if c["sub"] == sub]
            if account is None or not found:
                known = "" if account is not None else " (and the simulator has no such account)"
                raise NoPushChannel(
                    f"Simulated Cronofy account {sub!r} has no push channel{known}. A channel "
                    "is made when the app links the account with "
                    "CRONOFY_CONFERENCING['PUSH_NOTIFICATIONS_CALLBACK_URL'] set "
                    "(linking.link_account), or by linking.ensure_push_channel(account)."
                )
            channel_id, channel = found[-1]
            body = json.dumps(
                {
                    "notification": {"type": notification_type, **fields},
                    "channel": {
                        "channel_id": channel_id,
                        "callback_url": channel["callback_url"],
                        "filters": {},
                    },
                }
            ).encode()
        secret = self.credentials_for(account.data_center)[1]
        return body, {"Cronofy-HMAC-SHA256": self.sign(body, secret)}

    def sign(self, body: bytes, secret: str | None = None) -> str:
        digest = hmac.new((secret or self.client_secret).encode(), body, hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def close_channel(self, channel_id: str) -> None:
        """Cronofy forgot the channel (closed, or expired): it is no longer listed."""
        with self.lock:
            self.channels.pop(channel_id, None)

    # -- the transport-independent handler --------------------------------

    def handle(self, request: SimRequest, data_center: str | None = None) -> SimResponse:
        endpoint = _endpoint(request.method.upper(), request.path.rstrip("/") or "/")
        if endpoint == "unknown":
            endpoint = match_events_endpoint(request.method, request.path) or endpoint
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
            return self._revoke(form, data_center)
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
        if endpoint == "list_channels":
            return self._list_channels(account)
        if endpoint == "close_channel":
            channel_id = request.path.rstrip("/").rsplit("/", 1)[-1]
            channel = self.channels.get(channel_id)
            if channel is None or channel["sub"] != account.sub:
                return SimResponse.json(404, {"error": "not_found"})
            del self.channels[channel_id]
            return SimResponse(202, "")
        if endpoint in ("upsert_event", "read_events"):
            status, data = handle_events(self, endpoint, account, request, json_body)
            return SimResponse(status, "") if data is None else SimResponse.json(status, data)
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
                "profiles": [dict(p) for p in account.calendar_profiles],
                "conferencing_profiles": [dict(p) for p in account.conferencing_profiles],
            },
        }

    def _token(self, form: dict[str, str], data_center: str | None) -> SimResponse:
        if not self._client_ok(form, data_center):
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
            body = {
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
            }
            for key in self.code_response_omits:
                body.pop(key, None)
            return SimResponse.json(200, body)
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

    def _revoke(self, form: dict[str, str], data_center: str | None) -> SimResponse:
        if not self._client_ok(form, data_center):
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

    def _list_channels(self, account: SimAccount) -> SimResponse:
        channels = [
            {"channel_id": cid, "callback_url": c["callback_url"], "filters": {}}
            for cid, c in self.channels.items()
            if c["sub"] == account.sub
        ]
        return SimResponse.json(200, {"channels": channels})

    @staticmethod
    def _app_url(data_center: str) -> str:
        from ..datacenters import get_data_center

        return get_data_center(data_center).app_url

    @staticmethod
    def _dc_for(url: str) -> str:
        from ..datacenters import get_data_centers

        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        for dc in get_data_centers().values():
            if dc.app_url == origin or dc.api_url == origin:
                return dc.id
        raise ValueError(f"{origin} is not a registered data center")


def _endpoint(method: str, path: str) -> str:
    """The endpoint name of a request (``ENDPOINTS``, or a path with an id in it)."""
    found = ENDPOINTS.get((method, path))
    if found:
        return found
    if method == "DELETE" and path.startswith("/v1/channels/") and path.count("/") == 3:
        return "close_channel"
    return "unknown"


def _relink_url(provider_name: str, profile_name: str) -> str:
    # Always https: the app refuses anything else, as it must with real Cronofy.
    return "https://app.cronofy.com/v2/relink/{}?{}".format(
        provider_name, urlencode({"email": profile_name})
    )


def _with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)
