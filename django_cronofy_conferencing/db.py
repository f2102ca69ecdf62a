"""Database helpers shared by the two writers, ``sync`` and ``oauth``, and the views."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from typing import TypeVar

from django.db import connections, transaction

# SQLite has no row locks and fails fast ("database is locked") when two
# connections of one process upgrade to write locks: one writer per process.
_sqlite_write_lock = threading.RLock()

View = TypeVar("View", bound=Callable)


def is_sqlite(using: str) -> bool:
    return connections[using].vendor == "sqlite"


def write_lock(using: str) -> ContextManager:
    """Serialize this process's writes on SQLite; a no-op elsewhere."""
    return _sqlite_write_lock if is_sqlite(using) else contextlib.nullcontext()


def row_lock_transaction(using: str) -> ContextManager:
    """A transaction for ``select_for_update`` (held across the refresh call).

    On SQLite (no row locks) nothing: no transaction is held open across an
    HTTP call, and not the process write lock either, which would stall every
    other account's writes for as long as Cronofy takes to answer. The
    caller's per-account process lock (``oauth._REFRESH_LOCKS``) is what
    serializes refreshes there; each write takes ``write_lock`` itself.
    """
    return contextlib.nullcontext() if is_sqlite(using) else transaction.atomic(using=using)


def non_atomic_requests(view: View) -> View:
    """Keep ``ATOMIC_REQUESTS`` from wrapping ``view`` in a transaction, on every database.

    For the views that call Cronofy (sync, revoke, code exchange, ...): a
    request transaction would hold whatever the view writes (on SQLite the
    whole database) locked for as long as Cronofy takes to answer, which is
    what ``sync`` and ``oauth`` take care never to do. They open their own
    short transactions. Apply it as the outermost decorator.
    """
    for alias in connections:
        view = transaction.non_atomic_requests(using=alias)(view)
    return view
