"""manage.py cronofy_simulator: a local Cronofy for a host's development."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_cronofy_conferencing.checks import check_settings
from django_cronofy_conferencing.management.commands import cronofy_simulator
from django_cronofy_conferencing.testing import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def server():
    server = cronofy_simulator.start_simulator(port=0)
    yield server
    server.stop()


def printed_settings(text: str) -> dict:
    """Run the printed settings block as a settings file would."""
    start = text.index("CRONOFY_CONFERENCING = {")
    end = text.index("\n}\n", start) + 2
    namespace: dict = {}
    exec(text[start:end], namespace)  # the command's own output
    return namespace["CRONOFY_CONFERENCING"]


def test_demo_accounts_and_root_page(server):
    emails = sorted(a.email for a in server.sim.accounts.values())
    assert emails == ["alice@example.com", "bob@example.com", "carol@example.com"]
    page = requests.get(f"{server.url}/", timeout=5)
    assert page.status_code == 200
    assert "bob@example.com" in page.text and "go_to (disconnected)" in page.text


def test_the_printed_settings_are_valid_and_name_the_server(server):
    out = io.StringIO()
    command = cronofy_simulator.Command(stdout=out)
    command.print_banner(server)
    text = out.getvalue()
    value = printed_settings(text)
    assert value["CLIENT_ID"] == DEFAULT_CLIENT_ID
    assert value["CLIENT_SECRET"] == DEFAULT_CLIENT_SECRET
    assert value["DEFAULT_DATA_CENTER"] == "sim"
    assert value["DATA_CENTERS"]["sim"]["api_url"] == server.url
    assert value["DATA_CENTERS"]["sim"]["app_url"] == server.url
    # The simulator's data center is the default one: CLIENT_ID is its application.
    assert "APPLICATIONS" not in value
    with override_settings(
        CRONOFY_CONFERENCING={
            **value,
            "ENCRYPTION_KEYS": ["GI0i4TOcO9BJJV725ma6TI48G5GMQ3oVAM4A9O6nfXA="],
        }
    ):
        assert check_settings() == []
    assert f"Simulated Cronofy on {server.url}/" in text
    assert "alice@example.com" in text and "go_to (to relink)" in text
    assert "Ctrl-C" in text


def test_it_says_when_the_settings_already_use_it(server):
    out = io.StringIO()
    with override_settings(CRONOFY_CONFERENCING=cronofy_simulator.settings_for(server)):
        cronofy_simulator.Command(stdout=out).print_banner(server)
    assert "(Your settings already point at it.)" in out.getvalue()


def test_loopback_only():
    with pytest.raises(CommandError, match="loopback only"):
        call_command("cronofy_simulator", "--addr", "0.0.0.0")


def test_a_busy_port_is_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"Port {port} on 127.0.0.1 is busy"):
            call_command("cronofy_simulator", "--port", str(port))


@pytest.mark.parametrize("args", [["--port", "70000"], ["--data-center", "a b"]])
def test_bad_arguments(args):
    with pytest.raises(CommandError):
        call_command("cronofy_simulator", *args)


def test_it_serves_and_keeps_its_state_until_stopped():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "cronofy_simulator", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while not any("keeps its state" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        url = printed_settings("".join(lines))["DATA_CENTERS"]["sim"]["api_url"]
        assert requests.get(f"{url}/", timeout=5).status_code == 200
        # A new account made on the consent page is still there on the next request.
        consent = f"{url}/oauth/authorize?" + (
            f"client_id={DEFAULT_CLIENT_ID}&response_type=code&state=s"
            "&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb%2F&scope=read_account"
        )
        answer = requests.post(
            consent,
            data={"decision": "approve", "email": "dave@example.com", "providers": "zoom"},
            allow_redirects=False,
            timeout=5,
        )
        assert answer.status_code == 302
        assert "dave@example.com" in requests.get(f"{url}/", timeout=5).text
    finally:
        process.terminate()
        process.wait(timeout=10)
