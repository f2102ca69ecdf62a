"""``python example_project/manage.py demo``: the whole app on a simulated Cronofy.

One command, no credentials, no network: migrates, creates the demo login,
serves the simulated Cronofy on loopback (registered as the data center
``sim``), links a demo account with a mix of conferencing profiles, syncs it,
and serves the site on 127.0.0.1 until Ctrl-C.
"""

from __future__ import annotations

import secrets
import signal
import socket
import sys
import threading

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from django_cronofy_conferencing import linking
from django_cronofy_conferencing.cronofy.tokens import TokenSet
from django_cronofy_conferencing.models import LinkedAccount

from ... import simulator

DEMO_EMAIL = "demo@example.com"


def free_port(host: str, wanted: int) -> int:
    """``wanted`` if it can be bound on ``host`` now, else a free port (0: any free port).

    The probe binds with ``SO_REUSEADDR``, as the servers do: a port left in
    TIME_WAIT by the previous run is free to them, so a quick rerun keeps its port.
    """
    for port in ([wanted] if wanted else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise CommandError(f"No free port on {host}.")


class Command(BaseCommand):
    help = (
        "Run the example project on a simulated Cronofy: migrate, create a demo login, "
        "link a demo account with conferencing profiles, and serve the site on 127.0.0.1."
    )
    requires_system_checks: list = []  # run below, after the simulator is configured

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--addr", default="127.0.0.1", help="Address to serve on (loopback only)."
        )
        parser.add_argument(
            "--port", type=int, default=8000, help="Site port (a free one if busy; 0: any)."
        )
        parser.add_argument(
            "--sim-port",
            type=int,
            default=8001,
            help="Simulated Cronofy port (a free one if busy; 0: any).",
        )
        parser.add_argument("--username", default="demo", help="The demo login (default: demo).")
        parser.add_argument(
            "--password",
            default="",
            help="The demo login's password (default: a new random one, printed).",
        )
        parser.add_argument(
            "--no-serve",
            action="store_true",
            help="Set everything up, print the URLs and stop (no web server).",
        )

    def handle(self, *args, **options) -> None:
        if getattr(settings, "CRONOFY_REAL", False):
            raise CommandError(
                "CRONOFY_CLIENT_ID and CRONOFY_CLIENT_SECRET are set: the demo runs on the "
                "simulated Cronofy only. Unset them, or serve the site against the real "
                "Cronofy with `python example_project/manage.py runserver`."
            )
        addr = options["addr"]
        if addr not in ("127.0.0.1", "localhost"):
            raise CommandError("The demo serves on loopback only (--addr 127.0.0.1).")
        host = "127.0.0.1"
        self.say("Preparing the database ...")
        call_command("migrate", interactive=False, verbosity=0)

        running = simulator.start(host=host, port=options["sim_port"])
        self.say_fallback("The simulated Cronofy", options["sim_port"], running.server.port)
        # Chosen once the simulator holds its port, so the two can never collide.
        port = free_port(host, options["port"])
        self.say_fallback("The site", options["port"], port)
        site_url = f"http://{host}:{port}"
        simulator.configure(running, site_url)
        self.check(display_num_errors=False)  # raises on errors, shows warnings

        username, password = options["username"], options["password"] or secrets.token_urlsafe(9)
        user = self.demo_user(username, password)
        account = self.link_demo_account(running, user)

        self.print_banner(site_url, running.url, username, password, account)
        if options["no_serve"]:
            simulator.stop()
            return
        if threading.current_thread() is threading.main_thread():
            # Stop as cleanly on SIGTERM as on Ctrl-C (a process manager, a test).
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        try:
            # In this process (no reloader), so the site and the simulator share it.
            call_command(
                "runserver",
                f"{host}:{port}",
                use_reloader=False,
                use_threading=True,
                insecure_serving=True,
                skip_checks=True,
            )
        finally:
            simulator.stop()

    def say_fallback(self, what: str, wanted: int, got: int) -> None:
        if wanted and got != wanted:
            self.say(f"Port {wanted} is busy: {what} uses port {got} instead.", self.style.WARNING)

    def say(self, message: str, style=None) -> None:
        self.stdout.write(style(message) if style else message)
        self.stdout.flush()

    def demo_user(self, username: str, password: str):
        User = get_user_model()
        with transaction.atomic():
            user, _ = User.objects.get_or_create(username=username, defaults={"email": DEMO_EMAIL})
            # Staff and superuser, so the same login opens the admin.
            user.is_staff = user.is_superuser = user.is_active = True
            user.first_name = user.first_name or "Demo"
            user.set_password(password)
            user.save()
        return user

    def link_demo_account(self, running: simulator.RunningSimulator, user) -> LinkedAccount:
        # The simulated Cronofy keeps nothing between runs: accounts linked to it
        # in an earlier run would have tokens it no longer knows.
        stale = LinkedAccount.objects.filter(data_center=simulator.DATA_CENTER)
        if stale.exists():
            count = stale.count()
            stale.delete()
            self.say(f"Removed {count} account(s) linked to an earlier demo's simulator.")
        sim_account = simulator.add_demo_account(running, DEMO_EMAIL, "Demo User")
        tokens = TokenSet(
            access_token=sim_account.access_token,
            refresh_token=sim_account.refresh_token,
            expires_in=sim_account.expires_in,
            scope=sim_account.scope,
            sub=sim_account.sub,
        )
        # What the OAuth callback does after the code exchange: store, sync, push channel.
        result = linking.link_account(user, simulator.DATA_CENTER, tokens)
        if result.sync_error is not None:
            raise CommandError(f"The first sync of the demo account failed: {result.sync_error}")
        account = result.account
        profiles = account.conferencing_profiles.present().order_by("provider_name")
        self.say(
            f"Linked {account.email} with {len(profiles)} conferencing profiles: "
            + ", ".join(
                f"{p.provider_name} ({'connected' if p.profile_connected else 'disconnected'})"
                for p in profiles
            )
        )
        return account

    def print_banner(self, site_url, sim_url, username, password, account) -> None:
        lines = [
            "",
            "django-cronofy-conferencing demo (simulated Cronofy, nothing leaves this machine)",
            "",
            f"  Site:               {site_url}/",
            f"  Log in as:          {username} / {password}",
            f"  Admin:              {site_url}/admin/",
            f"  API:                {site_url}/api/cronofy/",
            f"  OpenAPI schema:     {site_url}/api/schema/",
            f"  Swagger UI:         {site_url}/api/docs/",
            f"  Simulator controls: {site_url}/simulator/",
            f"  Simulated Cronofy:  {sim_url}/  (data center 'sim')",
            "",
            "Connect another account from the site: the simulator's consent page asks to",
            "Approve or Deny. Disconnect a profile on the simulator controls page: it sends",
            "a signed push notification and the site shows the profile's Relink link.",
            "Stop with Ctrl-C.",
            "",
        ]
        self.say("\n".join(lines), self.style.SUCCESS)
        sys.stdout.flush()
