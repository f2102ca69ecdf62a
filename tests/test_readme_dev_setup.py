"""The documentation's "Develop without Cronofy credentials" (docs/installation.md),
followed in a fresh project.

``django-admin startproject`` in a temporary folder, the page's settings and
URLs (read from the page itself), ``migrate``, ``createsuperuser``,
``cronofy_simulator`` and its printed settings, ``runserver``; then a user logs
in, connects Cronofy through the simulator's consent page and sees the
profiles on "My conferencing". Real processes, real HTTP, loopback only.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "installation.md"
SECTION_START = "## Develop without Cronofy credentials"

# The suite's environment must not leak into the fresh project.
_SCRUBBED = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "CRONOFY_SIM_API_URL", "CRONOFY_RATE_LIMITS")


def docs_blocks() -> dict[str, str]:
    text = PAGE.read_text()
    start = text.index(SECTION_START)
    section = text[start : text.index("\n## ", start + 1)]
    return dict(re.findall(r"<!-- dev-setup: (\S+) -->\n```python\n(.*?)```", section, re.S))


def printed_settings(output: str) -> str:
    start = output.index("CRONOFY_CONFERENCING = {")
    return output[start : output.index("\n}\n", start) + 2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Process:
    """A background command whose output is collected line by line."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=lambda: self.lines.extend(self.popen.stdout), daemon=True).start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.popen.poll() is None, self.output
            assert time.monotonic() < deadline, self.output
            time.sleep(0.05)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()


def test_docs_have_the_blocks():
    blocks = docs_blocks()
    assert set(blocks) == {"settings.py", "urls.py"}
    assert "django_cronofy_conferencing" in blocks["settings.py"]
    assert 'include("django_cronofy_conferencing.urls")' in blocks["urls.py"]


@pytest.mark.slow
def test_from_startproject_to_a_linked_account(tmp_path):
    started = time.monotonic()
    blocks = docs_blocks()
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(
        PYTHONUNBUFFERED="1",
        DJANGO_SUPERUSER_USERNAME="newcomer",
        DJANGO_SUPERUSER_EMAIL="newcomer@example.com",
        DJANGO_SUPERUSER_PASSWORD="a-long-dev-password",
    )

    def manage(*args: str) -> None:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite"],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=60,
    )
    project = tmp_path / "mysite"
    settings_py = project / "mysite" / "settings.py"
    settings_py.write_text(settings_py.read_text() + "\n" + blocks["settings.py"])
    (project / "mysite" / "urls.py").write_text(blocks["urls.py"])
    simulator = Process(
        [sys.executable, "manage.py", "cronofy_simulator", "--port", "0"], project, env
    )
    server = None
    try:
        simulator.wait_for("keeps its state")
        settings_py.write_text(settings_py.read_text() + "\n" + printed_settings(simulator.output))
        manage("migrate", "-v", "0")
        manage("createsuperuser", "--noinput")
        port = free_port()
        server = Process(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            project,
            env,
        )
        site = f"http://127.0.0.1:{port}"
        server.wait_for("Quit the server with")
        browser = requests.Session()

        # Not logged in: the page sends the browser to LOGIN_URL (the admin's login).
        page = browser.get(f"{site}/cronofy/", timeout=10)
        assert page.url.startswith(f"{site}/admin/login/?next=/cronofy/"), page.url
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        page = browser.post(
            page.url,
            data={
                "username": "newcomer",
                "password": "a-long-dev-password",
                "csrfmiddlewaretoken": token,
                "next": "/cronofy/",
            },
            headers={"Referer": page.url},
            timeout=20,
        )
        assert page.url == f"{site}/cronofy/", page.text[:500]
        assert "You have not linked a calendar account yet." in page.text

        # Connect Cronofy -> the simulator's consent page -> Approve as a demo account.
        # (connect is a POST: its GET is the page with the button.)
        connect_url = f"{site}/cronofy/connect/?data_center=sim"
        button = browser.get(connect_url, timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', button.text).group(1)
        consent = browser.post(
            f"{site}/cronofy/connect/",
            data={"data_center": "sim", "csrfmiddlewaretoken": token},
            headers={"Referer": connect_url},
            timeout=10,
        )
        assert consent.status_code == 200 and "Approve" in consent.text
        sim_url = re.search(r'"api_url": "([^"]+)"', simulator.output).group(1)
        assert consent.url.startswith(f"{sim_url}/oauth/authorize?"), consent.url
        page = browser.post(
            consent.url,
            data={"decision": "approve", "email": "alice@example.com", "providers": ""},
            timeout=20,
        )
        assert page.url == f"{site}/cronofy/", page.url
        assert "Your calendar account alice@example.com is linked." in page.text
        assert "All conferencing profiles connected" in page.text
        assert "Zoom" in page.text and "Microsoft Teams" in page.text
        assert page.text.count("Connected") >= 2
        elapsed = time.monotonic() - started
        print(f"Docs path, startproject to a linked account: {elapsed:.1f} s")
        assert elapsed < 60, f"took {elapsed:.1f} s"
        # The pasted settings pass Django's checks: nothing to fix.
        check = subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0 and "cronofy_conferencing." not in check.stderr, check
    finally:
        if server is not None:
            server.stop()
        simulator.stop()
