"""Store validated events, orders and carts once each, and apply them to the shopper's visit and cart."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from chatdash.models import (
    Cart,
    CartLine,
    Order,
    OrderLine,
    Product,
    Shopper,
    StoreEvent,
    Visit,
    utcnow,
)
from chatdash.services import presence
from chatdash.services.conversations import get_or_create_shopper, latest_visit, open_conversation_for
from chatdash.services.customers import identify_customer
from chatdash.services.tracking.schema import (
    MAX_QUANTITY,
    CartData,
    CartEvent,
    Line,
    OrderEvent,
    PageViewEvent,
    ProductViewData,
    ProductViewEvent,
    ServerCart,
    ServerOrder,
    TrackingError,
    compact_json,
)

# A client clock may run a little fast; later than this is clamped to now.
FUTURE_SKEW = timedelta(minutes=5)
API_ORDER_SOURCE = "api"


def _cents(amount: Decimal) -> int:
    return int(amount * 100)


def clamp_time(at: datetime | None, now: datetime) -> datetime:
    """The reported time, or now when missing or later than the allowed clock skew."""
    if at is None or at > now + FUTURE_SKEW:
        return now
    return at


@dataclass(frozen=True)
class _CatalogItem:
    id: int
    price_cents: int
    currency: str


def _catalog(session: Session, skus: set[str]) -> dict[str, _CatalogItem]:
    """The catalog's products among these skus, in one query."""
    if not skus:
        return {}
    rows = session.exec(
        select(Product.sku, Product.id, Product.price_cents, Product.currency)
        .where(col(Product.sku).in_(sorted(skus)))
    ).all()
    return {sku: _CatalogItem(pid, price, currency) for sku, pid, price, currency in rows}


def _product_id(catalog: dict[str, _CatalogItem], sku: str) -> int | None:
    item = catalog.get(sku)
    return item.id if item else None


def _payload(event: PageViewEvent | ProductViewEvent | CartEvent | OrderEvent) -> dict[str, Any]:
    if isinstance(event, PageViewEvent):
        return {}
    data = event.data
    if isinstance(data, ProductViewData):
        out: dict[str, Any] = {"sku": data.sku}
        if data.price is not None:
            out["price"] = float(data.price)
        if data.currency:
            out["currency"] = data.currency
        return out
    if isinstance(data, CartData):
        out = {}
        if data.action:
            out["action"] = data.action
        if data.sku:
            out["sku"] = data.sku
        total = data.total if data.total is not None else sum((li.price * li.quantity for li in data.items),
                                                              Decimal(0))
        return {**out, "items": [li.as_json() for li in data.items], "total": float(total),
                "currency": data.currency}
    return {"order_id": data.order_id, "items": [li.as_json() for li in data.items],
            "total": float(data.total), "currency": data.currency}


def event_row(event: PageViewEvent | ProductViewEvent | CartEvent | OrderEvent, shopper_id: int,
              visit_id: int | None, catalog: dict[str, _CatalogItem], at: datetime, now: datetime) -> dict[str, Any]:
    """One tracking event as a StoreEvent row (both tracking paths store these)."""
    is_page = isinstance(event, PageViewEvent)
    return {
        "event_id": event.id,
        "shopper_id": shopper_id,
        "visit_id": visit_id,
        "kind": event.kind,
        "url": event.page_url if is_page else event.url,
        "title": event.page_title if is_page else event.title,
        "referrer": event.page_referrer if is_page else event.referrer,
        "product_id": _product_id(catalog, event.data.sku) if isinstance(event, ProductViewEvent) else None,
        "payload": compact_json(_payload(event)),
        "occurred_at": at,
        "received_at": now,
    }


def _insert_events(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert event rows; returns the event ids actually inserted. A concurrent
    request storing the same ids wins the race and its rows count as duplicates."""
    if not rows:
        return set()
    table = StoreEvent.__table__
    try:
        with session.begin_nested():
            session.execute(insert(table), rows)
        return {r["event_id"] for r in rows}
    except IntegrityError:
        inserted = set()
        for row in rows:
            try:
                with session.begin_nested():
                    session.execute(insert(table), [row])
                inserted.add(row["event_id"])
            except IntegrityError:
                pass
        return inserted


@dataclass(frozen=True)
class CartResult:
    applied: bool
    lines: int
    total_cents: int
    currency: str
    ignored_skus: list[str]


def _merge_lines(
    session: Session, items: Sequence[Line], currency: str, *, trust_prices: bool,
    catalog: dict[str, _CatalogItem] | None = None,
) -> tuple[dict[int, tuple[int, int]], list[str]]:
    """product id -> (quantity, unit price in cents), duplicates merged; and the
    skus left out (not in the catalog, or priced in another currency)."""
    products = catalog if catalog is not None else _catalog(session, {li.sku for li in items})
    merged: dict[int, tuple[int, int]] = {}
    ignored: list[str] = []
    for li in items:
        product = products.get(li.sku)
        if product is None or (not trust_prices and product.currency != currency):
            if li.sku not in ignored:
                ignored.append(li.sku)
            continue
        price = _cents(li.price) if trust_prices else product.price_cents
        have = merged.get(product.id, (0, price))[0]
        merged[product.id] = (min(MAX_QUANTITY, have + li.quantity), price)
    return merged, ignored


def replace_cart(
    session: Session, shopper_id: int, items: Sequence[Line], currency: str, at: datetime,
    *, trusted: bool, now: datetime | None = None, catalog: dict[str, _CatalogItem] | None = None,
) -> CartResult:
    """Make the shopper's cart hold exactly these items; ``Cart.total_cents`` is
    always the sum of its lines. ``trusted`` (the store's backend) takes the
    given prices and always applies; otherwise (a browser) lines are priced from
    the catalog and a change older than the stored cart (a late retry) is ignored."""
    now = now or utcnow()
    cart = session.exec(select(Cart).where(Cart.shopper_id == shopper_id).with_for_update()).first()
    if cart is None:
        try:
            with session.begin_nested():
                cart = Cart(shopper_id=shopper_id, currency=currency, updated_at=min(at, now))
                session.add(cart)
                session.flush()
        except IntegrityError:  # created concurrently
            cart = session.exec(select(Cart).where(Cart.shopper_id == shopper_id).with_for_update()).one()
    elif not trusted and cart.updated_at > at:
        return CartResult(False, 0, cart.total_cents, cart.currency, [])
    merged, ignored = _merge_lines(session, items, currency, trust_prices=trusted, catalog=catalog)
    session.execute(delete(CartLine).where(col(CartLine.cart_id) == cart.id))
    session.add_all(
        CartLine(cart_id=cart.id, product_id=pid, quantity=qty, unit_price_cents=price)
        for pid, (qty, price) in merged.items()
    )
    cart.total_cents = sum(qty * price for qty, price in merged.values())
    cart.currency = currency
    cart.updated_at = min(at, now)
    session.add(cart)
    session.flush()
    return CartResult(True, len(merged), cart.total_cents, currency, ignored)


# --------------------------------------------------------------------------- browser events


@dataclass(frozen=True)
class TrackResult:
    accepted: int
    duplicates: int
    shopper_id: int
    conversation_id: int | None
    # The shopper's presence or current page changed (the inbox shows both).
    presence_changed: bool


def track_events(
    session: Session,
    shopper: Shopper,
    events: Sequence[PageViewEvent | ProductViewEvent | CartEvent | OrderEvent],
    *,
    user_agent: str = "",
    window_seconds: int = 60,
    now: datetime | None = None,
    visitor_id: str | None = None,
) -> TrackResult:
    """Store a validated batch for this shopper, once per event id, and apply it:
    the latest recent page view moves the shopper's current page, the latest
    cart event replaces the cart (priced from the catalog). Orders from the
    browser are events only."""
    now = now or utcnow()
    unique: dict[str, Any] = {}
    for event in events:
        unique.setdefault(event.id, event)
    stored = set(session.exec(
        select(StoreEvent.event_id).where(
            StoreEvent.shopper_id == shopper.id, col(StoreEvent.event_id).in_(list(unique))
        )
    ).all())
    fresh = [e for e in unique.values() if e.id not in stored]
    times = {e.id: clamp_time(e.at, now) for e in fresh}

    # Only a page view from the last presence window says where the shopper is
    # now; an old one replayed from the browser's queue is history only.
    recent_pages = [e for e in fresh if isinstance(e, PageViewEvent)
                    and times[e.id] >= now - timedelta(seconds=window_seconds)]
    change = None
    if recent_pages:
        page = max(reversed(recent_pages), key=lambda e: times[e.id])  # ties: the later in the batch
        change = presence.touch_visit(session, shopper, user_agent=user_agent, url=page.page_url,
                                      title=page.page_title, window_seconds=window_seconds, now=now,
                                      happened_at=times[page.id], visitor_id=visitor_id)
        visit = session.get(Visit, change.visit_id)
    elif fresh:
        # This browser's visit; a customer's other devices have their own.
        visit = (presence.current_visit(session, visitor_id or shopper.visitor_id, shopper.id)
                 or latest_visit(session, shopper.id))
    else:
        visit = None

    # One catalog look-up for the batch: viewed products and the latest cart's lines.
    carts = [e for e in fresh if isinstance(e, CartEvent)]
    cart = max(reversed(carts), key=lambda e: times[e.id]) if carts else None
    skus = {e.data.sku for e in fresh if isinstance(e, ProductViewEvent)}
    catalog = _catalog(session, skus | ({li.sku for li in cart.data.items} if cart else set()))

    rows = []
    for event in fresh:
        at = times[event.id]
        # An event belongs to the visit it happened in; not to one that ended long before.
        in_visit = visit is not None and (min(visit.started_at, now) - FUTURE_SKEW
                                          <= at <= visit.last_seen_at + presence.VISIT_TIMEOUT)
        rows.append(event_row(event, shopper.id, visit.id if in_visit else None, catalog, at, now))
    inserted = _insert_events(session, rows)

    # A cart event stored by a concurrent retry was applied by that request.
    if cart is not None and cart.id in inserted:
        replace_cart(session, shopper.id, cart.data.items, cart.data.currency, times[cart.id],
                     trusted=False, now=now, catalog=catalog)

    conversation = open_conversation_for(session, shopper.id)
    return TrackResult(
        accepted=len(inserted),
        duplicates=len(events) - len(inserted),
        shopper_id=shopper.id,
        conversation_id=conversation.id if conversation else None,
        presence_changed=change is not None and change.changed,
    )


# --------------------------------------------------------------------------- server to server


def shopper_for(
    session: Session, *, visitor_id: str | None = None, customer_id: str | None = None,
    name: str | None = None, email: str | None = None,
) -> Shopper:
    """The shopper a server-to-server call is about, created when new. With a
    visitor id the customer id is attached to that visitor (a customer already
    known under another visitor keeps their shopper)."""
    if visitor_id:
        if customer_id:
            return identify_customer(session, visitor_id, customer_id, name or "", email or "")
        return get_or_create_shopper(session, visitor_id)
    if not customer_id:
        raise TrackingError("customer_id or visitor is required")
    shopper = session.exec(select(Shopper).where(Shopper.customer_id == customer_id)).first()
    if shopper is None:
        try:
            with session.begin_nested():
                # Known only to the store's backend so far: a visitor id of its
                # own that no browser holds a token for.
                shopper = Shopper(visitor_id=f"cust_{secrets.token_urlsafe(18)}", customer_id=customer_id)
                session.add(shopper)
                session.flush()
        except IntegrityError:  # created concurrently
            shopper = session.exec(select(Shopper).where(Shopper.customer_id == customer_id)).one()
    changed = False
    if name and shopper.name != name:
        shopper.name, changed = name, True
    if email and shopper.email != email.strip():
        shopper.email, changed = email.strip(), True
    if changed:
        session.add(shopper)
        session.flush()
    return shopper


@dataclass(frozen=True)
class OrderResult:
    order_id: int
    external_id: str
    created: bool
    shopper_id: int
    total_cents: int
    currency: str
    ignored_skus: list[str]
    conversation_id: int | None


def record_order(
    session: Session, order: ServerOrder, *, visitor_id: str | None = None, now: datetime | None = None,
) -> OrderResult:
    """Store an order the store's backend reported (source "api"). Idempotent:
    an order whose ``order_id`` is already known is left unchanged."""
    now = now or utcnow()
    existing = session.exec(select(Order).where(Order.external_id == order.order_id)).first()
    if existing is None:
        shopper = shopper_for(session, visitor_id=visitor_id, customer_id=order.customer_id,
                              name=order.name, email=order.email)
        merged, ignored = _merge_lines(session, order.items, order.currency, trust_prices=True)
        row = Order(external_id=order.order_id, shopper_id=shopper.id, total_cents=_cents(order.total),
                    currency=order.currency, ordered_at=clamp_time(order.ordered_at, now),
                    source=API_ORDER_SOURCE)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
                session.add_all(
                    OrderLine(order_id=row.id, product_id=pid, quantity=qty, unit_price_cents=price)
                    for pid, (qty, price) in merged.items()
                )
                session.flush()
        except IntegrityError:  # the same order reported concurrently
            existing = session.exec(select(Order).where(Order.external_id == order.order_id)).one()
        else:
            conversation = open_conversation_for(session, shopper.id)
            return OrderResult(row.id, row.external_id, True, shopper.id, row.total_cents, row.currency,
                               ignored, conversation.id if conversation else None)
    conversation = open_conversation_for(session, existing.shopper_id)
    return OrderResult(existing.id, existing.external_id, False, existing.shopper_id, existing.total_cents,
                       existing.currency, [], conversation.id if conversation else None)


@dataclass(frozen=True)
class ServerCartResult:
    shopper_id: int
    cart: CartResult
    conversation_id: int | None


def record_cart(
    session: Session, cart: ServerCart, *, visitor_id: str | None = None, now: datetime | None = None,
) -> ServerCartResult:
    """Replace the shopper's cart with what the store's backend reported, at its prices."""
    now = now or utcnow()
    shopper = shopper_for(session, visitor_id=visitor_id, customer_id=cart.customer_id,
                          name=cart.name, email=cart.email)
    result = replace_cart(session, shopper.id, cart.items, cart.currency, clamp_time(cart.at, now),
                          trusted=True, now=now)
    conversation = open_conversation_for(session, shopper.id)
    return ServerCartResult(shopper.id, result, conversation.id if conversation else None)
