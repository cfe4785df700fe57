"""Relay: committed domain events between workers, through a Redis stream.

With several workers (`REDIS_URL` set) a write committed in one worker must
reach the screens whose sockets live in the others. Every worker appends the
batches its own writes commit to one Redis stream and reads the stream for
the batches of the others; each hands what it reads to its own `live`
adapter, which pushes only to its own sockets.

- A batch committed in a worker thread (every use case run with
  `asyncio.to_thread`) is appended from that thread before the use case
  returns, so whatever the client is told after ("sent", "stored") was
  already on its way to the other workers: a worker killed right after
  answering has lost nothing it acknowledged.
- A batch emitted on the event loop (typing) is queued and appended by an
  asyncio task: nothing here ever blocks the loop.
- Reading is one blocking `XREAD` per worker on its own connection, resumed
  from the last entry it saw after a Redis hiccup, so a short outage delays
  pushes instead of losing them. The stream keeps the newest `MAX_LENGTH`
  batches (minutes of traffic) and nothing else.

Batches are pickled: Redis is trusted infrastructure here, as it already is
for Reflex's own state manager, which keeps every client's state pickled in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import threading
import uuid
from collections.abc import Callable

import redis
import redis.asyncio

from chatdash.events import DomainEvent

log = logging.getLogger("chatdash.relay")

STREAM = "chatdash:events"
MAX_LENGTH = 50_000
READ_BLOCK_MS = 5_000
READ_COUNT = 500
RETRY_SECONDS = 0.5
# A writer thread waits at most this long for Redis before giving up on a batch.
PUBLISH_TIMEOUT_SECONDS = 2.0

Deliver = Callable[[list[DomainEvent]], None]


class RedisRelay:
    """Carries this worker's committed batches to the other workers and theirs
    to `deliver` (called on the event loop, one batch at a time, in order)."""

    def __init__(self, url: str, deliver: Deliver, *, stream: str = STREAM) -> None:
        self.stream = stream
        self.origin = uuid.uuid4().hex.encode()
        self._deliver = deliver
        self._sync = redis.Redis.from_url(
            url, socket_timeout=PUBLISH_TIMEOUT_SECONDS, socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS
        )
        self._async = redis.asyncio.Redis.from_url(url)
        # XREAD BLOCK holds its connection: the reader gets one of its own.
        self._reader = redis.asyncio.Redis.from_url(url)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._outbox: asyncio.Queue[list[DomainEvent]] | None = None
        self._ready = asyncio.Event()

    # ----- publishing ------------------------------------------------------------
    def publish(self, batch: list[DomainEvent]) -> None:
        """An events listener: called with each batch this process commits or emits."""
        if self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._outbox.put_nowait(batch)
            return
        try:
            self._sync.xadd(self.stream, self._fields(batch), maxlen=MAX_LENGTH, approximate=True)
        except redis.RedisError:
            log.warning("could not relay %d event(s) to the other workers", len(batch), exc_info=True)

    def _fields(self, batch: list[DomainEvent]) -> dict[bytes, bytes]:
        return {b"o": self.origin, b"e": pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)}

    async def _write(self) -> None:
        while True:
            batch = await self._outbox.get()
            try:
                await self._async.xadd(self.stream, self._fields(batch), maxlen=MAX_LENGTH, approximate=True)
            except redis.RedisError:
                log.warning("could not relay %d event(s) to the other workers", len(batch), exc_info=True)

    # ----- reading -----------------------------------------------------------------
    async def _start_id(self) -> bytes:
        """Where this worker starts reading: after the newest entry there is now."""
        while True:
            try:
                newest = await self._reader.xrevrange(self.stream, count=1)
                return newest[0][0] if newest else b"0-0"
            except redis.RedisError:
                log.warning("relay: Redis unavailable, retrying", exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)

    async def _read(self) -> None:
        last = await self._start_id()
        self._ready.set()
        while True:
            try:
                answer = await self._reader.xread({self.stream: last}, block=READ_BLOCK_MS, count=READ_COUNT)
            except redis.RedisError:
                log.warning("relay: reading the event stream failed, retrying", exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            for _stream, entries in answer or ():
                for entry_id, fields in entries:
                    last = entry_id
                    if fields.get(b"o") == self.origin:
                        continue  # this worker delivered its own batch when it committed
                    try:
                        batch = pickle.loads(fields[b"e"])  # noqa: S301 - our own workers wrote it
                    except Exception:
                        log.exception("relay: unreadable entry %s", entry_id)
                        continue
                    try:
                        self._deliver(batch)
                    except Exception:
                        log.exception("relay: delivering entry %s failed", entry_id)

    # ----- life ----------------------------------------------------------------------
    async def wait_ready(self) -> None:
        """Returns once the reader knows where to start (tests, start-up)."""
        await self._ready.wait()

    @contextlib.asynccontextmanager
    async def running(self):
        """Publish and read while the block runs (on the app's event loop)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._outbox = asyncio.Queue()
        tasks = [
            asyncio.create_task(self._read(), name="relay-read"),
            asyncio.create_task(self._write(), name="relay-write"),
        ]
        try:
            yield self
        finally:
            self._loop = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._async.aclose()
            await self._reader.aclose()
            self._sync.close()
