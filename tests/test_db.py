"""db.refresh_lock: the lock file that serializes refreshes between processes on SQLite."""

from __future__ import annotations

import subprocess
import sys

import pytest

from django_cronofy_conferencing import db

PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(sys.argv[2]))
except OSError:
    print("locked")
else:
    print("free")
"""


def state_seen_by_another_process(path, key: int) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), str(key)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.skipif(db.fcntl is None, reason="POSIX record locks")
def test_the_lock_holds_one_byte_per_account_and_nests(tmp_path):
    path = str(tmp_path / "db.sqlite3-cronofy.lock")
    with db._file_lock(path, 7):
        assert state_seen_by_another_process(path, 7) == "locked"
        assert state_seen_by_another_process(path, 8) == "free"  # other accounts go on
        with db._file_lock(path, 7):  # a handler refreshing it again, nested
            pass
        # The inner release must not drop the outer lock.
        assert state_seen_by_another_process(path, 7) == "locked"
    assert state_seen_by_another_process(path, 7) == "free"


def test_no_lock_file_for_an_in_memory_database(tmp_path, monkeypatch):
    """The suite's default database is in memory: one process, nothing to share."""
    from django.db import connection

    if connection.vendor != "sqlite" or not connection.is_in_memory_db():
        pytest.skip("the in-memory SQLite configuration")
    monkeypatch.chdir(tmp_path)
    with db.refresh_lock("default", 1):
        pass
    assert list(tmp_path.iterdir()) == []
