"""Database helpers shared by the writers (``sync``, ``tokens``, ``linking``) and the views."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from typing import Any, TypeVar

from django.db import connections, transaction

try:
    import fcntl
except ImportError:  # Windows: no POSIX record locks (see refresh_lock)
    fcntl = None  # type: ignore[assignment]

# SQLite has no row locks and fails fast ("database is locked") when two
# connections of one process upgrade to write locks: one writer per process.
_sqlite_write_lock = threading.RLock()

View = TypeVar("View", bound=Callable)


def is_sqlite(using: str) -> bool:
    return connections[using].vendor == "sqlite"


def is_sqlite_file(using: str) -> bool:
    """SQLite on a file: what several processes can share (an in-memory one they cannot)."""
    connection = connections[using]
    return connection.vendor == "sqlite" and not connection.is_in_memory_db()


def write_lock(using: str) -> ContextManager:
    """Serialize this process's writes on SQLite; a no-op elsewhere."""
    return _sqlite_write_lock if is_sqlite(using) else contextlib.nullcontext()


def row_lock_transaction(using: str) -> ContextManager:
    """A transaction for ``select_for_update`` (held across the refresh call).

    On SQLite (no row locks) nothing: no transaction is held open across an
    HTTP call, and not the process write lock either, which would stall every
    other account's writes for as long as Cronofy takes to answer. The
    caller's per-account locks serialize refreshes there: ``tokens._REFRESH_LOCKS``
    between threads, ``refresh_lock`` between processes; each write takes
    ``write_lock`` itself.
    """
    return contextlib.nullcontext() if is_sqlite(using) else transaction.atomic(using=using)


#: Next to a SQLite database file ``<NAME>``: ``<NAME>-cronofy.lock``, where the
#: processes sharing it lock one byte per account while they refresh its token.
LOCK_FILE_SUFFIX = "-cronofy.lock"

# One descriptor per lock file for the life of the process: closing any descriptor
# of a file drops every POSIX lock this process holds on it.
_lock_files: dict[str, int] = {}
# (lock file, key) -> how many times this process holds it (a handler refreshing
# another account while one refresh is in flight nests; only the outermost locks).
_held: dict[tuple[str, int], int] = {}
_lock_files_guard = threading.Lock()
if hasattr(os, "register_at_fork"):
    # A child holds none of its parent's POSIX locks.
    os.register_at_fork(after_in_child=_held.clear)


def refresh_lock(using: str, key: int) -> ContextManager:
    """Hold ``key`` (an account id) exclusively among the processes sharing this
    SQLite database file; a no-op on other databases (the row lock does it there)
    and on an in-memory SQLite database (one process).

    A POSIX record lock on byte ``key`` of ``<NAME>-cronofy.lock``: it waits in the
    kernel, never polls, and the kernel drops it when the process dies. Unlike
    SQLite's own write lock it locks nothing else, so other accounts' writes go
    on while a refresh waits for Cronofy. Threads of one process are not told
    apart: the caller serializes them first (``tokens._REFRESH_LOCKS``).
    Without ``fcntl`` (Windows) a no-op: refreshes are single flight per process.
    """
    if fcntl is None or not is_sqlite_file(using):
        return contextlib.nullcontext()
    return _file_lock(os.fspath(connections[using].settings_dict["NAME"]) + LOCK_FILE_SUFFIX, key)


@contextlib.contextmanager
def _file_lock(path: str, key: int) -> Iterator[None]:
    held = (path, key)
    with _lock_files_guard:
        descriptor = _lock_files.get(path)
        if descriptor is None:
            descriptor = _lock_files[path] = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        depth = _held.get(held, 0)
        _held[held] = depth + 1
    try:
        if depth == 0:
            fcntl.lockf(descriptor, fcntl.LOCK_EX, 1, key)
        yield
    finally:
        with _lock_files_guard:
            _held[held] -= 1
            if not _held[held]:
                del _held[held]
        if depth == 0:
            fcntl.lockf(descriptor, fcntl.LOCK_UN, 1, key)


def non_atomic_requests(view: View) -> View:
    """Keep ``ATOMIC_REQUESTS`` from wrapping ``view`` in a transaction, on every database.

    For the views that call Cronofy (sync, revoke, code exchange, ...): a
    request transaction would hold whatever the view writes (on SQLite the
    whole database) locked for as long as Cronofy takes to answer, which is
    what ``sync``, ``tokens`` and ``linking`` take care never to do. They open their own
    short transactions. Apply it as the outermost decorator.
    """
    for alias in connections:
        view = transaction.non_atomic_requests(using=alias)(view)
    return view


def after_commit(callback: Callable[[], Any], model: Any = None) -> None:
    """Run ``callback`` once the transaction writing ``model`` (default
    ``LinkedAccount``) commits; at once outside one. What every enqueue goes
    through: a worker never looks for a row that is not committed yet."""
    from django.db import router

    if model is None:
        from .models import LinkedAccount as model
    transaction.on_commit(callback, using=router.db_for_write(model))


def keyset_chunks(
    queryset: Any, chunk_size: int, pk_of: Callable[[Any], Any] = lambda row: row.pk
) -> Iterator[list]:
    """The queryset's rows in primary-key order, as lists of at most ``chunk_size``.

    Keyset pagination (``pk > last`` ... ``LIMIT``) rather than ``.iterator()``:
    memory stays flat like a server-side cursor, but no query stays open between
    chunks (on SQLite an open cursor keeps writers from committing), and each
    chunk re-applies the filter, so a row that stopped matching drops out.
    """
    queryset = queryset.order_by("pk")
    last = None
    while True:
        page = queryset if last is None else queryset.filter(pk__gt=last)
        chunk = list(page[:chunk_size])
        if chunk:
            yield chunk
        if len(chunk) < chunk_size:
            return
        last = pk_of(chunk[-1])
