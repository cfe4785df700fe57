"""The grocery demo profile: the shape of a basket store's order history."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from chatdash.db import make_engine, migrate
from chatdash.models import Order, OrderLine, Product, Shopper, utcnow
from chatdash.services.demo_data import ANCHOR, anchor_for
from chatdash.services.demo_grocery import AISLES, OVERRUN, generate_grocery_data

STORE_URL = "http://localhost:3000/store"


@pytest.fixture(scope="module")
def grocery(tmp_path_factory) -> tuple[Engine, object]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('grocery') / 'g.db'}")
    migrate(engine)
    summary = generate_grocery_data(engine, store_url=STORE_URL, seed=5, products=600, shoppers=250)
    yield engine, summary
    engine.dispose()


def _rows(engine: Engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(text(sql)).all()


def test_summary_matches_the_database_and_there_are_only_orders(grocery) -> None:
    engine, summary = grocery
    counts = {
        t: _rows(engine, f"SELECT COUNT(*) FROM {t}")[0][0]
        for t in ("product", "shopper", "orders", "orderline", "storeevent", "visit")
    }
    assert counts == {
        "product": 600,
        "shopper": 250,
        "orders": summary.orders,
        "orderline": summary.order_lines,
        "storeevent": 0,
        "visit": 0,
    }
    assert summary.categories == len(AISLES)
    assert {c for (c,) in _rows(engine, "SELECT DISTINCT category FROM product")} == {a[0] for a in AISLES}
    (late,) = _rows(engine, "SELECT MAX(ordered_at) FROM orders")[0]
    assert str(late) < ANCHOR.isoformat()


def test_baskets_are_big_and_customers_come_back(grocery) -> None:
    engine, summary = grocery
    sizes = np.array([n for (n,) in _rows(engine, "SELECT COUNT(*) FROM orderline GROUP BY order_id")])
    assert 15 <= np.median(sizes) <= 30 and sizes.max() <= 60
    assert np.mean((sizes >= 10) & (sizes <= 60)) > 0.85
    orders = np.array([n for (n,) in _rows(engine, "SELECT COUNT(*) FROM orders GROUP BY shopper_id")])
    assert np.percentile(orders, 90) >= 30  # weekly customers
    assert np.percentile(orders, 25) <= 8  # and occasional ones
    assert summary.order_lines / 250 > 250


def test_most_lines_are_repeat_purchases_yet_new_products_keep_coming(grocery) -> None:
    engine, _summary = grocery
    lines = _rows(
        engine,
        "SELECT o.shopper_id, l.product_id FROM orderline l JOIN orders o ON o.id = l.order_id "
        "ORDER BY o.ordered_at, l.id",
    )
    seen: set[tuple[int, int]] = set()
    repeats = 0
    for pair in lines:
        repeats += pair in seen
        seen.add(pair)
    assert 0.55 < repeats / len(lines) < 0.9
    distinct = Counter(s for s, _p in seen)
    assert max(distinct.values()) > 200  # heavy shoppers: histories the relations used to drop


def test_popularity_has_a_long_tail_and_tastes_differ(grocery) -> None:
    engine, _summary = grocery
    lines = sorted((n for (n,) in _rows(engine, "SELECT COUNT(*) FROM orderline GROUP BY product_id")), reverse=True)
    assert 0.4 < sum(lines[: len(lines) // 10]) / sum(lines) < 0.8  # the top tenth of products: about half the lines
    assert sum(lines[len(lines) // 2 :]) / sum(lines) < 0.15  # the bottom half: a long, thin tail
    # Baby products go to a minority of customers, who buy them a lot.
    per_aisle = defaultdict(set)
    for shopper, aisle in _rows(
        engine,
        "SELECT DISTINCT o.shopper_id, p.category FROM orderline l "
        "JOIN orders o ON o.id = l.order_id JOIN product p ON p.id = l.product_id",
    ):
        per_aisle[aisle].add(shopper)
    assert len(per_aisle["Baby"]) < 0.6 * len(per_aisle["Dairy & Eggs"])


def test_same_seed_gives_the_same_store(tmp_path) -> None:
    def make(name: str, seed: int) -> list[tuple]:
        engine = make_engine(f"sqlite:///{tmp_path / name}")
        migrate(engine)
        generate_grocery_data(engine, store_url=STORE_URL, seed=seed, products=80, shoppers=12)
        rows = _rows(
            engine,
            "SELECT o.shopper_id, o.ordered_at, l.product_id, l.quantity FROM orderline l "
            "JOIN orders o ON o.id = l.order_id ORDER BY l.id",
        )
        engine.dispose()
        return rows

    assert make("a.db", 3) == make("b.db", 3) != make("c.db", 4)


def test_refuses_a_database_that_has_data(engine: Engine) -> None:
    generate_grocery_data(engine, store_url=STORE_URL, products=40, shoppers=2)
    with pytest.raises(ValueError, match="already has data"):
        generate_grocery_data(engine, store_url=STORE_URL, products=40, shoppers=2)


def test_a_store_anchored_now_is_the_same_year_moved_up_to_now(tmp_path) -> None:
    """What `demo-data --profile grocery` gives a new install: the latest orders in
    the last days, none in the future; row for row the fixed-anchor store, moved."""
    now = utcnow()
    anchor = anchor_for(now) - OVERRUN
    engines = {}
    for name, at in (("fixed", None), ("now", anchor)):
        engines[name] = make_engine(f"sqlite:///{tmp_path / name}.db")
        migrate(engines[name])
        generate_grocery_data(engines[name], store_url=STORE_URL, seed=3, products=80, shoppers=30, anchor=at)
    (late,) = _rows(engines["now"], "SELECT MAX(ordered_at) FROM orders")[0]
    assert now - timedelta(days=3) < datetime.fromisoformat(late).replace(tzinfo=UTC) < now
    shift = anchor - ANCHOR
    for model in (Product, Shopper, Order, OrderLine):
        table = model.__table__
        fixed, moved = [], []
        for engine, rows in ((engines["fixed"], fixed), (engines["now"], moved)):
            with engine.connect() as conn:
                rows.extend(dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id)))
        assert len(fixed) == len(moved) > 0
        assert moved == [{k: v + shift if isinstance(v, datetime) else v for k, v in r.items()} for r in fixed]
    for engine in engines.values():
        engine.dispose()
