"""Waiting on what a test can observe, never for a fixed time.

Some conditions live in another process (a worker, the database, a log file)
that has no way to tell the test when they hold: `wait_until` looks again
every `every` seconds until the condition holds, and fails with a message
naming what did not happen once `timeout` has passed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], *, timeout: float, what: str | Callable[[], str],
               every: float = 0.05) -> T:
    """check()'s value once it is truthy (check may raise to give up early)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g} s: {what() if callable(what) else what}")
        time.sleep(every)
    return value


async def wait_until_async(check: Callable[[], T], *, timeout: float, what: str | Callable[[], str],
                           every: float = 0.01) -> T:
    """`wait_until` inside a test's own event loop: its other tasks run while it waits."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g} s: {what() if callable(what) else what}")
        await asyncio.sleep(every)
    return value
