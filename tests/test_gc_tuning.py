"""chatdash/gc_tuning.py: survivors are frozen out of the collector's sight, and
the periodic full collection still frees the cyclic garbage frozen meanwhile."""

import asyncio
import contextlib
import gc
import weakref

import pytest

from chatdash import gc_tuning
from tests.waiting import wait_until_async


class Node:
    def __init__(self):
        self.me = self  # a cycle: only the cyclic collector frees it


@pytest.fixture(autouse=True)
def _unfrozen():
    yield
    gc.unfreeze()


def test_frozen_survivors_are_not_collected_until_the_full_collection():
    gc_tuning.freeze_survivors()
    node = Node()
    alive = weakref.ref(node)
    gc_tuning.freeze_survivors()  # node survives this round: frozen
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()  # an ordinary full collection no longer sees frozen objects
    assert alive() is not None

    found, pause_ms = gc_tuning.full_collection()
    assert alive() is None
    assert found >= 1 and pause_ms >= 0
    assert gc.get_freeze_count() > 0  # the survivors are frozen again


def test_the_lifespan_task_freezes_and_runs_full_collections_on_schedule():
    async def scenario():
        task = asyncio.create_task(gc_tuning.keep_full_collections_rare(freeze_every=0.01, full_every=0.2))
        try:
            node = Node()
            alive = weakref.ref(node)
            await wait_until_async(lambda: not any(o is alive() for o in gc.get_objects()), timeout=10,
                                   what="a freeze round taking the node out of the collector's sight")
            del node
            await wait_until_async(lambda: alive() is None, timeout=10,
                                   what="the next full collection (at most full_every later) freeing it")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(asyncio.wait_for(scenario(), timeout=30))

