"""The writer thread of ``sync_accounts``: what the fetchers fetched, written in batches.

Up to ``WRITE_BATCH_SIZE`` accounts per transaction (``apply_userinfo_many``:
the same rows and signals as ``sync_account`` for each, in a fraction of the
queries), or fewer when no more arrived within ``WRITE_BATCH_WAIT``. A batch
that fails is written again account by account. Fetchers hand over lists
(``put``), so an event loop wakes this thread once per handful of accounts,
not once per account.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from django.db import IntegrityError, connections

from .models import LinkedAccount
from .payloads import UserInfo
from .sync_plan import SyncResult
from .sync_writes import apply_userinfo, apply_userinfo_many

logger = logging.getLogger(__name__)

WRITE_BATCH_SIZE = 50
WRITE_BATCH_WAIT = 0.5

Fetched = tuple[LinkedAccount, UserInfo]
Finish = Callable[[LinkedAccount, SyncResult | None, Exception | None], None]


class BatchWriter:
    """One thread writing batches; ``finish`` is called for every account it was given."""

    def __init__(self, finish: Finish, *, max_backlog: int) -> None:
        self.finish = finish
        self.max_backlog = max_backlog
        self._queue: queue.SimpleQueue[list[Fetched] | None] = queue.SimpleQueue()
        self._backlog = 0  # accounts handed over and not written yet
        self._room = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="cronofy-sync-writer", daemon=True)

    def __enter__(self) -> BatchWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._queue.put(None)
        self._thread.join()

    def backlog(self) -> int:
        return self._backlog

    def put(self, items: list[Fetched]) -> None:
        """Hand over fetched accounts; never blocks (for an event loop)."""
        with self._room:
            self._backlog += len(items)
        self._queue.put(items)

    def put_when_room(self, items: list[Fetched]) -> None:
        """Hand over fetched accounts once the backlog is below ``max_backlog`` (threads)."""
        with self._room:
            self._room.wait_for(lambda: self._backlog < self.max_backlog)
            self._backlog += len(items)
        self._queue.put(items)

    def _written(self, count: int) -> None:
        with self._room:
            self._backlog -= count
            self._room.notify_all()

    def _run(self) -> None:
        try:
            batch: list[Fetched] = []
            pks: set[int] = set()
            deadline = 0.0
            while True:
                try:
                    timeout = max(0.0, deadline - time.monotonic()) if batch else None
                    items = self._queue.get(timeout=timeout)
                except queue.Empty:
                    items = []
                if items is None:
                    break
                for item in items:
                    if item[0].pk in pks:  # the same account twice: in the next batch
                        self._write(batch)
                        batch, pks = [], set()
                    if not batch:
                        deadline = time.monotonic() + WRITE_BATCH_WAIT
                    batch.append(item)
                    pks.add(item[0].pk)
                    if len(batch) >= WRITE_BATCH_SIZE:
                        self._write(batch)
                        batch, pks = [], set()
                if batch and (not items or time.monotonic() >= deadline):
                    self._write(batch)
                    batch, pks = [], set()
            if batch:
                self._write(batch)
        finally:
            connections.close_all()

    def _write(self, batch: list[Fetched]) -> None:
        try:
            self._write_batch(batch)
        finally:
            self._written(len(batch))

    def _write_batch(self, batch: list[Fetched]) -> None:
        try:
            results = apply_userinfo_many(batch)
        except Exception:
            logger.info(
                "A batch of %s accounts failed; writing one by one", len(batch), exc_info=True
            )
        else:
            for (account, _), result in zip(batch, results, strict=True):
                self.finish(account, result, None)
            return
        for account, info in batch:
            try:
                try:
                    result = apply_userinfo(account, info)
                except IntegrityError:
                    result = apply_userinfo(account, info)
            except Exception as exc:
                self.finish(account, None, exc)
            else:
                self.finish(account, result, None)
