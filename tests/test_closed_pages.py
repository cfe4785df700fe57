"""A closed page's late heartbeat is ignored by every worker: with REDIS_URL
the beacon told to one worker is known to the other (two ClosedPages on the
real Redis stand for two workers' process-wide sets)."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import redis

from chatdash.services.closed_pages import ClosedPages

REDIS_URL = os.environ.get("CHATDASH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def prefix():
    name = f"test:closed:{uuid.uuid4().hex}"
    yield name
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(f"{name}:*"))
    if keys:
        r.delete(*keys)


def test_a_page_closed_on_one_worker_is_closed_on_the_other(prefix):
    one, other = ClosedPages(REDIS_URL, prefix=prefix), ClosedPages(REDIS_URL, prefix=prefix)

    async def scenario() -> tuple[bool, bool, bool]:
        await one.close("page-a-1234")
        return (
            await other.is_closed("page-a-1234"),
            await other.is_closed("page-b-1234"),
            await one.is_closed("page-a-1234"),
        )

    assert asyncio.run(scenario()) == (True, False, True)
    ttl = redis.Redis.from_url(REDIS_URL).ttl(f"{prefix}:page-a-1234")
    assert 0 < ttl <= 300  # forgotten after a few minutes, like the in-memory set


def test_in_memory_one_box_default_remembers_within_the_process():
    pages = ClosedPages(None)

    async def scenario() -> tuple[bool, bool]:
        await pages.close("page-c-1234")
        return await pages.is_closed("page-c-1234"), await ClosedPages(None).is_closed("page-c-1234")

    assert asyncio.run(scenario()) == (True, False)


def test_redis_unreachable_takes_the_page_as_open():
    pages = ClosedPages("redis://127.0.0.1:1/0")

    async def scenario() -> bool:
        await pages.close("page-d-1234")
        return await pages.is_closed("page-d-1234")

    assert asyncio.run(scenario()) is False


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "memory"])
def test_a_closing_page_tells_whether_another_page_of_the_visitor_is_open(prefix, shared):
    """The next page beat on one worker; the previous page's beacon reaches the
    other: it knows the shopper is still on a page. The last page closing does not."""
    if shared:
        one, other = ClosedPages(REDIS_URL, prefix=prefix), ClosedPages(REDIS_URL, prefix=prefix)
    else:
        one = other = ClosedPages(None)

    async def scenario() -> tuple[bool, bool, bool]:
        await one.beat("visitor-1", "page-a")
        await one.beat("visitor-1", "page-b")
        await one.beat("visitor-2", "page-c")
        return (
            await other.other_page_open("visitor-1", "page-a"),  # page-b is open
            await other.other_page_open("visitor-1", "page-b"),  # page-a closed before: none left
            await other.other_page_open("visitor-2", "page-c"),  # another visitor's pages do not count
        )

    assert asyncio.run(scenario()) == (True, False, False)
