"""Test clients that fail a test when a response carries a token or the client secret.

Every response through ``ScanningClient`` (admin pages) or ``ScanningAPIClient``
(API JSON) is searched, body and headers, for every secret known to the
scanner: the client secret, every token the simulated Cronofy issued, every
token-sized credential the app's HTTP client sent, and the tokens a test stored
itself. The scan runs no database query, so it can sit inside query-count
assertions.
"""

from __future__ import annotations

from django.test import Client
from rest_framework.test import APIClient

from django_cronofy_conferencing.cronofy import redaction
from django_cronofy_conferencing.testing import DEFAULT_CLIENT_SECRET, SimulatedCronofy


class SecretLeak(AssertionError):
    pass


class SecretScanner:
    def __init__(self, sim: SimulatedCronofy | None = None) -> None:
        self.sim = sim
        self.extra: set[str] = set()
        self.checked = 0

    def add(self, *values: str) -> None:
        self.extra.update(v for v in values if v)

    def secrets(self) -> set[str]:
        # Cumulative: a token the simulator has since revoked or replaced stays secret.
        found = self.extra
        found.add(DEFAULT_CLIENT_SECRET)
        # Every credential the app's HTTP client has sent (the redaction registry).
        with redaction._lock:
            # Long ones only: other tests may register short made-up values.
            found.update(v for v in redaction._remembered if len(v) >= 20)
        if self.sim is not None:
            with self.sim.lock:
                found.update(self.sim.access_tokens)
                found.update(self.sim.refresh_tokens)
                for account in self.sim.accounts.values():
                    found.update((account.access_token, account.refresh_token))
                for code in self.sim.codes:
                    found.add(code)
        return {s for s in found if s}

    def check(self, response, where: str = "") -> None:
        body = b"" if getattr(response, "streaming", False) else response.content
        text = (
            body.decode("utf-8", "replace")
            + "\n"
            + "\n".join(f"{k}: {v}" for k, v in response.items())
        )
        for secret in self.secrets():
            if secret in text:
                raise SecretLeak(f"a secret appeared in the response to {where or 'a request'}")
        self.checked += 1


class _ScanningMixin:
    scanner: SecretScanner

    def request(self, **request):
        response = super().request(**request)
        self.scanner.check(
            response, f"{request.get('REQUEST_METHOD', 'GET')} {request.get('PATH_INFO', '')}"
        )
        return response


class ScanningClient(_ScanningMixin, Client):
    def __init__(self, scanner: SecretScanner, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scanner = scanner


class ScanningAPIClient(_ScanningMixin, APIClient):
    def __init__(self, scanner: SecretScanner, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scanner = scanner
