"""What proactive chat adds to every presence heartbeat: `proactive.claim_popup`
(one indexed read; a write only when an agent's opening message is waiting).

  .venv/bin/python bench/bench_proactive.py [--shoppers 10000] [--runs 2000]
      [--pg postgresql://postgres@127.0.0.1:5432/test]

The database (a fresh SQLite file, or a schema of its own on PostgreSQL): the
production schema, `--shoppers` shoppers (20% of them browsers merged into an
identified customer), one conversation each, 100 of them holding an opening
message not shown yet. Timed, after a warm-up, in process: `claim_popup` for
random visitors with nothing waiting (the heartbeat's common case), and for
visitors whose message waits (the read and the claiming UPDATE, once each).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CHATDASH_SECRET_KEY", "bench-secret")

from sqlalchemy import insert, text  # noqa: E402

from chatdash.db import make_engine, migrate  # noqa: E402
from chatdash.models import Conversation, Message, Shopper, utcnow  # noqa: E402
from chatdash.services import proactive  # noqa: E402

WAITING = 100


def build(engine, shoppers: int) -> tuple[list[str], list[str]]:
    """(visitor ids with nothing waiting, visitor ids with an opening message waiting)."""
    now = utcnow()
    visitors = [uuid.uuid4().hex for _ in range(shoppers)]
    with engine.begin() as conn:
        conn.execute(insert(Shopper), [{"visitor_id": v, "created_at": now, "last_seen_at": now} for v in visitors])
        ids = dict(conn.execute(text("SELECT visitor_id, id FROM shopper")).all())
        merged = random.Random(1).sample(visitors, shoppers // 5)
        customers = random.Random(2).sample(sorted(set(visitors) - set(merged)), len(merged))
        for browser, customer in zip(merged, customers, strict=True):
            conn.execute(text("UPDATE shopper SET merged_into_id = :c WHERE id = :b"),
                         {"c": ids[customer], "b": ids[browser]})
        merged_set = set(merged)
        owners = [v for v in visitors if v not in merged_set]
        conn.execute(insert(Conversation), [
            {"token": uuid.uuid4().hex, "shopper_id": ids[v], "status": "open", "created_at": now,
             "last_message_at": now, "last_message_preview": "hello"} for v in owners])
        convs = dict(conn.execute(text("SELECT shopper_id, id FROM conversation")).all())
        waiting = random.Random(3).sample(owners, WAITING)
        for v in waiting:
            conv_id = convs[ids[v]]
            msg_id = conn.execute(insert(Message).returning(Message.id), {
                "conversation_id": conv_id, "sender": "admin", "kind": "text", "body": "Can I help?",
                "client_msg_id": uuid.uuid4().hex, "created_at": now}).scalar()
            conn.execute(text("UPDATE conversation SET proactive_message_id = :m WHERE id = :c"),
                         {"m": msg_id, "c": conv_id})
    waiting_set = set(waiting)
    idle = [v for v in visitors if v not in waiting_set]
    return idle, waiting


def timed(fn, args: list) -> list[float]:
    out = []
    for a in args:
        t = time.perf_counter()
        fn(a)
        out.append((time.perf_counter() - t) * 1000)
    return out


def report(name: str, ms: list[float]) -> None:
    ms = sorted(ms)
    q = statistics.quantiles(ms, n=100)
    print(f"  {name:<42} n={len(ms):>5}  p50 {q[49]:.3f}  p95 {q[94]:.3f}  p99 {q[98]:.3f} ms")


def run(url: str, label: str, shoppers: int, runs: int) -> None:
    engine = make_engine(url)
    migrate(engine)
    idle, waiting = build(engine, shoppers)
    rnd = random.Random(4)
    claim = lambda v: proactive.claim_popup(v, engine=engine)  # noqa: E731
    timed(claim, rnd.sample(idle, 200))  # warm-up
    print(f"{label}: {shoppers:,} shoppers, {WAITING} opening messages waiting")
    report("claim_popup, nothing waiting (each beat)", timed(claim, [rnd.choice(idle) for _ in range(runs)]))
    popped = timed(claim, waiting)
    report("claim_popup, a message waiting (once)", popped)
    again = [proactive.claim_popup(v, engine=engine) for v in waiting]
    assert all(p is None for p in again), "a popup was handed out twice"
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shoppers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--pg", default="")
    args = parser.parse_args()
    print(f"{platform.python_version()} on {platform.machine()}, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", "SQLite", args.shoppers, args.runs)
    if args.pg:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = make_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            sep = "&" if "?" in args.pg else "?"
            run(f"{args.pg}{sep}options=-csearch_path%3D{schema}", "PostgreSQL", args.shoppers, args.runs)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
