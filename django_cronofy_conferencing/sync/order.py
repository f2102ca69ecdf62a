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

import collections
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from ..models import LinkedAccount, has_disconnected_profile

__all__ = ["AccountStream", "SweepStream", "sweep_chunks", "sweep_classes"]


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


class AccountStream(Iterator[LinkedAccount]):
    """A queryset's accounts in primary-key order, read ``chunk_size`` at a time by
    keyset (``pk > last ... LIMIT``, as ``db.keyset_chunks``): memory stays flat, no
    query stays open while the accounts are synced, and a read that failed (a dropped
    connection) can be made again from where it stopped."""

    def __init__(self, queryset: QuerySet[LinkedAccount], chunk_size: int = 500) -> None:
        self.queryset = queryset.order_by("pk")
        self.chunk_size = chunk_size
        self.last: Any = None
        self.buffer: collections.deque[LinkedAccount] = collections.deque()
        self.exhausted = False

    def __next__(self) -> LinkedAccount:
        if not self.buffer:
            if self.exhausted:
                raise StopIteration
            page = self.queryset if self.last is None else self.queryset.filter(pk__gt=self.last)
            chunk = list(page[: self.chunk_size])  # raises before any state changes
            self.exhausted = len(chunk) < self.chunk_size
            if not chunk:
                raise StopIteration
            self.last = chunk[-1].pk
            self.buffer.extend(chunk)
        return self.buffer.popleft()


class SweepStream(AccountStream):
    """``sweep_chunks`` as a stream that can read a chunk again after a failed read
    (a dropped connection): its cursor is the class being read and the last key read
    in it, and it changes only once a chunk has been read."""

    def __init__(
        self,
        queryset: QuerySet[LinkedAccount],
        chunk_size: int = 500,
        *,
        started: datetime | None = None,
    ) -> None:
        started = started or timezone.now()
        unsynced_since = Q(last_synced_at__isnull=True) | Q(last_synced_at__lt=started)
        self.parts = sweep_classes(queryset.filter(unsynced_since))
        self.index = 0
        super().__init__(queryset, chunk_size)

    def __next__(self) -> LinkedAccount:
        while not self.buffer:
            if self.index >= len(self.parts):
                raise StopIteration
            name, part = self.parts[self.index]
            chunk = list(self._page(name, part)[: self.chunk_size])  # raises before any change
            if chunk:
                last = chunk[-1]
                self.last = (last.last_synced_at, last.pk) if name == "oldest" else last.pk
                self.buffer.extend(chunk)
            if len(chunk) < self.chunk_size:
                self.index += 1
                self.last = None
        return self.buffer.popleft()

    def _page(self, name: str, part: QuerySet[LinkedAccount]) -> QuerySet[LinkedAccount]:
        if name == "oldest":  # the longest unsynced first: keyset on (last_synced_at, pk)
            part = part.order_by("last_synced_at", "pk")
            if self.last is None:
                return part
            at, pk = self.last
            return part.filter(Q(last_synced_at__gt=at) | Q(last_synced_at=at, pk__gt=pk))
        part = part.order_by("pk")
        return part if self.last is None else part.filter(pk__gt=self.last)
