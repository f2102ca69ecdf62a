"""The simulated Cronofy's app side over HTTP: its root page and consent pages.

A mixin of ``HTTPServerAdapter`` (``http``), which routes the app's paths here
and gives the simulator, its URL and data center. Plain HTML, every value
escaped: what a developer clicks through in a demo, and what the browser
tests drive.
"""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qsl

from .records import ENDPOINTS, SimAccount
from .simulator import SimulatedCronofy

# Cronofy's provider names are short identifiers (zoom, ms_teams, go_to, ...).
PROVIDER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}\Z")  # not "$": it allows a final newline

_CONSENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:34em;margin:3em auto}}
button{{font-size:1.1em;margin-right:1em}}</style></head>
<body><h1>{title}</h1><p>{text}</p>{error}
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


class ConsentPages:
    """The root page, the OAuth consent page and the add-a-provider page."""

    # Set by HTTPServerAdapter.
    sim: SimulatedCronofy
    data_center_id: str
    url: str
    app_url: str

    # -- the app side: consent pages --------------------------------------------

    def _page(
        self, title: str, text: str, action: str, fields: str = "", *, error: str = ""
    ) -> tuple:
        page = _CONSENT_PAGE.format(
            title=html.escape(title),
            text=html.escape(text),
            action=html.escape(action, quote=True),
            fields=fields,
            dc=html.escape(self.data_center_id),
            error=f'<p role="alert"><strong>{html.escape(error)}</strong></p>' if error else "",
        )
        return 400 if error else 200, page, {"Content-Type": "text/html; charset=utf-8"}

    def index_page(self) -> str:
        """The root URL: what this server is and serves, and its accounts (never a token)."""
        with self.sim.lock:
            accounts = [
                a for a in self.sim.accounts.values() if a.data_center == self.data_center_id
            ]
            rows = "".join(
                "<li>{} <small>({})</small>: {}</li>".format(
                    html.escape(a.email),
                    html.escape(a.sub),
                    html.escape(
                        ", ".join(
                            f"{p['provider_name']} "
                            f"({'connected' if p['profile_connected'] else 'disconnected'})"
                            for p in a.conferencing_profiles
                        )
                        or "no conferencing profiles"
                    ),
                )
                for a in accounts
            )
        endpoints = "".join(
            f"<li><code>{method} {path}</code></li>" for method, path in sorted(ENDPOINTS)
        )
        dc = html.escape(self.data_center_id)
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>Simulated Cronofy ({dc})</title></head><body>"
            f"<h1>Simulated Cronofy: data center <code>{dc}</code></h1>"
            f"<p>API and app URL: <code>{html.escape(self.url)}</code>. Client id "
            f"<code>{html.escape(self.sim.credentials_for(self.data_center_id)[0])}</code>.</p>"
            f"<h2>API</h2><ul>{endpoints}</ul>"
            "<h2>Pages</h2><ul><li><code>GET /oauth/authorize</code>: the consent page "
            "(Approve or Deny)</li><li><code>GET /conferencing_services/&lt;id&gt;</code>: "
            "add a conferencing provider</li><li><code>GET /_sim/stats</code>: request "
            "counts (JSON)</li></ul>"
            f"<h2>Accounts</h2><ul>{rows or '<li>none yet</li>'}</ul>"
            "</body></html>"
        )

    @staticmethod
    def bad_provider_names(text: str) -> list[str]:
        """The comma-separated names in ``text`` that are not provider names."""
        names = [name.strip() for name in text.split(",") if name.strip()]
        return [name for name in names if not PROVIDER_NAME.match(name)]

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
            if params.get("client_id") != self.sim.credentials_for(self.data_center_id)[0]:
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
        bad = self.bad_provider_names(form.get("providers", "")) if approve else []
        if bad:
            return self._page(
                "Connect your calendar",
                "Fix the provider names, then approve again.",
                f"/oauth/authorize?{query}",
                _field(
                    "Email (an existing simulated account, or a new one)",
                    "email",
                    form.get("email", ""),
                )
                + _field(
                    "Conferencing providers of a new account",
                    "providers",
                    form.get("providers", ""),
                ),
                error=f"{bad[0]!r} is not a provider name: separate names with commas, "
                "as in zoom, ms_teams.",
            )
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
        provider_name = (form.get("provider_name") or "").strip()
        if provider_name and not PROVIDER_NAME.match(provider_name):
            return self._page(
                "Connect a conferencing service",
                "Fix the provider name, then approve again.",
                path,
                _field("Provider", "provider_name", provider_name)
                + _field("Profile name", "profile_name", form.get("profile_name", "")),
                error=f"{provider_name!r} is not a provider name (one name, such as zoom).",
            )
        redirect = self.sim.complete_conferencing_authorization(
            f"{self.app_url}{path}",
            approve=form.get("decision") == "approve",
            provider_name=provider_name or None,
            profile_name=form.get("profile_name") or "user@example.com",
        )
        return self._redirect(redirect)
