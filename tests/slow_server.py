"""A real HTTP server on loopback that answers badly on purpose: trickled, huge or slow.

For what the ``responses`` mock cannot show: how long a call really takes
against a server that sends one byte at a time, and how much of a huge body
is really read. ``SlowServer.answer(...)`` sets what the next requests get;
``requests_seen`` and ``bytes_sent`` are what happened.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._answer()

    def _answer(self) -> None:
        owner = self.server.owner
        with owner.lock:
            owner.requests_seen += 1
            plan = dict(owner.plan)
        body: bytes = plan["body"]
        self.send_response(plan["status"])
        self.send_header("Content-Type", "application/json")
        for name, value in plan["headers"].items():
            self.send_header(name, value)
        if plan["content_length"] is not None:
            self.send_header("Content-Length", str(plan["content_length"]))
        self.send_header("Connection", "close")
        self.end_headers()
        step, pause = plan["chunk"], plan["pause"]
        try:
            for start in range(0, len(body), step):
                if owner.stopping.is_set():
                    return
                self.wfile.write(body[start : start + step])
                self.wfile.flush()
                with owner.lock:
                    owner.bytes_sent += min(step, len(body) - start)
                if pause:
                    time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: SlowServer


class SlowServer:
    """``with SlowServer() as server:`` ... ``server.url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.requests_seen = 0
        self.bytes_sent = 0
        self.plan: dict[str, Any] = {}
        self.answer(b"{}")
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(
        self,
        body: bytes,
        *,
        status: int = 200,
        chunk: int = 65536,
        pause: float = 0.0,
        content_length: int | str | None = "auto",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Serve ``body`` in ``chunk``-byte writes ``pause`` seconds apart."""
        with self.lock:
            self.plan = {
                "body": body,
                "status": status,
                "chunk": chunk,
                "pause": pause,
                "content_length": len(body) if content_length == "auto" else content_length,
                "headers": dict(headers or {}),
            }

    def __enter__(self) -> SlowServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
