"""One leader among the workers for the periodic jobs (presence sweeps,
scheduled retraining): a Redis lock with an expiry, renewed while held.

Every worker runs `run_jobs(jobs)`. Without Redis (one box) the jobs simply
run. With Redis, each worker tries `SET key me NX PX ttl` every `renew`
seconds; the one that gets it runs the jobs and keeps the lock by renewing it
(a compare-and-expire script, so a worker never renews a lock someone else
took). A leader that dies (even by SIGKILL) stops renewing, its lock expires
after at most `ttl`, and the next worker to try takes it: the jobs are off
for at most `ttl + renew` seconds. A leader that cannot renew in time (Redis
away, the process frozen) stops its jobs before its lock can expire, so two
leaders never run side by side for longer than one Redis round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

import redis
import redis.asyncio

log = logging.getLogger("chatdash.leader")

KEY = "chatdash:leader"
TTL_SECONDS = 10.0
RENEW_SECONDS = 2.0

Job = Callable[[], Awaitable[None]]

# KEYS[1] = the lock; ARGV = our id, ttl in ms. Extend only our own lock.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def worker_id() -> str:
    """Who holds the lock, as operators read it: host, pid and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leadership:
    def __init__(self, url: str, *, key: str = KEY, ttl: float = TTL_SECONDS, renew: float = RENEW_SECONDS) -> None:
        if not 0 < renew < ttl / 2:
            raise ValueError("renew must be positive and under half the ttl")
        self.key = key
        self.ttl = ttl
        self.renew = renew
        self.me = worker_id()
        self._redis = redis.asyncio.Redis.from_url(url, socket_timeout=renew, socket_connect_timeout=renew)
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)
        # Until when (monotonic) the lock is surely ours: the expiry counted
        # from *before* the request that set it.
        self._held_until = 0.0

    @property
    def leading(self) -> bool:
        return time.monotonic() < self._held_until

    async def _try(self) -> bool:
        """Take or keep the lock; True while this worker holds it."""
        ttl_ms = round(self.ttl * 1000)
        sent = time.monotonic()
        try:
            if self.leading:
                ok = await self._renew(keys=[self.key], args=[self.me, ttl_ms])
            else:
                ok = await self._redis.set(self.key, self.me, nx=True, px=ttl_ms)
        except redis.RedisError:
            log.warning("leader lock: Redis unavailable", exc_info=True)
            return self.leading
        if ok:
            # Stop a little before Redis would let the lock go.
            self._held_until = sent + self.ttl - self.renew
        else:
            self._held_until = 0.0
        return self.leading

    async def run(self, jobs: list[Job]) -> None:
        """Run `jobs` whenever this worker leads; until cancelled."""
        running: list[asyncio.Task] = []
        try:
            while True:
                leading = await self._try()
                if leading and not running:
                    log.info("leader %s: running the periodic jobs", self.me)
                    running = [asyncio.create_task(_forever(job), name=f"leader:{job.__name__}") for job in jobs]
                elif not leading and running:
                    log.warning("leader %s: lost the lock, stopping the periodic jobs", self.me)
                    await _cancel(running)
                    running = []
                # Wake early enough to renew before the margin runs out.
                await asyncio.sleep(self.renew if not leading else min(self.renew, self._held_until - time.monotonic()))
        finally:
            await _cancel(running)
            if self.leading:
                with contextlib.suppress(redis.RedisError):
                    await self._release(keys=[self.key], args=[self.me])  # the next leader need not wait
            await self._redis.aclose()


async def _forever(job: Job) -> None:
    """A job is a loop of its own; one that ends or fails is restarted."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("periodic job %s failed", job.__name__)
        await asyncio.sleep(1)


async def _cancel(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_jobs(jobs: list[Job], redis_url: str | None, **lock: float | str) -> None:
    """The periodic jobs of this process: always (one box), or only while
    leader among the workers sharing `redis_url`."""
    if not redis_url:
        await asyncio.gather(*(_forever(job) for job in jobs))
        return
    await Leadership(redis_url, **lock).run(jobs)
