"""Page loads that said they closed (the beacon), remembered for a few minutes:
a heartbeat of theirs that arrives after the beacon (requests can overtake each
other, and with several workers they land on different ones) is ignored.

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
REDIS_TIMEOUT_SECONDS = 0.5


class ClosedPages:
    def __init__(self, redis_url: str | None = None, *, prefix: str = "chatdash:closed-page") -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self._memory: OrderedDict[str, float] = OrderedDict()
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


_closed: ClosedPages | None = None


def closed_pages() -> ClosedPages:
    """The process-wide set (Redis-backed when REDIS_URL is set)."""
    global _closed
    if _closed is None:
        from chatdash.settings import get_settings

        _closed = ClosedPages(get_settings().redis_url)
    return _closed
