"""A real HTTP server on loopback that answers badly on purpose: trickled, huge or slow.

For what the ``responses`` mock cannot show: how long a call really takes
against a server that sends one byte at a time (body, or status line and
headers), and how much of a huge body is really read. ``SlowServer.answer(...)``
sets what the next requests get; ``requests_seen``, ``bytes_sent`` and
``head_bytes_sent`` are what happened.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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
        if plan["head_pause"]:
            self._trickle_head(plan)
            return
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

    def _trickle_head(self, plan: dict[str, Any]) -> None:
        """The status line and then a long header, one byte each ``head_pause`` seconds."""
        owner = self.server.owner
        head = (
            f"HTTP/1.1 {plan['status']} OK\r\n".encode()
            + b"X-Trickle: "
            + b"t" * plan["head_bytes"]
            + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        )
        self.close_connection = True
        try:
            for byte in head:
                if owner.stopping.wait(plan["head_pause"]):  # the server's pace, not a test's
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                with owner.lock:
                    owner.head_bytes_sent += 1
        except (BrokenPipeError, ConnectionResetError):
            return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: SlowServer


class SlowServer:
    """``with SlowServer() as server:`` ... ``server.url`` is ``http://127.0.0.1:<port>``
    (``https://`` with ``tls=(certificate, key)``, see ``self_signed_certificate``)."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.requests_seen = 0
        self.bytes_sent = 0
        self.head_bytes_sent = 0
        self.plan: dict[str, Any] = {}
        self.answer(b"{}")
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def answer(
        self,
        body: bytes,
        *,
        status: int = 200,
        chunk: int = 65536,
        pause: float = 0.0,
        content_length: int | str | None = "auto",
        headers: dict[str, str] | None = None,
        head_pause: float = 0.0,
        head_bytes: int = 1000,
    ) -> None:
        """Serve ``body`` in ``chunk``-byte writes ``pause`` seconds apart.

        With ``head_pause``, the answer's head itself trickles: the status line,
        then a header of ``head_bytes`` bytes, one byte every ``head_pause``
        seconds (then a two-byte body).
        """
        with self.lock:
            self.plan = {
                "body": body,
                "status": status,
                "chunk": chunk,
                "pause": pause,
                "content_length": len(body) if content_length == "auto" else content_length,
                "headers": dict(headers or {}),
                "head_pause": head_pause,
                "head_bytes": head_bytes,
            }

    def __enter__(self) -> SlowServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in ``folder``; the
    certificate is its own CA (point ``REQUESTS_CA_BUNDLE`` at it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "slow-server.pem", folder / "slow-server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
