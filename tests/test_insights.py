"""The shopper panel's insights (current session and history) on hand-built data
with known answers, on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlmodel import Session

from chatdash.db import session_scope
from chatdash.models import Cart, CartLine, EventKind, Order, OrderLine, Product, Shopper, StoreEvent, Visit
from chatdash.services import insights

STORE = "https://shop.test"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A = T0 - timedelta(days=20)  # first past visit
B = T0 - timedelta(days=5)  # second past visit
C = T0  # current visit
ORPHAN_PAST = T0 - timedelta(days=15)  # a product view reported without a visit, between visits
PAGE = EventKind.PAGE_VIEW.value
VIEW = EventKind.PRODUCT_VIEW.value
CART = EventKind.CART.value


def m(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


@dataclass
class Shop:
    products: dict[str, int]  # name -> id
    shopper_id: int
    visits: dict[str, int]  # "past1", "past2", "current" -> id
    other_shopper_id: int


_event_ids = itertools.count(1)


class Builder:
    """Adds rows for one shopper with explicit times."""

    def __init__(self, session: Session, shopper: Shopper, products: dict[str, Product]) -> None:
        self.s, self.shopper, self.products = session, shopper, products

    def visit(self, start: datetime, end: datetime, url: str = "", title: str = "",
              device: str = "desktop", browser: str = "Chrome", os: str = "Windows") -> int:
        v = Visit(shopper_id=self.shopper.id, device=device, browser=browser, os=os, started_at=start,
                  last_seen_at=end, current_url=url, current_title=title)
        self.s.add(v)
        self.s.flush()
        return v.id

    def page(self, visit_id: int | None, at: datetime, path: str, title: str) -> None:
        self._event(visit_id, at, PAGE, f"{STORE}{path}", title)

    def view(self, visit_id: int | None, at: datetime, name: str, kind: str = VIEW) -> None:
        p = self.products[name]
        self._event(visit_id, at, kind, p.url, f"{name} | Shop", p.id)

    def _event(self, visit_id: int | None, at: datetime, kind: str, url: str, title: str,
               product_id: int | None = None) -> None:
        self.s.add(StoreEvent(event_id=f"e{next(_event_ids)}", shopper_id=self.shopper.id, visit_id=visit_id,
                              kind=kind, url=url, title=title, product_id=product_id, occurred_at=at,
                              received_at=at))

    def order(self, external_id: str, at: datetime, lines: list[tuple[str, int]]) -> None:
        total = sum(self.products[n].price_cents * q for n, q in lines)
        o = Order(external_id=external_id, shopper_id=self.shopper.id, total_cents=total, ordered_at=at)
        self.s.add(o)
        self.s.flush()
        self.s.add_all(OrderLine(order_id=o.id, product_id=self.products[n].id, quantity=q,
                                 unit_price_cents=self.products[n].price_cents) for n, q in lines)

    def cart(self, lines: list[tuple[str, int]]) -> None:
        total = sum(self.products[n].price_cents * q for n, q in lines)
        cart = Cart(shopper_id=self.shopper.id, total_cents=total, updated_at=T0)
        self.s.add(cart)
        self.s.flush()
        self.s.add_all(CartLine(cart_id=cart.id, product_id=self.products[n].id, quantity=q,
                                unit_price_cents=self.products[n].price_cents) for n, q in lines)


PRICES = {"Alpha Shoe": 12_000, "Bravo Sock": 1_500, "Charlie Mat": 4_999, "Delta Tent": 30_000,
          "Echo Cap": 2_500, "Foxtrot Mug": 1_200}


def _shopper(s: Session, visitor: str, created_at: datetime) -> Shopper:
    shopper = Shopper(visitor_id=visitor, created_at=created_at, last_seen_at=created_at)
    s.add(shopper)
    s.flush()
    return shopper


@pytest.fixture
def shop(any_engine) -> Shop:
    """A shopper with two past visits, the current visit, a cart and three orders,
    and another shopper active at the same times (whose rows must never show)."""
    with session_scope(any_engine) as s:
        products = {}
        for i, (name, price) in enumerate(PRICES.items()):
            sku = f"SKU-{i + 1}"
            products[name] = Product(sku=sku, name=name, category="Test", price_cents=price,
                                     url=f"{STORE}/product/{sku}", image_url=f"{STORE}/img/{sku}.svg")
        s.add_all(products.values())
        s.flush()

        b = Builder(s, _shopper(s, "visitor-main", T0 - timedelta(days=10)), products)
        past1 = b.visit(A, A + m(30))
        b.page(past1, A + m(1), "/", "Home")
        b.view(past1, A + m(2), "Alpha Shoe")
        b.view(past1, A + m(3), "Bravo Sock")
        b.view(past1, A + m(4), "Alpha Shoe")
        b.view(past1, A + m(5), "Charlie Mat")
        b.view(None, ORPHAN_PAST, "Foxtrot Mug")
        past2 = b.visit(B, B + m(30))
        b.view(past2, B + m(1), "Bravo Sock")
        b.view(past2, B + m(2), "Charlie Mat")
        b.view(past2, B + m(3), "Echo Cap")
        b.view(past2, B + m(3), "Delta Tent")  # same time as Echo Cap: the name decides
        current = b.visit(C, C + m(10), f"{STORE}/product/SKU-1", "Alpha Shoe | Shop",
                          device="mobile", browser="Mobile Safari", os="iOS")
        b.page(current, C, "/", "Home")
        b.view(current, C + m(1), "Alpha Shoe")
        b.page(current, C + m(1) + timedelta(seconds=2), "/product/SKU-1", "Alpha Shoe | Shop")  # same page
        b.page(current, C + m(2), "/category/test", "Test")
        b.view(current, C + m(3), "Delta Tent")
        b.view(current, C + m(4), "Alpha Shoe")
        b.view(None, C + m(5), "Echo Cap")  # no visit id, but within the current visit
        b.view(current, C + m(6), "Echo Cap", kind=CART)  # a cart change is not a page
        b.view(None, C + m(11), "Bravo Sock")  # no visit id, after the visit: in neither
        b.order("O-1", A + timedelta(days=1), [("Alpha Shoe", 1), ("Bravo Sock", 3)])  # 16_500, 4 items
        b.order("O-2", B + m(20), [("Delta Tent", 1)])  # 30_000, 1 item
        b.order("O-3", B + m(25), [("Foxtrot Mug", 2), ("Echo Cap", 1), ("Charlie Mat", 1)])  # 9_899, 4 items
        b.cart([("Charlie Mat", 2), ("Bravo Sock", 1)])

        other = Builder(s, _shopper(s, "visitor-other", T0 - timedelta(days=100)), products)
        other_visit = other.visit(C - m(1), C + m(20), f"{STORE}/other", "Other")
        for k in range(5):
            other.view(other_visit, C + m(k), "Foxtrot Mug")
            other.view(None, B + m(k), "Foxtrot Mug")
        other.order("X-1", C, [("Delta Tent", 5)])
        other.cart([("Delta Tent", 1)])

        return Shop({n: p.id for n, p in products.items()}, b.shopper.id,
                    {"past1": past1, "past2": past2, "current": current}, other.shopper.id)


def _aware_utc(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() == timedelta(0)


# --------------------------------------------------------------------------- current session


def test_current_session_is_the_latest_visit_with_its_device_and_page(any_engine, shop):
    with Session(any_engine) as s:
        summary = insights.current_session(s, shop.shopper_id)
    assert summary.visit_id == shop.visits["current"]
    assert (summary.device, summary.browser, summary.os) == ("mobile", "Mobile Safari", "iOS")
    assert (summary.started_at, summary.last_seen_at) == (C, C + m(10))
    assert (summary.current_url, summary.current_title) == (f"{STORE}/product/SKU-1", "Alpha Shoe | Shop")


def test_pages_are_this_visits_pages_newest_first(any_engine, shop):
    with Session(any_engine) as s:
        summary = insights.current_session(s, shop.shopper_id)
    # The page view reported 2 s after the product view of the same URL is one page;
    # the cart change is not a page; the visit-less view inside the visit counts.
    assert [(p.url, p.at) for p in summary.pages] == [
        (f"{STORE}/product/SKU-5", C + m(5)),
        (f"{STORE}/product/SKU-1", C + m(4)),
        (f"{STORE}/product/SKU-4", C + m(3)),
        (f"{STORE}/category/test", C + m(2)),
        (f"{STORE}/product/SKU-1", C + m(1)),
        (f"{STORE}/", C),
    ]
    assert summary.pages_viewed == 6
    assert summary.pages[-1].title == "Home"
    assert all(_aware_utc(p.at) for p in summary.pages)


def test_items_viewed_are_distinct_products_newest_first_with_catalog_details(any_engine, shop):
    with Session(any_engine) as s:
        summary = insights.current_session(s, shop.shopper_id)
    assert [(i.name, i.at) for i in summary.items_viewed] == [
        ("Echo Cap", C + m(5)), ("Alpha Shoe", C + m(4)), ("Delta Tent", C + m(3))]
    echo = summary.items_viewed[0]
    assert echo == insights.ViewedItem(shop.products["Echo Cap"], "SKU-5", "Echo Cap", 2_500, "USD",
                                       f"{STORE}/product/SKU-5", f"{STORE}/img/SKU-5.svg", C + m(5))
    assert _aware_utc(echo.at)


def test_cart_comes_from_the_stored_cart_lines_in_order_added(any_engine, shop):
    with Session(any_engine) as s:
        summary = insights.current_session(s, shop.shopper_id)
    assert summary.cart_items == [
        insights.CartItem(shop.products["Charlie Mat"], "SKU-3", "Charlie Mat", 2, 4_999),
        insights.CartItem(shop.products["Bravo Sock"], "SKU-2", "Bravo Sock", 1, 1_500),
    ]
    assert (summary.cart_total_cents, summary.cart_currency) == (11_498, "USD")


def test_pages_list_is_capped_but_the_count_is_not(any_engine, shop):
    with session_scope(any_engine) as s:
        b = Builder(s, s.get(Shopper, shop.shopper_id), {})
        for k in range(insights.MAX_PAGES + 10):
            b.page(shop.visits["current"], C + m(6) + timedelta(seconds=10 * k), f"/p{k}", f"P{k}")
    with Session(any_engine) as s:
        summary = insights.current_session(s, shop.shopper_id)
    assert summary.pages_viewed == 6 + insights.MAX_PAGES + 10
    assert len(summary.pages) == insights.MAX_PAGES
    assert summary.pages[0].title == f"P{insights.MAX_PAGES + 9}"


def test_a_shopper_who_never_visited_has_no_current_session(any_engine, shop):
    with session_scope(any_engine) as s:
        new_id = _shopper(s, "visitor-new", T0).id
    with Session(any_engine) as s:
        assert insights.current_session(s, new_id) is None
        assert insights.current_session(s, 999_999) is None


# --------------------------------------------------------------------------- history


def test_history_orders_count_total_and_newest_first(any_engine, shop):
    with Session(any_engine) as s:
        history = insights.shopper_history(s, shop.shopper_id, shop.visits["current"])
    assert history.orders_count == 3
    assert (history.total_spent_cents, history.currency) == (16_500 + 30_000 + 9_899, "USD")
    assert history.orders == [
        insights.OrderSummary("O-3", B + m(25), 9_899, "USD", 4),
        insights.OrderSummary("O-2", B + m(20), 30_000, "USD", 1),
        insights.OrderSummary("O-1", A + timedelta(days=1), 16_500, "USD", 4),
    ]
    assert all(_aware_utc(o.ordered_at) for o in history.orders)


def test_most_viewed_excludes_the_current_visit_and_breaks_ties_deterministically(any_engine, shop):
    with Session(any_engine) as s:
        history = insights.shopper_history(s, shop.shopper_id, shop.visits["current"])
    # views desc, then last viewed desc, then name: Delta and Echo were both last viewed at B+3m.
    assert [(v.name, v.views) for v in history.most_viewed] == [
        ("Charlie Mat", 2),  # last viewed B+2m
        ("Bravo Sock", 2),  # B+1m (its visit-less view after the current visit is not history)
        ("Alpha Shoe", 2),  # A+4m; its 2 views in the current visit do not count
        ("Delta Tent", 1),  # B+3m
        ("Echo Cap", 1),  # B+3m; its visit-less view inside the current visit does not count
        ("Foxtrot Mug", 1),  # the visit-less view between visits counts
    ]
    top = history.most_viewed[0]
    assert top == insights.ViewedProduct(shop.products["Charlie Mat"], "SKU-3", "Charlie Mat",
                                         f"{STORE}/product/SKU-3", 2)


def test_history_counts_previous_visits_and_first_seen(any_engine, shop):
    with Session(any_engine) as s:
        history = insights.shopper_history(s, shop.shopper_id, shop.visits["current"])
        without_current = insights.shopper_history(s, shop.shopper_id)
    assert history.previous_visits == 2
    assert without_current.previous_visits == 3
    # The first visit (A) is earlier than the shopper row (created T0 - 10 days).
    assert history.first_seen == A
    assert _aware_utc(history.first_seen)
    assert history.is_returning


def test_most_viewed_is_capped_at_ten(any_engine, shop):
    with session_scope(any_engine) as s:
        extra = {}
        for k in range(12):
            p = Product(sku=f"X-{k:02d}", name=f"Extra {k:02d}", category="Test", price_cents=100,
                        url=f"{STORE}/product/X-{k:02d}")
            s.add(p)
            extra[p.name] = p
        s.flush()
        b = Builder(s, s.get(Shopper, shop.shopper_id), extra)
        for name in extra:
            for _ in range(3):
                b.view(shop.visits["past2"], B + m(10), name)
    with Session(any_engine) as s:
        history = insights.shopper_history(s, shop.shopper_id, shop.visits["current"])
    assert [v.name for v in history.most_viewed] == [f"Extra {k:02d}" for k in range(10)]


def test_a_new_shopper_has_an_empty_history(any_engine, shop):
    with session_scope(any_engine) as s:
        new = _shopper(s, "visitor-new", T0)
        visit_id = Builder(s, new, {}).visit(T0, T0 + m(1))
    with Session(any_engine) as s:
        history = insights.shopper_history(s, new.id, visit_id)
        summary = insights.current_session(s, new.id)
    assert history == insights.ShopperHistory(
        first_seen=T0, previous_visits=0, orders_count=0, total_spent_cents=0, currency="USD",
        orders=[], most_viewed=[], is_returning=False)
    assert (summary.pages_viewed, summary.pages, summary.items_viewed) == (0, [], [])
    assert (summary.cart_total_cents, summary.cart_currency, summary.cart_items) == (0, "USD", [])


def test_an_unknown_shopper_has_an_empty_history(any_engine):
    with Session(any_engine) as s:
        history = insights.shopper_history(s, 424_242)
    assert (history.first_seen, history.orders_count, history.most_viewed, history.is_returning) == (
        None, 0, [], False)


def test_imported_orders_older_than_the_shopper_row_set_first_seen_and_returning(any_engine, shop):
    # Order import creates the shopper at import time, with orders from long before.
    with session_scope(any_engine) as s:
        imported = _shopper(s, "visitor-imported", T0)
        products = {p.name: p for p in (s.get(Product, i) for i in shop.products.values())}
        Builder(s, imported, products).order("IMP-1", T0 - timedelta(days=400), [("Echo Cap", 2)])
    with Session(any_engine) as s:
        history = insights.shopper_history(s, imported.id)
    assert history.first_seen == T0 - timedelta(days=400)
    assert (history.orders_count, history.total_spent_cents, history.previous_visits) == (1, 5_000, 0)
    assert history.is_returning


def test_events_without_visit_ids_are_placed_by_time(any_engine, shop):
    with session_scope(any_engine) as s:
        shopper = _shopper(s, "visitor-no-ids", T0 - timedelta(days=3))
        products = {p.name: p for p in (s.get(Product, i) for i in shop.products.values())}
        b = Builder(s, shopper, products)
        b.view(None, T0 - timedelta(days=2), "Delta Tent")  # an earlier session with no visit row
        b.view(None, T0 - timedelta(days=2) + m(1), "Delta Tent")
        visit_id = b.visit(T0, T0 + m(5))
        b.page(None, T0, "/", "Home")
        b.view(None, T0 + m(2), "Bravo Sock")
        b.view(None, T0 + m(3), "Alpha Shoe")
        b.view(None, T0 + m(6), "Echo Cap")  # after last seen
    with Session(any_engine) as s:
        summary = insights.current_session(s, shopper.id)
        history = insights.shopper_history(s, shopper.id, summary.visit_id)
    assert summary.visit_id == visit_id
    assert [p.title for p in summary.pages] == ["Alpha Shoe | Shop", "Bravo Sock | Shop", "Home"]
    assert [i.name for i in summary.items_viewed] == ["Alpha Shoe", "Bravo Sock"]
    # Echo Cap's view after the visit's last sign of life is in neither.
    assert [(v.name, v.views) for v in history.most_viewed] == [("Delta Tent", 2)]
    assert history.previous_visits == 0
    assert history.first_seen == T0 - timedelta(days=3)
    assert history.is_returning  # viewed products before this visit


def test_events_frame_is_typed_and_utc_even_when_empty(any_engine, shop):
    with Session(any_engine) as s:
        frame = insights.events_frame(s, shop.shopper_id)
        empty = insights.events_frame(s, 424_242)
    assert list(frame.columns) == list(insights.EVENT_DTYPES)
    assert {c: str(t) for c, t in frame.dtypes.items()} == {c: str(t) for c, t in empty.dtypes.items()}
    assert str(frame["occurred_at"].dtype) == "datetime64[us, UTC]"
    assert str(frame["visit_id"].dtype) == "Int64"
    assert len(frame) == 19 and empty.empty
    assert frame["occurred_at"].is_monotonic_increasing
    assert frame["occurred_at"].iloc[0] == pd.Timestamp(A + m(1))
    assert frame["visit_id"].isna().sum() == 3


def test_a_view_with_the_current_visit_id_but_an_earlier_clock_is_not_history(any_engine, shop):
    # Event times come from the shopper's browser clock, which may run behind.
    with session_scope(any_engine) as s:
        products = {p.name: p for p in (s.get(Product, i) for i in shop.products.values())}
        Builder(s, s.get(Shopper, shop.shopper_id), products).view(shop.visits["current"], C - m(1), "Foxtrot Mug")
    with Session(any_engine) as s:
        summary = insights.current_session(s, shop.shopper_id)
        history = insights.shopper_history(s, shop.shopper_id, summary.visit_id)
    assert summary.items_viewed[-1].name == "Foxtrot Mug"
    assert summary.pages_viewed == 7
    assert ("Foxtrot Mug", 1) in [(v.name, v.views) for v in history.most_viewed]


def test_a_page_reported_twice_shows_the_title_it_had_last():
    """The embed reports a page view as the page loads, before a single-page
    store has set the product's title; the store's product view comes a moment later."""
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    events = pd.DataFrame({
        "kind": ["page_view", "product_view", "page_view", "page_view"],
        "url": ["https://shop.test/p/1", "https://shop.test/p/1", "https://shop.test/cart", "https://shop.test/cart"],
        "title": ["Demo Store", "Summit Tent · Demo Store", "Cart · Demo Store", "Order 7 confirmed · Demo Store"],
        "occurred_at": pd.to_datetime([at, at + timedelta(seconds=1), at + timedelta(seconds=30),
                                       at + timedelta(seconds=32)], utc=True),
    })
    pages = insights.page_views(events)
    # The confirmation shown in place of the cart, at the same address, is a page of its own.
    assert list(zip(pages["title"], pages["occurred_at"], strict=True)) == [
        ("Order 7 confirmed · Demo Store", pd.Timestamp(at + timedelta(seconds=32))),
        ("Cart · Demo Store", pd.Timestamp(at + timedelta(seconds=30))),
        ("Summit Tent · Demo Store", pd.Timestamp(at)),
    ]
