"""A worker process for the leader tests: runs one periodic job, under the
real `chatdash.services.leader`, that records who ran it in a Redis list.

python -m tests.scale.leader_worker REDIS_URL KEY TTL RENEW
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time

import redis.asyncio

from chatdash.services import leader


async def main(url: str, key: str, ttl: float, renew: float) -> None:
    r = redis.asyncio.Redis.from_url(url)

    async def tick() -> None:
        while True:
            await r.rpush(f"{key}:ticks", f"{os.getpid()} {time.time():.3f}")
            await asyncio.sleep(0.05)

    # SIGTERM stops the worker the way a server's graceful shutdown does: its
    # lifespan tasks are cancelled.
    me = asyncio.current_task()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, me.cancel)
    await r.rpush(f"{key}:started", os.getpid())
    with contextlib.suppress(asyncio.CancelledError):
        await leader.run_jobs([tick], url, key=key, ttl=ttl, renew=renew)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
