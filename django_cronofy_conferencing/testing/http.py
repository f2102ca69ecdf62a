"""Serve the simulator over real HTTP on a loopback port (benchmarks, workers, demos).

``HTTPServerAdapter`` serves the same simulator on a loopback port, for the
benchmark, tests with real processes (Celery workers, two ``cronofy_sync``
commands) and demos: register it as a data center and the app talks to it like
to Cronofy. Its API side has a configurable latency and its own rate limit (429
when exceeded, counted); its app side has the consent pages (``pages``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .limits import SlidingWindowLimit, max_in_window
from .pages import ConsentPages
from .push import post_notification
from .records import SimRequest
from .simulator import SimulatedCronofy


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

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

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
        if path == "/" and self.command in ("GET", "HEAD"):
            self._send(200, adapter.index_page(), {"Content-Type": "text/html; charset=utf-8"})
            return
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


class HTTPServerAdapter(ConsentPages):
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
        self._serving_thread: int | None = None
        self._stopping = False
        self.host, self.port = self._server.server_address[:2]
        # The consent pages and authorization URLs name this server, whether
        # or not Django's settings know about it (the server may run alone).
        base_app_url = sim._app_url

        def app_url(data_center: str) -> str:
            return self.app_url if data_center == self.data_center_id else base_app_url(data_center)

        sim._app_url = app_url  # type: ignore[method-assign]
        base_dc_for = sim._dc_for

        def dc_for(url: str) -> str:
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
            return self.data_center_id if origin == self.url else base_dc_for(url)

        sim._dc_for = dc_for  # type: ignore[method-assign]

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
        """Serve in this thread (a server process of its own) until ``stop()``.

        ``stop()`` may come from another thread or from this one (a signal
        handler runs on the main thread): either way the loop ends before the
        socket is closed, which it would otherwise poll, closed, for ever.
        """
        self._serving_thread = threading.get_ident()
        try:
            self._server.serve_forever(poll_interval=0.1)
        finally:
            self._serving_thread = None
            if self._stopping:
                self._close()

    def wait(self) -> None:
        """Block until the server started with ``start()`` stops (Ctrl-C raises here)."""
        if self._thread is not None:
            self._thread.join()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        elif self._serving_thread == threading.get_ident():
            # shutdown() waits for the loop, which cannot end while this
            # thread is in here: ask from another; serve_forever() closes.
            self._stopping = True
            threading.Thread(target=self._server.shutdown, daemon=True).start()
            return
        elif self._serving_thread is not None:
            self._server.shutdown()  # returns once the loop has ended
        self._close()

    def _close(self) -> None:
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
        default = current.get("DEFAULT_DATA_CENTER", "us")
        applications = dict(current.get("APPLICATIONS") or {})
        if self.data_center_id != default and self.data_center_id not in applications:
            # The simulator's application in this data center (Cronofy: one per data center).
            client_id, client_secret = self.sim.credentials_for(self.data_center_id)
            applications[self.data_center_id] = {
                "CLIENT_ID": client_id,
                "CLIENT_SECRET": client_secret,
            }
            current["APPLICATIONS"] = applications
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

    def push(self, sub: str, notification_type: str = "profile_disconnected", **kwargs: Any):
        """POST a notification to the account's channel callback (see ``post_notification``)."""
        return post_notification(self.sim, sub, notification_type, **kwargs)


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
