"""The order a sweep takes accounts in: where the budget matters most, first.

1. accounts whose last sync failed (``consecutive_failures``),
2. accounts with a disconnected conferencing or calendar profile (the user is
   being asked to relink: show them the moment it works again),
3. accounts never synced,
4. the rest, the longest unsynced first.

Each class is read in keyset chunks with its filter applied again per chunk,
so memory stays flat and an account that stopped matching (synced meanwhile,
by this sweep or anything else) drops out; nothing the sweep synced after it
started is read again, whichever class it moved to.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from ..models import LinkedAccount, has_disconnected_profile

__all__ = ["sweep_chunks", "sweep_classes"]


def sweep_classes(queryset: QuerySet[LinkedAccount]) -> list[tuple[str, QuerySet[LinkedAccount]]]:
    """The queryset split into the sweep's classes, in the order they are swept."""
    failing = Q(consecutive_failures__gt=0)
    disconnected = Q(has_disconnected_profile())
    never = Q(last_synced_at__isnull=True)
    return [
        ("failing", queryset.filter(failing)),
        ("disconnected", queryset.filter(~failing & disconnected)),
        ("never_synced", queryset.filter(~failing & never).exclude(disconnected)),
        ("oldest", queryset.filter(~failing & ~never).exclude(disconnected)),
    ]


def sweep_chunks(
    queryset: QuerySet[LinkedAccount], chunk_size: int = 500, *, started: datetime | None = None
) -> Iterator[list[LinkedAccount]]:
    """The queryset's accounts in sweep order, as lists of at most ``chunk_size``.

    ``started`` (default: now): accounts synced at or after it are not read.
    """
    started = started or timezone.now()
    unsynced_since = Q(last_synced_at__isnull=True) | Q(last_synced_at__lt=started)
    for name, part in sweep_classes(queryset.filter(unsynced_since)):
        if name == "oldest":
            yield from _chunks_by_last_sync(part, chunk_size)
            continue
        part = part.order_by("pk")
        last = None
        while True:
            page = part if last is None else part.filter(pk__gt=last)
            chunk = list(page[:chunk_size])
            if chunk:
                yield chunk
            if len(chunk) < chunk_size:
                break
            last = chunk[-1].pk


def _chunks_by_last_sync(
    queryset: QuerySet[LinkedAccount], chunk_size: int
) -> Iterator[list[LinkedAccount]]:
    """Keyset pagination on (``last_synced_at``, ``pk``): the longest unsynced first."""
    queryset = queryset.order_by("last_synced_at", "pk")
    cursor: tuple[datetime, int] | None = None
    while True:
        page = queryset
        if cursor is not None:
            at, pk = cursor
            page = queryset.filter(Q(last_synced_at__gt=at) | Q(last_synced_at=at, pk__gt=pk))
        chunk = list(page[:chunk_size])
        if chunk:
            yield chunk
        if len(chunk) < chunk_size:
            return
        cursor = (chunk[-1].last_synced_at, chunk[-1].pk)
