"""Page loads that said they closed (the beacon), remembered for a few minutes:
a heartbeat of theirs that arrives after the beacon (requests can overtake each
other, and with several workers they land on different ones) is ignored.

And each visitor's pages that beat lately: a closing page's beacon does not
mean the shopper left when another page of theirs beat just before it (the
next page of the store already loaded, or a second tab still open).

In memory on one box; in Redis with `REDIS_URL`, so every worker knows what
any of them was told. Async: called from HTTP routes on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

log = logging.getLogger("chatdash.closed_pages")

TTL_SECONDS = 300
MAX_REMEMBERED = 50_000
# How long a visitor's page counts as open after its last heartbeat (they come
# every 15 s from a visible page): two beats missed and it no longer does.
OPEN_PAGE_SECONDS = 35
REDIS_TIMEOUT_SECONDS = 0.5


class ClosedPages:
    def __init__(self, redis_url: str | None = None, *, prefix: str = "chatdash:closed-page") -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self._memory: OrderedDict[str, float] = OrderedDict()
        self._beats: OrderedDict[str, dict[str, float]] = OrderedDict()  # visitor -> page -> last beat
        self._client: tuple[asyncio.AbstractEventLoop, object] | None = None

    def _redis(self):
        loop = asyncio.get_running_loop()
        if self._client is None or self._client[0] is not loop:
            import redis.asyncio

            self._client = (
                loop,
                redis.asyncio.Redis.from_url(
                    self.redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
                ),
            )
        return self._client[1]

    async def close(self, page: str) -> None:
        if self.redis_url:
            try:
                await self._redis().set(f"{self.prefix}:{page}", 1, ex=TTL_SECONDS)
            except Exception:
                log.warning("closed pages: Redis unavailable, %r not remembered", page, exc_info=True)
            return
        self._memory.pop(page, None)
        self._memory[page] = time.monotonic() + TTL_SECONDS
        while len(self._memory) > MAX_REMEMBERED:
            self._memory.popitem(last=False)

    async def is_closed(self, page: str) -> bool:
        if self.redis_url:
            try:
                return bool(await self._redis().exists(f"{self.prefix}:{page}"))
            except Exception:
                # A heartbeat let through only keeps a shopper on site a little longer.
                log.warning("closed pages: Redis unavailable, taking %r as open", page, exc_info=True)
                return False
        now = time.monotonic()
        while self._memory and next(iter(self._memory.values())) < now:
            self._memory.popitem(last=False)
        return page in self._memory

    async def beat(self, visitor: str, page: str) -> None:
        """This page of the visitor's sent a heartbeat just now."""
        now = time.time()
        if self.redis_url:
            try:
                key = f"{self.prefix}:beats:{visitor}"
                await self._redis().pipeline(transaction=False).hset(key, page, now).expire(
                    key, OPEN_PAGE_SECONDS).execute()
            except Exception:
                log.warning("closed pages: Redis unavailable, beat of %r not remembered", page, exc_info=True)
            return
        pages = self._beats.pop(visitor, {})
        pages[page] = now
        self._beats[visitor] = {p: t for p, t in pages.items() if now - t < OPEN_PAGE_SECONDS}
        while len(self._beats) > MAX_REMEMBERED:
            self._beats.popitem(last=False)

    async def other_page_open(self, visitor: str, page: str) -> bool:
        """Whether a page of this visitor other than `page` beat within
        OPEN_PAGE_SECONDS; `page` (closing) is forgotten."""
        now = time.time()
        if self.redis_url:
            key = f"{self.prefix}:beats:{visitor}"
            try:
                _deleted, beats = await self._redis().pipeline(transaction=False).hdel(key, page).hgetall(
                    key).execute()
            except Exception:
                # The beacon counts: at worst the shopper shows as left until the next beat.
                log.warning("closed pages: Redis unavailable, taking %r as the last page", page, exc_info=True)
                return False
            return any(now - float(t) < OPEN_PAGE_SECONDS for t in beats.values())
        pages = self._beats.get(visitor, {})
        pages.pop(page, None)
        return any(now - t < OPEN_PAGE_SECONDS for t in pages.values())


_closed: ClosedPages | None = None


def closed_pages() -> ClosedPages:
    """The process-wide set (Redis-backed when REDIS_URL is set)."""
    global _closed
    if _closed is None:
        from chatdash.settings import get_settings

        _closed = ClosedPages(get_settings().redis_url)
    return _closed
