"""A simulated Cronofy for tests and demos.

``SimulatedCronofy`` holds the state (accounts, tokens, conferencing profiles,
codes, channels) and answers requests through ``handle()``, independent of any
transport. Adapters plug it into a transport: ``ResponsesAdapter`` registers it
with the ``responses`` library (every data center's API host), so code using
``requests`` talks to it without a network. The same simulator serves every
adapter, so a test can flip a profile and see it through any of them;
``HTTPServerAdapter`` serves it on a loopback port (benchmarks, workers, demos).

Modules: ``simulator`` (state), ``endpoints`` (its request handler), ``records``
(the requests, responses and faults they exchange), ``calendars`` and ``events``,
``responses_adapter``, ``http`` (with ``pages``, its consent pages, and ``limits``,
its own rate limit), ``push`` (notifications to a channel's callback).

    from django_cronofy_conferencing.testing import simulated_cronofy

    with simulated_cronofy() as sim:
        account = sim.add_account(conferencing_profiles=[sim.profile("zoom")])
        ...
"""

from .http import (
    HTTPServerAdapter,
    SlidingWindowLimit,
    max_in_window,
    post_notification,
    serve_simulator,
)
from .responses_adapter import ResponsesAdapter, simulated_cronofy
from .simulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    ENDPOINTS,
    Fault,
    NoPushChannel,
    RecordedRequest,
    SimAccount,
    SimRequest,
    SimResponse,
    SimulatedCronofy,
    simulated_application,
    simulated_applications,
)

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "ENDPOINTS",
    "Fault",
    "HTTPServerAdapter",
    "NoPushChannel",
    "RecordedRequest",
    "ResponsesAdapter",
    "SimAccount",
    "SimRequest",
    "SimResponse",
    "SimulatedCronofy",
    "SlidingWindowLimit",
    "max_in_window",
    "post_notification",
    "serve_simulator",
    "simulated_application",
    "simulated_applications",
    "simulated_cronofy",
]
