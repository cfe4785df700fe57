"""The chat's hottest writes, in one process: what one shopper message, one
admin reply and one written presence heartbeat cost on the server (the use
case, its statements and the events it records), without sockets or Reflex
around it.

    .venv/bin/python bench/bench_chat_write.py [--shoppers 1000] [--messages 3000] [--beats 3000] [--db-url URL]

A fresh SQLite file (WAL) in a temporary folder unless --db-url names another
database; N shoppers each with a visit; then --messages shopper messages and a
tenth as many admin replies, round robin, timed one by one. Prints per-call
p50/p95/p99 and the CPU time per call (this process only): the figure to watch
when changing `chat.shopper_send` / `conversations.post_message`. Then
--beats heartbeats from the shoppers' pages ("still here, same page"), each
one written (the process forgets the beats it wrote, as a second worker that
never saw them would): the figure for `presence.beat`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CHATDASH_SECRET_KEY", "bench-secret")

from chatdash import events
from chatdash.db import make_engine, migrate, session_scope
from chatdash.models import AdminUser, Shopper, Visit, utcnow
from chatdash.services import chat, presence


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shoppers", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--beats", type=int, default=3000)
    ap.add_argument("--db-url", default="")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="chatdash-bench-write-")
    engine = make_engine(args.db_url or f"sqlite:///{tmp}/chat.db")
    migrate(engine)
    delivered: list[object] = []
    stop = events.listen(delivered.extend)
    shoppers: list[tuple[str, int]] = []
    with session_scope(engine) as s:
        admin = AdminUser(email="bench@example.com", password_hash="-")  # noqa: S106 - never logs in
        s.add(admin)
        s.flush()
        admin_id = admin.id
        for _ in range(args.shoppers):
            sh = Shopper(visitor_id=uuid.uuid4().hex)
            s.add(sh)
            s.flush()
            s.add(Visit(shopper_id=sh.id, started_at=utcnow(), last_seen_at=utcnow(),
                        current_url="https://shop.example/p/1", current_title="A product"))
            shoppers.append((sh.visitor_id, sh.id))
    if args.messages > 30 * len(shoppers):
        ap.error("keep --messages within 30 per shopper (the widget's per-minute send limit)")

    conv_of: dict[int, int] = {}
    send_ms: list[float] = []
    reply_ms: list[float] = []
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    for i in range(args.messages):
        visitor_id, shopper_id = shoppers[i % len(shoppers)]
        t = time.perf_counter()
        conv_id, _msg, created = chat.shopper_send(visitor_id, shopper_id, conv_of.get(shopper_id, 0),
                                                   uuid.uuid4().hex, f"message {i}", engine=engine)
        send_ms.append((time.perf_counter() - t) * 1000)
        assert created
        conv_of[shopper_id] = conv_id
        if i % 10 == 9:
            t = time.perf_counter()
            chat.admin_send(admin_id, conv_id, uuid.uuid4().hex, f"reply {i}", engine=engine)
            reply_ms.append((time.perf_counter() - t) * 1000)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    stop()
    calls = len(send_ms) + len(reply_ms)
    print(f"chat writes — {args.shoppers} shoppers, {len(send_ms)} shopper messages, {len(reply_ms)} admin replies, "
          f"{engine.dialect.name}, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    for name, values in (("shopper_send", send_ms), ("admin_send", reply_ms)):
        print(f"  {name:13} p50 {statistics.median(values):6.2f} ms  p95 {pct(values, 0.95):6.2f} ms  "
              f"p99 {pct(values, 0.99):6.2f} ms")
    print(f"  CPU per call {cpu / calls * 1000:.2f} ms ({calls / wall:,.0f} calls/s, one thread); "
          f"events delivered {len(delivered)}")

    for visitor_id, _shopper_id in shoppers:  # each browser's current visit, on its page
        presence.beat(visitor_id, True, url="https://shop.example/p/1", title="A product", engine=engine)
    beat_ms: list[float] = []
    cpu0 = time.process_time()
    for i in range(args.beats):
        presence._written.clear()  # as a worker that has not seen this page beat: it writes
        t = time.perf_counter()
        presence.beat(shoppers[i % len(shoppers)][0], True, url="https://shop.example/p/1", title="A product",
                      engine=engine)
        beat_ms.append((time.perf_counter() - t) * 1000)
    cpu = time.process_time() - cpu0
    if beat_ms:
        print(f"  {'heartbeat':13} p50 {statistics.median(beat_ms):6.2f} ms  p95 {pct(beat_ms, 0.95):6.2f} ms  "
              f"p99 {pct(beat_ms, 0.99):6.2f} ms  CPU {cpu / len(beat_ms) * 1000:.2f} ms per written beat")


if __name__ == "__main__":
    main()
