"""``manage.py cronofy_simulator``: a local Cronofy for developing a host project.

Serves ``django_cronofy_conferencing.testing``'s simulated Cronofy over HTTP on
loopback, with a few demo accounts, and prints the settings that point the
project at it. It keeps its state (accounts, tokens, profiles) in memory while
it runs: stop it and every account linked to it needs linking again.
"""

from __future__ import annotations

import json

from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...conf import app_settings
from ...testing import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, HTTPServerAdapter
from ...testing.simulator import SimulatedCronofy

LOOPBACK = ("127.0.0.1", "localhost")

#: (email, name, [(provider_name, connected), ...]): a healthy account, one with a
#: profile to relink, one without conferencing profiles.
DEMO_ACCOUNTS = [
    ("alice@example.com", "Alice Example", [("zoom", True), ("ms_teams", True)]),
    ("bob@example.com", "Bob Example", [("zoom", True), ("go_to", False)]),
    ("carol@example.com", "Carol Example", []),
]


def start_simulator(
    *, port: int, data_center: str = "sim", demo_accounts: bool = True
) -> HTTPServerAdapter:
    """A started HTTP simulator on 127.0.0.1:``port`` (0: any free port)."""
    # Its application is the one in ``data_center``, the DEFAULT_DATA_CENTER of the
    # settings it prints, whatever the settings of this process say now.
    sim = SimulatedCronofy(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        default_data_center=data_center,
    )
    server = HTTPServerAdapter(sim, data_center, host="127.0.0.1", port=port)
    if demo_accounts:
        for email, name, profiles in DEMO_ACCOUNTS:
            sim.add_account(
                data_center=data_center,
                email=email,
                name=name,
                conferencing_profiles=[
                    sim.profile(provider, profile_name=email, connected=connected)
                    for provider, connected in profiles
                ],
            )
    return server.start()


def settings_for(server: HTTPServerAdapter, encryption_key: str | None = None) -> dict:
    """``CRONOFY_CONFERENCING`` for a project that develops against ``server``.

    The simulator's data center is ``DEFAULT_DATA_CENTER``, so ``CLIENT_ID`` and
    ``CLIENT_SECRET`` are its application's (no ``APPLICATIONS`` entry needed).
    A fresh ``ENCRYPTION_KEYS`` key keeps ``manage.py check`` quiet (W001).
    """
    client_id, client_secret = server.sim.credentials_for(server.data_center_id)
    value = {
        "CLIENT_ID": client_id,
        "CLIENT_SECRET": client_secret,
        "DEFAULT_DATA_CENTER": server.data_center_id,
        "DATA_CENTERS": {
            server.data_center_id: {
                "api_url": server.url,
                "app_url": server.url,
                "label": "Simulated Cronofy",
            }
        },
        # The simulator answers at once; a failed call is retried without waiting.
        "RATE_LIMITS": [],
        "RETRY_BACKOFF": 0,
    }
    if encryption_key:
        value["ENCRYPTION_KEYS"] = [encryption_key]
    return value


def settings_text(server: HTTPServerAdapter, encryption_key: str | None = None) -> str:
    """The settings block to paste, as Python source (JSON of strings, lists and numbers)."""
    return "CRONOFY_CONFERENCING = " + json.dumps(settings_for(server, encryption_key), indent=4)


class Command(BaseCommand):
    help = (
        "Serve a simulated Cronofy on 127.0.0.1 for local development, with demo accounts, "
        "and print the CRONOFY_CONFERENCING settings that use it. Stop with Ctrl-C (it "
        "keeps its state in memory until then)."
    )
    # It runs before the project is configured for it: its settings may not pass yet.
    requires_system_checks: list = []
    suppressed_base_arguments = {"--version", "--pythonpath", "--no-color", "--force-color"}

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--port", type=int, default=8001, help="Port to serve on (default 8001; 0: any)."
        )
        parser.add_argument(
            "--addr", default="127.0.0.1", help="Address to serve on (loopback only)."
        )
        parser.add_argument(
            "--data-center",
            default="sim",
            help="The data center id to register it as (default: sim).",
        )
        parser.add_argument(
            "--no-demo-accounts", action="store_true", help="Start with no accounts."
        )

    def handle(self, *args, **options) -> None:
        if options["addr"] not in LOOPBACK:
            raise CommandError("The simulator serves on loopback only (--addr 127.0.0.1).")
        dc = options["data_center"]
        if not dc or not dc.replace("_", "").replace("-", "").isalnum():
            raise CommandError("--data-center must be a short id such as sim.")
        if not 0 <= options["port"] <= 65535:
            raise CommandError("--port must be between 0 and 65535.")
        try:
            server = start_simulator(
                port=options["port"],
                data_center=dc,
                demo_accounts=not options["no_demo_accounts"],
            )
        except OSError as exc:
            raise CommandError(
                f"Port {options['port']} on 127.0.0.1 is busy ({exc.strerror or exc}). "
                "Choose another with --port (the settings printed will name it)."
            ) from None
        try:
            self.print_banner(server)
            server.wait()
        except KeyboardInterrupt:
            self.stdout.write("\nStopped: the simulated Cronofy forgot its accounts.")
        finally:
            server.stop()

    def print_banner(self, server: HTTPServerAdapter) -> None:
        configured = (app_settings.DATA_CENTERS or {}).get(server.data_center_id) or {}
        lines = [
            f"Simulated Cronofy on {server.url}/ (data center {server.data_center_id!r}).",
            "",
            "Paste into your settings.py (development only):",
            "",
            settings_text(server, Fernet.generate_key().decode()),
            "",
        ]
        if configured.get("api_url") == server.url:
            lines += ["(Your settings already point at it.)", ""]
        accounts = list(server.sim.accounts.values())
        if accounts:
            lines.append(
                "Demo accounts: type one's email on the consent page (any other email "
                "makes a new account):"
            )
            for account in accounts:
                profiles = ", ".join(
                    "{} ({})".format(
                        p["provider_name"], "connected" if p["profile_connected"] else "to relink"
                    )
                    for p in account.conferencing_profiles
                )
                lines.append(f"  {account.email:<20} {profiles or 'no conferencing profiles'}")
            lines.append("")
        lines += [
            "Then open your site's /cronofy/ page and choose Connect Cronofy.",
            "It keeps its state in memory until you stop it with Ctrl-C.",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()
