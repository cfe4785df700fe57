"""Conversation search and the inbox's filtered pages at 10,000 conversations
and 1,000,000 messages (issue 12's bar: "fast at 10,000 conversations and 1M
messages").

  .venv/bin/python bench/bench_search.py [--db data/bench-search/search.db] [--runs 30]
      [--pg postgresql://postgres@127.0.0.1:5432/test] [--regenerate]

1. The database (cached at --db while its sidecar <db>.meta.json matches; on
   PostgreSQL a schema of its own, rebuilt each run): the production schema
   (make_engine + migrate, so the FTS5 tables and triggers, or the GIN indexes,
   are the real ones), 10,000 shoppers (about 40% identified: name, email,
   customer id), 10,000 conversations (70% open, 30% resolved; of the open ones
   about 40% unassigned, the rest spread over 5 agents) holding 1,000,000
   messages (100 on average, 20-180), written through the triggers as the app
   writes them. Bodies are shopper and agent lines with product words and order
   numbers; a few rare words are planted in 3 conversations.

3. --write-cost: what the index costs the chat's hottest write on SQLite: 2,000
   `chat.shopper_send` calls (200 shoppers, limits lifted) on a fresh database
   with the message_fts triggers and on one without them, twice each, alternating.

2. In process, --runs times each, after one warm-up: `search.search(q)` (what
   the inbox's search box calls) for a rare word, a common word, two words, a
   prefix, a name, an email, a customer id and a word that matches nothing; and
   `workspace.inbox_page(filter, agent, limit)` for each filter at the first
   page (50) and after two "Show more" (150), which also reads every count.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CHATDASH_SECRET_KEY", "bench-secret")

from sqlalchemy import event, insert, text  # noqa: E402

from chatdash.db import make_engine, migrate  # noqa: E402
from chatdash.models import AdminUser, Conversation, Message, Shopper  # noqa: E402
from chatdash.services import search, workspace  # noqa: E402

CONVERSATIONS = 10_000
MESSAGES = 1_000_000
AGENTS = 5
GEN_VERSION = 1
DEFAULT_DB = ROOT / "data" / "bench-search" / "search.db"

FIRST = ["Ada", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Alan", "Radia",
         "Edsger", "Hedy", "John", "Katherine", "Tim", "Annie", "Donald", "Sophie", "Guido", "Lynn"]
LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Allen", "Turing",
        "Perlman", "Dijkstra", "Lamarr", "Backus", "Johnson", "Berners", "Easley", "Knuth", "Wilson", "Rossum"]
LINES = [
    "Hi, is this still in stock?", "Do you ship to Canada?", "What size should I take? I'm usually a M.",
    "Can I return it if it doesn't fit?", "When will my order arrive?", "Is there a discount code?",
    "Does it come in blue?", "How long does the battery last?", "Is this waterproof?", "Thanks!",
    "I ordered last week and haven't received a tracking number yet.", "Can I change the delivery address?",
    "Hi! Yes, it ships tomorrow.", "Let me check that for you.", "It comes in three colours.",
    "Returns are free for 30 days.", "We have 4 left in stock.", "Your order left our warehouse today.",
]
PRODUCTS = ["kettle", "jacket", "running shoes", "yoga mat", "coffee beans", "backpack", "headlamp",
            "water bottle", "tent", "sleeping bag", "socks", "gloves", "thermos", "trail poles"]
RARE = ["zanzibar", "quokka", "xylophone"]  # each planted in one conversation


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def build(engine, rng: random.Random) -> None:
    migrate(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(AdminUser), [
            {"email": f"agent{i}@store.test", "name": f"Agent {i}", "password_hash": "", "role": "agent",
             "created_at": now} for i in range(AGENTS)])
        agent_ids = [r[0] for r in conn.execute(text("SELECT id FROM adminuser ORDER BY id"))]
        shoppers = []
        for i in range(CONVERSATIONS):
            known = rng.random() < 0.4
            first, last = rng.choice(FIRST), rng.choice(LAST)
            shoppers.append({
                "visitor_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "customer_id": f"CUST-{100000 + i}" if known else None,
                "name": f"{first} {last}" if known else None,
                "email": f"{first}.{last}{i}@mail.test".lower() if known else None,
                "created_at": now, "last_seen_at": now,
            })
        conn.execute(insert(Shopper), shoppers)
        shopper_ids = [r[0] for r in conn.execute(text("SELECT id FROM shopper ORDER BY id"))]
        convs = []
        for i, sid in enumerate(shopper_ids):
            resolved = rng.random() < 0.3
            assignee = None if rng.random() < 0.4 else rng.choice(agent_ids)
            at = now - timedelta(minutes=CONVERSATIONS - i)
            convs.append({"token": uuid.UUID(int=rng.getrandbits(128)).hex, "shopper_id": sid,
                          "status": "resolved" if resolved else "open", "assignee_id": assignee,
                          "created_at": at, "last_message_at": at, "last_message_preview": "…"})
        conn.execute(insert(Conversation), convs)
        conv_ids = [r[0] for r in conn.execute(text("SELECT id FROM conversation ORDER BY id"))]
    # Messages in batches, interleaved over conversations as a live store writes them.
    per_conv = [rng.randint(20, 180) for _ in conv_ids]
    scale = MESSAGES / sum(per_conv)
    per_conv = [max(1, round(n * scale)) for n in per_conv]
    per_conv[-1] += MESSAGES - sum(per_conv)
    queue = [cid for cid, n in zip(conv_ids, per_conv, strict=True) for _ in range(n)]
    rng.shuffle(queue)
    planted = {conv_ids[rng.randrange(len(conv_ids))]: word for word in RARE}
    batch, written = [], 0
    for n, cid in enumerate(queue):
        body = f"{rng.choice(LINES)} The {rng.choice(PRODUCTS)}, order #{rng.randint(10000, 99999)}."
        if cid in planted and rng.random() < 0.05:
            body += f" Something about a {planted.pop(cid)}."
        batch.append({"conversation_id": cid, "sender": "shopper" if n % 2 else "admin", "kind": "text",
                      "body": body, "client_msg_id": f"b{n:09d}", "created_at": now})
        if len(batch) == 50_000:
            with engine.begin() as conn:
                conn.execute(insert(Message), batch)
            written += len(batch)
            batch = []
            print(f"  messages: {written:,}", flush=True)
    if batch:
        with engine.begin() as conn:
            conn.execute(insert(Message), batch)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def timed(fn, runs: int) -> tuple[float, float, object]:
    fn()  # warm-up
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return percentile(times, 50) * 1000, percentile(times, 95) * 1000, result


def measure(engine, runs: int) -> None:
    with engine.connect() as conn:
        name, email, customer = conn.execute(text(
            "SELECT name, email, customer_id FROM shopper WHERE name IS NOT NULL ORDER BY id LIMIT 1")).one()
        counts = conn.execute(text("SELECT count(*) FROM message")).scalar(), conn.execute(
            text("SELECT count(*) FROM conversation")).scalar()
    print(f"\n{engine.dialect.name}: {counts[1]:,} conversations, {counts[0]:,} messages; "
          f"load average {os.getloadavg()[0]:.1f}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    queries = [("rare word", RARE[0]), ("common word", "stock"), ("two words", "kettle canada"),
               ("prefix", "therm"), ("name", name), ("email", email), ("customer id", customer),
               ("no match", "qwertyuiop")]
    print(f"{'search':<14} {'query':<34} {'hits':>5} {'p50 ms':>8} {'p95 ms':>8}")
    for label, q in queries:
        p50, p95, rows = timed(lambda q=q: search.search(q, engine=engine), runs)
        print(f"{label:<14} {q[:34]:<34} {len(rows):>5} {p50:>8.1f} {p95:>8.1f}")
    print(f"\n{'inbox page':<14} {'limit':>6} {'rows':>5} {'p50 ms':>8} {'p95 ms':>8}")
    with engine.connect() as conn:
        agent = conn.execute(text("SELECT min(id) FROM adminuser")).scalar()
    for name_ in workspace.INBOX_FILTERS:
        for limit in (50, 150):
            p50, p95, page = timed(lambda n=name_, lim=limit: workspace.inbox_page(n, agent, lim, engine=engine),
                                   runs)
            print(f"{name_:<14} {limit:>6} {len(page.rows):>5} {p50:>8.1f} {p95:>8.1f}")


def write_cost() -> None:
    import tempfile

    from chatdash.services import chat

    unlimited = type("Unlimited", (), {"hit": staticmethod(lambda _key: True)})()
    chat._send_limiter = chat._start_limiter = lambda: unlimited

    def run(indexed: bool) -> list[float]:
        engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/write.db")
        migrate(engine)
        if not indexed:
            with engine.begin() as conn:
                for trigger in ("message_fts_ai", "message_fts_ad", "message_fts_au"):
                    conn.execute(text(f"DROP TRIGGER {trigger}"))
        shoppers = []
        for _ in range(200):
            visitor = uuid.uuid4().hex
            shoppers.append((visitor, chat.open_widget(visitor, engine=engine).shopper_id))
        times = []
        for i in range(2000):
            visitor, shopper_id = shoppers[i % len(shoppers)]
            t = time.perf_counter()
            chat.shopper_send(visitor, shopper_id, 0, uuid.uuid4().hex,
                              f"Is the blue kettle number {i} back in stock soon?", engine=engine)
            times.append(time.perf_counter() - t)
        engine.dispose()
        return times

    print(f"\nshopper_send on SQLite, load average {os.getloadavg()[0]:.1f}")
    for label, indexed in (("with the FTS trigger", True), ("without", False)) * 2:
        times = run(indexed)
        print(f"{label:<22} p50 {percentile(times, 50) * 1000:.2f} ms  p95 {percentile(times, 95) * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB)
    parser.add_argument("--pg", default="", help="also measure on this PostgreSQL server (a schema of its own)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--pg-schema", default="", help="reuse this schema (built and kept by --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL schema for another run")
    parser.add_argument("--write-cost", action="store_true", help="only: the FTS trigger's cost per message")
    args = parser.parse_args()
    if args.write_cost:
        write_cost()
        return

    if not args.no_sqlite:
        meta = args.db.with_suffix(".meta.json")
        want = {"version": GEN_VERSION, "conversations": CONVERSATIONS, "messages": MESSAGES}
        fresh = args.regenerate or not args.db.exists() or not meta.exists() or json.loads(meta.read_text()) != want
        if fresh:
            args.db.parent.mkdir(parents=True, exist_ok=True)
            args.db.unlink(missing_ok=True)
            t = time.perf_counter()
            build(make_engine(f"sqlite:///{args.db}"), random.Random(12))
            meta.write_text(json.dumps(want))
            print(f"built {args.db} in {time.perf_counter() - t:.0f} s")
        engine = make_engine(f"sqlite:///{args.db}")
        measure(engine, args.runs)
        engine.dispose()
    if args.pg:
        schema = args.pg_schema or f"bench_search_{uuid.uuid4().hex[:8]}"
        admin = make_engine(args.pg)
        if not args.pg_schema:
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = make_engine(args.pg)

        @event.listens_for(engine, "connect")
        def _path(dbapi_conn, _rec) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f'SET search_path TO "{schema}"')
            cur.close()
            dbapi_conn.commit()

        try:
            if not args.pg_schema:
                t = time.perf_counter()
                build(engine, random.Random(12))
                print(f"built PostgreSQL schema {schema} in {time.perf_counter() - t:.0f} s")
            measure(engine, args.runs)
        finally:
            engine.dispose()
            if not args.keep:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
