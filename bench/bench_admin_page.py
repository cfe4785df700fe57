"""The admin Conversations page on a big store (issue 8's bar: page load and
selecting a conversation <= 300 ms p95 with 10,000 conversations and 2M tracking
events in the database), measured against the real app in production mode.

  .venv/bin/python bench/bench_admin_page.py [--db data/bench-admin/admin.db] [--runs 50]
      [--regenerate] [--no-app] [--no-in-process] [--profile] [--what-if]
      [--py-spy OUT] [--try-indexes [N ...]] [--apply SQL ...] [--small]

1. The database (cached at --db, reused while its sidecar <db>.meta.json matches the
   requested sizes; about 3 minutes to build, 0.8 GB): the production schema (make_engine
   + migrate), the demo store of `generate_demo_data` grown to 10,000 shoppers (1,200
   products, 30,000 orders, their visits, events and carts), topped up to 2,000,000
   StoreEvent rows with extra visits (page views, product views, cart changes shaped as
   the tracking API stores them): 200 heavy shoppers get 1,500-8,000 events each and a
   long current visit, the rest follow a heavy-tailed spread. Events and visits are then
   renumbered in arrival order, so one shopper's rows are spread over the table as a live
   store writes them. Every shopper has one open conversation holding 1-10 messages (some
   product cards); about 30% end with 1-3 shopper messages no admin has seen (restored
   before and after each run: selecting marks a conversation seen). The recommender is
   trained on it once (<db>.models/), as the app does on first start. Bulk Core inserts
   in one transaction, synchronous=OFF during the load.

2. `reflex run --env prod` on a free port (as tests/live_app.py starts it, with its own
   build folder .web-bench-admin and no retraining), DATABASE_URL pointing at the cached
   database. An admin session is created directly in the database (auth.start_session)
   and handed over as the session cookie on hydrate, as tests/test_handler_security.py
   does. Raw socket clients (tests/reflex_client.py) then measure, --runs times each:

   - page load: a new socket (new tab), `hydrate_and_load` on /admin/conversations with
     the cookie; the page's on_load runs check_login, NotificationState.refresh and
     InboxState.load, then flips is_hydrated. Timed from the emit to the delta carrying
     the 200 inbox rows, and to is_hydrated (the page is usable). Reflex 0.10 sends no
     "final" flag any more (StateUpdate.final is deprecated), so the end is recognised
     by content.
   - select: `InboxState.select(conversation_id)` on one loaded page, timed from the emit
     to the delta carrying ChatState.conversation_id == that id (one delta holds the chat's
     messages and the shopper panel: the handler's changes are sent together; the script
     checks both are in it). Two series: conversations drawn at random from all 10,000,
     and conversations of the 200 heavy shoppers.

   The server's CPU (its process tree, psutil) per operation is printed with each series,
   and its CPU while idle (the presence sweeper). --py-spy samples the server during the
   select series and summarises where its time went.

3. In process, on the same database: the service calls behind each screen
   (chat.inbox, chat.open_for_admin, shopper_context and its parts), wall and CPU time,
   and every SELECT they ran replayed on a raw sqlite3 connection with its rows fetched
   (SQLite's execute returns at the first row), with the query plans of the costliest.
   --profile adds cProfile of shopper_context for heavy shoppers. --what-if times
   rewrites of the heaviest reads next to the code as is, checking the results are
   equal. --try-indexes times candidate indexes and connection pragmas, each on a copy of
   the database; --apply runs everything (the app too) on a copy with statements applied.

Nothing in chatdash/ is changed. The machine has 2 shared cores: figures are noisy,
the load average is printed with them.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import fcntl
import hashlib
import io
import json
import math
import os
import platform
import pstats
import random
import re
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402

console = Console(width=int(os.environ.get("COLUMNS", "160")))

DEFAULT_DB = ROOT / "data" / "bench-admin" / "admin.db"
WEB_DIR = ROOT / ".web-bench-admin"
STORE_URL = "http://localhost:3000/store"
SUFFIX = "_rx_state_"  # production builds suffix var names in deltas
GOAL_MS = 300.0

SHOPPERS = 10_000
PRODUCTS = 1_200
ORDERS = 30_000
TARGET_EVENTS = 2_000_000
HEAVY_SHOPPERS = 200
HEAVY_MIN, HEAVY_MAX = 1_500, 8_000
UNREAD_SHARE = 0.3
BATCH = 50_000
GEN_VERSION = 2  # bump when the generated shape changes: the cache is rebuilt

SHOPPER_LINES = [
    "Hi, is this still in stock?", "Do you ship to Canada?", "What size should I take? I'm usually a M.",
    "Can I return it if it doesn't fit?", "When will my order arrive?", "Is there a discount code for new customers?",
    "Does it come in blue?", "How long does the battery last?", "Is this waterproof?", "Thanks!",
    "I ordered last week and haven't received a tracking number yet.", "Can I change the delivery address?",
    "Which one would you recommend for trail running?", "Do you have this in a kids size?",
    "Is the price the same in store?", "ok great, thank you so much",
]
ADMIN_LINES = [
    "Hi! Yes, it ships tomorrow.", "Let me check that for you.", "It comes in three colours.",
    "Returns are free for 30 days.", "We have 4 left in stock.", "Your order left our warehouse today.",
    "I'd go one size up for that model.", "Yes, we ship to Canada (3-5 working days).",
    "Here is the one I'd recommend:", "You're welcome, have a great day!",
]


# ----------------------------------------------------------------------------- helpers

def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def stats_ms(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 50) * 1000, "p95": percentile(values, 95) * 1000,
            "p99": percentile(values, 99) * 1000, "max": max(values) * 1000, "mean": statistics.fmean(values) * 1000}


def fmt_row(name: str, values: list[float], extra: str = "") -> str:
    s = stats_ms(values)
    return (f"  {name:<34} n={s['n']:<3} p50 {s['p50']:7.1f}  p95 {s['p95']:7.1f}  p99 {s['p99']:7.1f}  "
            f"max {s['max']:7.1f} ms{extra}")


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


def sqlite_files(path: Path) -> list[Path]:
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


def meta_path(db: Path) -> Path:
    return db.with_name(db.name + ".meta.json")


def models_path(db: Path) -> Path:
    return db.with_name(db.name + ".models")


def wanted_shape(seed: int) -> dict[str, int]:
    return {"version": GEN_VERSION, "seed": seed, "shoppers": SHOPPERS, "products": PRODUCTS, "orders": ORDERS,
            "target_events": TARGET_EVENTS, "heavy_shoppers": HEAVY_SHOPPERS}


# ----------------------------------------------------------------------------- generation

def generate(db: Path, seed: int) -> dict[str, Any]:
    """Build the database at db (through a temporary file renamed at the end) and
    return its meta data."""
    from sqlalchemy import event, func, insert, select, text
    from sqlmodel import Session

    from chatdash.db import make_engine, migrate
    from chatdash.models import AdminUser, Conversation, Message, Product, Shopper, StoreEvent, Visit
    from chatdash.services import auth
    from chatdash.services.demo_data import USER_AGENTS, generate_demo_data
    from tests.live_app import ADMIN_EMAIL, ADMIN_PASSWORD

    db.parent.mkdir(parents=True, exist_ok=True)
    partial = db.with_name(db.name + ".partial")
    for f in [*sqlite_files(partial), *sqlite_files(db), meta_path(db)]:
        f.unlink(missing_ok=True)
    shutil.rmtree(models_path(db), ignore_errors=True)

    engine = make_engine(f"sqlite:///{partial}")

    @event.listens_for(engine, "connect")
    def _bulk_pragmas(dbapi_conn, _record) -> None:  # after make_engine's WAL/NORMAL
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        cur.execute("PRAGMA cache_size=-524288")  # 512 MB
        cur.close()

    started = time.perf_counter()
    migrate(engine)
    with Session(engine) as s:
        admin = auth.create_admin(s, ADMIN_EMAIL, ADMIN_PASSWORD, name="Bench Admin")
        s.commit()
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    timings: dict[str, float] = {}

    with progress_bar() as progress:
        tasks: dict[str, Any] = {}

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(f"demo {step}", total=total)
            progress.update(tasks[step], completed=done, total=total)

        t = time.perf_counter()
        demo = generate_demo_data(engine, store_url=STORE_URL, seed=seed, products=PRODUCTS, shoppers=SHOPPERS,
                                  orders=ORDERS, progress=report)
        timings["demo store (generate_demo_data)"] = time.perf_counter() - t

        t = time.perf_counter()
        with engine.begin() as conn:
            pc = Product.__table__.c
            products = conn.execute(select(pc.id, pc.sku, pc.name, pc.url, pc.price_cents, pc.category)
                                    .order_by(pc.id)).all()
            next_visit = conn.execute(select(func.max(Visit.__table__.c.id))).scalar() + 1
            next_event = conn.execute(select(func.max(StoreEvent.__table__.c.id))).scalar() + 1
            extra = TARGET_EVENTS - demo.events
            gen = _TopUp(rng, now, products, USER_AGENTS, next_visit, next_event)
            heavy = sorted(rng.sample(range(1, SHOPPERS + 1), HEAVY_SHOPPERS))
            plan = gen.plan(heavy, extra)
            heavy_set = set(heavy)
            task = progress.add_task("extra events", total=extra)
            visits, events = [], []
            for sid, count in plan:
                gen.shopper(sid, count, sid in heavy_set, visits, events)
                if len(events) >= BATCH:
                    conn.execute(insert(Visit.__table__), visits)
                    conn.execute(insert(StoreEvent.__table__), events)
                    progress.advance(task, len(events))
                    visits, events = [], []
            if events or visits:
                conn.execute(insert(Visit.__table__), visits)
                conn.execute(insert(StoreEvent.__table__), events)
                progress.advance(task, len(events))
            conn.execute(text("UPDATE shopper SET last_seen_at = (SELECT MAX(v.last_seen_at) FROM visit v "
                              "WHERE v.shopper_id = shopper.id) WHERE EXISTS (SELECT 1 FROM visit v "
                              "WHERE v.shopper_id = shopper.id)"))
        timings["extra visits and events"] = time.perf_counter() - t

        t = time.perf_counter()
        task = progress.add_task("conversations", total=SHOPPERS)
        admin_seen: dict[int, int] = {}
        with engine.begin() as conn:
            convs, msgs = [], []
            msg_id = 1
            for sid in range(1, SHOPPERS + 1):
                conv, rows, msg_id = _conversation(rng, now, sid, msg_id, admin.id, products)
                admin_seen[conv["id"]] = conv["admin_seen_message_id"]
                convs.append(conv)
                msgs.extend(rows)
                if len(convs) >= 5_000:
                    conn.execute(insert(Conversation.__table__), convs)
                    conn.execute(insert(Message.__table__), msgs)
                    progress.advance(task, len(convs))
                    convs, msgs = [], []
            if convs:
                conn.execute(insert(Conversation.__table__), convs)
                conn.execute(insert(Message.__table__), msgs)
                progress.advance(task, len(convs))
        timings["conversations and messages"] = time.perf_counter() - t

    t = time.perf_counter()
    with console.status("storing events and visits in arrival order ..."):
        _arrival_order(engine)
    timings["events and visits in arrival order"] = time.perf_counter() - t

    t = time.perf_counter()
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        counts = {table.__tablename__: conn.execute(select(func.count()).select_from(table.__table__)).scalar()
                  for table in (Product, Shopper, Visit, StoreEvent, Conversation, Message, AdminUser)}
        counts["orders"] = conn.execute(text("SELECT COUNT(*) FROM orders")).scalar()
        per_heavy = dict(conn.execute(
            select(StoreEvent.__table__.c.shopper_id, func.count())
            .where(StoreEvent.__table__.c.shopper_id.in_(heavy))
            .group_by(StoreEvent.__table__.c.shopper_id)).all())
    engine.dispose()
    timings["checkpoint and counts"] = time.perf_counter() - t
    for f in sqlite_files(partial)[1:]:
        f.unlink(missing_ok=True)
    partial.rename(db)
    generation = time.perf_counter() - started

    console.print(f"[green]Generated[/] {db} in [bold]{generation:.1f} s[/] "
                  f"({db.stat().st_size / 2**20:,.0f} MB):")
    for step, secs in timings.items():
        console.print(f"  {step:<34} {secs:6.1f} s")
    console.print("  rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))

    model_dir = models_path(db)
    t = time.perf_counter()
    info = _train(db, model_dir)
    training = time.perf_counter() - t
    console.print(f"[green]Recommender trained[/] in {training:.1f} s ({info.interactions:,} interactions)")

    heavy_events = sorted(per_heavy.values())
    meta = {
        **wanted_shape(seed),
        "generated_at": now.isoformat(),
        "generation_seconds": round(generation, 1),
        "generation_steps": {k: round(v, 1) for k, v in timings.items()},
        "training_seconds": round(training, 1),
        "counts": counts,
        "db_bytes": db.stat().st_size,
        "heavy_shopper_ids": heavy,
        "heavy_events": {"min": heavy_events[0], "median": heavy_events[len(heavy_events) // 2],
                         "max": heavy_events[-1]},
        # Conversation id -> admin_seen_message_id as generated: each run starts from it
        # (selecting a conversation marks it seen).
        "admin_seen": admin_seen,
    }
    meta_path(db).write_text(json.dumps(meta))
    return meta


EVENT_COLUMNS = ("event_id, shopper_id, visit_id, kind, url, title, referrer, product_id, payload, occurred_at, "
                 "received_at")
VISIT_COLUMNS = ("shopper_id, user_agent, device, browser, os, started_at, last_seen_at, current_url, current_title, "
                 "left_at")


def _arrival_order(engine) -> None:
    """Renumber events (by received_at) and visits (by started_at) as a live store
    writes them: one shopper's rows spread over the whole table, not side by side as
    the generators wrote them shopper by shopper. Indexes are dropped and rebuilt
    with their own definitions (sqlite_master), so the schema stays the migrations'."""
    with engine.begin() as conn:
        sql = conn.exec_driver_sql
        indexes = sql("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                      "AND tbl_name IN ('storeevent', 'visit')").all()
        for name, _ in indexes:
            sql(f'DROP INDEX "{name}"')
        sql(f"CREATE TEMP TABLE ev_sorted AS SELECT {EVENT_COLUMNS} FROM storeevent ORDER BY received_at, id")
        sql("CREATE TEMP TABLE visit_map (old INTEGER PRIMARY KEY, new INTEGER NOT NULL)")
        sql("INSERT INTO visit_map (old, new) SELECT id, ROW_NUMBER() OVER (ORDER BY started_at, id) FROM visit")
        sql(f"CREATE TEMP TABLE visit_sorted AS SELECT m.new AS id, {VISIT_COLUMNS} FROM visit "
            "JOIN visit_map m ON m.old = visit.id ORDER BY m.new")
        sql("DELETE FROM storeevent")
        sql("DELETE FROM visit")
        sql(f"INSERT INTO visit (id, {VISIT_COLUMNS}) SELECT id, {VISIT_COLUMNS} FROM visit_sorted ORDER BY id")
        mapped = EVENT_COLUMNS.replace("visit_id", "m.new")
        sql(f"INSERT INTO storeevent (id, {EVENT_COLUMNS}) SELECT e.rowid, {mapped} FROM ev_sorted e "
            "LEFT JOIN visit_map m ON m.old = e.visit_id ORDER BY e.rowid")
        for name in ("ev_sorted", "visit_map", "visit_sorted"):
            sql(f"DROP TABLE temp.{name}")
        for _, ddl in indexes:
            sql(ddl)


def _train(db: Path, model_dir: Path):
    from chatdash.db import make_engine
    from chatdash.services import recommender

    engine = make_engine(f"sqlite:///{db}")
    try:
        with progress_bar() as progress:
            tasks: dict[str, Any] = {}

            def report(step: str, done: int, total: int) -> None:
                if step not in tasks:
                    tasks[step] = progress.add_task(f"train {step}", total=total)
                progress.update(tasks[step], completed=done, total=total)

            return recommender.train(engine, model_dir, progress=report)
    finally:
        engine.dispose()


class _TopUp:
    """Extra visits and events shaped as the tracking API stores them."""

    PAGES = [("", "Home"), ("/cart", "Your cart"), ("/account", "Your account"), ("/account/orders", "Your orders"),
             ("/blog/how-to-choose-running-shoes", "How to choose running shoes"), ("/shipping", "Shipping"),
             ("/returns", "Returns"), ("/sale", "Sale")]
    REFERRERS = ["https://www.google.com/", "https://www.bing.com/", "https://www.instagram.com/",
                 "https://duckduckgo.com/", "", "", "https://newsletter.example.com/"]

    def __init__(self, rng: random.Random, now: datetime, products, user_agents, next_visit: int,
                 next_event: int) -> None:
        self.rng = rng
        self.now = now
        self.products = products
        self.user_agents = user_agents
        self.ua_weights = [u[4] for u in user_agents]
        self.next_visit = next_visit
        self.next_event = next_event
        self.by_cat: dict[str, list[Any]] = defaultdict(list)
        for p in products:
            self.by_cat[p.category].append(p)
        self.categories = sorted(self.by_cat)
        self.view_payload = {p.id: json.dumps({"sku": p.sku, "price": p.price_cents / 100, "currency": "USD"},
                                              separators=(",", ":")) for p in products}

    def plan(self, heavy: list[int], extra: int) -> list[tuple[int, int]]:
        """(shopper id, extra events) for every shopper, summing to `extra`."""
        import numpy as np

        rng = self.rng
        heavy_counts = {sid: int(math.exp(rng.uniform(math.log(HEAVY_MIN), math.log(HEAVY_MAX)))) for sid in heavy}
        budget = sum(heavy_counts.values())
        if budget > extra * 0.7:  # keep most of the volume with ordinary shoppers
            scale = extra * 0.7 / budget
            heavy_counts = {sid: max(HEAVY_MIN // 2, int(c * scale)) for sid, c in heavy_counts.items()}
        rest = extra - sum(heavy_counts.values())
        others = [sid for sid in range(1, SHOPPERS + 1) if sid not in heavy_counts]
        np_rng = np.random.default_rng(rng.getrandbits(32))
        weights = np.minimum(np_rng.pareto(1.5, len(others)) + 0.3, 40.0)
        alloc = np_rng.multinomial(rest, weights / weights.sum())
        plan = [(sid, heavy_counts.get(sid, 0)) for sid in range(1, SHOPPERS + 1)]
        extra_of = dict(zip(others, alloc.tolist(), strict=True))
        return [(sid, c or extra_of.get(sid, 0)) for sid, c in plan]

    def shopper(self, sid: int, count: int, heavy: bool, visits: list, events: list) -> None:
        if count <= 0:
            return
        rng = self.rng
        taste = rng.sample(self.categories, rng.choice((1, 2, 2, 3)))
        ua = rng.choices(self.user_agents, self.ua_weights)[0]
        sizes: list[int] = []
        current = 0
        if heavy:  # a long visit going on now: the shopper panel's worst case
            current = min(count // 3, rng.randint(300, 900))
            count -= current
        elif rng.random() < 0.05:  # on the site when the store was generated
            current = min(count, 3 + int(rng.expovariate(1 / 15)))
            count -= current
        while count > 0:
            n = min(count, 3 + int(rng.expovariate(1 / 22)), 250)
            sizes.append(n)
            count -= n
        span = 330 * 86400
        starts = sorted(self.now - timedelta(seconds=rng.randrange(3 * 3600, span)) for _ in sizes)
        for start, n in zip(starts, sizes, strict=True):
            self._visit(sid, start, n, taste, ua, visits, events, live=False)
        if current:
            # Dwell ~10 s a page so the visit ends about now.
            start = self.now - timedelta(seconds=current * 10 + rng.randrange(5, 40))
            self._visit(sid, start, current, taste, ua, visits, events, live=True)

    def _visit(self, sid: int, start: datetime, n: int, taste: list[str], ua, visits: list, events: list,
               live: bool) -> None:
        rng = self.rng
        vid = self.next_visit
        self.next_visit += 1
        t = start
        referrer = rng.choice(self.REFERRERS)
        store = STORE_URL
        cart: dict[int, list] = {}
        url = title = ""
        for i in range(n):
            if i:
                t += timedelta(seconds=(3 + int(rng.expovariate(1 / 7))) if live else 4 + int(rng.expovariate(1 / 40)))
            r = rng.random()
            cat = rng.choice(taste) if rng.random() < 0.85 else rng.choice(self.categories)
            kind, product_id, payload = "page_view", None, "{}"
            if i == 0 and r < 0.6:
                path, name = rng.choice([*self.PAGES[:1], (f"/category/{cat.lower().replace(' & ', '-')}", cat)])
                url, title = f"{store}{path}", f"{name} | Demo Store"
            elif r < 0.62:
                p = self._product(cat)
                kind, product_id, payload = "product_view", p.id, self.view_payload[p.id]
                url, title = p.url, f"{p.name} | Demo Store"
            elif r < 0.80:
                url, title = f"{store}/category/{cat.lower().replace(' & ', '-')}", f"{cat} | Demo Store"
            elif r < 0.88:
                q = rng.choice(self._product(cat).name.split()[-2:]).lower()
                url, title = f"{store}/search?q={quote_plus(q)}", f"Search: {q} | Demo Store"
            elif r < 0.94:
                path, name = rng.choice(self.PAGES)
                url, title = f"{store}{path}", f"{name} | Demo Store"
            else:
                p = self._product(cat)
                line = cart.setdefault(p.id, [p, 0])
                line[1] += 1
                items = [{"sku": q.sku, "quantity": k, "price": q.price_cents / 100} for q, k in cart.values()]
                total = sum(q.price_cents * k for q, k in cart.values()) / 100
                kind, product_id = "cart", None
                payload = json.dumps({"action": "add", "sku": p.sku, "items": items, "total": total,
                                      "currency": "USD"}, separators=(",", ":"))
                url, title = p.url, f"{p.name} | Demo Store"
            eid = self.next_event
            self.next_event += 1
            events.append({
                "id": eid, "event_id": f"bench-{eid}", "shopper_id": sid, "visit_id": vid, "kind": kind,
                "url": url, "title": title, "referrer": referrer, "product_id": product_id, "payload": payload,
                "occurred_at": t, "received_at": t + timedelta(milliseconds=rng.randrange(30, 900)),
            })
            referrer = url
        visits.append({
            "id": vid, "shopper_id": sid, "user_agent": ua[0], "device": ua[1], "browser": ua[2], "os": ua[3],
            "started_at": start, "last_seen_at": t, "current_url": url, "current_title": title,
            "left_at": None if live else t + timedelta(seconds=5 + rng.randrange(60)),
        })

    def _product(self, cat: str):
        items = self.by_cat[cat]
        # Long tail: the first products of a category are viewed far more often.
        return items[int(len(items) * self.rng.random() ** 2.5)]


def _conversation(rng: random.Random, now: datetime, sid: int, msg_id: int, admin_id: int, products):
    """One open conversation of shopper sid with its messages."""
    n = rng.choices(range(1, 11), (6, 18, 20, 16, 12, 9, 7, 5, 4, 3))[0]
    last_at = now - timedelta(seconds=int(rng.expovariate(1 / (5 * 86400))) + rng.randrange(1, 600))
    created = last_at - timedelta(seconds=rng.randrange(30, 3600) * n)
    unread = rng.random() < UNREAD_SHARE
    n_unread = min(n, rng.choice((1, 1, 2, 3))) if unread else 0
    senders = ["shopper"]
    for i in range(1, n):
        if i >= n - n_unread:
            senders.append("shopper")
        else:
            senders.append("admin" if senders[-1] == "shopper" or rng.random() < 0.3 else "shopper")
    if not unread and senders[-1] == "shopper" and rng.random() < 0.5 and n > 1:
        senders[-1] = "admin"
    step = (last_at - created) / max(1, n - 1)
    rows = []
    admin_seen = shopper_seen = last_shopper = 0
    preview = ""
    for i, sender in enumerate(senders):
        mid = msg_id
        msg_id += 1
        at = created + step * i
        kind, product_id = "text", None
        if sender == "shopper":
            body = rng.choice(SHOPPER_LINES)
            last_shopper = mid
            if i < n - n_unread:
                admin_seen = mid
        else:
            if rng.random() < 0.15:
                p = rng.choice(products)
                kind, product_id, body = "product", p.id, p.name
            else:
                body = rng.choice(ADMIN_LINES)
            admin_seen = shopper_seen = mid
        rows.append({"id": mid, "conversation_id": sid, "sender": sender, "kind": kind, "body": body,
                     "product_id": product_id, "admin_id": admin_id if sender == "admin" else None,
                     "client_msg_id": f"bench{mid:010d}", "created_at": at})
        preview = f"Product: {body}" if kind == "product" else body
    conv = {"id": sid, "token": secrets.token_urlsafe(32), "shopper_id": sid, "status": "open",
            "created_at": created, "last_message_at": last_at, "last_message_preview": preview[:120],
            "admin_seen_message_id": admin_seen, "shopper_seen_message_id": shopper_seen,
            "last_shopper_message_id": last_shopper}
    return conv, rows, msg_id


def ensure_database(db: Path, seed: int, regenerate: bool) -> dict[str, Any]:
    meta_file = meta_path(db)
    if not regenerate and db.exists() and meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if all(meta.get(k) == v for k, v in wanted_shape(seed).items()) and models_path(db).exists():
            console.print(f"Reusing {db} (generated {meta['generated_at']} in {meta['generation_seconds']} s; "
                          f"--regenerate to rebuild)")
            return meta
        console.print("The cached database has another shape: regenerating.")
    return generate(db, seed)


def reset_unread(db: Path, meta: dict[str, Any]) -> None:
    """Back to the generated unread state (the previous run's selects marked conversations seen)."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        with conn:
            conn.executemany("UPDATE conversation SET admin_seen_message_id = ? WHERE id = ?",
                             [(v, int(k)) for k, v in meta["admin_seen"].items()])
            conn.execute("DELETE FROM adminsession")
    finally:
        conn.close()


def db_summary(db: Path, meta: dict[str, Any]) -> str:
    c = meta["counts"]
    size = sum(f.stat().st_size for f in sqlite_files(db) if f.exists())
    he = meta["heavy_events"]
    return (f"{size / 2**30:.2f} GB SQLite (WAL); {c['product']:,} products, {c['shopper']:,} shoppers, "
            f"{c['visit']:,} visits, {c['storeevent']:,} events, {c['orders']:,} orders, "
            f"{c['conversation']:,} open conversations, {c['message']:,} messages; "
            f"{meta['heavy_shoppers']} heavy shoppers with {he['min']:,}-{he['max']:,} events "
            f"(median {he['median']:,})")


# ----------------------------------------------------------------------------- the app

def start_app(db: Path, workdir: Path):
    """`reflex run --env prod` on one free port (as tests/live_app.py does), with its
    own build folder and the cached database."""
    import httpx

    from tests.live_app import ADMIN_EMAIL, ADMIN_PASSWORD, LiveApp, free_port

    # One run at a time owns the build folder: a second build would delete the files
    # the first one serves.
    digest = hashlib.sha256(str(WEB_DIR).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"chatdash-bench-admin-{digest}.lock"
    lock = lock_path.open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another run is using {WEB_DIR} ({lock_path})") from None
    port = free_port()
    db_url = f"sqlite:///{db}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CHATDASH_ADMIN_EMAIL": ADMIN_EMAIL,
        "CHATDASH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CHATDASH_PUBLIC_URL": f"http://localhost:{port}",
        "CHATDASH_API_URL": f"http://localhost:{port}",
        "CHATDASH_FRONTEND_PORT": str(port),
        "CHATDASH_BACKEND_PORT": str(port),
        "CHATDASH_MODEL_DIR": str(models_path(db)),
        "CHATDASH_RETRAIN_HOURS": "0",  # trained at generation: no training during the run
        "REFLEX_WEB_WORKDIR": str(WEB_DIR),
        "REFLEX_STATES_WORKDIR": str(workdir / "states"),
        "DEMO_STORE_DATA_DIR": str(workdir / "demo_store"),
        "REFLEX_USE_NPM": "1",
        "REFLEX_TELEMETRY_ENABLED": "false",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    env.pop("REDIS_URL", None)  # one box: Reflex's in-memory state manager
    log_path = workdir / "reflex.log"
    console.print(f"Starting `reflex run --env prod` on port {port} (build folder {WEB_DIR.name}, log {log_path}); "
                  "a first build runs npm install and takes minutes ...")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reflex", "run", "--env", "prod", "--loglevel", "info"],
        cwd=ROOT, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    # localhost, as CHATDASH_PUBLIC_URL: the event socket refuses any other Origin.
    app = LiveApp(f"http://localhost:{port}", f"http://localhost:{port}", db_url, env, proc, log_path, lock)
    started = time.monotonic()
    while time.monotonic() < started + 900:
        if proc.poll() is not None:
            app.stop()
            raise SystemExit(f"reflex exited early:\n{log_path.read_text()[-4000:]}")
        try:
            if (httpx.get(f"{app.backend}/api/health", timeout=2).status_code == 200
                    and httpx.get(f"{app.frontend}/login", timeout=5, follow_redirects=True).status_code == 200):
                console.print(f"App up after {time.monotonic() - started:.0f} s")
                return app
        except httpx.HTTPError:
            pass
        time.sleep(1)
    app.stop()
    raise SystemExit(f"app did not come up in time:\n{log_path.read_text()[-4000:]}")


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) of the server's process tree."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
    except psutil.Error:
        pass
    return total


def _timed_client_class():
    from tests.reflex_client import RawReflexClient

    class TimedClient(RawReflexClient):
        """tests/reflex_client.py's raw client, keeping each delta's arrival time."""

        def __init__(self, backend_url: str, cookies: dict[str, str] | None = None) -> None:
            self.timed: list[tuple[float, dict]] = []
            self.cond = threading.Condition()
            super().__init__(backend_url, cookies=cookies)

        def _on_event(self, update: dict) -> None:
            t = time.perf_counter()
            delta = update.get("delta")
            if delta:
                with self.cond:
                    self.timed.append((t, {s: {k.removesuffix(SUFFIX): v for k, v in vs.items()}
                                           for s, vs in delta.items()}))
                    self.cond.notify_all()

        def emit(self, name: str, payload: dict, path: str) -> float:
            t = time.perf_counter()
            self.sio.emit("event", {"name": name, "payload": payload,
                                    "router_data": {"pathname": path, "query": {}, "asPath": path}},
                          namespace="/_event")
            return t

        def wait_for(self, start: int, match, timeout: float = 30.0) -> tuple[float, dict, int] | None:
            """The first delta from index `start` on for which match(delta) is true."""
            deadline = time.monotonic() + timeout
            i = start
            with self.cond:
                while True:
                    while i < len(self.timed):
                        t, delta = self.timed[i]
                        i += 1
                        if match(delta):
                            return t, delta, i
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self.cond.wait(left)

    return TimedClient


class Names:
    def __init__(self) -> None:
        from reflex.state import State

        from chatdash.state.chat import ChatState
        from chatdash.state.inbox import InboxState
        from chatdash.state.shopper_panel import ShopperPanelState

        self.hydrate = f"{State.get_full_name()}.hydrate_and_load"
        # The HttpOnly session cookie, sent with the socket's handshake.
        self.cookie = "chatdash_admin"
        self.inbox = InboxState.get_full_name()
        self.chat = ChatState.get_full_name()
        self.panel = ShopperPanelState.get_full_name()
        self.select = f"{self.inbox}.select"


PAGE = "/admin/conversations"


def admin_token(db: Path) -> str:
    from sqlmodel import Session, select

    from chatdash.db import make_engine
    from chatdash.models import AdminUser
    from chatdash.services import auth
    from tests.live_app import ADMIN_EMAIL

    engine = make_engine(f"sqlite:///{db}")
    try:
        with Session(engine) as s:
            admin = s.exec(select(AdminUser).where(AdminUser.email == ADMIN_EMAIL)).one()
            token = auth.start_session(s, admin.id, hours=2)
            s.commit()
        return token
    finally:
        engine.dispose()


def page_load(client_cls, app, names: Names, token: str) -> dict[str, float]:
    """A new tab: connect, hydrate with the session cookie, wait for the rows and is_hydrated."""
    t0 = time.perf_counter()
    client = client_cls(app.backend, cookies={names.cookie: token})
    try:
        t_connected = time.perf_counter()
        t_emit = client.emit(names.hydrate, {"vars": {}}, PAGE)
        got = client.wait_for(0, lambda d: len(d.get(names.inbox, {}).get("rows") or []) > 0)
        if got is None:
            raise RuntimeError("the inbox rows never arrived (is the admin session valid?)")
        t_rows, delta, nxt = got
        rows = delta[names.inbox]["rows"]
        hydrated = client.wait_for(nxt - 1, lambda d: any(isinstance(v, dict) and v.get("is_hydrated") is True
                                                          for v in d.values()))
        if hydrated is None:
            raise RuntimeError("is_hydrated never flipped")
        return {"connect": t_connected - t0, "rows": t_rows - t_emit, "hydrated": hydrated[0] - t_emit,
                "n_rows": len(rows)}
    finally:
        client.close()


def select_series(client, names: Names, targets: list[tuple[int, int]], pause: float) -> tuple[list[float], list[int]]:
    """Select each (conversation, shopper) in turn; returns latencies and delta sizes."""
    latencies, sizes = [], []
    for conv_id, shopper_id in targets:
        if conv_id == getattr(client, "selected", None):
            continue  # already open: selecting it again changes nothing, so no delta would come
        start = len(client.timed)
        t_emit = client.emit(names.select, {"conversation_id": conv_id}, PAGE)
        got = client.wait_for(start, lambda d, c=conv_id: d.get(names.chat, {}).get("conversation_id") == c)
        if got is None:
            raise RuntimeError(f"select({conv_id}) never answered")
        t, delta, _ = got
        chat = delta[names.chat]
        panel = delta.get(names.panel, {})
        if "messages" not in chat or panel.get("shopper_id") != shopper_id:
            raise RuntimeError(f"select({conv_id}): the delta lacks the messages or the shopper panel: "
                               f"{sorted(chat)} / {sorted(panel)}")
        client.selected = conv_id
        latencies.append(t - t_emit)
        sizes.append(len(json.dumps(delta)))
        time.sleep(pause)  # let the MessagesSeen push of this select go by
    return latencies, sizes


def py_spy_binary() -> str:
    found = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if not found:
        raise SystemExit("--py-spy needs py-spy: pip install py-spy (or set PY_SPY to its binary)")
    return found


def start_py_spy(pid: int, out: Path) -> subprocess.Popen:
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([py_spy_binary(), "record", "--pid", str(pid), "--subprocesses", "--format", "raw",
                             "--rate", "200", "--nonblocking", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_py_spy(spy: subprocess.Popen, out: Path) -> list[str]:
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(60)
    except subprocess.TimeoutExpired:
        spy.kill()
    return summarize_py_spy(out) if out.exists() else [f"py-spy wrote nothing: {spy.stderr.read()[-500:]!r}"]


def summarize_py_spy(path: Path, top: int = 28) -> list[str]:
    """Inclusive share of busy samples for the app's and Reflex's functions, and the
    top functions by self time (py-spy's raw format: "frame;frame;... count")."""
    total = 0
    inclusive: dict[str, int] = defaultdict(int)
    own: dict[str, int] = defaultdict(int)
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f.strip()) for f in stack.split(";")]
        frames = [re.sub(r"\(/.*?/(site-packages|work/main)/", "(", f) for f in frames]
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    if not total:
        return ["py-spy: no samples"]
    lines = [f"  {total:,} busy samples; inclusive share of chatdash's and Reflex's functions:"]
    ours = [(f, n) for f, n in inclusive.items() if "(chatdash/" in f or "(reflex" in f or "(sqlalchemy/" in f
            or "(pandas/" in f or "(socketio/" in f or "(engineio/" in f]
    for f, n in sorted(ours, key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {n / total * 100:5.1f}%  {f[:150]}")
    lines.append("  top functions by self time:")
    for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:15]:
        lines.append(f"    {n / total * 100:5.1f}%  {f[:150]}")
    return lines


def measure_app(db: Path, meta: dict[str, Any], runs: int, seed: int, pause: float,
                py_spy: Path | None = None) -> dict[str, Any]:
    names = Names()
    client_cls = _timed_client_class()
    rng = random.Random(seed + 99)
    all_convs = list(range(1, meta["counts"]["conversation"] + 1))  # conversation id == shopper id
    heavy = list(meta["heavy_shopper_ids"])
    reset_unread(db, meta)
    workdir = Path(tempfile.mkdtemp(prefix="chatdash-bench-admin-"))
    app = start_app(db, workdir)
    results: dict[str, Any] = {}
    spy = None
    try:
        token = admin_token(db)
        pid = app.process.pid
        console.print("Warm-up (3 page loads, 10 selects) ...")
        for _ in range(3):
            page_load(client_cls, app, names, token)
        client = client_cls(app.backend, cookies={names.cookie: token})
        try:
            client.emit(names.hydrate, {"vars": {}}, PAGE)
            if client.wait_for(0, lambda d: len(d.get(names.inbox, {}).get("rows") or []) > 0) is None:
                raise RuntimeError("warm-up page load failed")
            warm = [(c, c) for c in rng.sample(all_convs, 10)]
            select_series(client, names, warm, pause)

            cpu0 = server_cpu(pid)
            time.sleep(10)
            results["idle_cpu"] = (server_cpu(pid) - cpu0) / 10  # presence sweeper and the like
            results["load_before"] = loadavg()
            console.print(f"Measuring, load average {results['load_before']} ...")
            cpu0 = server_cpu(pid)
            loads = [page_load(client_cls, app, names, token) for _ in range(runs)]
            cpu1 = server_cpu(pid)
            results["page_load"] = loads
            results["page_load_cpu"] = (cpu1 - cpu0) / runs

            if py_spy:
                spy = start_py_spy(pid, py_spy)
            random_targets = [(c, c) for c in rng.sample(all_convs, runs)]
            cpu0 = server_cpu(pid)
            lat, sizes = select_series(client, names, random_targets, pause)
            cpu1 = server_cpu(pid)
            results["select_random"] = (lat, sizes, (cpu1 - cpu0) / runs)

            heavy_targets = [(c, c) for c in rng.sample(heavy, min(runs, len(heavy)))]
            cpu0 = server_cpu(pid)
            lat, sizes = select_series(client, names, heavy_targets, pause)
            cpu1 = server_cpu(pid)
            results["select_heavy"] = (lat, sizes, (cpu1 - cpu0) / runs)
            results["load_after"] = loadavg()
            if spy is not None:
                results["py_spy"] = stop_py_spy(spy, py_spy)
        finally:
            client.close()
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        app.stop()
        reset_unread(db, meta)
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def print_app_results(results: dict[str, Any]) -> None:
    loads = results["page_load"]
    console.rule("Real app (reflex run --env prod), raw socket client over loopback")
    console.print(f"load average (1/5/15 min) before {results['load_before']}, after {results['load_after']}; "
                  f"idle server CPU {results['idle_cpu'] * 1000:.0f} ms/s (presence sweeper)")
    console.print(f"page load (new socket + hydrate_and_load on {PAGE}; {loads[0]['n_rows']} rows):")
    console.print(fmt_row("connect (socket.io handshake)", [x["connect"] for x in loads]))
    console.print(fmt_row("hydrate -> inbox rows arrive", [x["rows"] for x in loads]))
    console.print(fmt_row("hydrate -> is_hydrated (page usable)", [x["hydrated"] for x in loads],
                          f"   server CPU {results['page_load_cpu'] * 1000:.0f} ms/load"))
    for key, label in (("select_random", "select, random of all"), ("select_heavy", "select, heavy shoppers")):
        lat, sizes, cpu = results[key]
        console.print(fmt_row(label, lat, f"   server CPU {cpu * 1000:.0f} ms/select, delta "
                                          f"{statistics.median(sizes) / 1024:.0f} KB median"))
    if results.get("py_spy"):
        console.rule("py-spy: the server during both select series (share of busy samples)")
        for line in results["py_spy"]:
            console.print(line, markup=False, highlight=False)


# ----------------------------------------------------------------------------- in process

class SqlTimer:
    """Records every statement an engine runs, to replay them afterwards on a raw
    sqlite3 connection with the rows fetched: SQLite's cursor.execute returns at
    the first row, so timing it inside SQLAlchemy would miss most of the work."""

    def __init__(self, engine) -> None:
        from sqlalchemy import event

        self.executed: list[tuple[str, str, Any]] = []
        self.on = False
        event.listen(engine, "after_cursor_execute", self._after)

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self.on and statement.lstrip().upper().startswith("SELECT") and not executemany:
            self.executed.append((self.key(statement), statement, parameters))

    @staticmethod
    def key(statement: str) -> str:
        text = " ".join(statement.split())
        text = re.sub(r"\(\?(, \?)+\)", "(?, ...)", text)
        # The column list says little: keep FROM ... onwards of the outer query.
        return re.sub(r"^SELECT (?:(?!SELECT).)*? FROM ", "SELECT ... FROM ", text, count=1)

    @contextlib.contextmanager
    def recording(self):
        self.executed.clear()
        self.on = True
        try:
            yield self
        finally:
            self.on = False

    def replay(self, db: Path, top: int = 6) -> list[str]:
        """Each recorded statement again, rows fetched, on a read-only connection;
        the statements costing most in total, with SQLite's plan for the top three."""
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        by_key: dict[str, list[float]] = defaultdict(list)
        rows_of: dict[str, int] = defaultdict(int)
        sample: dict[str, tuple[str, Any]] = {}
        try:
            for key, statement, params in self.executed:
                t0 = time.perf_counter()
                rows = conn.execute(statement, params).fetchall()
                by_key[key].append(time.perf_counter() - t0)
                rows_of[key] += len(rows)
                sample.setdefault(key, (statement, params))
            lines = []
            for i, (key, times) in enumerate(sorted(by_key.items(), key=lambda kv: -sum(kv[1]))[:top]):
                lines.append(f"    {sum(times) * 1000:8.1f} ms total, {len(times):4d} x, p50 "
                             f"{statistics.median(times) * 1000:6.2f} ms, max {max(times) * 1000:6.1f} ms, "
                             f"{rows_of[key] / len(times):7.0f} rows avg  {key[:170]}")
                if i < 3:
                    statement, params = sample[key]
                    plan = conn.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
                    lines.extend(f"{'':14}plan: {row[-1]}" for row in plan)
            return lines
        finally:
            conn.close()


Timings = dict[str, list[tuple[float, float]]]  # part -> [(wall s, CPU s of this thread)]


class Clock:
    """Wall and CPU time (this thread's: the calls run in it) between marks."""

    def __init__(self, parts: Timings) -> None:
        self.parts = parts
        self.wall, self.cpu = time.perf_counter(), time.thread_time()

    def mark(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        self.parts[name].append((wall - self.wall, cpu - self.cpu))
        self.wall, self.cpu = wall, cpu


def measure_services(engine, meta: dict[str, Any], runs: int, rng: random.Random, db: Path | None = None,
                     timer: SqlTimer | None = None) -> dict[str, Any]:
    """The page's service calls with their parts: InboxState.load's chat.inbox, and
    select's chat.open_for_admin + shopper_context, for random and heavy shoppers."""
    from sqlmodel import Session

    from chatdash.models import Shopper
    from chatdash.services import chat, insights, recommender
    from chatdash.services import conversations as convs
    from chatdash.services import shopper_context as sc
    from chatdash.settings import get_settings

    window = get_settings().presence_window_seconds
    def recording():
        return timer.recording() if timer else contextlib.nullcontext()

    out: dict[str, Any] = {}
    # Warm-up: imports, the model, SQLite's page cache.
    chat.inbox(200, engine=engine)
    for sid in rng.sample(range(1, SHOPPERS + 1), 5):
        sc.shopper_context(sid, engine=engine)
    if recommender.get_store().get() is None:
        console.print("[red]No trained recommender found: recommend_for falls back to popularity")

    parts: Timings = defaultdict(list)
    with recording():
        for _ in range(runs):
            clock = Clock(parts)
            chat.inbox(200, engine=engine)
            clock.mark("chat.inbox(200)")
            with Session(engine) as s:  # its two parts, again
                clock = Clock(parts)
                convs.list_conversations(s, window_seconds=window, limit=200)
                clock.mark("  list_conversations")
                convs.unseen_conversation_count(s)
                clock.mark("  unseen_conversation_count")
    out["inbox"] = parts
    if timer and db:
        out["inbox_sql"] = timer.replay(db, 5)

    for series, pool in (("random", list(range(1, SHOPPERS + 1))), ("heavy", list(meta["heavy_shopper_ids"]))):
        parts = defaultdict(list)
        sample = rng.sample(pool, min(runs, len(pool)))
        with recording():
            for sid in sample:
                clock = Clock(parts)
                chat.open_for_admin(sid, engine=engine)
                clock.mark("chat.open_for_admin")
                sc.shopper_context(sid, engine=engine)
                clock.mark("shopper_context")
                # Its parts, in the order shopper_context runs them (again, a fresh session).
                with Session(engine) as s:
                    clock = Clock(parts)
                    s.get(Shopper, sid)
                    recs = recommender.recommend_for(s, sid, n=sc.RECOMMENDATIONS)
                    clock.mark("  recommend_for")
                    sc.products_by_id(s, [r.product_id for r in recs])
                    clock.mark("  products_by_id")
                    summary = insights.current_session(s, sid)
                    clock.mark("  insights.current_session")
                    insights.shopper_history(s, sid, summary.visit_id if summary else None)
                    clock.mark("  insights.shopper_history")
                    sc.presence_of(s, sid)
                    clock.mark("  presence_of")
        out[f"select_{series}"] = parts
        if timer and db:
            out[f"select_{series}_sql"] = timer.replay(db, 7)
    return out


def in_process(db: Path, meta: dict[str, Any], runs: int, seed: int, profile: bool) -> dict[str, Any]:
    """The service calls behind the page, timed on the same database, with their parts."""
    from chatdash.db import make_engine
    from chatdash.services import chat
    from chatdash.services import shopper_context as sc

    reset_unread(db, meta)
    engine = make_engine(f"sqlite:///{db}")
    timer = SqlTimer(engine)
    rng = random.Random(seed + 7)
    try:
        out = measure_services(engine, meta, runs, rng, db, timer)
        out["load"] = loadavg()
        if profile:
            pr = cProfile.Profile()
            sample = rng.sample(list(meta["heavy_shopper_ids"]), 20)
            pr.enable()
            for sid in sample:
                chat.open_for_admin(sid, engine=engine)
                sc.shopper_context(sid, engine=engine)
            pr.disable()
            buf = io.StringIO()
            pstats.Stats(pr, stream=buf).sort_stats("cumulative").print_stats(35)
            buf.write("\n")
            pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(25)
            out["profile"] = buf.getvalue()
    finally:
        engine.dispose()
        reset_unread(db, meta)
    return out


def fmt_parts(name: str, values: list[tuple[float, float]]) -> str:
    wall = [w for w, _ in values]
    cpu = [c for _, c in values]
    return fmt_row(name, wall, f"   CPU p50 {percentile(cpu, 50) * 1000:6.1f}  p95 {percentile(cpu, 95) * 1000:6.1f}")


def print_in_process(out: dict[str, Any]) -> None:
    console.rule("In process: the service calls behind the page (same database, no Reflex)")
    console.print(f"load average at the end {out['load']}; wall time, and the CPU time of the calling thread")
    console.print("page load's database work (InboxState.load -> chat.inbox):")
    for name, values in out["inbox"].items():
        console.print(fmt_parts(name, values))
    console.print("  statements replayed with their rows fetched (sqlite3, no ORM), costliest first:")
    for line in out["inbox_sql"]:
        console.print(line, markup=False, highlight=False)
    for series in ("random", "heavy"):
        console.print(f"select's database work, {series} conversations (ChatState._open + ShopperPanelState._open):")
        for name, values in out[f"select_{series}"].items():
            console.print(fmt_parts(name, values))
        console.print("  statements replayed with their rows fetched (sqlite3, no ORM), costliest first:")
        for line in out[f"select_{series}_sql"]:
            console.print(line, markup=False, highlight=False)
    if "profile" in out:
        console.rule("cProfile: open_for_admin + shopper_context for 20 heavy shoppers")
        print(out["profile"])


# ----------------------------------------------------------------------------- index experiments

# (label, statements run once on the copy, pragmas run on every connection)
CANDIDATES: list[tuple[str, list[str], list[str]]] = [
    ("ANALYZE (planner statistics)", ["ANALYZE"], []),
    ("visit (shopper_id, last_seen_at)",
     ["CREATE INDEX ix_visit_shopper_seen ON visit (shopper_id, last_seen_at)"], []),
    ("storeevent (shopper_id, kind, occurred_at)",
     ["CREATE INDEX ix_storeevent_shopper_kind_time ON storeevent (shopper_id, kind, occurred_at)"], []),
    ("conversation partial index for the bell",
     ["CREATE INDEX ix_conversation_unseen ON conversation (status) "
      "WHERE last_shopper_message_id > admin_seen_message_id"], []),
    ("connections with mmap_size 1 GB and cache_size 64 MB", [],
     ["PRAGMA mmap_size=1073741824", "PRAGMA cache_size=-65536"]),
]


def try_indexes(db: Path, meta: dict[str, Any], runs: int, seed: int, only: list[int] | None = None) -> None:
    """Each candidate (and all of them together) on a fresh copy of the database:
    the service calls with their parts, against the copy as generated."""
    from sqlalchemy import event

    from chatdash.db import make_engine

    tmp = Path(tempfile.mkdtemp(prefix="chatdash-bench-admin-idx-", dir=db.parent))
    chosen = [c for i, c in enumerate(CANDIDATES) if only is None or i in only]
    variants = [("as generated", [], []), *chosen]
    if len(chosen) > 1:
        variants.append(("all of the above", [sql for _, stmts, _ in chosen for sql in stmts],
                         [sql for _, _, pragmas in chosen for sql in pragmas]))
    try:
        for label, statements, pragmas in variants:
            copy = tmp / "copy.db"
            for f in sqlite_files(copy):
                f.unlink(missing_ok=True)
            src, dst = sqlite3.connect(db), sqlite3.connect(copy)
            src.backup(dst)
            src.close()
            t = time.perf_counter()
            for sql in statements:
                dst.execute(sql)
            dst.commit()
            dst.close()
            built = time.perf_counter() - t
            engine = make_engine(f"sqlite:///{copy}")
            if pragmas:
                event.listen(engine, "connect", lambda dbapi_conn, _rec, p=tuple(pragmas): [
                    dbapi_conn.execute(sql) for sql in p])
            try:
                out = measure_services(engine, meta, runs, random.Random(seed + 3))
            finally:
                engine.dispose()
            console.print(f"[bold]{label}[/] (built in {built:.1f} s; load average {loadavg()})")
            for key in ("inbox", "select_random", "select_heavy"):
                for name, values in out[key].items():
                    console.print(fmt_parts(f"{key.removeprefix('select_')}: {name.strip()}", values))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- query what-ifs

def what_if(db: Path, meta: dict[str, Any], runs: int, seed: int) -> None:
    """Prototypes of query changes for the shopper panel's heaviest reads, each next
    to the code it would replace, on the same heavy shoppers, with the results
    checked equal. Read-only; nothing in chatdash/ is changed."""
    from collections import Counter

    import pandas as pd
    from sqlalchemy import String, case, func, or_, select, type_coerce
    from sqlmodel import Session

    from chatdash.db import make_engine
    from chatdash.models import EventKind, Product, StoreEvent, Visit
    from chatdash.services import insights
    from chatdash.services.recommender import interactions as ia

    ev, pc = StoreEvent.__table__.c, Product.__table__.c
    view, cart, order = EventKind.PRODUCT_VIEW.value, EventKind.CART.value, EventKind.ORDER.value
    engine = make_engine(f"sqlite:///{db}")
    rng = random.Random(seed + 11)
    parts: Timings = defaultdict(list)
    mismatches: Counter[str] = Counter()

    def most_viewed_now(s, sid: int, current) -> list[tuple[int, int]]:
        """shopper_history's most-viewed part as written: every view into pandas."""
        views = insights.events_frame(s, sid, kinds=[view])
        if current is not None and current.shopper_id == sid:
            before = views["occurred_at"] < pd.Timestamp(current.started_at)
            other_visit = (views["visit_id"] != current.id).fillna(True)
            views = views[(before & other_visit).astype(bool)]
        return [(v.product_id, v.views) for v in insights._most_viewed(s, views)]

    def most_viewed_sql(s, sid: int, current) -> list[tuple[int, int]]:
        """The same ranking aggregated in SQL: at most MOST_VIEWED rows reach Python."""
        n = func.count().label("views")
        last = func.max(ev.occurred_at).label("last_viewed")
        stmt = (select(ev.product_id, n, last, pc.sku, pc.name, pc.url)
                .join_from(StoreEvent.__table__, Product.__table__, pc.id == ev.product_id)
                .where(ev.shopper_id == sid, ev.kind == view))
        if current is not None and current.shopper_id == sid:
            stmt = stmt.where(ev.occurred_at < current.started_at,
                              or_(ev.visit_id.is_(None), ev.visit_id != current.id))
        stmt = (stmt.group_by(ev.product_id).order_by(n.desc(), last.desc(), pc.name, ev.product_id)
                .limit(insights.MOST_VIEWED))
        return [(pid, views) for pid, views, *_ in s.connection().execute(stmt).all()]

    def history_events(s, sid: int):
        with_payload = ev.kind.in_([cart, order])
        return s.connection().execute(
            select(ev.kind, ev.product_id, case((with_payload, ev.payload), else_=None))
            .where(ev.shopper_id == sid).order_by(ev.occurred_at.desc(), ev.id.desc()).limit(5000)).all()

    def history_rows_now(s, sid: int):
        """load_history's first read as written: the latest 5,000 events into Python,
        the enum's .value looked up for every row."""
        events = history_events(s, sid)
        views = Counter(pid for kind, pid, _p in events if kind == EventKind.PRODUCT_VIEW.value and pid is not None)
        carts = [(pid, *ia._cart_payload(payload)) for kind, pid, payload in events if kind == EventKind.CART.value]
        orders = [ia._order_payload(payload) for kind, _pid, payload in events if kind == EventKind.ORDER.value]
        return dict(views), carts, orders

    def history_rows_hoisted(s, sid: int):
        """The same with the three kinds as plain strings, looked up once."""
        events = history_events(s, sid)
        views = Counter(pid for kind, pid, _p in events if kind == view and pid is not None)
        carts = [(pid, *ia._cart_payload(payload)) for kind, pid, payload in events if kind == cart]
        orders = [ia._order_payload(payload) for kind, _pid, payload in events if kind == order]
        return dict(views), carts, orders

    def history_rows_sql(s, sid: int):
        """The same from two queries: views counted in SQL, only carts and orders fetched."""
        recent = (select(ev.kind, ev.product_id, ev.payload, ev.occurred_at, ev.id).where(ev.shopper_id == sid)
                  .order_by(ev.occurred_at.desc(), ev.id.desc()).limit(5000).subquery())
        conn = s.connection()
        views = dict(conn.execute(select(recent.c.product_id, func.count())
                                  .where(recent.c.kind == view, recent.c.product_id.is_not(None))
                                  .group_by(recent.c.product_id)).all())
        rows = conn.execute(select(recent.c.kind, recent.c.product_id, recent.c.payload)
                            .where(recent.c.kind.in_([cart, order]))
                            .order_by(recent.c.occurred_at.desc(), recent.c.id.desc())).all()
        carts = [(pid, *ia._cart_payload(payload)) for kind, pid, payload in rows if kind == cart]
        orders = [ia._order_payload(payload) for kind, _pid, payload in rows if kind == order]
        return views, carts, orders

    def frame_core(s, sid: int, kinds: list[str]) -> pd.DataFrame:
        """events_frame through Core with the times parsed by pandas in one go
        (SQLite stores them as ISO text) instead of row by row by the ORM."""
        stmt = (select(ev.id, ev.kind, ev.url, ev.title, ev.product_id, ev.visit_id,
                       type_coerce(ev.occurred_at, String))
                .where(ev.shopper_id == sid, ev.kind.in_(kinds)).order_by(ev.occurred_at, ev.id))
        rows = s.connection().execute(stmt).all()
        columns = list(zip(*rows, strict=True)) if rows else [()] * 7
        dtypes = insights.EVENT_DTYPES
        frame = {name: pd.array(list(values), dtype=dtype)
                 for (name, dtype), values in zip(list(dtypes.items())[:6], columns[:6], strict=True)}
        frame["occurred_at"] = pd.to_datetime(pd.Series(columns[6], dtype="object"), utc=True,
                                              format="ISO8601").dt.as_unit("us").array
        return pd.DataFrame(frame, copy=False)

    try:
        sample = rng.sample(list(meta["heavy_shopper_ids"]), min(runs, len(meta["heavy_shopper_ids"])))
        with Session(engine) as s:  # warm-up
            for sid in sample[:3]:
                most_viewed_now(s, sid, None)
                most_viewed_sql(s, sid, None)
        for i, sid in enumerate(sample):
            with Session(engine) as s:
                summary = insights.current_session(s, sid)
                current = s.get(Visit, summary.visit_id) if summary else None
                groups = [
                    ("most viewed", [("most viewed: events_frame + _most_viewed (as is)", most_viewed_now),
                                     ("most viewed: GROUP BY in SQL", most_viewed_sql)], (s, sid, current)),
                    ("load_history read", [("load_history read: 5,000 rows (as is)", history_rows_now),
                                           ("load_history read: kinds as plain strings", history_rows_hoisted),
                                           ("load_history read: views counted in SQL", history_rows_sql)], (s, sid)),
                    ("events_frame", [("events_frame, product views (as is, ORM)",
                                       lambda s, sid: insights.events_frame(s, sid, kinds=[view])),
                                      ("events_frame via Core, times parsed by pandas",
                                       lambda s, sid: frame_core(s, sid, [view]))], (s, sid)),
                ]
                for group, variants, call_args in groups:
                    # Each variant goes first as often as the others (the first pays for cold pages).
                    k = i % len(variants)
                    results = {}
                    for label, fn in variants[k:] + variants[:k]:
                        clock = Clock(parts)
                        results[label] = fn(*call_args)
                        clock.mark(label)
                    first, *others = [results[label] for label, _ in variants]
                    for other in others:
                        if isinstance(first, pd.DataFrame):
                            try:
                                pd.testing.assert_frame_equal(first, other)
                            except AssertionError:
                                mismatches[group] += 1
                        else:
                            mismatches[group] += first != other
    finally:
        engine.dispose()
    # The presence sweep (every 2 s in the app), at the time the store was generated
    # (+20 s), when its live visits were on the site.
    from sqlalchemy import exists

    from chatdash.models import Conversation
    from chatdash.services import conversations as convs
    from chatdash.services import presence

    def on_site_by_time(s, window: int, now: datetime) -> set[int]:
        """The same answer from the recent visits alone (the last_seen_at index)."""
        open_conv = exists().where(Conversation.shopper_id == Visit.shopper_id, Conversation.status == "open")
        latest: dict[int, Any] = {}
        for v in s.exec(select(Visit).where(Visit.last_seen_at >= now - timedelta(seconds=window), open_conv))\
                .scalars():
            if v.shopper_id not in latest or v.last_seen_at > latest[v.shopper_id].last_seen_at:
                latest[v.shopper_id] = v
        return {sid for sid, v in latest.items() if convs.is_on_site(v, now, window)}

    at = datetime.fromisoformat(meta["generated_at"]) + timedelta(seconds=20)
    engine = make_engine(f"sqlite:///{db}")
    on_site = 0
    try:
        for _ in range(5):
            with Session(engine) as s:
                clock = Clock(parts)
                ids = presence.open_conversation_shopper_ids(s)
                a = presence.shoppers_on_site(s, ids, window_seconds=60, now=at)
                clock.mark("presence sweep: open ids + shoppers_on_site (as is)")
                b = on_site_by_time(s, 60, at)
                clock.mark("presence sweep: recent visits of open conversations")
                mismatches["presence sweep"] += a != b
                on_site = len(a)
    finally:
        engine.dispose()
    console.print(f"{len(sample)} heavy shoppers; presence sweep x5 with {on_site} shoppers on the site; "
                  f"load average {loadavg()}; results differing: "
                  + ", ".join(f"{k} {v}" for k, v in mismatches.items()))
    for name, values in parts.items():
        console.print(fmt_parts(name, values))


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"cached database (default {DEFAULT_DB})")
    p.add_argument("--regenerate", action="store_true", help="rebuild the cached database")
    p.add_argument("--runs", type=int, default=50, help="measurements per series (default 50)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--pause", type=float, default=0.3, help="seconds between selects (default 0.3)")
    p.add_argument("--no-app", action="store_true", help="skip the real app; in-process figures only")
    p.add_argument("--generate-only", action="store_true")
    p.add_argument("--no-in-process", action="store_true", help="skip the in-process breakdown")
    p.add_argument("--small", action="store_true",
                   help="a smoke test: 1,000 shoppers, 200,000 events (default --db data/bench-admin/small.db)")
    p.add_argument("--profile", action="store_true", help="cProfile the slowest service calls")
    p.add_argument("--apply", action="append", metavar="SQL",
                   help="run everything against a temporary copy of the cached database with this statement "
                        "applied (repeatable; e.g. --apply ANALYZE, --apply 'CREATE INDEX ...')")
    p.add_argument("--what-if", action="store_true",
                   help="time prototypes of query changes for the shopper panel against the code as is")
    p.add_argument("--py-spy", type=Path, metavar="OUT",
                   help="sample the server with py-spy (on PATH, or $PY_SPY) during the select series; "
                        "raw stacks written to OUT and summarised")
    p.add_argument("--try-indexes", nargs="*", type=int, metavar="N",
                   help="time candidate indexes (all, or those numbered N from 0) on a copy of the database")
    args = p.parse_args(argv)
    args.runs = max(5, min(args.runs, 500))
    if args.small:
        global SHOPPERS, ORDERS, TARGET_EVENTS, HEAVY_SHOPPERS
        SHOPPERS, ORDERS, TARGET_EVENTS, HEAVY_SHOPPERS = 1_000, 3_000, 200_000, 20
        if args.db == DEFAULT_DB:
            args.db = DEFAULT_DB.with_name("small.db")
    db = args.db.resolve()
    # Before anything reads chatdash's settings (cached on first use): this database
    # and its trained recommender, in this process as in the app.
    os.environ["DATABASE_URL"] = f"sqlite:///{db}"
    os.environ["CHATDASH_MODEL_DIR"] = str(models_path(db))

    console.print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
                  f"SQLite {sqlite3.sqlite_version}, load average {loadavg()}")
    meta = ensure_database(db, args.seed, args.regenerate)
    console.print(f"Database: {db_summary(db, meta)}")
    if args.generate_only:
        return 0
    with contextlib.ExitStack() as stack:
        if args.apply:
            db = stack.enter_context(variant_copy(db, args.apply))
            os.environ["DATABASE_URL"] = f"sqlite:///{db}"
        return run(args, db, meta)


@contextlib.contextmanager
def variant_copy(db: Path, statements: list[str]):
    """A copy of the cached database (and its recommender) with statements applied."""
    copy = db.with_name(db.stem + ".variant.db")
    for f in sqlite_files(copy):
        f.unlink(missing_ok=True)
    shutil.rmtree(models_path(copy), ignore_errors=True)
    src, dst = sqlite3.connect(db), sqlite3.connect(copy)
    try:
        src.backup(dst)
        t = time.perf_counter()
        for sql in statements:
            dst.execute(sql)
        dst.commit()
    finally:
        src.close()
        dst.close()
    console.print(f"Applied to a copy ({copy.name}) in {time.perf_counter() - t:.1f} s: " + "; ".join(statements))
    shutil.copytree(models_path(db), models_path(copy))
    os.environ["CHATDASH_MODEL_DIR"] = str(models_path(copy))
    try:
        yield copy
    finally:
        for f in sqlite_files(copy):
            f.unlink(missing_ok=True)
        shutil.rmtree(models_path(copy), ignore_errors=True)
        os.environ["CHATDASH_MODEL_DIR"] = str(models_path(db))


def run(args: argparse.Namespace, db: Path, meta: dict[str, Any]) -> int:
    results = None
    if not args.no_app:
        results = measure_app(db, meta, args.runs, args.seed, args.pause, args.py_spy)
        print_app_results(results)
    if not args.no_in_process:
        out = in_process(db, meta, args.runs, args.seed, args.profile)
        print_in_process(out)
    if args.what_if:
        console.rule("What-if: the shopper panel's heaviest reads, as is and rewritten (in process)")
        what_if(db, meta, args.runs, args.seed)
    if args.try_indexes is not None:
        console.rule("Candidate indexes, each on a copy of the database")
        try_indexes(db, meta, args.runs, args.seed, args.try_indexes or None)

    if results is not None:
        console.rule("Against the bar (<= 300 ms p95)")
        checks = [("page load (to is_hydrated)", [x["hydrated"] for x in results["page_load"]]),
                  ("select, random", results["select_random"][0]),
                  ("select, heavy shoppers", results["select_heavy"][0])]
        for name, values in checks:
            p95 = percentile(values, 95) * 1000
            verdict = "[green]meets[/]" if p95 <= GOAL_MS else "[red]misses[/]"
            console.print(f"  {name:<28} p95 {p95:7.1f} ms  {verdict}")
    console.print(f"load average at the end {loadavg()}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
