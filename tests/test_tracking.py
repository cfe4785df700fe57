"""Store events: schema validation, storing each event once, and what events do
to presence, carts and orders — on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chatdash.db import session_scope
from chatdash.models import Cart, CartLine, Order, OrderLine, Product, Shopper, StoreEvent, Visit, utcnow
from chatdash.services import conversations as convs
from chatdash.services import tracking
from chatdash.services.tracking import TrackingError

STORE = "https://shop.test"
WINDOW = 60


def eid() -> str:
    return uuid.uuid4().hex


def page_view(url: str = f"{STORE}/", title: str = "Home", **fields) -> dict:
    return {"id": eid(), "kind": "page_view", "url": url, "title": title, **fields}


def product_view(sku: str, **fields) -> dict:
    return {"id": eid(), "kind": "product_view", "url": f"{STORE}/p/{sku}", "title": sku,
            "data": {"sku": sku}, **fields}


def cart(items: list[tuple[str, int, float]], **fields) -> dict:
    return {"id": eid(), "kind": "cart", "url": f"{STORE}/cart", "title": "Cart", **fields,
            "data": {"items": [{"sku": s, "quantity": q, "price": p} for s, q, p in items],
                     "total": round(sum(q * p for _, q, p in items), 2), "currency": "USD"}}


def order(order_id: str, items: list[tuple[str, int, float]], **fields) -> dict:
    return {"id": eid(), "kind": "order", "url": f"{STORE}/order/{order_id}", **fields,
            "data": {"order_id": order_id, "items": [{"sku": s, "quantity": q, "price": p} for s, q, p in items],
                     "total": round(sum(q * p for _, q, p in items), 2), "currency": "USD"}}


@pytest.fixture
def shop(any_engine) -> Engine:
    """A small catalog."""
    return _with_catalog(any_engine)


def _with_catalog(engine: Engine) -> Engine:
    with session_scope(engine) as s:
        for sku, name, cents, currency in (("TENT-1", "Summit Tent", 19_900, "USD"),
                                           ("BAG-1", "Sleeping Bag", 12_950, "USD"),
                                           ("EUR-1", "Euro Stove", 5_000, "EUR")):
            s.add(Product(sku=sku, name=name, category="Camping", price_cents=cents, currency=currency,
                          url=f"{STORE}/p/{sku}"))
    return engine


def new_shopper(engine: Engine, visitor_id: str | None = None) -> int:
    with session_scope(engine) as s:
        return convs.get_or_create_shopper(s, visitor_id or uuid.uuid4().hex[:24]).id


def track(engine: Engine, shopper_id: int, raw: list[dict], now: datetime | None = None,
          user_agent: str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"):
    events = tracking.parse_events(raw)
    with session_scope(engine) as s:
        return tracking.track_events(s, s.get(Shopper, shopper_id), events, user_agent=user_agent,
                                     window_seconds=WINDOW, now=now)


def stored(engine: Engine, shopper_id: int) -> list[StoreEvent]:
    with Session(engine) as s:
        return list(s.exec(select(StoreEvent).where(StoreEvent.shopper_id == shopper_id)
                           .order_by(col(StoreEvent.occurred_at), col(StoreEvent.id))).all())


def stored_cart(engine: Engine, shopper_id: int) -> tuple[Cart, list[tuple[str, int, int]]]:
    with Session(engine) as s:
        c = s.exec(select(Cart).where(Cart.shopper_id == shopper_id)).one()
        lines = s.exec(select(Product.sku, CartLine.quantity, CartLine.unit_price_cents)
                       .join(Product, col(Product.id) == CartLine.product_id)
                       .where(CartLine.cart_id == c.id).order_by(col(Product.sku))).all()
        return c, [tuple(line) for line in lines]


# --------------------------------------------------------------------------- storing once


def test_a_valid_batch_is_stored_with_normalised_payloads(shop):
    sid = new_shopper(shop)
    at = utcnow() - timedelta(seconds=20)
    raw = [
        page_view(f"{STORE}/", "Home", at=at.isoformat(), data={"referrer": "https://search.test/?q=tent"}),
        product_view("TENT-1"),
        product_view("NOT-IN-CATALOG"),
        cart([("TENT-1", 2, 199.0)]),
        order("W-1001", [("TENT-1", 2, 199)]),
    ]
    result = track(shop, sid, raw)
    assert (result.accepted, result.duplicates) == (5, 0)
    rows = stored(shop, sid)
    assert [r.kind for r in rows] == ["page_view", "product_view", "product_view", "cart", "order"]
    home = rows[0]
    assert (home.url, home.title, home.referrer) == (f"{STORE}/", "Home", "https://search.test/?q=tent")
    assert abs(home.occurred_at - at) < timedelta(milliseconds=1)
    with Session(shop) as s:
        tent = s.exec(select(Product).where(Product.sku == "TENT-1")).one()
        visit = s.exec(select(Visit).where(Visit.shopper_id == sid)).one()
    assert rows[1].product_id == tent.id
    assert rows[2].product_id is None  # an unknown sku is kept, without a product
    assert {r.visit_id for r in rows} == {visit.id}
    assert json.loads(rows[3].payload) == {"items": [{"sku": "TENT-1", "quantity": 2, "price": 199.0}],
                                           "total": 398.0, "currency": "USD"}
    assert json.loads(rows[4].payload)["order_id"] == "W-1001"


def test_a_retried_batch_is_stored_once(any_engine):
    sid = new_shopper(any_engine)
    raw = [page_view(), product_view("SKU-1"), product_view("SKU-2")]
    first = track(any_engine, sid, raw)
    again = track(any_engine, sid, raw)
    assert (first.accepted, first.duplicates) == (3, 0)
    assert (again.accepted, again.duplicates) == (0, 3)
    assert len(stored(any_engine, sid)) == 3


def test_an_id_repeated_inside_one_batch_is_stored_once(any_engine):
    sid = new_shopper(any_engine)
    view = product_view("SKU-1")
    result = track(any_engine, sid, [view, dict(view), product_view("SKU-2")])
    assert (result.accepted, result.duplicates) == (2, 1)
    assert len(stored(any_engine, sid)) == 2


def test_the_same_event_id_from_two_shoppers_is_two_events(any_engine):
    a, b = new_shopper(any_engine), new_shopper(any_engine)
    view = product_view("SKU-1")
    assert track(any_engine, a, [view]).accepted == 1
    assert track(any_engine, b, [view]).accepted == 1


def test_events_stored_by_another_worker_between_check_and_insert_count_as_duplicates(any_engine):
    """The race the unique constraint settles: the IntegrityError fallback."""
    sid = new_shopper(any_engine)
    raw = [product_view("SKU-1"), product_view("SKU-2"), product_view("SKU-3")]
    taken = raw[1]["id"]
    done = []

    def other_worker_wins(conn, cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO STOREEVENT") and not done:
            done.append(True)
            with session_scope(any_engine) as other:
                other.add(StoreEvent(event_id=taken, shopper_id=sid, kind="product_view", payload="{}"))

    event.listen(any_engine, "before_cursor_execute", other_worker_wins)
    try:
        result = track(any_engine, sid, raw)
    finally:
        event.remove(any_engine, "before_cursor_execute", other_worker_wins)
    assert (result.accepted, result.duplicates) == (2, 1)
    assert sorted(r.event_id for r in stored(any_engine, sid)) == sorted(e["id"] for e in raw)


def test_concurrent_retries_of_one_batch_store_each_event_once(any_engine):
    """Six workers all find nothing stored, then insert the same batch at once."""
    sid = new_shopper(any_engine)
    raw = [product_view(f"SKU-{i}") for i in range(10)]
    workers = 6
    everyone_checked = threading.Barrier(workers)
    waiting = threading.local()
    results, errors = [], []

    def before_insert(conn, cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO STOREEVENT") and getattr(waiting, "on", False):
            waiting.on = False
            everyone_checked.wait(timeout=30)

    def send() -> None:
        waiting.on = True
        try:
            results.append(track(any_engine, sid, raw))
        except Exception as exc:  # noqa: BLE001 - the test reports whatever escaped
            errors.append(exc)

    event.listen(any_engine, "before_cursor_execute", before_insert)
    try:
        threads = [threading.Thread(target=send) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
    finally:
        event.remove(any_engine, "before_cursor_execute", before_insert)
    assert errors == []
    assert sum(r.accepted for r in results) == 10
    assert sum(r.duplicates for r in results) == 10 * (workers - 1)
    assert len(stored(any_engine, sid)) == 10


# --------------------------------------------------------------------------- presence


def test_a_page_view_moves_the_shoppers_current_page(any_engine):
    sid = new_shopper(any_engine)
    first = track(any_engine, sid, [page_view(f"{STORE}/", "Home")])
    assert first.presence_changed
    track(any_engine, sid, [page_view(f"{STORE}/p/TENT-1", "Summit Tent"), product_view("TENT-1")])
    with Session(any_engine) as s:
        visit = s.exec(select(Visit).where(Visit.shopper_id == sid)).one()
    assert (visit.current_url, visit.current_title) == (f"{STORE}/p/TENT-1", "Summit Tent")
    assert visit.device == "desktop"


def test_the_latest_page_view_of_a_batch_is_the_current_page(any_engine):
    sid = new_shopper(any_engine)
    now = utcnow()
    track(any_engine, sid, [
        page_view(f"{STORE}/b", "B", at=(now - timedelta(seconds=5)).isoformat()),
        page_view(f"{STORE}/a", "A", at=(now - timedelta(seconds=30)).isoformat()),
    ], now=now)
    with Session(any_engine) as s:
        assert s.exec(select(Visit.current_url).where(Visit.shopper_id == sid)).one() == f"{STORE}/b"


def test_an_old_page_view_replayed_from_the_queue_is_history_not_presence(any_engine):
    sid = new_shopper(any_engine)
    now = utcnow()
    result = track(any_engine, sid, [page_view(at=(now - timedelta(hours=3)).isoformat())], now=now)
    assert result.accepted == 1
    assert not result.presence_changed
    row = stored(any_engine, sid)[0]
    assert row.visit_id is None
    with Session(any_engine) as s:
        assert s.exec(select(Visit).where(Visit.shopper_id == sid)).first() is None


def test_events_after_a_visit_ended_are_not_counted_in_it(any_engine):
    sid = new_shopper(any_engine)
    last_week = utcnow() - timedelta(days=7)
    track(any_engine, sid, [page_view(at=last_week.isoformat())], now=last_week)
    result = track(any_engine, sid, [product_view("A")])
    assert result.accepted == 1
    old_view, new_view = stored(any_engine, sid)
    assert old_view.visit_id is not None
    assert new_view.visit_id is None


def test_a_time_in_the_future_is_clamped_to_now_and_a_missing_time_is_now(any_engine):
    sid = new_shopper(any_engine)
    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    track(any_engine, sid, [
        product_view("A", at="2025-06-01T12:03:00Z"),   # within the clock skew allowed
        product_view("B", at="2030-01-01T00:00:00Z"),
        product_view("C"),
        product_view("D", at="2025-06-01T11:00:00"),    # no zone: UTC
    ], now=now)
    times = {json.loads(r.payload)["sku"]: r.occurred_at for r in stored(any_engine, sid)}
    assert times == {"A": now + timedelta(minutes=3), "B": now, "C": now, "D": now - timedelta(hours=1)}


# --------------------------------------------------------------------------- carts


def test_a_browser_cart_replaces_the_cart_at_catalog_prices(shop):
    sid = new_shopper(shop)
    track(shop, sid, [cart([("BAG-1", 1, 129.5)])])
    # The browser claims the tent costs 1 cent; a sku outside the catalog and one
    # priced in another currency get no line; a repeated sku adds up.
    result = track(shop, sid, [cart([("TENT-1", 1, 0.01), ("TENT-1", 2, 0.01), ("GHOST", 1, 5), ("EUR-1", 1, 50)])])
    assert result.accepted == 1
    c, lines = stored_cart(shop, sid)
    assert lines == [("TENT-1", 3, 19_900)]
    assert c.total_cents == 3 * 19_900
    # The event itself keeps what the store reported.
    payload = json.loads(stored(shop, sid)[-1].payload)
    assert [i["sku"] for i in payload["items"]] == ["TENT-1", "TENT-1", "GHOST", "EUR-1"]


def test_an_empty_cart_event_empties_the_cart(shop):
    sid = new_shopper(shop)
    track(shop, sid, [cart([("TENT-1", 1, 199)])])
    track(shop, sid, [cart([])])
    c, lines = stored_cart(shop, sid)
    assert (lines, c.total_cents) == ([], 0)


def test_the_latest_cart_of_a_batch_wins_and_a_late_retry_does_not_undo_it(shop):
    sid = new_shopper(shop)
    now = utcnow()
    old = cart([("BAG-1", 1, 129.5)], at=(now - timedelta(seconds=40)).isoformat())
    new = cart([("TENT-1", 1, 199)], at=(now - timedelta(seconds=10)).isoformat())
    track(shop, sid, [new, old], now=now)
    assert stored_cart(shop, sid)[1] == [("TENT-1", 1, 19_900)]
    later = cart([("BAG-1", 2, 129.5)], at=(now - timedelta(seconds=30)).isoformat())
    track(shop, sid, [later], now=now)
    assert stored_cart(shop, sid)[1] == [("TENT-1", 1, 19_900)]


def test_a_duplicate_cart_event_is_not_applied_again(shop):
    visitor_id = uuid.uuid4().hex[:24]
    sid = new_shopper(shop, visitor_id)
    first = cart([("TENT-1", 1, 199)])
    track(shop, sid, [first])
    since = tracking.parse_cart({"visitor": "token", "items": [{"sku": "TENT-1", "quantity": 1, "price": 199},
                                                               {"sku": "BAG-1", "quantity": 1, "price": 129.5}]})
    with session_scope(shop) as s:
        tracking.record_cart(s, since, visitor_id=visitor_id)  # the store's backend changed the cart since
    track(shop, sid, [first])
    assert stored_cart(shop, sid)[1] == [("BAG-1", 1, 12_950), ("TENT-1", 1, 19_900)]


# --------------------------------------------------------------------------- orders


def test_a_browser_order_is_an_event_only(shop):
    """The store's backend reports the order and the browser reports it too: one order, not two."""
    visitor_id = uuid.uuid4().hex[:24]
    sid = new_shopper(shop, visitor_id)
    number = "DS-1"
    with session_scope(shop) as s:
        tracking.record_order(s, server_order(number, customer_id=None, visitor="token",
                                              items=[{"sku": "TENT-1", "quantity": 1, "price": 199}], total=199),
                              visitor_id=visitor_id)
    track(shop, sid, [order(number, [("TENT-1", 1, 199)])])
    with Session(shop) as s:
        orders = s.exec(select(Order).where(Order.shopper_id == sid)).all()
    assert [o.external_id for o in orders] == [number]
    assert [r.kind for r in stored(shop, sid)] == ["order"]


def server_order(order_id: str = "W-1", **fields) -> tracking.ServerOrder:
    body = {"order_id": order_id, "customer_id": "cust-42",
            "items": [{"sku": "TENT-1", "quantity": 1, "price": 189.0},
                      {"sku": "BAG-1", "quantity": 2, "price": "120.50"},
                      {"sku": "GONE-9", "quantity": 1, "price": 10}],
            "total": 440.0, "currency": "USD", "ordered_at": "2025-05-01T10:00:00Z", **fields}
    return tracking.parse_order(body)


def test_a_server_order_is_stored_with_its_lines_at_the_stores_prices(shop):
    with session_scope(shop) as s:
        result = tracking.record_order(s, server_order())
    assert result.created
    assert result.ignored_skus == ["GONE-9"]
    with Session(shop) as s:
        o = s.exec(select(Order).where(Order.external_id == "W-1")).one()
        lines = s.exec(select(Product.sku, OrderLine.quantity, OrderLine.unit_price_cents)
                       .join(Product, col(Product.id) == OrderLine.product_id)
                       .where(OrderLine.order_id == o.id).order_by(col(Product.sku))).all()
        shopper = s.get(Shopper, o.shopper_id)
    assert (o.total_cents, o.source, o.ordered_at) == (44_000, "api", datetime(2025, 5, 1, 10, tzinfo=UTC))
    assert [tuple(line) for line in lines] == [("BAG-1", 2, 12_050), ("TENT-1", 1, 18_900)]
    assert shopper.customer_id == "cust-42"


def test_reporting_an_order_again_leaves_it_unchanged(shop):
    with session_scope(shop) as s:
        first = tracking.record_order(s, server_order())
    with session_scope(shop) as s:
        again = tracking.record_order(s, server_order(total=1.0, customer_id="someone-else"))
    assert not again.created
    assert (again.order_id, again.total_cents, again.shopper_id) == (first.order_id, 44_000, first.shopper_id)
    with Session(shop) as s:
        assert len(s.exec(select(Order)).all()) == 1


@pytest.fixture
def pg_shop(pg_engine) -> Engine:
    return _with_catalog(pg_engine)


def test_concurrent_reports_of_one_order_store_it_once(pg_shop):
    """Writers racing without the app's writer lock: on PostgreSQL, the database
    for several workers. (On SQLite every app write goes through write_scope,
    one writer at a time; unserialized writers there are refused by the FTS5
    shopper index's triggers with "database is locked".)"""
    shop = pg_shop
    workers = 4
    everyone_checked = threading.Barrier(workers)
    results, errors = [], []

    def report() -> None:
        try:
            with session_scope(shop) as s:
                event.listen(s, "before_flush", lambda *_: everyone_checked.wait(timeout=30), once=True)
                results.append(tracking.record_order(s, server_order()))
        except Exception as exc:  # noqa: BLE001 - the test reports whatever escaped
            errors.append(exc)

    threads = [threading.Thread(target=report) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert errors == []
    assert sum(r.created for r in results) == 1
    assert len({r.order_id for r in results}) == 1
    with Session(shop) as s:
        assert len(s.exec(select(Order)).all()) == 1
        assert len(s.exec(select(Shopper).where(Shopper.customer_id == "cust-42")).all()) == 1


def test_a_server_order_for_a_visitor_links_the_customer_to_that_visitor(shop):
    sid = new_shopper(shop, "visitor-abcdefghijklmnop")
    with session_scope(shop) as s:
        result = tracking.record_order(s, server_order(name="Ada Lovelace"),
                                       visitor_id="visitor-abcdefghijklmnop")
    assert result.shopper_id == sid
    with Session(shop) as s:
        shopper = s.get(Shopper, sid)
    assert (shopper.customer_id, shopper.name) == ("cust-42", "Ada Lovelace")


def test_a_server_cart_is_taken_at_the_stores_prices(shop):
    sid = new_shopper(shop, "visitor-abcdefghijklmnop")
    raw = {"visitor": "ignored-here", "items": [{"sku": "TENT-1", "quantity": 2, "price": 150},
                                                {"sku": "GHOST", "quantity": 1, "price": 1}]}
    with session_scope(shop) as s:
        result = tracking.record_cart(s, tracking.parse_cart(raw), visitor_id="visitor-abcdefghijklmnop")
    assert result.shopper_id == sid
    assert result.cart.ignored_skus == ["GHOST"]
    c, lines = stored_cart(shop, sid)
    assert lines == [("TENT-1", 2, 15_000)]
    assert c.total_cents == 30_000


def test_the_result_names_the_shoppers_open_conversation(any_engine):
    sid = new_shopper(any_engine)
    assert track(any_engine, sid, [product_view("A")]).conversation_id is None
    with session_scope(any_engine) as s:
        conv, _ = convs.start_conversation(s, sid)
    assert track(any_engine, sid, [product_view("B")]).conversation_id == conv.id


# --------------------------------------------------------------------------- validation


def refusal(raw) -> TrackingError:
    with pytest.raises(TrackingError) as info:
        tracking.parse_events(raw)
    return info.value


def only_problem(raw_event: dict) -> tuple[str, str]:
    detail = refusal([raw_event]).detail
    assert len(detail) == 1, detail
    assert detail[0]["event"] == 0
    return detail[0]["field"], detail[0]["message"]


def base(kind: str = "product_view", **fields) -> dict:
    data = {"product_view": {"sku": "A-1"}, "page_view": {},
            "cart": {"items": [{"sku": "A-1", "quantity": 1, "price": 1}]},
            "order": {"order_id": "O-1", "items": [{"sku": "A-1", "quantity": 1, "price": 1}], "total": 1}}[kind]
    return {"id": "event-0001", "kind": kind, "url": f"{STORE}/x", "data": data, **fields}


def with_line(**line) -> dict:
    return base("cart", data={"items": [{"sku": "A-1", "quantity": 1, "price": 1, **line}]})


@pytest.mark.parametrize(("raw", "field", "message"), [
    ({**base(), "kind": "wishlist"}, "kind", "unknown event kind 'wishlist'"),
    ({k: v for k, v in base().items() if k != "kind"}, "kind", "is required"),
    ({k: v for k, v in base().items() if k != "id"}, "id", "Field required"),
    (base(id="short"), "id", "8 to 64 characters"),
    (base(id="has spaces in it"), "id", "8 to 64 characters"),
    (base(id="x" * 65), "id", "8 to 64 characters"),
    (base(id=12345678), "id", "valid string"),
    (base(url="javascript:alert(document.cookie)"), "url", "http"),
    (base(url="data:text/html,<script>alert(1)</script>"), "url", "http"),
    (base(url="/relative/page"), "url", "http"),
    (base(url="https://shop.test/" + "a" * 2000), "url", "at most 2000 characters"),
    (base(url="https://shop.test/a b"), "url", "without spaces"),
    (base(url="https://shop.test/a\u3000b"), "url", "without spaces"),  # ideographic space
    (base(url="https://shop.test/a\x85"), "url", "control characters"),  # C1 control (NEL)
    (base(url=" https://shop.test/"), "url", "without spaces"),
    (base(data={"sku": "A\x07-1"}), "data.sku", "control characters"),
    (base(data={"sku": "A\x9f-1"}), "data.sku", "control characters"),
    (base(title="Tent \ud800"), "(event)", "not valid Unicode"),
    (base(url=["https://shop.test/"]), "url", "valid string"),
    (base(title="t" * 301), "title", "at most 300 characters"),
    (base(at="yesterday"), "at", "ISO 8601"),
    (base(at=1717171717), "at", "ISO 8601"),
    (base("page_view", url=""), "(event)", "needs the page's url"),
    (base("page_view", data={"url": "javascript:void(0)"}), "data.url", "http"),
    ({k: v for k, v in base().items() if k != "data"}, "data", "Field required"),
    (base(data="A-1"), "data", "valid dictionary"),
    (base(data={"sku": ""}), "data.sku", "at least 1 character"),
    (base(data={"sku": "S" * 65}), "data.sku", "at most 64 characters"),
    (base(data={"sku": 42}), "data.sku", "valid string"),
    (with_line(price=-1), "data.items.0.price", "must not be negative"),
    (with_line(price=1.999), "data.items.0.price", "at most two decimals"),
    (with_line(price="free"), "data.items.0.price", "must be a number"),
    (with_line(price=True), "data.items.0.price", "must be a number"),
    (with_line(price="NaN"), "data.items.0.price", "finite"),
    (with_line(quantity=0), "data.items.0.quantity", "greater than or equal to 1"),
    (with_line(quantity=1000), "data.items.0.quantity", "less than or equal to 999"),
    (with_line(quantity=1.5), "data.items.0.quantity", "valid integer"),
    (with_line(quantity="2"), "data.items.0.quantity", "valid integer"),
    (with_line(quantity=True), "data.items.0.quantity", "valid integer"),
    (base("cart", data={"items": "TENT-1"}), "data.items", "valid list"),
    (base("cart", data={"items": [], "currency": "dollars"}), "data.currency", "three-letter"),
    (base("cart", data={"items": [], "action": "DROP TABLE"}), "data.action", "lower-case word"),
    (base("order", data={"order_id": "O-1", "items": [], "total": 0}), "data.items", "at least 1 item"),
    (base("order", data={"order_id": "O-1", "items": [{"sku": "A", "quantity": 1, "price": 1}]}),
     "data.total", "Field required"),
])
def test_a_malformed_event_is_refused_with_the_field_and_the_reason(raw, field, message):
    got_field, got_message = only_problem(raw)
    assert got_field == field
    assert message in got_message


def test_every_bad_event_of_a_batch_is_reported_and_nothing_is_accepted():
    error = refusal([base(), base(url="javascript:x"), "not an event", base(id="no")])
    assert [(d["event"], d["field"]) for d in error.detail] == [(1, "url"), (2, "(event)"), (3, "id")]
    assert error.message == "3 of 4 events are invalid"
    assert not error.too_large


def test_an_event_over_8_kb_is_refused():
    big = base(title="x" * 300, data={"sku": "A-1", "note": "n" * 9000})
    field, message = only_problem(big)
    assert field == "(event)"
    assert message.endswith("one event may be at most 8,192")


@pytest.mark.parametrize(("raw", "too_large"), [
    (None, False), ({"kind": "page_view"}, False), ([], False), ([base()] * 51, True),
])
def test_a_batch_that_is_not_a_list_of_1_to_50_events_is_refused(raw, too_large):
    error = refusal(raw)
    assert error.detail[0]["field"] == "events"
    assert error.too_large is too_large


def test_control_characters_in_a_title_become_spaces_and_other_characters_stay():
    title = "Caf\u00e9\x00\x1f\x7f\x9fMenu\u200b\u00a0\u2028 \U0001f600"
    (ev,) = tracking.parse_events([base("page_view", title=title)])
    # Controls (Unicode category Cc: U+0000-001F, U+007F-009F) become spaces, then every run of
    # white space one space; a zero-width space (a format character) and emoji stay.
    assert ev.title == "Caf\u00e9 Menu\u200b \U0001f600"
    (ev,) = tracking.parse_events([base(data={"sku": " A-\u00e91\u200b "})])
    assert ev.data.sku == "A-\u00e91\u200b"


def test_an_event_nested_too_deeply_to_measure_is_refused_not_a_crash():
    event = base()
    inner = event["data"]["extra"] = []
    for _ in range(5000):  # decodable only from Python, not from a body (read_json stops at 1,000)
        inner.append([])
        inner = inner[0]
    field, message = only_problem(event)
    assert (field, message) == ("(event)", "is nested too deeply")


def test_events_are_measured_and_stored_in_the_json_that_json_dumps_writes():
    """`compact_json` skips json's per-call setup; its text must not differ."""
    import random

    rng = random.Random(3)

    def value(depth: int = 0):
        if depth > 4 or rng.random() < 0.3:
            return rng.choice([0, -7, 3.5, 12.5, 1e16, 1e-7, 10**30, True, False, None, "", "Caf\u00e9 \u200b",
                               '"q" \\ /', "\n\t\x01", "\U0001f600", float("inf")])
        if rng.random() < 0.5:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {f"k{rng.randint(0, 99)}\u00e9": value(depth + 1) for _ in range(rng.randint(0, 4))}

    for _ in range(2000):
        v = value()
        assert tracking.schema.compact_json(v) == json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def test_an_address_taken_without_urlsplit_is_one_urlsplit_takes():
    """The plain-address shortcut accepts nothing that the full check refuses."""
    import random
    import string
    from urllib.parse import urlsplit

    rng = random.Random(5)
    alphabet = string.ascii_letters + string.digits + "._~%!$&'()*+,;=:@-/?#[]\u00e9"
    shortcut = 0
    for _ in range(20_000):
        prefix = rng.choice(["http://", "https://", "HTTP://", "hTTps://", "http:/", "http:", "ftp://", "http:///",
                             "https://[", "", "//"])
        url = prefix + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        if tracking.schema._PLAIN_HTTP_URL_RE.fullmatch(url):
            shortcut += 1
            parts = urlsplit(url)
            assert parts.scheme.lower() in ("http", "https") and parts.netloc, url
    assert shortcut > 1000


def test_unknown_fields_are_dropped_and_text_is_normalised():
    (ev,) = tracking.parse_events([base("page_view", title="  Summer\n\tsale  ", extra={"a": 1},
                                        referrer="android-app://com.google.android.gm/")])
    assert ev.title == "Summer sale"
    assert ev.referrer == ""  # not an http(s) address: dropped, the page view kept


def test_a_server_order_must_name_a_customer_or_a_visitor():
    with pytest.raises(TrackingError) as info:
        tracking.parse_order({"order_id": "W-1", "items": [{"sku": "A", "quantity": 1, "price": 1}], "total": 1})
    assert "customer_id or visitor" in info.value.detail[0]["message"]
