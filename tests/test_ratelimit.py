"""Rate limits: the in-memory limiter on a controllable clock, and the Redis one
against the machine's real Redis server shared by several limiter instances."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from chatdash.services import ratelimit
from chatdash.services.ratelimit import RateLimiter
from chatdash.settings import get_settings
from tests.waiting import wait_until

REDIS_URL = os.environ.get("CHATDASH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class FakeClock:
    """A clock the test moves by hand (injected through RateLimiter(clock=...))."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- in memory ---------------------------------------------------------------


def test_allows_up_to_the_limit_then_refuses(clock):
    rl = RateLimiter(3, 10, clock=clock)
    assert [rl.hit("a") for _ in range(3)] == [True, True, True]
    assert rl.hit("a") is False
    assert rl.hit("a") is False


def test_allows_again_once_the_window_has_passed(clock):
    rl = RateLimiter(2, 10, clock=clock)
    assert rl.hit("a") and rl.hit("a")
    clock.advance(9.99)
    assert not rl.hit("a")
    clock.advance(0.01)  # exactly one window after the first hits
    assert rl.hit("a") and rl.hit("a")
    assert not rl.hit("a")


def test_window_slides_rather_than_resetting_in_buckets(clock):
    rl = RateLimiter(3, 10, clock=clock)
    assert rl.hit("a")  # t=0
    clock.advance(5)
    assert rl.hit("a") and rl.hit("a")  # t=5
    assert not rl.hit("a")
    clock.advance(5)  # t=10: only the t=0 hit has left the window
    assert rl.hit("a")
    assert not rl.hit("a")
    clock.advance(4.9)  # t=14.9: the t=5 hits are still in it
    assert not rl.hit("a")
    clock.advance(0.1)  # t=15
    assert rl.hit("a") and rl.hit("a")
    assert not rl.hit("a")


def test_refused_hits_are_not_counted(clock):
    rl = RateLimiter(1, 10, clock=clock)
    assert rl.hit("a")
    for _ in range(50):
        clock.advance(0.1)
        assert not rl.hit("a")
    clock.advance(5.0)  # t=10 since the one counted hit
    assert rl.hit("a")


def test_keys_are_independent(clock):
    rl = RateLimiter(2, 10, clock=clock)
    assert rl.hit("a") and rl.hit("a")
    assert not rl.hit("a")
    assert rl.hit("b") and rl.hit("b")
    assert not rl.hit("b")
    assert rl.retry_after("c") == 0
    assert rl.hit("c")


def test_retry_after(clock):
    rl = RateLimiter(2, 10, clock=clock)
    assert rl.retry_after("a") == 0
    rl.hit("a")
    assert rl.retry_after("a") == 0  # one slot left
    clock.advance(3)
    rl.hit("a")
    assert rl.retry_after("a") == pytest.approx(7)  # until the first hit leaves
    clock.advance(2)
    assert rl.retry_after("a") == pytest.approx(5)
    assert not rl.hit("a")
    clock.advance(5)
    assert rl.retry_after("a") == 0
    assert rl.hit("a")
    assert rl.retry_after("a") == pytest.approx(3)  # now the t=3 hit is the oldest
    clock.advance(3)
    assert rl.retry_after("a") == 0
    assert rl.hit("a")


def test_retry_after_is_exactly_when_hit_succeeds_again(clock):
    rl = RateLimiter(4, 60, clock=clock)
    for step in (0, 7, 13, 21):
        clock.now = 1000 + step
        assert rl.hit("k")
    clock.now = 1030
    wait = rl.retry_after("k")
    assert wait == pytest.approx(30)
    clock.advance(wait - 0.001)
    assert not rl.hit("k")
    clock.advance(0.001)
    assert rl.hit("k")


def test_expired_keys_are_forgotten(clock):
    rl = RateLimiter(5, 10, clock=clock)
    for i in range(1000):
        rl.hit(f"visitor-{i}")
    assert rl.tracked_keys() == 1000
    clock.advance(5)
    rl.hit("late")
    assert rl.tracked_keys() == 1001
    clock.advance(5)  # the first 1000 are a full window old; "late" is not
    assert rl.tracked_keys() == 1
    clock.advance(5)
    assert rl.tracked_keys() == 0


def test_number_of_keys_is_capped_evicting_the_oldest(clock):
    rl = RateLimiter(1, 60, clock=clock, max_keys=3)
    for key in ("a", "b", "c"):
        assert rl.hit(key)
        clock.advance(1)
    assert not rl.hit("a")  # refused: does not make "a" recent
    assert rl.hit("d")
    assert rl.tracked_keys() == 3
    # "a" was the oldest and has been forgotten, so it starts afresh; "b".."d" have not.
    assert rl.hit("a")
    assert not rl.hit("c")
    assert not rl.hit("d")
    assert rl.tracked_keys() == 3


def test_per_key_memory_is_bounded_by_the_limit(clock):
    rl = RateLimiter(3, 10, clock=clock)
    for _ in range(10_000):
        rl.hit("a")
    assert len(rl._hits["a"]) == 3


def test_in_memory_limiter_is_thread_safe():
    rl = RateLimiter(500, 60)
    allowed = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        allowed.append(sum(rl.hit("shared") for _ in range(1000)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 500


def test_reset_forgets_a_key(clock):
    rl = RateLimiter(1, 10, clock=clock)
    assert rl.hit("a") and rl.hit("b")
    rl.reset("a")
    assert rl.hit("a")
    assert not rl.hit("b")


@pytest.mark.parametrize(("limit", "window"), [(0, 10), (-1, 10), (1, 0), (1, -5), (1, float("nan"))])
def test_invalid_configuration_is_refused(limit, window):
    with pytest.raises(ValueError):
        RateLimiter(limit, window)


@pytest.mark.asyncio
async def test_async_helpers_in_memory(clock):
    rl = RateLimiter(1, 10, clock=clock)
    assert await rl.hit_async("a") is True
    assert await rl.hit_async("a") is False
    assert await rl.retry_after_async("a") == pytest.approx(10)


def test_default_clock_is_real_time():
    rl = RateLimiter(1, 0.2)
    assert rl.hit("a")
    assert not rl.hit("a")
    assert 0 < rl.retry_after("a") <= 0.2
    # The real clock frees the key once the window has passed (no fake clock moves it here).
    wait_until(lambda: rl.retry_after("a") == 0, timeout=5, what="the 0.2 s window to pass")
    assert rl.hit("a")


# --- Redis ---------------------------------------------------------------------


@pytest.fixture
def redis_prefix():
    """A prefix of this test's own; every key under it is deleted afterwards."""
    prefix = f"test-rl-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(REDIS_URL)
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _redis_limiter(prefix: str, limit: int, window: float) -> RateLimiter:
    return RateLimiter(limit, window, redis_url=REDIS_URL, prefix=prefix)


def test_redis_two_workers_share_the_limit(redis_prefix):
    worker_a = _redis_limiter(redis_prefix, 3, 60)
    worker_b = _redis_limiter(redis_prefix, 3, 60)
    assert worker_a.hit("shopper-1")
    assert worker_b.hit("shopper-1")
    assert worker_a.hit("shopper-1")
    assert not worker_b.hit("shopper-1")
    assert not worker_a.hit("shopper-1")
    # Another key is independent, whichever worker sees it.
    assert worker_b.hit("shopper-2")
    assert worker_a.retry_after("shopper-2") == 0


def test_redis_allows_again_after_a_real_window(redis_prefix):
    worker_a = _redis_limiter(redis_prefix, 2, 1.0)
    worker_b = _redis_limiter(redis_prefix, 2, 1.0)
    assert worker_a.hit("k") and worker_b.hit("k")
    assert not worker_a.hit("k")
    wait = worker_b.retry_after("k")
    assert 0.5 < wait <= 1.0
    wait_until(lambda: worker_b.retry_after("k") == 0, timeout=10, what="the 1 s window to pass in Redis")
    assert worker_b.hit("k")
    assert worker_a.hit("k")
    assert not worker_b.hit("k")


def test_redis_retry_after_and_key_expiry(redis_prefix):
    rl = _redis_limiter(redis_prefix, 2, 30)
    assert rl.retry_after("k") == 0
    rl.hit("k")
    assert rl.retry_after("k") == 0
    rl.hit("k")
    wait = rl.retry_after("k")
    assert 29 < wait <= 30
    client = redis.Redis.from_url(REDIS_URL)
    try:
        key = f"{redis_prefix}:k"
        assert client.zcard(key) == 2
        assert 0 < client.pttl(key) <= 30_000  # the set cleans itself up
        # retry_after only peeks: it neither counts nor creates keys.
        rl.retry_after("never-hit")
        assert not client.exists(f"{redis_prefix}:never-hit")
    finally:
        client.close()


def test_redis_refused_hits_are_not_counted(redis_prefix):
    rl = _redis_limiter(redis_prefix, 1, 60)
    assert rl.hit("k")
    for _ in range(20):
        assert not rl.hit("k")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert client.zcard(f"{redis_prefix}:k") == 1
    finally:
        client.close()


def test_redis_limit_is_exact_under_concurrent_workers(redis_prefix):
    workers = [_redis_limiter(redis_prefix, 50, 60) for _ in range(4)]
    allowed = []
    barrier = threading.Barrier(len(workers))

    def run(rl: RateLimiter) -> None:
        barrier.wait()
        allowed.append(sum(rl.hit("hot") for _ in range(60)))

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 50


def test_redis_reset(redis_prefix):
    rl = _redis_limiter(redis_prefix, 1, 60)
    assert rl.hit("k")
    assert not rl.hit("k")
    rl.reset("k")
    assert rl.hit("k")


@pytest.mark.asyncio
async def test_redis_async_helpers(redis_prefix):
    rl = _redis_limiter(redis_prefix, 1, 60)
    assert await rl.hit_async("k") is True
    assert await rl.hit_async("k") is False
    assert 59 < await rl.retry_after_async("k") <= 60


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_unreachable_fails_open_and_logs(caplog):
    rl = RateLimiter(1, 60, redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    with caplog.at_level(logging.WARNING, logger="chatdash.ratelimit"):
        assert rl.hit("k") is True
        assert rl.hit("k") is True
        assert rl.retry_after("k") == 0
    assert sum("Redis unavailable" in r.getMessage() for r in caplog.records) == 3


# --- named limiters ------------------------------------------------------------------


@pytest.fixture
def fresh_settings(monkeypatch):
    """Named limiters read REDIS_URL through get_settings(); start and end clean."""
    ratelimit.clear_limiters()
    get_settings.cache_clear()
    yield monkeypatch
    ratelimit.clear_limiters()
    monkeypatch.undo()
    get_settings.cache_clear()


def test_named_limiter_in_memory_without_redis_url(fresh_settings):
    fresh_settings.setenv("REDIS_URL", "")
    rl = ratelimit.limiter("messages", 5, 60)
    assert rl.redis_url in (None, "")
    assert rl._redis is None
    assert ratelimit.limiter("messages", 5, 60) is rl
    assert ratelimit.limiter("logins", 5, 60) is not rl
    with pytest.raises(ValueError, match="already exists"):
        ratelimit.limiter("messages", 10, 60)


def test_named_limiter_uses_redis_url_from_settings(fresh_settings):
    fresh_settings.setenv("REDIS_URL", REDIS_URL)
    name = f"test-{uuid.uuid4().hex}"
    rl = ratelimit.limiter(name, 1, 60)
    assert rl.redis_url == REDIS_URL
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert rl.hit("k")
        assert not rl.hit("k")
        assert client.exists(f"rl:{name}:k")
        # A second "worker" asking for the same named limiter shares the count.
        ratelimit.clear_limiters()
        assert not ratelimit.limiter(name, 1, 60).hit("k")
    finally:
        client.delete(f"rl:{name}:k")
        client.close()


@pytest.mark.asyncio
async def test_redis_async_and_thread_callers_share_one_window_without_using_threads(redis_prefix):
    """Routes (async) and use cases (threads) count against the same key; the
    async path talks to Redis on the loop, not through the thread pool."""
    rl = _redis_limiter(redis_prefix, 2, 60)
    assert await asyncio.to_thread(rl.hit, "k") is True

    class NoThreads(ThreadPoolExecutor):
        def submit(self, *_args, **_kwargs):
            raise AssertionError("the thread pool was used")

    asyncio.get_running_loop().set_default_executor(NoThreads())
    assert await rl.hit_async("k") is True
    assert await rl.hit_async("k") is False
    assert await rl.retry_after_async("k") > 59


@pytest.mark.asyncio
async def test_redis_unreachable_fails_open_in_async_code_too(caplog):
    rl = RateLimiter(1, 60, redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    with caplog.at_level(logging.WARNING, logger="chatdash.ratelimit"):
        assert await rl.hit_async("k") is True
        assert await rl.hit_async("k") is True
    assert sum("Redis unavailable" in r.getMessage() for r in caplog.records) == 2
