"""The demo store generator: deterministic, consistent, and with learnable structure."""

from __future__ import annotations

import json
import random
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

import pytest
from sqlalchemy import select as sa_select
from sqlalchemy import text
from sqlmodel import select

from chatdash.db import make_engine, migrate, session_scope
from chatdash.models import (
    AdminUser,
    Cart,
    CartLine,
    Conversation,
    EventKind,
    Message,
    Order,
    OrderLine,
    Product,
    Shopper,
    StoreEvent,
    Visit,
    utcnow,
)
from chatdash.services import attribution, auth, chat, followup, presence, workspace
from chatdash.services import conversations as convs
from chatdash.services.demo_data import (
    ANCHOR,
    CATEGORIES,
    DemoSummary,
    anchor_for,
    category_image_svg,
    database_is_empty,
    generate_demo_data,
)
from chatdash.services.tracking.schema import compact_json
from chatdash.settings import get_settings
from chatdash.state.chat import attribution_line

STORE_URL = "http://localhost:3000/store"
OWNER = "owner@example.com"
SIZES = {"products": 150, "shoppers": 200, "orders": 400}
ASSETS = Path(__file__).resolve().parent.parent / "assets" / "product-images"


def _new_engine(path: Path):
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    return engine


def _rows(engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    engine = _new_engine(tmp_path_factory.mktemp("demo") / "t.db")
    # As `chatdash.cli setup` does: the first staff account, then the demo store.
    auth.ensure_first_admin(engine, OWNER, "demo-owner-password")
    calls: list[tuple[str, int, int]] = []
    summary = generate_demo_data(
        engine, store_url=STORE_URL, seed=7, progress=lambda *a: calls.append(a), **SIZES
    )
    yield engine, summary, calls
    engine.dispose()


def _count(engine, table: str) -> int:
    return _rows(engine, f"SELECT COUNT(*) FROM {table}")[0][0]


# --------------------------------------------------------------------------- counts


def test_summary_matches_requested_sizes_and_database(demo):
    engine, summary, _ = demo
    assert isinstance(summary, DemoSummary)
    assert summary.products == SIZES["products"] == _count(engine, "product")
    assert summary.shoppers == SIZES["shoppers"] == _count(engine, "shopper")
    assert summary.orders == SIZES["orders"] == _count(engine, "orders")
    assert summary.visits == _count(engine, "visit") >= summary.shoppers
    assert summary.events == _count(engine, "storeevent")
    assert summary.order_lines == _count(engine, "orderline")
    assert summary.carts == _count(engine, "cart") > 0
    assert summary.conversations == _count(engine, "conversation") >= 25
    assert summary.messages == _count(engine, "message") > 3 * summary.conversations
    assert summary.categories == len(CATEGORIES) >= 12
    categories = {c for (c,) in _rows(engine, "SELECT DISTINCT category FROM product")}
    assert len(categories) >= 12
    # Plenty of activity per visit.
    assert summary.events > 8 * summary.visits


def test_every_shopper_has_a_visit_and_some_are_identified(demo):
    engine, _, _ = demo
    without_visit = _rows(
        engine,
        "SELECT COUNT(*) FROM shopper s WHERE NOT EXISTS (SELECT 1 FROM visit v WHERE v.shopper_id = s.id)",
    )[0][0]
    assert without_visit == 0
    known, total = _rows(engine, "SELECT COUNT(customer_id), COUNT(*) FROM shopper")[0]
    assert 0.45 < known / total < 0.75
    for name, email, customer_id in _rows(
        engine,
        "SELECT name, email, customer_id FROM shopper WHERE customer_id IS NOT NULL",
    ):
        assert name and " " in name
        assert re.fullmatch(r"[a-z.]+\d+@([a-z]+\.)?example\.(com|org|net)", email)
        assert re.fullmatch(r"CUST-\d{6}", customer_id)
    anonymous = _rows(engine, "SELECT name, email FROM shopper WHERE customer_id IS NULL")
    assert anonymous and all(n is None and e is None for n, e in anonymous)
    visitor_ids = [v for (v,) in _rows(engine, "SELECT visitor_id FROM shopper")]
    assert len(set(visitor_ids)) == len(visitor_ids)


# --------------------------------------------------------------------------- products


def test_products_are_realistic(demo):
    engine, _, _ = demo
    slugs = {c.name: c.slug for c in CATEGORIES}
    rows = _rows(
        engine,
        "SELECT sku, name, category, price_cents, currency, url, image_url, in_stock, "
        "description FROM product",
    )
    out_of_stock = 0
    for sku, name, category, price, currency, url, image_url, in_stock, desc in rows:
        assert re.fullmatch(r"[A-Z]{3}-\d{5}", sku)
        assert url == f"{STORE_URL}/product/{sku}"
        assert url.startswith(STORE_URL) and url.startswith("http://")
        assert image_url == f"http://localhost:3000/product-images/{slugs[category]}.svg"
        assert (ASSETS / f"{slugs[category]}.svg").is_file()
        assert currency == "USD"
        assert 99 <= price <= 200_000
        assert len(name.split()) >= 3 and desc
        out_of_stock += not in_stock
    assert 0 < out_of_stock <= 0.1 * len(rows)
    # Names are unique within the store.
    assert len({r[1] for r in rows}) == len(rows)


def test_prices_follow_the_kind_of_product(demo):
    engine, _, _ = demo
    prices = dict(_rows(engine, "SELECT category, AVG(price_cents) FROM product GROUP BY 1"))
    assert prices["Nutrition"] < prices["Outerwear"]
    assert prices["Coffee & Tea"] < prices["Tents & Camping"]


# --------------------------------------------------------------------------- orders


def test_orders_are_consistent_and_multi_line(demo):
    engine, _, _ = demo
    orders = _rows(
        engine,
        "SELECT o.id, o.external_id, o.total_cents, o.source, o.currency, "
        "SUM(l.quantity * l.unit_price_cents), COUNT(l.id) "
        "FROM orders o JOIN orderline l ON l.order_id = o.id GROUP BY o.id",
    )
    assert len(orders) == SIZES["orders"]  # every order has lines
    lines_per_order = Counter()
    for _id, external_id, total, source, currency, line_sum, n_lines in orders:
        assert re.fullmatch(r"D-\d{6}", external_id)
        assert total == line_sum > 0
        assert source == "demo" and currency == "USD"
        lines_per_order[n_lines] += 1
    two_to_five = sum(lines_per_order[n] for n in range(2, 6))
    assert two_to_five / len(orders) > 0.8
    assert lines_per_order[1] / len(orders) < 0.15
    # Unit prices are the product's price.
    mismatched = _rows(
        engine,
        "SELECT COUNT(*) FROM orderline l JOIN product p ON p.id = l.product_id "
        "WHERE l.unit_price_cents != p.price_cents",
    )[0][0]
    assert mismatched == 0


def test_each_order_has_a_matching_order_event(demo):
    engine, _, _ = demo
    orders = {
        ext: (shopper, total)
        for ext, shopper, total in _rows(engine, "SELECT external_id, shopper_id, total_cents FROM orders")
    }
    events = _rows(
        engine,
        "SELECT shopper_id, payload, url FROM storeevent WHERE kind = :k",
        k=EventKind.ORDER.value,
    )
    assert len(events) == len(orders)
    for shopper_id, payload, url in events:
        data = json.loads(payload)
        assert orders[data["order_id"]] == (shopper_id, round(data["total"] * 100))
        assert url.startswith(STORE_URL)
        assert sum(round(i["price"] * 100) * i["quantity"] for i in data["items"]) == round(
            data["total"] * 100
        )


def test_carts_are_consistent(demo):
    engine, _, _ = demo
    carts = _rows(
        engine,
        "SELECT c.id, c.total_cents, SUM(l.quantity * l.unit_price_cents) "
        "FROM cart c JOIN cartline l ON l.cart_id = c.id GROUP BY c.id",
    )
    assert len(carts) == _count(engine, "cart") > 0
    assert all(total == line_sum for _, total, line_sum in carts)


# --------------------------------------------------------------------------- events & visits


def test_events_are_well_formed(demo):
    engine, _, _ = demo
    kinds = {k.value for k in EventKind}
    product_urls = dict(_rows(engine, "SELECT id, url FROM product"))
    seen: set[tuple[int, str]] = set()
    by_kind = Counter()
    for shopper_id, event_id, kind, url, title, product_id, payload in _rows(
        engine,
        "SELECT shopper_id, event_id, kind, url, title, product_id, payload FROM storeevent",
    ):
        assert (shopper_id, event_id) not in seen
        seen.add((shopper_id, event_id))
        assert re.fullmatch(r"demo-\d+", event_id)
        assert kind in kinds
        by_kind[kind] += 1
        assert url.startswith(STORE_URL) and title
        data = json.loads(payload)
        # Stored as the tracking path stores it (compact JSON): attribution
        # finds a product in a cart by the text `"sku":"<sku>"`.
        assert payload == compact_json(data)
        if kind == EventKind.PRODUCT_VIEW:
            assert url == product_urls[product_id]
        elif kind == EventKind.CART:
            assert url == product_urls[product_id]
            items_total = sum(round(i["price"] * 100) * i["quantity"] for i in data["items"])
            assert items_total == round(data["total"] * 100)
    assert set(by_kind) == kinds
    assert by_kind[EventKind.PRODUCT_VIEW] > by_kind[EventKind.PAGE_VIEW] > 0


def test_visits_have_devices_and_contain_their_events(demo):
    engine, _, _ = demo
    devices = Counter()
    for device, browser, os_name, ua in _rows(engine, "SELECT device, browser, os, user_agent FROM visit"):
        devices[device] += 1
        assert browser and os_name and ua.startswith("Mozilla/5.0")
        if device == "mobile":
            assert "Mobile" in ua
    assert set(devices) == {"desktop", "mobile", "tablet"}
    outside = _rows(
        engine,
        "SELECT COUNT(*) FROM storeevent e JOIN visit v ON v.id = e.visit_id "
        "WHERE e.occurred_at < v.started_at OR e.occurred_at > v.last_seen_at "
        "OR e.shopper_id != v.shopper_id",
    )[0][0]
    assert outside == 0
    assert _rows(engine, "SELECT COUNT(*) FROM storeevent WHERE visit_id IS NULL")[0][0] == 0


def test_timestamps_are_anchored_not_now(demo):
    engine, _, _ = demo
    with engine.connect() as conn:
        lo, hi = conn.execute(text("SELECT MIN(occurred_at), MAX(occurred_at) FROM storeevent")).one()
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    lo = datetime.strptime(lo, fmt).replace(tzinfo=ANCHOR.tzinfo)
    hi = datetime.strptime(hi, fmt).replace(tzinfo=ANCHOR.tzinfo)
    assert ANCHOR - timedelta(days=366) <= lo < hi <= ANCHOR + timedelta(days=1)


# --------------------------------------------------------------------------- structure


def _shopper_line_categories(engine) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    for shopper_id, category in _rows(
        engine,
        "SELECT o.shopper_id, p.category FROM orderline l "
        "JOIN orders o ON o.id = l.order_id JOIN product p ON p.id = l.product_id",
    ):
        out[shopper_id].append(category)
    return out


def _top3_share(per_shopper: dict[int, list[str]], min_lines: int) -> float:
    shares = []
    for cats in per_shopper.values():
        if len(cats) >= min_lines:
            top3 = sum(n for _, n in Counter(cats).most_common(3))
            shares.append(top3 / len(cats))
    assert shares
    return sum(shares) / len(shares)


def test_purchases_concentrate_in_favourite_categories(demo):
    engine, _, _ = demo
    real = _shopper_line_categories(engine)
    share = _top3_share(real, min_lines=6)
    # Baseline: the same lines dealt out at random to the same shoppers.
    pool = [c for cats in real.values() for c in cats]
    random.Random(0).shuffle(pool)
    shuffled, i = {}, 0
    for sid, cats in real.items():
        shuffled[sid] = pool[i : i + len(cats)]
        i += len(cats)
    baseline = _top3_share(shuffled, min_lines=6)
    assert share > 0.6
    assert share > baseline + 0.15


def test_favourite_categories_from_views_predict_purchases(demo):
    engine, _, _ = demo
    viewed: dict[int, Counter] = defaultdict(Counter)
    for shopper_id, category in _rows(
        engine,
        "SELECT e.shopper_id, p.category FROM storeevent e "
        "JOIN product p ON p.id = e.product_id WHERE e.kind = 'product_view'",
    ):
        viewed[shopper_id][category] += 1
    bought = _shopper_line_categories(engine)
    hits = total = 0
    for sid, cats in bought.items():
        top3 = {c for c, _ in viewed[sid].most_common(3)}
        hits += sum(c in top3 for c in cats)
        total += len(cats)
    assert hits / total > 0.6


def test_bundles_are_bought_together(demo):
    engine, _, _ = demo
    orders: dict[int, set[int]] = defaultdict(set)
    for order_id, product_id in _rows(engine, "SELECT order_id, product_id FROM orderline"):
        orders[order_id].add(product_id)
    n = len(orders)
    item_count = Counter(p for items in orders.values() for p in items)
    pair_count = Counter(pair for items in orders.values() for pair in combinations(sorted(items), 2))
    # The most frequent pairs co-occur far more than independent choice would give.
    lifts = [c * n / (item_count[a] * item_count[b]) for (a, b), c in pair_count.most_common(10)]
    assert pair_count.most_common(1)[0][1] >= 5
    assert max(lifts) > 10
    assert sum(lift > 5 for lift in lifts) >= 5


def test_sessions_view_similar_items(demo):
    engine, _, _ = demo
    last: dict[int, str] = {}
    same = pairs = 0
    for visit_id, category in _rows(
        engine,
        "SELECT e.visit_id, p.category FROM storeevent e JOIN product p "
        "ON p.id = e.product_id WHERE e.kind = 'product_view' ORDER BY e.visit_id, e.id",
    ):
        if visit_id in last:
            pairs += 1
            same += last[visit_id] == category
        last[visit_id] = category
    assert pairs and same / pairs > 0.6


def test_popularity_has_a_long_tail(demo):
    engine, _, _ = demo
    sold = sorted(
        (n for (n,) in _rows(engine, "SELECT SUM(quantity) FROM orderline GROUP BY product_id")),
        reverse=True,
    )
    sold += [0] * (SIZES["products"] - len(sold))
    decile = SIZES["products"] // 10
    # Uniform popularity would give the top 10% of products about 10-15% of sales.
    assert sum(sold[:decile]) / sum(sold) > 0.22
    assert sum(sold[:decile]) > 1.4 * sum(sold[len(sold) // 2 :])


# --------------------------------------------------------------------------- conversations


def _now() -> datetime:
    """A day after the demo ends: what a user opening the admin right away sees."""
    return ANCHOR + timedelta(days=1)


def test_the_inbox_shows_demo_conversations_with_their_messages(demo):
    engine, summary, _ = demo
    with session_scope(engine) as s:
        owner_id = s.exec(select(AdminUser.id).where(AdminUser.email == OWNER)).one()
        pages = {name: convs.list_conversations(s, window_seconds=60, now=_now(),
                                                where=convs.inbox_filter(name, owner_id))
                 for name in ("open", "resolved", "mine")}
        unseen = convs.unseen_conversation_count(s)
    # The default list is the open one (what chat.inbox returns to the conversations page).
    assert [r.id for r in chat.inbox(engine=engine)] == [r.id for r in pages["open"]]
    assert len(pages["open"]) >= 5 and len(pages["resolved"]) >= 5
    assert len(pages["open"]) + len(pages["resolved"]) == summary.conversations
    assert 0 < len(pages["mine"]) < len(pages["open"])  # some assigned to the owner, some waiting for anyone
    assert 0 < unseen < len(pages["open"])  # a few shoppers' messages nobody has read: the bell is lit
    names = [r.label for r in pages["open"] + pages["resolved"]]
    assert any(not n.startswith("Visitor ") for n in names) and len(set(names)) == len(names)
    for row in pages["open"] + pages["resolved"]:
        messages = chat.messages_after(row.id, 0, engine=engine)
        said = [m for m in messages if m.sender in ("shopper", "admin")]
        assert said and said[0].sender == "shopper"  # the shopper starts each one
        last = said[-1]
        assert row.preview == (f"Product: {last.body}" if last.product else last.body)[:120]
        assert row.last_message_at == last.created_at
        assert not row.on_site  # everyone has left by now
        assert row.unread == sum(m.sender == "shopper" for m in messages if m.id > _admin_seen(engine, row.id))
        for m in messages:
            if m.kind == "product":
                assert m.product is not None and m.body == m.product.name and m.product.url.startswith(STORE_URL)
    texts = {m.body for r in pages["open"] for m in chat.messages_after(r.id, 0, engine=engine)}
    assert len(texts) > 30  # varied, not one script repeated


def _admin_seen(engine, conversation_id: int) -> int:
    return _rows(engine, "SELECT admin_seen_message_id FROM conversation WHERE id = :i", i=conversation_id)[0][0]


def test_insights_count_the_demo_cards_through_every_step(demo):
    engine, summary, _ = demo
    report = attribution.insights(12, now=_now(), engine=engine)
    total = report.total
    assert total.sent > total.clicked > total.carted > total.ordered > 0
    assert total.revenue_cents > 0
    # The generator's own count of what its cards led to is what the page shows.
    assert (total.sent, total.clicked, total.carted, total.ordered, total.revenue_cents) == (
        summary.cards_sent, summary.cards_clicked, summary.cards_carted, summary.cards_ordered,
        summary.card_revenue_cents)
    assert summary.cards_sent == _rows(engine, "SELECT COUNT(*) FROM message WHERE kind = 'product'")[0][0]
    assert sum(f.sent > 0 for f in report.by_source) >= 4 and all(f.key != "other" for f in report.by_source)
    assert sum(f.sent > 0 for f in report.by_week) >= 3  # spread over the demo's last weeks
    assert report.top_products and report.currency == "USD"


def test_cards_follow_through_as_the_real_paths_record_it(demo):
    """A click is the card's first click plus the product page it lands on; a
    card bought is a line of the shopper's own order within the window."""
    engine, _, _ = demo
    clicks = _rows(engine, "SELECT m.created_at, m.clicked_at, m.product_id, c.shopper_id FROM message m "
                           "JOIN conversation c ON c.id = m.conversation_id WHERE m.clicked_at IS NOT NULL")
    assert clicks
    for sent_at, clicked_at, product_id, shopper_id in clicks:
        assert clicked_at > sent_at
        landed = _rows(engine, "SELECT COUNT(*) FROM storeevent WHERE shopper_id = :s AND kind = 'product_view' "
                               "AND product_id = :p AND occurred_at = :t", s=shopper_id, p=product_id, t=clicked_at)
        assert landed == [(1,)]
    bought = _rows(engine, "SELECT m.created_at, o.ordered_at FROM message m "
                           "JOIN conversation c ON c.id = m.conversation_id "
                           "JOIN orders o ON o.shopper_id = c.shopper_id "
                           "JOIN orderline l ON l.order_id = o.id AND l.product_id = m.product_id "
                           "WHERE o.ordered_at >= m.created_at")
    assert bought and any(o <= _plus_days(m, 7) for m, o in bought)
    # Nothing waits to be emailed to the staff: a first run sends no one mail about the demo.
    assert _count(engine, "staff_email_item") == 0


def _plus_days(stamp: str, days: int) -> str:
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    return (datetime.strptime(stamp, fmt) + timedelta(days=days)).strftime(fmt)


def test_a_conversation_with_a_bought_card_shows_what_it_earned(demo):
    engine, _, _ = demo
    lines = {}
    for (conversation_id,) in _rows(engine, "SELECT id FROM conversation ORDER BY id"):
        found = attribution.conversation_attribution(conversation_id, engine=engine)
        lines[conversation_id] = (found, attribution_line(found))
    bought = [(a, line) for a, line in lines.values() if a.ordered]
    assert bought
    a, line = bought[0]
    assert a.sent >= a.ordered > 0 and a.revenue_cents > 0
    assert re.fullmatch(rf"{a.sent} products? sent · {a.clicked} clicked · {a.ordered} bought · \$[\d,]+\.\d\d", line)
    assert any(line == "" for _, line in lines.values())  # a chat without cards shows no line


def test_demo_chats_happen_in_visits_of_their_shoppers(demo):
    engine, _, _ = demo
    outside = _rows(engine, "SELECT COUNT(*) FROM message m JOIN conversation c ON c.id = m.conversation_id "
                            "WHERE m.sender = 'shopper' AND NOT EXISTS (SELECT 1 FROM visit v WHERE "
                            "v.shopper_id = c.shopper_id AND m.created_at BETWEEN v.started_at AND v.last_seen_at)")
    assert outside == [(0,)]
    # One conversation per shopper, all before the anchor; no shopper is left "last seen" before their chat.
    assert _rows(engine, "SELECT COUNT(DISTINCT shopper_id) = COUNT(*) FROM conversation") == [(1,)]
    later = _rows(engine, "SELECT COUNT(*) FROM conversation c JOIN shopper s ON s.id = c.shopper_id "
                          "WHERE c.last_message_at > s.last_seen_at OR c.last_message_at > :a", a=ANCHOR)
    assert later == [(0,)]


# --------------------------------------------------------------------------- behaviour


def test_progress_is_reported(demo):
    _, _, calls = demo
    steps = {step for step, _, _ in calls}
    assert {"products", "shoppers", "events", "orders", "conversations"} <= steps
    for _step, done, total in calls:
        assert 0 <= done <= total
    assert ("orders", SIZES["orders"], SIZES["orders"]) in calls


def test_same_seed_gives_identical_data(tmp_path):
    a = _new_engine(tmp_path / "a.db")
    b = _new_engine(tmp_path / "b.db")
    c = _new_engine(tmp_path / "c.db")
    small = {"products": 60, "shoppers": 40, "orders": 80}
    sa = generate_demo_data(a, store_url=STORE_URL, seed=3, **small)
    sb = generate_demo_data(b, store_url=STORE_URL, seed=3, **small)
    generate_demo_data(c, store_url=STORE_URL, seed=4, **small)
    assert sa == sb
    for sql in (
        "SELECT * FROM product ORDER BY id",
        "SELECT * FROM shopper ORDER BY id",
        "SELECT * FROM orders ORDER BY id",
        "SELECT * FROM orderline ORDER BY id",
        "SELECT * FROM storeevent ORDER BY id",
        "SELECT * FROM cartline ORDER BY id",
        "SELECT * FROM message ORDER BY id",
        # All but the token, which is unguessable by design (not derived from a public seed).
        "SELECT id, shopper_id, status, created_at, last_message_at, last_message_preview, admin_seen_message_id, "
        "last_shopper_message_id, awaiting_reply_since FROM conversation ORDER BY id",
    ):
        assert _rows(a, sql) == _rows(b, sql)
    assert _count(a, "conversation") > 0
    assert _rows(a, "SELECT name FROM product") != _rows(c, "SELECT name FROM product")
    for engine in (a, b, c):
        engine.dispose()


#: Each table's rows in id order, every column (a conversation's token is random by design).
_SHIFTED_TABLES = (Product, Shopper, Visit, StoreEvent, Order, OrderLine, Cart, CartLine, Conversation, Message)


def _table_rows(engine, model) -> list[dict]:
    table = model.__table__
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa_select(table).order_by(table.c.id))]
    for row in rows:
        row.pop("token", None)
    return rows


def _moved(row: dict, shift: timedelta) -> dict:
    return {k: v + shift if isinstance(v, datetime) else v for k, v in row.items()}


def test_a_store_anchored_now_is_current_and_the_fixed_one_moved_in_time(demo, tmp_path):
    """What `setup` gives a new install: the demo's latest orders and chats in the
    last days, nobody on the site; row for row the fixed-anchor store, moved."""
    fixed, summary, _ = demo
    now = utcnow()
    anchor = anchor_for(now)
    engine = _new_engine(tmp_path / "now.db")
    auth.ensure_first_admin(engine, OWNER, "demo-owner-password")
    assert generate_demo_data(engine, store_url=STORE_URL, seed=7, anchor=anchor, **SIZES) == summary

    def latest(sql: str) -> datetime:
        return datetime.strptime(_rows(engine, sql)[0][0], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)

    for sql in ("SELECT MAX(ordered_at) FROM orders", "SELECT MAX(created_at) FROM message",
                "SELECT MAX(last_message_at) FROM conversation WHERE status = 'open'"):
        assert now - timedelta(days=4) < latest(sql) < now - timedelta(minutes=50), sql
    assert latest("SELECT MAX(left_at) FROM visit") < now - timedelta(minutes=30)
    with session_scope(engine) as s:
        assert presence.everyone_on_site(s, window_seconds=get_settings().presence_window_seconds, now=now) == set()
        inbox = convs.list_conversations(s, window_seconds=60, now=now)
    assert len(inbox) >= 5 and not any(row.on_site or row.snoozed_until for row in inbox)
    # The Insights page's default period (12 weeks up to now) holds every demo card.
    assert attribution.insights(12, now=now, engine=engine).total.sent == summary.cards_sent > 0
    # The app's first start changes none of them: nothing to wake, to ask or to email.
    before = _table_rows(engine, Conversation)
    assert workspace.wake_due(now=now, engine=engine) == []
    assert followup.ask_due(now=now, engine=engine) == []
    assert followup.claim_due_emails(now=now, engine=engine) == []
    assert _table_rows(engine, Conversation) == before

    shift = anchor - ANCHOR
    orders = {o["external_id"]: o["ordered_at"] for o in _table_rows(fixed, Order)}
    for model in _SHIFTED_TABLES:
        expected, got = [_moved(r, shift) for r in _table_rows(fixed, model)], _table_rows(engine, model)
        assert len(got) == len(expected) > 0, model.__name__
        for want, row in zip(expected, got, strict=True):
            if model is Message and want["body"] != row["body"]:
                # "Where is order D-000123 from 14 October?": the day of the order, moved with it.
                ext = re.search(r"D-\d{6}", want["body"]).group()
                old, new = orders[ext], orders[ext] + shift
                want["body"] = want["body"].replace(f"{old.day} {old:%B}", f"{new.day} {new:%B}")
            assert row == want, model.__name__
    engine.dispose()


def test_a_naive_anchor_is_refused(tmp_path):
    engine = _new_engine(tmp_path / "t.db")
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_demo_data(engine, store_url=STORE_URL, products=20, shoppers=5, orders=5,
                           anchor=datetime(2027, 3, 1))
    assert database_is_empty(engine)
    engine.dispose()


def test_refuses_a_database_that_has_data(tmp_path):
    engine = _new_engine(tmp_path / "t.db")
    assert database_is_empty(engine)
    generate_demo_data(engine, store_url=STORE_URL, products=20, shoppers=5, orders=5)
    assert not database_is_empty(engine)
    before = _count(engine, "storeevent")
    with pytest.raises(ValueError, match="database already has data"):
        generate_demo_data(engine, store_url=STORE_URL, products=20, shoppers=5, orders=5)
    assert _count(engine, "storeevent") == before
    engine.dispose()


def test_too_few_products_is_rejected(tmp_path):
    engine = _new_engine(tmp_path / "t.db")
    with pytest.raises(ValueError):
        generate_demo_data(engine, store_url=STORE_URL, products=5)
    assert database_is_empty(engine)
    engine.dispose()


def test_category_images_are_committed_and_up_to_date():
    for category in CATEGORIES:
        path = ASSETS / f"{category.slug}.svg"
        assert path.read_text(encoding="utf-8") == category_image_svg(category)
        root = ET.fromstring(path.read_text(encoding="utf-8"))  # noqa: S314 (our file)
        assert root.tag.endswith("svg")


def test_postgres_ids_continue_after_demo_data(request):
    """Ids are given explicitly: PostgreSQL's sequences must be moved past them."""
    try:
        engine = request.getfixturevalue("pg_engine")
    except pytest.FixtureLookupError:
        pytest.skip("no PostgreSQL fixture in this tree")
    summary = generate_demo_data(engine, store_url=STORE_URL, products=40, shoppers=20, orders=40)
    with engine.begin() as conn:
        new_id = conn.execute(
            text(
                "INSERT INTO product (sku, name, category, description, price_cents, currency, url, "
                "image_url, in_stock, created_at) VALUES ('NEW-1', 'n', 'c', '', 1, 'USD', "
                "'http://x', '', true, now()) RETURNING id"
            )
        ).scalar_one()
        max_event = conn.execute(text("SELECT MAX(id) FROM storeevent")).scalar_one()
    assert new_id == summary.products + 1
    assert max_event == summary.events
    # A shopper writing after the demo starts conversation and message ids past the demo's.
    conv_id, message, _created = chat.shopper_send("v_after_demo", 0, 0, "client-after-demo", "Hello!", engine=engine)
    assert conv_id == summary.conversations + 1 and message.id == summary.messages + 1
    # And PostgreSQL's attribution reads the demo cards as SQLite's does.
    total = attribution.insights(12, now=_now(), engine=engine).total
    assert (total.sent, total.ordered, total.revenue_cents) == (
        summary.cards_sent, summary.cards_ordered, summary.card_revenue_cents)
    assert total.ordered > 0
