"""Serve the simulator to ``requests`` through the ``responses`` library."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from .records import SimRequest
from .simulator import SimulatedCronofy


class ResponsesAdapter:
    """Serves the simulator to ``requests`` through a ``responses.RequestsMock``."""

    def __init__(self, sim: SimulatedCronofy, sleep: Callable[[float], None] = time.sleep) -> None:
        self.sim = sim
        self.sleep = sleep

    def install(self, mock) -> None:
        import re

        from ..cronofy.datacenters import get_data_centers

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
    sim: SimulatedCronofy | None = None,
    *,
    retry_sleep: Callable[[float], None] | None = None,
    **kwargs: Any,
) -> Iterator[SimulatedCronofy]:
    """Route every Cronofy data center to a simulator for the ``with`` block.

    Configure ``CRONOFY_CONFERENCING['CLIENT_ID'/'CLIENT_SECRET']`` to the
    simulator's (``DEFAULT_CLIENT_ID``/``DEFAULT_CLIENT_SECRET`` by default).

    The client's waits between retries do not sleep inside the block: a test
    that injects a 503 gets the retries at once, and each wait is recorded in
    ``sim.retry_waits``. Pass ``retry_sleep=time.sleep`` to wait for real, or
    any callable taking the seconds. (A sleep someone else already injected,
    like this repository's own test fixture, is left alone.)
    """
    import responses

    from ..cronofy import client as client_module

    sim = sim or SimulatedCronofy(**kwargs)
    previous = client_module._sleep
    if retry_sleep is not None or previous is time.sleep:
        waits = sim.retry_waits

        def record(seconds: float) -> None:
            waits.append(seconds)
            if retry_sleep is not None:
                retry_sleep(seconds)

        client_module._sleep = record
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            ResponsesAdapter(sim).install(mock)
            yield sim
    finally:
        client_module._sleep = previous
