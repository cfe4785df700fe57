"""The tracking ingestion queue: `/api/track` hands each validated batch here
and gets its result once the transaction that stored it has committed.

On PostgreSQL one writer thread per worker drains the queue: it waits for the
first batch, takes whatever else arrives within `FLUSH_SECONDS` (up to
`MAX_EVENTS`), and stores them all in one transaction with set-based
statements (`batched.store_batches`). A flush holds one batch per browser; a
second batch of the same browser waits for the next flush (two browsers of one
customer are stored one after the other inside the flush), so each is stored
as if alone. A flush that fails is retried batch by batch through the
one-batch path, so one bad batch fails only its own request.

On SQLite (one process, one writer at a time) each batch is stored in its own
transaction in a worker thread, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from chatdash.db import get_engine, session_scope
from chatdash.services import store_activity
from chatdash.services.tracking.batched import Batch, store_batches
from chatdash.services.tracking.storage import TrackResult
from chatdash.settings import get_settings

log = logging.getLogger("chatdash.ingest")

FLUSH_SECONDS = 0.005
# PostgreSQL takes at most 65,535 parameters per statement; an event row has 11.
MAX_EVENTS = 4000


@dataclass
class _Item:
    batch: Batch
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class Ingestor:
    def __init__(self, engine: Engine, *, flush_seconds: float = FLUSH_SECONDS, max_events: int = MAX_EVENTS) -> None:
        self.engine = engine
        self.flush_seconds = flush_seconds
        self.max_events = max_events
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tracking-ingest", daemon=True)
        self._thread.start()

    async def store(self, visitor_id: str, events: Sequence[Any], user_agent: str) -> TrackResult:
        """Queue one batch; returns its result once it is committed."""
        loop = asyncio.get_running_loop()
        item = _Item(Batch(visitor_id, events, user_agent), loop, loop.create_future())
        self._queue.put(item)
        return await item.future

    # ----- the writer thread -------------------------------------------------------
    def _run(self) -> None:
        held: list[_Item] = []  # a shopper's later batches, for the next flush
        while True:
            flush = self._collect(held)
            try:
                self._write(flush)
            except Exception:  # never let the writer die: requests would hang
                log.exception("tracking flush failed")

    def _collect(self, held: list[_Item]) -> list[_Item]:
        waiting = held[:]
        held.clear()
        if not waiting:
            waiting.append(self._queue.get())
        deadline = time.monotonic() + self.flush_seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                waiting.append(self._queue.get(timeout=left))
            except queue.Empty:
                break
        flush, seen, events = [], set(), 0
        for item in waiting:
            if item.batch.visitor_id in seen or (flush and events + len(item.batch.events) > self.max_events):
                held.append(item)
                continue
            seen.add(item.batch.visitor_id)
            events += len(item.batch.events)
            flush.append(item)
        return flush

    def _write(self, flush: list[_Item]) -> None:
        window = get_settings().presence_window_seconds
        try:
            with session_scope(self.engine) as session:
                results = store_batches(session, [i.batch for i in flush], window_seconds=window)
        except Exception:
            log.warning("a flush of %d batches failed; storing them one by one", len(flush), exc_info=True)
            for item in flush:
                try:
                    result = store_activity.store_batch(
                        item.batch.visitor_id, item.batch.events, item.batch.user_agent, engine=self.engine
                    )
                except Exception as exc:  # noqa: BLE001 - handed to the request that sent it
                    _settle(item, exc=exc)
                else:
                    _settle(item, result=result)
            return
        for item, result in zip(flush, results, strict=True):
            _settle(item, result=result)


def _settle(item: _Item, *, result: TrackResult | None = None, exc: BaseException | None = None) -> None:
    def settle() -> None:
        if item.future.done():
            return  # the request went away
        if exc is None:
            item.future.set_result(result)
        else:
            item.future.set_exception(exc)

    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
        item.loop.call_soon_threadsafe(settle)


_ingestor: Ingestor | None = None
_lock = threading.Lock()


def ingestor(engine: Engine | None = None) -> Ingestor:
    global _ingestor
    with _lock:
        if _ingestor is None:
            _ingestor = Ingestor(engine or get_engine())
        return _ingestor


def batched(engine: Engine | None = None) -> bool:
    """Whether /api/track goes through the queue (PostgreSQL) or stores each batch alone (SQLite)."""
    return (engine or get_engine()).dialect.name == "postgresql"


async def store(
    visitor_id: str, events: Sequence[Any], user_agent: str, *, engine: Engine | None = None
) -> TrackResult:
    """Store one validated batch through the queue; returns after its commit."""
    return await ingestor(engine).store(visitor_id, events, user_agent)
