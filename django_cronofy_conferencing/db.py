"""Database helpers shared by the writers (``sync``, ``tokens``, ``linking``) and the views."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from typing import Any, TypeVar

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
    caller's per-account process lock (``tokens._REFRESH_LOCKS``) is what
    serializes refreshes there; each write takes ``write_lock`` itself.
    """
    return contextlib.nullcontext() if is_sqlite(using) else transaction.atomic(using=using)


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
