"""One leader for the periodic jobs, among real worker processes sharing the
real Redis: exactly one runs them, and a leader killed with SIGKILL is
replaced within the lock's expiry plus one renewal period."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("CHATDASH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TTL, RENEW = 2.0, 0.4


@pytest.fixture
def key():
    name = f"test:leader:{uuid.uuid4().hex}"
    yield name
    r = redis.Redis.from_url(REDIS_URL)
    r.delete(name, f"{name}:ticks", f"{name}:started")


def start_workers(key: str, n: int) -> list[subprocess.Popen]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.scale.leader_worker", REDIS_URL, key, str(TTL), str(RENEW)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for _ in range(n)
    ]
    r = redis.Redis.from_url(REDIS_URL)
    def started() -> bool:
        assert all(p.poll() is None for p in procs), "a worker exited"
        return r.llen(f"{key}:started") >= n

    wait_until(started, timeout=60, what=f"{n} workers started")
    return procs


def ticks(key: str, since: int = 0) -> list[tuple[int, float]]:
    rows = redis.Redis.from_url(REDIS_URL).lrange(f"{key}:ticks", since, -1)
    return [(int(pid), float(at)) for pid, at in (row.decode().split() for row in rows)]


def wait_ticks(key: str, test, timeout: float) -> list[tuple[int, float]]:
    seen: list = []

    def passed() -> list[tuple[int, float]] | None:
        seen[:] = ticks(key)
        return list(seen) if test(seen) else None

    return wait_until(passed, timeout=timeout, what=lambda: f"ticks passing the test; last {seen[-5:]}")


def test_one_worker_runs_the_jobs_and_a_killed_leader_is_replaced_in_bounded_time(key):
    procs = start_workers(key, 3)
    try:
        # A leader emerges and keeps running its job alone for a while.
        found = wait_ticks(key, lambda t: len(t) >= 1, timeout=10)
        first = found[0][0]
        found = wait_ticks(key, lambda t: t and t[-1][1] - t[0][1] > 3 * TTL, timeout=4 * TTL + 10)
        assert {pid for pid, _ in found} == {first}

        leader = next(p for p in procs if p.pid == first)
        before = len(found)
        os.kill(first, signal.SIGKILL)
        killed_at = time.time()
        leader.wait(10)

        after = wait_ticks(key, lambda t: any(pid != first for pid, _ in t[before:]), timeout=TTL + 10)
        successor, took_over_at = next((pid, at) for pid, at in after[before:] if pid != first)
        assert successor in {p.pid for p in procs if p is not leader}
        assert took_over_at - killed_at <= TTL + RENEW + 0.5, "the jobs stopped for too long"
        # The new leader runs the jobs alone.
        later = wait_ticks(key, lambda t: t[-1][1] - took_over_at > 2 * TTL, timeout=3 * TTL + 10)
        assert {pid for pid, at in later if at > took_over_at} == {successor}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def test_a_leader_that_stops_cleanly_hands_over_at_once(key):
    procs = start_workers(key, 2)
    try:
        first = wait_ticks(key, lambda t: len(t) >= 1, timeout=10)[0][0]
        before = len(ticks(key))
        os.kill(first, signal.SIGTERM)  # asyncio.run cancels: the lock is released
        stopped_at = time.time()
        after = wait_ticks(key, lambda t: any(pid != first for pid, _ in t[before:]), timeout=TTL + 10)
        took_over_at = next(at for pid, at in after[before:] if pid != first)
        assert took_over_at - stopped_at <= RENEW + 0.5
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
