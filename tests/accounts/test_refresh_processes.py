"""Token refresh single flight across processes on a SQLite database file.

PostgreSQL serializes refreshes with the account's row lock; SQLite has no row
locks, and a per-process lock only serializes threads. Each test here starts
real processes (``tests/accounts/refresh_process.py``) on a SQLite file and a
simulated Cronofy over HTTP that rotates refresh tokens (each refresh kills
the refresh token it was sent), so a second refresh is both counted and harmful.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.testing import SimulatedCronofy, serve_simulator

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 6


@pytest.fixture
def sqlite_file(tmp_path):
    if os.environ.get("DATABASE_URL", "sqlite").split(":")[0] not in ("sqlite", ""):
        pytest.skip("runs on the SQLite configuration of the suite")
    return tmp_path / "refresh.sqlite3"


@pytest.fixture
def cronofy():
    """A simulated Cronofy over HTTP, rotating refresh tokens, slow to answer a refresh
    (so the processes' refreshes overlap), with one account."""
    sim = SimulatedCronofy(rotate_refresh_tokens=True)
    sim_account = sim.add_account(data_center="sim")
    sim.fail("token", delay=0.3, times=None)
    with serve_simulator(sim, register=False) as server:
        yield sim, sim_account, server


def environment(database: Path, server, sim_account) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite:///{database}",
        "CRONOFY_SIM_API_URL": server.api_url,
        "CRONOFY_SIM_APP_URL": server.app_url,
        "SIM_SUB": sim_account.sub,
        "SIM_ACCESS_TOKEN": sim_account.access_token,
        "SIM_REFRESH_TOKEN": sim_account.refresh_token,
    }
    for name in ("PYTEST_ADDOPTS", "CRONOFY_CACHE_URL", "CRONOFY_RATE_LIMITS"):
        env.pop(name, None)
    return env


def prepare(env: dict[str, str]) -> str:
    """Migrate the database file and store the account (its token expired): its id."""
    for command in (
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        [sys.executable, "-m", "tests.accounts.refresh_process", "setup"],
    ):
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def start(env: dict[str, str], *args: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.accounts.refresh_process", "refresh", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process


def expect(process: subprocess.Popen, prefix: str) -> str:
    line = process.stdout.readline().strip()
    assert line.startswith(prefix), (line, process.stderr.read() if process.poll() else "")
    return line


def send(process: subprocess.Popen, line: str = "go") -> None:
    process.stdin.write(line + "\n")
    process.stdin.flush()


def stored_status(database: Path) -> str:
    with sqlite3.connect(database) as db:
        table = LinkedAccount._meta.db_table
        return db.execute(f"SELECT status FROM {table}").fetchone()[0]


def finish(processes: list[subprocess.Popen]) -> list[str]:
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        outcomes.append(out.strip().splitlines()[-1] if out.strip() else f"nothing: {err[-2000:]}")
    return outcomes


def test_six_processes_refresh_once(sqlite_file, cronofy):
    """Before: each process re-read the expired token and refreshed it: 6 refreshes,
    5 of them with a refresh token the first had already rotated away. After: one
    refresh; the other five wait for it and use the token it stored."""
    sim, sim_account, server = cronofy
    env = environment(sqlite_file, server, sim_account)
    account_id = prepare(env)
    processes = [start(env, account_id) for _ in range(PROCESSES)]
    try:
        for process in processes:
            expect(process, "ready")
        for process in processes:
            send(process)
        outcomes = finish(processes)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()

    assert sim.count("token") == 1, (sim.count("token"), outcomes)
    assert len(set(outcomes)) == 1 and outcomes[0].startswith("token "), outcomes
    assert stored_status(sqlite_file) == LinkedAccount.Status.ACTIVE


def test_a_refresh_stored_in_an_open_transaction_is_not_read_stale(sqlite_file, cronofy):
    """Process A refreshes inside ``transaction.atomic()`` and keeps it open; process B
    then refreshes too. Before: B read the old tokens (A's were not committed) and
    refreshed with a dead refresh token. After: B waits on SQLite's write lock
    (here it gives up after 0.2 s, "database is locked") and never calls Cronofy."""
    sim, sim_account, server = cronofy
    env = environment(sqlite_file, server, sim_account)
    account_id = prepare(env)
    holder = start(env, account_id, "--in-transaction")
    other = start(env, account_id, "--busy-timeout", "0.2")
    try:
        expect(holder, "ready")
        expect(other, "ready")
        send(holder)
        expect(holder, "stored")  # refreshed and stored, not committed
        send(other)
        outcome = other.stdout.readline().strip()
        send(holder, "commit")
        outcomes = finish([holder, other])
    finally:
        for process in (holder, other):
            if process.poll() is None:
                process.kill()

    assert sim.count("token") == 1, (sim.count("token"), outcome)
    assert outcome == "error OperationalError", outcome
    assert outcomes[0].startswith("token "), outcomes
    assert stored_status(sqlite_file) == LinkedAccount.Status.ACTIVE
