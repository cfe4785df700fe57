"""Time the attribution queries (services/attribution.py) at 100,000 sent
product cards: the Insights page's report and the line under one chat.

Builds, on a temporary SQLite file (or a fresh PostgreSQL schema with --pg):
30,000 shoppers with one conversation each, 2,000 products, 100,000 product
cards sent over the last 12 weeks (about 9% of them re-sends of a card already
in that chat, which count once), a click on 30% of them, cart events holding
the product after 35% (some past the 7-day window), orders with the product
after 12%, 300,000 text messages around them, and 400,000 unrelated page
views and 50,000 unrelated cart events.

python bench/bench_attribution.py [--cards 100000] [--runs 5] [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine

from chatdash.db import make_engine, migrate
from chatdash.models import (
    AdminUser,
    Conversation,
    Message,
    Order,
    OrderLine,
    Product,
    Shopper,
    StoreEvent,
    utcnow,
)
from chatdash.services import attribution

CHUNK = 10_000


def _insert(engine: Engine, model, rows: list[dict]) -> None:
    table = model.__table__
    with engine.begin() as conn:
        for i in range(0, len(rows), CHUNK):
            conn.execute(table.insert(), rows[i:i + CHUNK])


def _cart_payload(skus: list[str]) -> str:
    items = [{"sku": s, "quantity": 1, "price": 10.0} for s in skus]
    return json.dumps({"action": "add", "items": items, "total": 10.0 * len(items), "currency": "USD"},
                      separators=(",", ":"))


def build(engine: Engine, cards: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    now = utcnow()
    n_shoppers, n_products = 30_000, 2_000
    _insert(engine, Product, [
        {"id": i, "sku": f"SKU_{i:05d}", "name": f"Product {i}", "category": f"Cat {i % 40}", "description": "",
         "price_cents": 500 + (i * 37) % 20_000, "currency": "USD", "url": f"https://shop.test/p/SKU_{i:05d}",
         "image_url": "", "in_stock": True, "created_at": now} for i in range(1, n_products + 1)])
    _insert(engine, AdminUser, [{"id": 1, "email": "bench@shop.test", "name": "Bench", "password_hash": "",
                                 "role": "owner", "created_at": now}])
    _insert(engine, Shopper, [{"id": i, "visitor_id": f"v{i}", "created_at": now, "last_seen_at": now}
                              for i in range(1, n_shoppers + 1)])
    _insert(engine, Conversation, [
        {"id": i, "token": uuid.uuid4().hex, "shopper_id": i, "status": "open", "created_at": now,
         "last_message_at": now, "last_message_preview": "", "admin_seen_message_id": 0,
         "shopper_seen_message_id": 0, "last_shopper_message_id": 0} for i in range(1, n_shoppers + 1)])

    sources = list(attribution.SOURCE_LABELS)
    messages, events, orders, lines = [], [], [], []
    sent: list[tuple[int, int]] = []  # (conversation = shopper, product) of each card
    for i in range(cards):
        conv = rng.randint(1, n_shoppers)
        # About one in eleven sends repeats a card already in that chat (counted once).
        if sent and rng.random() < 0.09:
            conv, product = sent[rng.randrange(len(sent))]
        else:
            product = rng.randint(1, n_products)
            sent.append((conv, product))
        at = now - timedelta(seconds=rng.uniform(0, 84 * 86400))
        clicked = at + timedelta(minutes=rng.uniform(1, 120)) if rng.random() < 0.30 else None
        messages.append({"conversation_id": conv, "sender": "admin", "kind": "product", "body": f"Product {product}",
                         "product_id": product, "admin_id": 1, "client_msg_id": f"card{i:08d}", "created_at": at,
                         "card_source": rng.choice(sources), "clicked_at": clicked})
        if rng.random() < 0.35:  # a cart holding it, mostly within the window
            cart_at = at + timedelta(days=rng.uniform(0, 9))
            others = [f"SKU_{rng.randint(1, n_products):05d}" for _ in range(rng.randint(0, 3))]
            events.append({"event_id": f"c{i}", "shopper_id": conv, "kind": "cart", "url": "https://shop.test/cart",
                           "payload": _cart_payload([f"SKU_{product:05d}", *others]),
                           "occurred_at": min(cart_at, now), "received_at": now})
        if rng.random() < 0.12:  # an order with it
            order_id = len(orders) + 1
            orders.append({"id": order_id, "external_id": f"W-{order_id}", "shopper_id": conv, "total_cents": 0,
                           "currency": "USD", "ordered_at": min(at + timedelta(days=rng.uniform(0, 9)), now),
                           "source": "api"})
            products = {product, *(rng.randint(1, n_products) for _ in range(rng.randint(0, 4)))}
            lines.extend({"order_id": order_id, "product_id": p, "quantity": rng.randint(1, 3),
                          "unit_price_cents": 500 + (p * 37) % 20_000} for p in products)
    for i in range(300_000):  # the conversations themselves
        messages.append({"conversation_id": rng.randint(1, n_shoppers), "sender": rng.choice(("shopper", "admin")),
                         "kind": "text", "body": "Do you have this in blue?", "product_id": None, "admin_id": None,
                         "client_msg_id": f"text{i:08d}", "card_source": None, "clicked_at": None,
                         "created_at": now - timedelta(seconds=rng.uniform(0, 84 * 86400))})
    for i in range(400_000):  # browsing that has nothing to do with cards
        events.append({"event_id": f"p{i}", "shopper_id": rng.randint(1, n_shoppers), "kind": "page_view",
                       "url": "https://shop.test/", "payload": "{}", "received_at": now,
                       "occurred_at": now - timedelta(seconds=rng.uniform(0, 90 * 86400))})
    for i in range(50_000):
        skus = [f"SKU_{rng.randint(1, n_products):05d}" for _ in range(rng.randint(1, 4))]
        events.append({"event_id": f"x{i}", "shopper_id": rng.randint(1, n_shoppers), "kind": "cart",
                       "url": "https://shop.test/cart", "payload": _cart_payload(skus), "received_at": now,
                       "occurred_at": now - timedelta(seconds=rng.uniform(0, 90 * 86400))})
    for model, rows in ((Message, messages), (StoreEvent, events), (Order, orders), (OrderLine, lines)):
        _insert(engine, model, rows)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))  # autovacuum's job on a live server; SQLite runs without statistics
    return {"messages": len(messages), "card messages": cards, "distinct cards": len(set(sent)), "events": len(events),
            "orders": len(orders), "order lines": len(lines)}


def _pg_engine(url: str) -> tuple[Engine, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _search_path(dbapi_conn, _rec) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f'SET search_path TO "{schema}"')
        cur.close()
        dbapi_conn.commit()

    return engine, schema


def _median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:,.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--pg", help="a PostgreSQL URL: build in a fresh schema there (dropped afterwards)")
    parser.add_argument("--db", help="SQLite: reuse (or build) this file instead of a temporary one")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        schema = None
        if args.pg:
            engine, schema = _pg_engine(args.pg)
        else:
            engine = make_engine(f"sqlite:///{Path(args.db) if args.db else Path(tmp) / 'bench.db'}")
        try:
            migrate(engine)
            with engine.connect() as conn:
                built = conn.execute(select(func.count()).select_from(Message.__table__)).scalar()
            if not built:
                start = time.perf_counter()
                sizes = build(engine, args.cards, args.seed)
                print(f"{engine.dialect.name}: built in {time.perf_counter() - start:.0f} s: "
                      + ", ".join(f"{v:,} {k}" for k, v in sizes.items()))

            for weeks in (12, 52):
                times = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    report = attribution.insights(weeks, engine=engine)
                    times.append(time.perf_counter() - t0)
                t = report.total
                print(f"insights({weeks} weeks): median {_median_ms(times)}, min {min(times) * 1000:,.0f} ms "
                      f"over {args.runs} runs; sent {t.sent:,}, clicked {t.clicked:,}, carted {t.carted:,}, "
                      f"ordered {t.ordered:,}, revenue ${t.revenue_cents / 100:,.2f}")

            with engine.connect() as conn:
                convs = [c for (c,) in conn.execute(select(Message.conversation_id).where(Message.kind == "product")
                                                    .group_by(Message.conversation_id)
                                                    .having(func.count() >= 3).limit(2000))]
            sample = random.Random(args.seed).sample(convs, min(200, len(convs)))
            line_t = []
            for conv in sample:
                t0 = time.perf_counter()
                attribution.conversation_attribution(conv, engine=engine)
                line_t.append(time.perf_counter() - t0)
            q = statistics.quantiles(line_t, n=100, method="inclusive")
            print(f"conversation line ({len(sample)} chats with 3+ cards): p50 {q[49] * 1000:.1f} ms, "
                  f"p95 {q[94] * 1000:.1f} ms")
        finally:
            engine.dispose()
            if schema:
                admin = make_engine(args.pg)
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()


if __name__ == "__main__":
    main()
