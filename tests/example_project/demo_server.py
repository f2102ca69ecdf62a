"""Run the example project's ``manage.py demo`` in a subprocess, for browser and API tests.

The demo serves the site and the simulated Cronofy on free loopback ports,
with a fresh SQLite database in a temporary folder, exactly as a newcomer
runs it (only the ports and the password are chosen by the test).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "example_project" / "manage.py"
ARTIFACTS = ROOT / "artifacts"

# The host's environment must not leak into the demo (CI exports some of these).
_SCRUBBED = (
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "CACHE_URL",
    "CELERY_BROKER_URL",
    "CRONOFY_CLIENT_ID",
    "CRONOFY_CLIENT_SECRET",
    "CRONOFY_DATA_CENTER",
    "CRONOFY_ENCRYPTION_KEYS",
    "CRONOFY_PUSH_CALLBACK_URL",
    "CRONOFY_SIMULATOR_URL",
    "SITE_URL",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
)


@dataclass
class DemoServer:
    process: subprocess.Popen
    username: str
    password: str
    url: str = ""  # http://127.0.0.1:PORT (no trailing slash)
    sim_url: str = ""
    output: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "".join(self.output[-200:])

    def stop(self) -> None:
        if self.process.poll() is None:
            # The demo stops cleanly on SIGTERM (SIGINT may be ignored in a background job).
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _reader(server: DemoServer) -> None:
    assert server.process.stdout is not None
    for line in server.process.stdout:
        server.output.append(line)


def start_demo(tmp_dir: Path, *, timeout: float = 120) -> DemoServer:
    """Start ``manage.py demo`` and wait until the site answers; ``stop()`` it after."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_dir / 'demo.sqlite3'}",
        PYTHONUNBUFFERED="1",
    )
    password = secrets.token_urlsafe(12)
    process = subprocess.Popen(
        [
            sys.executable,
            str(MANAGE),
            "demo",
            "--port",
            "0",
            "--sim-port",
            "0",
            # One argument: a token_urlsafe password may start with "-".
            f"--password={password}",
        ],
        cwd=tmp_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = DemoServer(process=process, username="demo", password=password)
    threading.Thread(target=_reader, args=(server,), daemon=True).start()
    deadline = time.monotonic() + timeout
    try:
        while not server.url:
            for line in list(server.output):
                if line.strip().startswith("Site:"):
                    server.url = line.split("Site:", 1)[1].strip().rstrip("/")
                elif line.strip().startswith("Simulated Cronofy:"):
                    server.sim_url = line.split(":", 1)[1].split()[0].rstrip("/")
            _check_alive(server, deadline)
            time.sleep(0.1)
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/accounts/login/", timeout=5) as r:
                    if r.status == 200:
                        return server
            except (urllib.error.URLError, OSError):
                pass
            _check_alive(server, deadline)
            time.sleep(0.2)
    except BaseException:
        server.stop()
        raise


def _check_alive(server: DemoServer, deadline: float) -> None:
    if server.process.poll() is not None:
        time.sleep(0.2)  # let the reader take the last lines
        raise RuntimeError(
            f"manage.py demo exited with {server.process.returncode}:\n{server.log()}"
        )
    if time.monotonic() > deadline:
        raise RuntimeError(f"manage.py demo did not come up in time:\n{server.log()}")
