"""The PostgreSQL ingestion path (many shoppers' batches per transaction,
set-based) stores and applies exactly what the one-batch path does: the same
random store traffic goes through both, into two schemas on the real
PostgreSQL, and the answers and the stored rows must match. Then the queue
itself: concurrent requests, retries and a poisoned batch."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chatdash import events as domain
from chatdash.db import make_engine, migrate, session_scope
from chatdash.models import Cart, CartLine, Product, Shopper, StoreEvent, Visit, utcnow
from chatdash.services import presence, store_activity, tracking
from chatdash.services.conversations import get_or_create_shopper, start_conversation
from chatdash.services.customers import identify_customer
from chatdash.services.tracking.batched import Batch, store_batches
from chatdash.services.tracking.ingest import Ingestor

STORE = "https://shop.test"
WINDOW = 60
SKUS = [f"SKU-{i}" for i in range(8)]
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"


@pytest.fixture
def two_pg():
    """Two separate schemas on the real PostgreSQL, with the same catalog."""
    from tests.conftest import PG_URL

    schemas = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    admin = make_engine(PG_URL)
    engines = []
    for schema in schemas:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        eng = make_engine(f"{PG_URL}?options=-csearch_path%3D{schema}")
        migrate(eng)
        with session_scope(eng) as s:
            for i, sku in enumerate(SKUS[:6]):  # SKU-6 and SKU-7 are not in the catalog
                s.add(
                    Product(
                        sku=sku,
                        name=sku,
                        category="C",
                        price_cents=1000 + i,
                        currency="USD" if i != 5 else "EUR",
                        url=f"{STORE}/p/{sku}",
                    )
                )
        engines.append(eng)
    yield engines
    for eng, schema in zip(engines, schemas, strict=True):
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def random_batch(rng: random.Random, now, history: list[dict]) -> list[dict]:
    events = []
    for _ in range(rng.randint(1, 8)):
        roll = rng.random()
        at = now + timedelta(seconds=rng.choice([-3600 * 3, -90, -30, -5, 0, 2, 600]))
        base = {"id": uuid.uuid4().hex, "at": at.isoformat()}
        sku = rng.choice(SKUS)
        if roll < 0.3:
            page = rng.choice(["/", "/p/a", "/p/b", "/cart"])
            # Titles and addresses with what PostgreSQL's array syntax must quote (the flush sends them as arrays).
            title = rng.choice([page, 'Say "hi", {all}', "back\\slash", "NULL", "", "Café ☕ , ok"])
            url = f"{STORE}{page}" + rng.choice(["", "?q=a,b", "?q=%7Bx%7D", '?q="quoted"'])
            events.append({**base, "kind": "page_view", "url": url, "title": title, "data": {"referrer": f"{STORE}/"}})
        elif roll < 0.6:
            events.append(
                {**base, "kind": "product_view", "url": f"{STORE}/p/{sku}", "title": sku, "data": {"sku": sku}}
            )
        elif roll < 0.85:
            items = [
                {"sku": rng.choice(SKUS), "quantity": rng.randint(1, 3), "price": 9.5} for _ in range(rng.randint(0, 3))
            ]
            events.append(
                {
                    **base,
                    "kind": "cart",
                    "url": f"{STORE}/cart",
                    "data": {"items": items, "total": 1.0, "currency": "USD"},
                }
            )
        else:
            events.append(
                {
                    **base,
                    "kind": "order",
                    "url": f"{STORE}/done",
                    "data": {
                        "order_id": uuid.uuid4().hex[:10],
                        "items": [{"sku": sku, "quantity": 1, "price": 5}],
                        "total": 5,
                        "currency": "USD",
                    },
                }
            )
    if history and rng.random() < 0.3:
        events.extend(rng.sample(history, min(len(history), 3)))  # a retry of earlier events
    if rng.random() < 0.2:
        events.append(dict(events[0]))  # an id twice in one batch
    history.extend(events)
    return events


def state_of(engine: Engine) -> dict:
    """Everything the two paths must agree on, keyed by visitor (ids differ between schemas)."""
    with Session(engine) as s:
        visitor = dict(s.exec(select(Shopper.id, Shopper.visitor_id)).all())
        visits = s.exec(select(Visit).order_by(Visit.shopper_id, Visit.started_at, Visit.id)).all()
        ordinal = {}
        out_visits: dict[str, list] = {}
        for v in visits:
            rows = out_visits.setdefault(visitor[v.shopper_id], [])
            ordinal[v.id] = len(rows)
            rows.append(
                (
                    v.device,
                    v.browser,
                    v.os,
                    v.started_at,
                    v.last_seen_at,
                    v.current_url,
                    v.current_title,
                    v.left_at,
                    v.open_for,  # which browser's current visit it is (visitor ids are the same in both)
                )
            )
        skus = dict(s.exec(select(Product.id, Product.sku)).all())
        out_events = sorted(
            (
                visitor[e.shopper_id],
                e.event_id,
                e.kind,
                e.url,
                e.title,
                e.referrer,
                ordinal.get(e.visit_id) if e.visit_id else None,
                skus.get(e.product_id),
                json.loads(e.payload),
                e.occurred_at,
            )
            for e in s.exec(select(StoreEvent)).all()
        )
        carts = {}
        for c in s.exec(select(Cart)).all():
            lines = sorted(
                (skus[li.product_id], li.quantity, li.unit_price_cents)
                for li in s.exec(select(CartLine).where(CartLine.cart_id == c.id)).all()
            )
            carts[visitor[c.shopper_id]] = (c.total_cents, c.currency, c.updated_at, lines)
        last_seen = {visitor[i]: seen for i, seen in s.exec(select(Shopper.id, Shopper.last_seen_at)).all()}
    return {"visits": out_visits, "events": out_events, "carts": carts, "last_seen": last_seen}


def heard_as(engine: Engine, heard: list) -> list[tuple]:
    """What screens hear, with shoppers named by their visitor id (ids differ between schemas)."""
    with Session(engine) as s:
        visitor = dict(s.exec(select(Shopper.id, Shopper.visitor_id)).all())
    out = []
    for e in heard:
        if isinstance(e, domain.PresenceChanged):
            out.append(("presence", visitor[e.shopper_id], e.on_site, e.current_url, e.current_title, e.device))
        elif isinstance(e, domain.ShopperActivity):
            out.append(("activity", visitor[e.shopper_id], e.conversation_id != 0))
        else:
            out.append((type(e).__name__,))
    return out


# Store customers on two devices: the first browser identifies at step 6, the
# second at step 13 (its anonymous shopper, visits and all, merges into the
# customer's); from then on both browsers' batches are one shopper's, often in
# one flush. Visitor 0 already chats.
CUSTOMERS = [(4, 5, "cust-a"), (6, 7, "cust-b"), (0, 8, "cust-c")]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_batched_path_stores_and_applies_what_the_one_batch_path_does(two_pg, seed):
    one_by_one, batched = two_pg
    rng = random.Random(seed)
    visitors = [f"v{seed}-{i:02d}-{uuid.uuid4().hex[:8]}" for i in range(12)]
    same_flush = 0
    # Some shoppers have an open conversation: their activity is announced.
    for eng in two_pg:
        with session_scope(eng) as s:
            for v in visitors[:4]:
                start_conversation(s, get_or_create_shopper(s, v).id)
    history = {v: [] for v in visitors}
    now = utcnow().replace(microsecond=0) - timedelta(hours=3)
    for step in range(25):
        now += timedelta(minutes=40) if step % 9 == 8 else timedelta(seconds=rng.choice([1, 10, 50]))
        for first, second, customer in CUSTOMERS:
            device = {6: first, 13: second}.get(step)
            if device is not None:
                for eng in two_pg:
                    with session_scope(eng) as s:
                        identify_customer(s, visitors[device], customer, window_seconds=WINDOW)
        flush = [
            Batch(v, tracking.parse_events(random_batch(rng, now, history[v])), UA)
            for v in rng.sample(visitors, rng.randint(1, len(visitors)))
        ]
        expected, heard_one = [], []
        stop = domain.listen(heard_one.extend)
        try:
            for b in flush:
                with session_scope(one_by_one) as s:
                    shopper = get_or_create_shopper(s, b.visitor_id)
                    result = tracking.track_events(
                        s,
                        shopper,
                        b.events,
                        user_agent=b.user_agent,
                        window_seconds=WINDOW,
                        now=now,
                        visitor_id=b.visitor_id,
                    )
                    if result.accepted:
                        store_activity._activity(s, result.shopper_id, result.conversation_id)
                expected.append(result)
        finally:
            stop()
        heard_batched = []
        stop = domain.listen(heard_batched.extend)
        try:
            with session_scope(batched) as s:
                got = store_batches(s, flush, window_seconds=WINDOW, now=now)
        finally:
            stop()

        def plain(results):
            return [(r.accepted, r.duplicates, r.conversation_id is not None, r.presence_changed) for r in results]

        assert plain(got) == plain(expected), f"step {step}"
        # The same screens hear the same, in the same order: presence changes and shopper activity.
        assert heard_as(batched, heard_batched) == heard_as(one_by_one, heard_one), f"step {step}"
        shoppers = Counter(r.shopper_id for r in got)
        same_flush += sum(n > 1 for n in shoppers.values())
        if step % 5 == 4:  # a shopper closes the page now and then (the beacon)
            v = rng.choice(visitors)
            for eng in two_pg:
                with session_scope(eng) as s:
                    presence.leave(s, get_or_create_shopper(s, v), window_seconds=WINDOW, now=now, visitor_id=v)
    a, b = state_of(one_by_one), state_of(batched)
    assert a["events"] == b["events"]
    assert a["visits"] == b["visits"]
    assert a["carts"] == b["carts"]
    assert a["last_seen"] == b["last_seen"]
    assert len(a["events"]) > 100  # the traffic did store things
    assert same_flush > 0  # a customer's two browsers did send in one flush
    assert any(len({v[8] for v in rows} - {None}) == 2 for rows in b["visits"].values())  # on two devices at once


def test_concurrent_requests_through_the_queue_store_every_event_once(pg_engine):
    """Many requests at once, some of them retries of others: each answered
    after its commit, every event stored once, nothing lost."""
    ingest = Ingestor(pg_engine, flush_seconds=0.005)
    visitors = [uuid.uuid4().hex[:24] for _ in range(30)]
    bodies = []
    for i in range(300):
        raw = [
            {"id": uuid.uuid4().hex, "kind": "product_view", "url": f"{STORE}/p/SKU-1", "data": {"sku": "SKU-1"}}
            for _ in range(10)
        ]
        bodies.append((visitors[i % len(visitors)], raw))
    retries = bodies[::7]

    async def main():
        calls = [ingest.store(v, tracking.parse_events(raw), UA) for v, raw in bodies + retries]
        return await asyncio.gather(*calls)

    results = asyncio.run(main())
    assert sum(r.accepted for r in results) == 3000
    assert sum(r.duplicates for r in results) == 10 * len(retries)
    with Session(pg_engine) as s:
        stored = s.exec(select(StoreEvent.event_id)).all()
    assert len(stored) == len(set(stored)) == 3000


def test_a_batch_the_flush_cannot_store_fails_alone(pg_engine):
    """A flush that fails is retried batch by batch: the good ones are stored."""
    ingest = Ingestor(pg_engine, flush_seconds=0.05)
    good = [
        (uuid.uuid4().hex[:24], [{"id": uuid.uuid4().hex, "kind": "page_view", "url": f"{STORE}/"}]) for _ in range(5)
    ]
    # A visitor id longer than the column: the database refuses it.
    bad = ("x" * 200, [{"id": uuid.uuid4().hex, "kind": "page_view", "url": f"{STORE}/"}])

    async def main():
        calls = [ingest.store(v, tracking.parse_events(raw), UA) for v, raw in [*good, bad]]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    assert [r.accepted for r in results[:5]] == [1] * 5
    assert isinstance(results[5], Exception)
    with Session(pg_engine) as s:
        assert len(s.exec(select(StoreEvent)).all()) == 5


def test_a_flush_that_loses_the_race_for_a_browsers_visit_goes_on_with_the_winners_row(pg_engine):
    """A heartbeat of the same browser opened its visit first and has not
    committed: the flush's insert waits on it, inserts nothing (the browser's
    one current visit), and the batch's page and events go to the winner's visit."""
    visitor = f"race-{uuid.uuid4().hex[:12]}"
    with session_scope(pg_engine) as s:
        shopper_id = get_or_create_shopper(s, visitor).id
    with Session(pg_engine) as winner, ThreadPoolExecutor(1) as pool:
        opened = presence.touch_visit(
            winner, winner.get(Shopper, shopper_id), user_agent=UA, url=f"{STORE}/a", title="A", window_seconds=WINDOW
        )
        page = tracking.parse_events([{"id": uuid.uuid4().hex, "kind": "page_view", "url": f"{STORE}/b", "title": "B"}])
        winner_pid = winner.execute(text("SELECT pg_backend_pid()")).scalar()

        def flush():
            with session_scope(pg_engine) as s:
                return store_batches(s, [Batch(visitor, page, UA)], window_seconds=WINDOW)

        stored = pool.submit(flush)
        deadline = time.monotonic() + 30
        with pg_engine.connect() as watch:
            while not watch.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
                {"pid": winner_pid},
            ).scalar():
                assert time.monotonic() < deadline, "the flush never waited on the heartbeat's visit"
                assert not stored.done(), stored.result()
        winner.commit()
        [result] = stored.result(timeout=30)
    assert result.accepted == 1
    assert result.presence_changed  # from page A to page B
    with Session(pg_engine) as s:
        visits = s.exec(select(Visit).where(Visit.shopper_id == shopper_id)).all()
        event = s.exec(select(StoreEvent).where(StoreEvent.shopper_id == shopper_id)).one()
    assert [(v.id, v.open_for, v.current_url, v.current_title) for v in visits] == [
        (opened.visit_id, visitor, f"{STORE}/b", "B")
    ]
    assert event.visit_id == opened.visit_id
