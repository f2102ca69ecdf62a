"""The simulated Cronofy's API endpoints: one handler, independent of any transport.

A mixin of ``SimulatedCronofy`` (which holds the state these read and write:
accounts, tokens, codes, channels, faults): kept apart so each reads on its
own. Events are in ``events``, calendar profiles in ``calendars``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .events import handle as handle_events
from .events import match_endpoint as match_events_endpoint
from .records import (
    Fault,
    RecordedRequest,
    SimAccount,
    SimRequest,
    SimResponse,
    endpoint_name,
    new_id,
)


class CronofyEndpoints:
    """``handle()`` and the endpoints behind it (the state is ``SimulatedCronofy``'s)."""

    # Set by SimulatedCronofy.__init__.
    lock: threading.RLock
    clock: Callable[[], float]
    accounts: dict[str, SimAccount]
    access_tokens: dict[str, tuple[str, float]]
    refresh_tokens: dict[str, str]
    codes: dict[str, dict[str, Any]]
    channels: dict[str, dict[str, Any]]
    conferencing_authorizations: dict[str, dict[str, Any]]
    faults: list[Fault]
    requests: list[RecordedRequest]
    code_response_omits: frozenset[str]
    refresh_returns_refresh_token: bool
    rotate_refresh_tokens: bool

    # -- the transport-independent handler --------------------------------

    def handle(self, request: SimRequest, data_center: str | None = None) -> SimResponse:
        endpoint = endpoint_name(request.method.upper(), request.path.rstrip("/") or "/")
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
                    at=self.clock(),
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
                    "profile_id": new_id("pro_", 10),
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
            if self.rotate_refresh_tokens:
                del self.refresh_tokens[form["refresh_token"]]
            self._issue_tokens(account, new_refresh=self.rotate_refresh_tokens)
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
        auth_id = new_id("csa_", 16)
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
        channel_id = new_id("chn_")
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
        from ..cronofy.datacenters import get_data_center

        return get_data_center(data_center).app_url

    @staticmethod
    def _dc_for(url: str) -> str:
        from ..cronofy.datacenters import get_data_centers

        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        for dc in get_data_centers().values():
            if dc.app_url == origin or dc.api_url == origin:
                return dc.id
        raise ValueError(f"{origin} is not a registered data center")
