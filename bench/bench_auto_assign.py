"""What auto-assign costs a shopper's first message: `chat.shopper_send`
starting a new conversation with auto-assign off and on, on PostgreSQL with
several threads at once (the round robin's cursor row serialises the picks)
and on a SQLite file.

  .venv/bin/python bench/bench_auto_assign.py [--pg postgresql://postgres@127.0.0.1:5432/test]
      [--conversations 400] [--threads 8]

Each mode runs on a fresh database (5 members online), alternating off / on
twice; prints conversations per second and p50 / p95 latency per call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CHATDASH_SECRET_KEY", "bench-secret")

from sqlalchemy import event, text  # noqa: E402

from chatdash.db import make_engine, migrate, session_scope  # noqa: E402
from chatdash.models import Role  # noqa: E402
from chatdash.services import auth, auto_assign, chat, store_settings  # noqa: E402


def pg_engine(url: str):
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = make_engine(url)

    @event.listens_for(eng, "connect")
    def _path(dbapi_conn, _rec) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f'SET search_path TO "{schema}"')
        cur.close()
        dbapi_conn.commit()

    def drop() -> None:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return eng, drop


def sqlite_engine():
    folder = tempfile.TemporaryDirectory()
    eng = make_engine(f"sqlite:///{folder.name}/bench.db")
    return eng, lambda: (eng.dispose(), folder.cleanup())


def run(engine, on: bool, conversations: int, threads: int) -> tuple[float, list[float]]:
    migrate(engine)
    with session_scope(engine) as s:
        ids = [auth.create_admin(s, f"a{i}-{uuid.uuid4().hex[:6]}@b.test", "bench-password-1", f"Agent {i}",
                                 role=Role.AGENT).id for i in range(5)]
        store_settings.save_auto_assign(s, on)
    for i in ids:
        auto_assign.still_online(i, engine=engine)
    visitors = [uuid.uuid4().hex for _ in range(conversations)]
    shoppers = [chat.open_widget(v, engine=engine).shopper_id for v in visitors]
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)

    def work(part: int) -> None:
        mine = []
        start.wait()
        for k in range(part, conversations, threads):
            t0 = time.perf_counter()
            chat.shopper_send(visitors[k], shoppers[k], 0, uuid.uuid4().hex, "hello, is anyone there?",
                              engine=engine)
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=work, args=(p,)) for p in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    return conversations / (time.perf_counter() - t0), latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--conversations", type=int, default=400)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    print(f"{args.conversations} new conversations per run, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    for name, make, threads in (("PostgreSQL", lambda: pg_engine(args.pg), args.threads),
                                ("SQLite", sqlite_engine, args.threads)):
        for round_ in range(2):
            for on in (False, True):
                engine, drop = make()
                try:
                    rate, lat = run(engine, on, args.conversations, threads)
                finally:
                    drop()
                q = statistics.quantiles(lat, n=20)
                print(f"{name:<10} {threads} threads  auto-assign {'on ' if on else 'off'}  round {round_ + 1}: "
                      f"{rate:6.1f} conv/s  p50 {statistics.median(lat):6.1f} ms  p95 {q[18]:6.1f} ms")


if __name__ == "__main__":
    main()
