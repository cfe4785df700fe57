"""The tracking ingestion queue: `/api/track` hands each validated batch here
and gets its result once the transaction that stored it has committed.

On PostgreSQL one writer thread per worker drains the queue: it waits for the
first batch, takes whatever else arrives while batches keep coming (gaps under
`FLUSH_SECONDS`, at most `FLUSH_MAX_SECONDS` in all, up to `MAX_EVENTS`), and
stores them all in one transaction with set-based statements
(`batched.store_batches`). A flush holds one batch per browser; a second
batch of the same browser waits for the next flush (two browsers of one
customer are stored one after the other inside the flush), so each is stored
as if alone. A flush that fails is retried batch by batch through the
one-batch path, so one bad batch fails only its own request. After the
commit the writer hands every request of the flush its result with one
wake-up of the event loop (not one per request).

There is one queue per engine (`ingestor(engine)`); `close_all()` stores what
is queued and stops the writers (tests that switch databases).

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
from chatdash.services.devices import device_from_user_agent
from chatdash.services.tracking.batched import Batch, store_batches
from chatdash.services.tracking.storage import TrackResult
from chatdash.settings import get_settings

log = logging.getLogger("chatdash.ingest")

# A flush waits for more batches while they keep coming: until none has come
# for FLUSH_SECONDS, and at most FLUSH_MAX_SECONDS after the first. A lone
# batch is stored within a few milliseconds; under load flushes grow, and the
# cost per event falls with their size (the statements are per flush, not per
# batch: bench/bench_tracking.py --stages).
FLUSH_SECONDS = 0.005
FLUSH_MAX_SECONDS = 0.025
# PostgreSQL takes at most 65,535 parameters per statement; an event row has 11.
MAX_EVENTS = 4000


@dataclass
class _Item:
    batch: Batch
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class Ingestor:
    def __init__(
        self,
        engine: Engine,
        *,
        flush_seconds: float | None = None,
        max_flush_seconds: float | None = None,
        max_events: int = MAX_EVENTS,
    ) -> None:
        self.engine = engine
        self.flush_seconds = FLUSH_SECONDS if flush_seconds is None else flush_seconds
        self.max_flush_seconds = max(
            self.flush_seconds, FLUSH_MAX_SECONDS if max_flush_seconds is None else max_flush_seconds
        )
        self.max_events = max_events
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()  # None: stop
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="tracking-ingest", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30) -> None:
        """Store what is queued, then stop the writer."""
        self._queue.put(None)
        self._thread.join(timeout)

    async def store(self, visitor_id: str, events: Sequence[Any], user_agent: str) -> TrackResult:
        """Queue one batch; returns its result once it is committed."""
        loop = asyncio.get_running_loop()
        item = _Item(Batch(visitor_id, events, user_agent), loop, loop.create_future())
        self._queue.put(item)
        return await item.future

    # ----- the writer thread -------------------------------------------------------
    def _run(self) -> None:
        # The user-agent parser builds its tables on first use (about a second
        # of CPU): here, before the first flush, not inside it.
        device_from_user_agent("")
        held: list[_Item] = []  # a shopper's later batches, for the next flush
        while not (self._closing and not held):
            flush = self._collect(held)
            try:
                self._write(flush)
            except Exception:  # never let the writer die: requests would hang
                log.exception("tracking flush failed")

    def _collect(self, held: list[_Item]) -> list[_Item]:
        waiting = held[:]
        held.clear()

        def take(item: _Item | None) -> None:
            if item is None:
                self._closing = True
            else:
                waiting.append(item)

        if not waiting and not self._closing:
            take(self._queue.get())
        deadline = time.monotonic() + self.max_flush_seconds
        while not self._closing:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:  # the next batch, if it comes soon enough
                take(self._queue.get(timeout=min(left, self.flush_seconds)))
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
        if not flush:
            return
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
                    _settle([(item, None, exc)])
                else:
                    _settle([(item, result, None)])
            return
        _settle([(item, result, None) for item, result in zip(flush, results, strict=True)])


def _settle(outcomes: list[tuple[_Item, TrackResult | None, BaseException | None]]) -> None:
    """Hand each request its result on its own loop: one wake-up per loop, not
    one per request (each wake-up is a write to the loop's self-pipe)."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)

    def settle(mine: list[tuple[_Item, TrackResult | None, BaseException | None]]) -> None:
        for item, result, exc in mine:
            if item.future.done():
                continue  # the request went away
            if exc is None:
                item.future.set_result(result)
            else:
                item.future.set_exception(exc)

    for loop, mine in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, mine)


_ingestors: dict[Engine, Ingestor] = {}
_lock = threading.Lock()


def ingestor(engine: Engine | None = None) -> Ingestor:
    """The process's queue for this engine's database (the app's: one)."""
    engine = engine or get_engine()
    with _lock:
        if engine not in _ingestors:
            _ingestors[engine] = Ingestor(engine)
        return _ingestors[engine]


def close_all() -> None:
    """Stop every queue's writer once it has stored what it holds (tests switch databases)."""
    with _lock:
        closing = list(_ingestors.values())
        _ingestors.clear()
    for ing in closing:
        ing.close()


def batched(engine: Engine | None = None) -> bool:
    """Whether /api/track goes through the queue (PostgreSQL) or stores each batch alone (SQLite)."""
    return (engine or get_engine()).dialect.name == "postgresql"


async def store(
    visitor_id: str, events: Sequence[Any], user_agent: str, *, engine: Engine | None = None
) -> TrackResult:
    """Store one validated batch through the queue; returns after its commit."""
    return await ingestor(engine).store(visitor_id, events, user_agent)
