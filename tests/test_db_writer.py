"""The process's SQLite writer lock: writers take turns in arrival order."""

from __future__ import annotations

import threading
import time

from chatdash.db import FifoLock


def test_the_sqlite_writer_lock_serves_writers_in_arrival_order():
    lock, order, started = FifoLock(), [], []
    lock.__enter__()  # held: everyone below queues
    threads = []
    for n in range(8):
        arrived = threading.Event()

        def writer(n=n, arrived=arrived):
            arrived.set()
            with lock:
                order.append(n)

        t = threading.Thread(target=writer)
        t.start()
        arrived.wait()
        # Wait until this writer is queued before the next one arrives.
        deadline = time.monotonic() + 5
        while len(lock._waiters) < n + 1:
            assert time.monotonic() < deadline, "a writer never queued"
            threading.Event().wait(0.001)
        threads.append(t)
        started.append(n)
    lock.__exit__(None, None, None)
    for t in threads:
        t.join(5)
    assert order == started == list(range(8))
