"""Database helpers shared by the two writers, ``sync`` and ``oauth``."""

from __future__ import annotations

import contextlib
import threading
from contextlib import AbstractContextManager as ContextManager

from django.db import connections, transaction

# SQLite has no row locks and fails fast ("database is locked") when two
# connections of one process upgrade to write locks: one writer per process.
_sqlite_write_lock = threading.RLock()


def is_sqlite(using: str) -> bool:
    return connections[using].vendor == "sqlite"


def write_lock(using: str) -> ContextManager:
    """Serialize this process's writes on SQLite; a no-op elsewhere."""
    return _sqlite_write_lock if is_sqlite(using) else contextlib.nullcontext()


def row_lock_transaction(using: str) -> ContextManager:
    """A transaction for ``select_for_update``; on SQLite (no row locks) the
    process lock serializes instead, and no transaction is held open across
    an HTTP call."""
    return write_lock(using) if is_sqlite(using) else transaction.atomic(using=using)
