"""Keep Python's full garbage collections off the live path.

A full (generation 2) collection walks every container object the process
holds. With Reflex's in-memory states every connected client keeps its whole
state tree, so at 1,000 shoppers a full collection walked over a million
objects and stopped the event loop for 200-340 ms every 7-15 s: the p99 of
every latency in bench/bench_live.py (messages, replies, heartbeats alike).

So the objects that survive are moved out of the collector's sight with
``gc.freeze()`` every ``freeze_every`` seconds (young garbage is collected
first; freezing itself costs nothing), and one real full collection runs
every ``full_every`` seconds, which frees the cyclic garbage that was frozen
in between (a client state that expired, say) and logs how long it took.
The pause a full collection costs is the same as before; it comes once in
half an hour instead of several times a minute.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger("chatdash.gc")

FREEZE_EVERY_SECONDS = 10.0
FULL_EVERY_SECONDS = 30 * 60.0


def freeze_survivors() -> None:
    """Collect the young generations, then freeze what is left."""
    gc.collect(1)
    gc.freeze()


def full_collection() -> tuple[int, float]:
    """Unfreeze everything, collect it all, freeze the survivors again.
    Returns (objects found unreachable, pause in ms)."""
    started = time.perf_counter()
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    return found, (time.perf_counter() - started) * 1000


async def keep_full_collections_rare(freeze_every: float = FREEZE_EVERY_SECONDS,
                                     full_every: float = FULL_EVERY_SECONDS) -> None:
    """Run for the life of the process (a lifespan task)."""
    found, pause_ms = full_collection()  # what start-up built stays for good
    log.info("start-up heap frozen (%d unreachable freed, %.0f ms)", found, pause_ms)
    last_full = time.monotonic()
    while True:
        await asyncio.sleep(freeze_every)
        if time.monotonic() - last_full >= full_every:
            found, pause_ms = full_collection()
            last_full = time.monotonic()
            log.info("full collection: %d unreachable freed in %.0f ms, %d objects frozen",
                     found, pause_ms, gc.get_freeze_count())
        else:
            freeze_survivors()
