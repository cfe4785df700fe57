"""Per-key sliding-window rate limits, in memory or shared through Redis.

A limiter allows at most ``limit`` hits per key within any ``window_seconds``
(a sliding log, not fixed buckets: no double burst at a bucket boundary).
Refused hits are not counted, so a client that keeps hammering is let in again
as soon as its oldest counted hit leaves the window.

In memory (default)
    One process only. Thread-safe; memory is bounded: a key is forgotten once its
    window has passed, at most ``limit`` timestamps are kept per key, and at most
    ``max_keys`` keys are kept (the least recently counted key is evicted first;
    an evicted key starts afresh, which under key pressure errs towards allowing).

Redis (``redis_url`` given)
    Several worker processes share the limit. Each key is a sorted set of hit
    times, pruned, counted and added to by one Lua script (atomic on the server)
    that reads the time from Redis itself (``TIME``), so workers need no common
    clock; the set expires after one window of inactivity. When Redis cannot be
    reached the limiter fails open (allows) and logs a warning: a Redis blip
    must not take the chat down.

``hit()`` and ``retry_after()`` are synchronous: for use cases running in a
worker thread. The in-memory backend never blocks; the Redis one makes one
short round trip (socket timeouts are small). Async code (routes, event
handlers) calls ``await hit_async(key)`` / ``retry_after_async(key)``, which
talk to Redis through ``redis.asyncio`` on the running loop: nothing blocks
the event loop and no thread is taken.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable

log = logging.getLogger("chatdash.ratelimit")

DEFAULT_MAX_KEYS = 100_000
REDIS_TIMEOUT_SECONDS = 0.5

# KEYS[1] = the sorted set; ARGV = window (microseconds), limit, mode ("hit" or
# "peek"), a unique member name. Returns {allowed (1/0), retry_after_us}.
_REDIS_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  if ARGV[3] == 'hit' then
    redis.call('ZADD', KEYS[1], now, ARGV[4])
    redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  end
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
if wait < 1 then wait = 1 end
return {0, wait}
"""


class RateLimiter:
    def __init__(
        self,
        limit: int,
        window_seconds: float,
        redis_url: str | None = None,
        prefix: str = "rl",
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        """``clock`` is used by the in-memory backend only; Redis uses its own clock."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if not window_seconds > 0:
            raise ValueError("window_seconds must be positive")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.limit = int(limit)
        self.window = float(window_seconds)
        self.prefix = prefix
        self.redis_url = redis_url
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        # key -> times of its counted hits (oldest first). Ordered by each key's
        # latest counted hit, oldest first, so expired keys sit at the front.
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._redis = None
        self._script = None
        # redis.asyncio connections belong to the loop that made them: one client per loop.
        self._async: tuple[asyncio.AbstractEventLoop, object, object] | None = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self._script = self._redis.register_script(_REDIS_SCRIPT)

    # --- public API ----------------------------------------------------------

    def hit(self, key: str) -> bool:
        """Count a hit for ``key``. True = allowed (and counted); False = over the limit."""
        if self._redis is not None:
            allowed, _ = self._redis_call(key, "hit")
            return allowed
        return self._memory_hit(key)

    def retry_after(self, key: str) -> float:
        """Seconds until a hit for ``key`` would be allowed (0 if allowed now)."""
        if self._redis is not None:
            return self._redis_call(key, "peek")[1]
        return self._memory_retry_after(key)

    async def hit_async(self, key: str) -> bool:
        if self._redis is None:
            return self._memory_hit(key)
        return (await self._redis_call_async(key, "hit"))[0]

    async def retry_after_async(self, key: str) -> float:
        if self._redis is None:
            return self._memory_retry_after(key)
        return (await self._redis_call_async(key, "peek"))[1]

    def reset(self, key: str) -> None:
        """Forget every hit of ``key`` (e.g. after a successful login)."""
        if self._redis is not None:
            try:
                self._redis.delete(self._redis_key(key))
            except Exception:
                log.warning("rate limiter: Redis unavailable, could not reset %r", key, exc_info=True)
            return
        with self._lock:
            self._hits.pop(key, None)

    def tracked_keys(self) -> int:
        """How many keys the in-memory backend currently remembers (0 for Redis)."""
        with self._lock:
            self._sweep(self._clock())
            return len(self._hits)

    # --- in memory -----------------------------------------------------------

    def _sweep(self, now: float) -> None:
        """Forget keys whose latest counted hit has left the window (amortised O(1))."""
        cutoff = now - self.window
        hits = self._hits
        while hits:
            key, times = next(iter(hits.items()))
            if times and times[-1] > cutoff:
                break
            del hits[key]

    def _memory_hit(self, key: str) -> bool:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            times = self._hits.get(key)
            if times is None:
                while len(self._hits) >= self._max_keys:
                    self._hits.popitem(last=False)
                times = self._hits[key] = deque()
            cutoff = now - self.window
            while times and times[0] <= cutoff:
                times.popleft()
            if len(times) >= self.limit:
                return False
            times.append(now)
            self._hits.move_to_end(key)
            return True

    def _memory_retry_after(self, key: str) -> float:
        with self._lock:
            now = self._clock()
            times = self._hits.get(key)
            if not times:
                return 0.0
            cutoff = now - self.window
            live = [t for t in times if t > cutoff]
            if len(live) < self.limit:
                return 0.0
            return max(0.0, live[0] + self.window - now)

    # --- Redis ---------------------------------------------------------------

    def _redis_key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def _redis_call(self, key: str, mode: str) -> tuple[bool, float]:
        window_us = max(1, round(self.window * 1_000_000))
        try:
            allowed, wait_us = self._script(
                keys=[self._redis_key(key)],
                args=[window_us, self.limit, mode, uuid.uuid4().hex],
            )
        except Exception:
            # Fail open: a Redis outage must not lock every shopper out of the chat.
            log.warning("rate limiter: Redis unavailable, allowing %r", key, exc_info=True)
            return True, 0.0
        return bool(allowed), int(wait_us) / 1_000_000


    def _async_script(self):
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(
                self.redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self._async = (loop, client, client.register_script(_REDIS_SCRIPT))
        return self._async[2]

    async def _redis_call_async(self, key: str, mode: str) -> tuple[bool, float]:
        window_us = max(1, round(self.window * 1_000_000))
        try:
            allowed, wait_us = await self._async_script()(
                keys=[self._redis_key(key)],
                args=[window_us, self.limit, mode, uuid.uuid4().hex],
            )
        except Exception:
            log.warning("rate limiter: Redis unavailable, allowing %r", key, exc_info=True)
            return True, 0.0
        return bool(allowed), int(wait_us) / 1_000_000


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter(name: str, limit: int, window_seconds: float) -> RateLimiter:
    """The process-wide limiter called ``name`` (Redis-backed when REDIS_URL is set).

    Asking again for the same name returns the same instance; asking with other
    numbers is a programming error and raises ValueError.
    """
    with _limiters_lock:
        existing = _limiters.get(name)
        if existing is not None:
            if (existing.limit, existing.window) != (int(limit), float(window_seconds)):
                raise ValueError(
                    f"rate limiter {name!r} already exists with limit={existing.limit}, "
                    f"window={existing.window}s"
                )
            return existing
        from chatdash.settings import get_settings

        created = RateLimiter(limit, window_seconds, redis_url=get_settings().redis_url, prefix=f"rl:{name}")
        _limiters[name] = created
        return created


def clear_limiters() -> None:
    """Drop the cached named limiters (tests, or after settings changed)."""
    with _limiters_lock:
        _limiters.clear()
