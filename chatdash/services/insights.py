"""What the admin's shopper panel shows: the shopper's current browsing session
and their history, computed with pandas from that one shopper's stored rows.

Every query is limited to one shopper (a few thousand rows at most), so the
panel can be recomputed on each live event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import and_, func, or_
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session, col, select

from chatdash.models import Cart, CartLine, EventKind, Order, OrderLine, Product, Shopper, StoreEvent, Visit
from chatdash.services.conversations import live_visit

#: Event kinds that are a page the shopper looked at.
PAGE_KINDS = (EventKind.PAGE_VIEW.value, EventKind.PRODUCT_VIEW.value)
MAX_PAGES = 50
MAX_ITEMS = 50
MAX_ORDERS = 20
MOST_VIEWED = 10
DEFAULT_CURRENCY = "USD"
# A store may report one product page both as a page view and as a product view:
# the same URL again this soon after counts as the same page.
SAME_PAGE = timedelta(seconds=5)

EVENT_DTYPES: dict[str, str] = {
    "id": "int64",
    "kind": "string",
    "url": "string",
    "title": "string",
    "product_id": "Int64",  # nullable: a page view has none
    "visit_id": "Int64",  # nullable: events may arrive without a visit
    "occurred_at": "datetime64[us, UTC]",
}


@dataclass(frozen=True)
class PageView:
    url: str
    title: str
    at: datetime


@dataclass(frozen=True)
class ViewedItem:
    product_id: int
    sku: str
    name: str
    price_cents: int
    currency: str
    url: str
    image_url: str
    at: datetime  # last viewed


@dataclass(frozen=True)
class CartItem:
    product_id: int
    sku: str
    name: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class SessionSummary:
    visit_id: int
    device: str
    browser: str
    os: str
    started_at: datetime
    last_seen_at: datetime
    current_url: str
    current_title: str
    pages_viewed: int
    pages: list[PageView]  # newest first, at most MAX_PAGES
    items_viewed: list[ViewedItem]  # distinct products, newest first, at most MAX_ITEMS
    cart_total_cents: int
    cart_currency: str
    cart_items: list[CartItem]


@dataclass(frozen=True)
class OrderSummary:
    external_id: str
    ordered_at: datetime
    total_cents: int
    currency: str
    items: int  # number of items (sum of line quantities)


@dataclass(frozen=True)
class ViewedProduct:
    product_id: int
    sku: str
    name: str
    url: str
    views: int


@dataclass(frozen=True)
class ShopperHistory:
    first_seen: datetime | None
    previous_visits: int
    orders_count: int
    total_spent_cents: int  # orders in `currency` only: a sum across currencies means nothing
    currency: str
    orders: list[OrderSummary]  # newest first, at most MAX_ORDERS
    most_viewed: list[ViewedProduct]  # before the current visit, at most MOST_VIEWED
    is_returning: bool


# --------------------------------------------------------------------------- frames


def _utc(values: Sequence[Any]) -> pd.DatetimeIndex:
    """Timezone-aware UTC datetimes: naive values (SQLite) are taken as UTC."""
    return pd.to_datetime(list(values), utc=True).as_unit("us")


def _frame(rows: Sequence[Any], dtypes: dict[str, str]) -> pd.DataFrame:
    """Query rows as a DataFrame with exactly these columns and dtypes (also when empty).
    Built column by column: several times faster than DataFrame(rows).astype(...)
    on the few dozen rows a shopper usually has."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(dtypes)
    return pd.DataFrame(
        {
            name: _utc(values) if dtype.startswith("datetime64") else pd.array(list(values), dtype=dtype)
            for (name, dtype), values in zip(dtypes.items(), columns, strict=True)
        },
        copy=False,
    )


def events_frame(
    session: Session,
    shopper_id: int,
    *,
    kinds: Iterable[str] | None = None,
    where: ColumnElement[bool] | None = None,
) -> pd.DataFrame:
    """One shopper's store events, oldest first, typed as EVENT_DTYPES.
    `kinds` and `where` narrow the rows in SQL."""
    stmt = select(
        StoreEvent.id, StoreEvent.kind, StoreEvent.url, StoreEvent.title,
        StoreEvent.product_id, StoreEvent.visit_id, StoreEvent.occurred_at,
    ).where(StoreEvent.shopper_id == shopper_id)
    if kinds is not None:
        stmt = stmt.where(col(StoreEvent.kind).in_(list(kinds)))
    if where is not None:
        stmt = stmt.where(where)
    stmt = stmt.order_by(col(StoreEvent.occurred_at), col(StoreEvent.id))
    return _frame(session.exec(stmt).all(), EVENT_DTYPES)


@dataclass(frozen=True)
class _ProductRow:
    sku: str
    name: str
    price_cents: int
    currency: str
    url: str
    image_url: str


def _products(session: Session, product_ids: Iterable[int]) -> dict[int, _ProductRow]:
    ids = sorted({int(i) for i in product_ids})
    if not ids:
        return {}
    rows = session.exec(
        select(Product.id, Product.sku, Product.name, Product.price_cents, Product.currency,
               Product.url, Product.image_url).where(col(Product.id).in_(ids))
    ).all()
    return {pid: _ProductRow(*rest) for pid, *rest in rows}


def _in_visit(visit: Visit) -> ColumnElement[bool]:
    """Events of this visit; events without a visit id count by their time."""
    return or_(
        StoreEvent.visit_id == visit.id,
        and_(col(StoreEvent.visit_id).is_(None),
             StoreEvent.occurred_at >= visit.started_at, StoreEvent.occurred_at <= visit.last_seen_at),
    )


def _py(ts: pd.Timestamp) -> datetime:
    return ts.to_pydatetime()


# --------------------------------------------------------------------------- current session


def page_views(events: pd.DataFrame) -> pd.DataFrame:
    """The pages among these events (oldest first, as events_frame gives them),
    newest first, one row per page looked at."""
    pages = events[events["kind"].isin(PAGE_KINDS)]
    previous = pages.shift()
    product_view = EventKind.PRODUCT_VIEW.value
    # The same address again soon is the same page, unless it is a page view
    # under another title (a confirmation shown in place of the cart).
    repeat = ((pages["url"] == previous["url"]).fillna(False)
              & (pages["occurred_at"] - previous["occurred_at"] <= SAME_PAGE).fillna(False)
              & ((pages["title"] == previous["title"]).fillna(False) | (pages["kind"] == product_view)
                 | (previous["kind"] == product_view).fillna(False))).astype(bool)
    # A page reported twice counts from its first report, under the title of
    # its last: a page that sets its title as it renders has it by then.
    title = pages["title"].groupby((~repeat).cumsum()).transform("last")
    return pages.assign(title=title)[~repeat].iloc[::-1]


def _items_viewed(session: Session, events: pd.DataFrame) -> list[ViewedItem]:
    views = events[(events["kind"] == EventKind.PRODUCT_VIEW.value) & events["product_id"].notna()]
    # Events are oldest first: each product's last row is its latest view.
    latest = views.drop_duplicates("product_id", keep="last").iloc[::-1].head(MAX_ITEMS)
    products = _products(session, latest["product_id"])
    items = []
    for pid, at in zip(latest["product_id"], latest["occurred_at"], strict=True):
        p = products.get(int(pid))
        if p is not None:  # deleted from the catalog meanwhile
            items.append(ViewedItem(int(pid), p.sku, p.name, p.price_cents, p.currency, p.url, p.image_url,
                                    _py(at)))
    return items


def _cart(session: Session, shopper_id: int) -> tuple[int, str, list[CartItem]]:
    cart = session.exec(select(Cart).where(Cart.shopper_id == shopper_id)).first()
    if cart is None:
        return 0, DEFAULT_CURRENCY, []
    rows = session.exec(
        select(CartLine, Product)
        .join(Product, col(Product.id) == CartLine.product_id)
        .where(CartLine.cart_id == cart.id)
        .order_by(col(CartLine.id))
    ).all()
    items = [CartItem(p.id, p.sku, p.name, line.quantity, line.unit_price_cents) for line, p in rows]
    return cart.total_cents, cart.currency, items


def current_session(session: Session, shopper_id: int, *, window_seconds: int = 60) -> SessionSummary | None:
    """The shopper's live visit (on site now, on whichever device; else their
    latest): device, pages, items viewed and the live cart. None when the
    shopper has never visited."""
    visit = live_visit(session, shopper_id, window_seconds=window_seconds)
    if visit is None:
        return None
    events = events_frame(session, shopper_id, kinds=PAGE_KINDS, where=_in_visit(visit))
    pages = page_views(events)
    total, currency, cart_items = _cart(session, shopper_id)
    return SessionSummary(
        visit_id=visit.id,
        device=visit.device,
        browser=visit.browser,
        os=visit.os,
        started_at=visit.started_at,
        last_seen_at=visit.last_seen_at,
        current_url=visit.current_url,
        current_title=visit.current_title,
        pages_viewed=len(pages),
        pages=[PageView(r.url, r.title, _py(r.occurred_at)) for r in pages.head(MAX_PAGES).itertuples(index=False)],
        items_viewed=_items_viewed(session, events),
        cart_total_cents=total,
        cart_currency=currency,
        cart_items=cart_items,
    )


# --------------------------------------------------------------------------- history


def _orders(session: Session, shopper_id: int) -> pd.DataFrame:
    orders = _frame(
        session.exec(
            select(Order.id, Order.external_id, Order.ordered_at, Order.total_cents, Order.currency)
            .where(Order.shopper_id == shopper_id)
        ).all(),
        {"id": "int64", "external_id": "string", "ordered_at": "datetime64[us, UTC]",
         "total_cents": "int64", "currency": "string"},
    )
    lines = _frame(
        session.exec(
            select(OrderLine.order_id, OrderLine.quantity)
            .join(Order, col(Order.id) == OrderLine.order_id)
            .where(Order.shopper_id == shopper_id)
        ).all(),
        {"order_id": "int64", "quantity": "int64"},
    )
    items = lines.groupby("order_id")["quantity"].sum()
    orders["items"] = orders["id"].map(items).fillna(0).astype("int64")
    return orders.sort_values(["ordered_at", "id"], ascending=False)


def _most_viewed(session: Session, shopper_id: int, current: Visit | None) -> list[ViewedProduct]:
    """The products this shopper looked at most (before `current`, the visit in
    progress), counted in SQL: a heavy shopper has thousands of views."""
    views = func.count().label("views")
    last_viewed = func.max(StoreEvent.occurred_at).label("last_viewed")
    stmt = (
        select(Product.id, Product.sku, Product.name, Product.url, views)
        .join(StoreEvent, col(StoreEvent.product_id) == Product.id)
        .where(StoreEvent.shopper_id == shopper_id, StoreEvent.kind == EventKind.PRODUCT_VIEW.value)
        .group_by(col(Product.id), col(Product.sku), col(Product.name), col(Product.url))
        .order_by(views.desc(), last_viewed.desc(), col(Product.name), col(Product.id))
        .limit(MOST_VIEWED)
    )
    if current is not None:
        # Before the current visit only: a visit-less view reported after its last
        # heartbeat most likely belongs to it too.
        stmt = stmt.where(
            StoreEvent.occurred_at < current.started_at,
            or_(col(StoreEvent.visit_id).is_(None), StoreEvent.visit_id != current.id),
        )
    return [ViewedProduct(pid, sku, name, url, int(n)) for pid, sku, name, url, n in session.exec(stmt).all()]


def shopper_history(session: Session, shopper_id: int, current_visit_id: int | None = None) -> ShopperHistory:
    """Past orders, product views before the current visit, first seen and previous
    visits. Without `current_visit_id` every visit and view counts as past."""
    shopper = session.get(Shopper, shopper_id)
    if shopper is None:
        return ShopperHistory(None, 0, 0, 0, DEFAULT_CURRENCY, [], [], False)
    visits = _frame(
        session.exec(select(Visit.id, Visit.started_at).where(Visit.shopper_id == shopper_id)).all(),
        {"id": "int64", "started_at": "datetime64[us, UTC]"},
    )
    current = session.get(Visit, current_visit_id) if current_visit_id is not None else None
    previous_visits = int((visits["id"] != current_visit_id).sum())

    orders = _orders(session, shopper_id)
    currency = str(orders["currency"].iloc[0]) if len(orders) else DEFAULT_CURRENCY
    total_spent = int(orders.loc[orders["currency"] == currency, "total_cents"].sum())

    most_viewed = _most_viewed(session, shopper_id,
                               current if current is not None and current.shopper_id == shopper_id else None)

    first_event = session.exec(
        select(func.min(StoreEvent.occurred_at)).where(StoreEvent.shopper_id == shopper_id)
    ).one()
    # Imported order history can predate the shopper row (created at import time).
    firsts = [shopper.created_at, first_event, visits["started_at"].min(), orders["ordered_at"].min()]
    first_seen = _py(_utc([t for t in firsts if not pd.isna(t)]).min())

    return ShopperHistory(
        first_seen=first_seen,
        previous_visits=previous_visits,
        orders_count=len(orders),
        total_spent_cents=total_spent,
        currency=currency,
        orders=[
            OrderSummary(r.external_id, _py(r.ordered_at), int(r.total_cents), r.currency, int(r.items))
            for r in orders.head(MAX_ORDERS).itertuples(index=False)
        ],
        most_viewed=most_viewed,
        is_returning=previous_visits > 0 or len(orders) > 0 or bool(most_viewed),
    )
