"""The simulated Cronofy of the demo: served on loopback, in this process.

``manage.py demo`` calls ``start()``; the simulator control page
(``/simulator/``) uses ``current()`` to flip profiles and send signed push
notifications, the way Cronofy would. The simulator keeps its state in
memory: it lives as long as the demo process.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed

from django_cronofy_conferencing.testing import HTTPServerAdapter, SimulatedCronofy

logger = logging.getLogger(__name__)

DATA_CENTER = "sim"

#: The demo account's conferencing profiles: (provider_name, connected).
#: ``webex`` stands for a provider Cronofy may add one day: the app keeps any name.
DEMO_PROFILES = [
    ("zoom", True),
    ("go_to", False),
    ("ms_teams", True),
    ("webex", True),
]


#: The demo account's calendar profiles: a Google one with Google Meet on its primary
#: calendar, and an Apple one Cronofy lost the connection to (its Relink link shows).
def demo_calendar_profiles(sim: SimulatedCronofy, email: str) -> list[dict]:
    return [
        sim.calendar_profile(
            "google",
            provider_service="gsuite",
            profile_name=email,
            calendars=[
                sim.calendar("Work", primary=True, integrated=True),
                sim.calendar("Team rota", integrated=False),
                sim.calendar("Holidays", readonly=True, integrated=False),
            ],
        ),
        sim.calendar_profile(
            "apple",
            provider_service="icloud",
            profile_name=email,
            connected=False,
            calendars=[sim.calendar("Home", primary=True, integrated=False)],
        ),
    ]


@dataclass
class RunningSimulator:
    sim: SimulatedCronofy
    server: HTTPServerAdapter

    @property
    def url(self) -> str:
        return self.server.url


_current: RunningSimulator | None = None
_lock = threading.Lock()


def current() -> RunningSimulator | None:
    """The simulator this process serves, or None (not started by ``manage.py demo``)."""
    return _current


def start(*, host: str = "127.0.0.1", port: int = 0) -> RunningSimulator:
    """Serve a new simulator on ``host:port`` (any free port when busy or 0)."""
    global _current
    with _lock:
        if _current is not None:
            return _current
        sim = SimulatedCronofy(
            client_id=settings.CRONOFY_CONFERENCING["CLIENT_ID"],
            client_secret=settings.CRONOFY_CONFERENCING["CLIENT_SECRET"],
        )
        try:
            server = HTTPServerAdapter(sim, DATA_CENTER, host=host, port=port)
        except OSError:
            if not port:
                raise
            logger.info("Port %s is busy: the simulated Cronofy takes a free port.", port)
            server = HTTPServerAdapter(sim, DATA_CENTER, host=host, port=0)
        server.start()
        _current = RunningSimulator(sim, server)
        return _current


def stop() -> None:
    global _current
    with _lock:
        if _current is not None:
            _current.server.stop()
            _current = None


def configure(running: RunningSimulator, site_url: str) -> None:
    """Point the app at ``running`` (data center ``sim``) and at this site for push."""
    value = dict(settings.CRONOFY_CONFERENCING)
    value["DATA_CENTERS"] = {
        **(value.get("DATA_CENTERS") or {}),
        DATA_CENTER: {
            "api_url": running.url,
            "app_url": running.url,
            "label": "Simulated Cronofy (local)",
        },
    }
    value["PUSH_NOTIFICATIONS_CALLBACK_URL"] = site_url.rstrip("/") + "/cronofy/notifications/"
    # The simulator lives in this process: a worker elsewhere could not reach it.
    value["TASK_QUEUE"] = None
    settings.CRONOFY_CONFERENCING = value
    # The app drops its cached settings, data centers and HTTP clients on this signal.
    setting_changed.send(
        sender=type(settings), setting="CRONOFY_CONFERENCING", value=value, enter=True
    )


def add_demo_account(running: RunningSimulator, email: str, name: str):
    """A simulated Cronofy account with the demo's mix of conferencing profiles."""
    sim = running.sim
    return sim.add_account(
        data_center=DATA_CENTER,
        email=email,
        name=name,
        conferencing_profiles=[
            sim.profile(provider, profile_name=email, connected=connected)
            for provider, connected in DEMO_PROFILES
        ],
        calendar_profiles=demo_calendar_profiles(sim, email),
    )
