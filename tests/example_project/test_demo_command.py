"""``manage.py demo``'s port choice: a quick rerun keeps its ports, a fallback is said."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_command(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "example_project"))
    from demo_site.management.commands import demo

    return demo


def time_wait_port() -> int:
    """A port whose last connection was closed by the server side: it sits in TIME_WAIT.

    The server sets ``SO_REUSEADDR``, as runserver and the simulator's server do.
    """
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server closes first, as a stopped demo does
    listener.close()
    client.close()
    return port


def test_a_port_in_time_wait_is_kept(demo_command):
    port = time_wait_port()
    # Without SO_REUSEADDR this port looks busy for a minute after a run.
    plain = socket.socket()
    try:
        plain.bind(("127.0.0.1", port))
        in_time_wait = False
    except OSError:
        in_time_wait = True
    finally:
        plain.close()
    assert demo_command.free_port("127.0.0.1", port) == port
    if not in_time_wait:
        pytest.skip("the kernel released the port at once: nothing to prove here")


def test_a_busy_port_falls_back_and_says_so(demo_command):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        got = demo_command.free_port("127.0.0.1", port)
        assert got != port and got > 0
        command = demo_command.Command(stdout=io.StringIO())
        command.say_fallback("The site", port, got)
        assert f"Port {port} is busy: The site uses port {got} instead." in (
            command.stdout._out.getvalue()
        )
        command = demo_command.Command(stdout=io.StringIO())
        command.say_fallback("The site", 0, got)  # --port 0 asked for any port
        command.say_fallback("The site", got, got)
        assert command.stdout._out.getvalue() == ""
