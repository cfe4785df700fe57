"""What shoppers did, read from the database as weighted interactions: for training and for one shopper."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import and_, case, func, select, true
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from chatdash.models import Cart, CartLine, EventKind, Order, OrderLine, Product, StoreEvent

#: `progress(step, done, total)`, called as loading and training advance.
ProgressFn = Callable[[str, int, int], None]

#: Weight of one interaction. A view counts each time; a cart add once per
#: product; a purchase once per order.
VIEW_WEIGHT = 1.0
CART_WEIGHT = 3.0
PURCHASE_WEIGHT = 5.0

#: Product views without a visit id are grouped into sessions by this gap.
SESSION_GAP = timedelta(minutes=30)


@dataclass
class Interactions:
    """The training input: parallel arrays of database ids.

    `views` are aggregated per (shopper, session, product) with a count;
    `carts` are distinct (shopper, product) pairs; `purchases` distinct
    (shopper, order, product) triples. The catalog gives each product's category.
    """

    view_shopper: np.ndarray
    view_product: np.ndarray
    view_session: np.ndarray
    view_count: np.ndarray
    cart_shopper: np.ndarray
    cart_product: np.ndarray
    buy_shopper: np.ndarray
    buy_product: np.ndarray
    buy_order: np.ndarray
    catalog_ids: np.ndarray
    catalog_categories: list[str]
    #: When each view group (its last view), cart pair (first) and purchase happened, in epoch seconds.
    view_time: np.ndarray | None = None
    cart_time: np.ndarray | None = None
    buy_time: np.ndarray | None = None

    @property
    def count(self) -> int:
        """Interactions as the store saw them: every view, cart pair and order line."""
        return int(self.view_count.sum()) + len(self.cart_shopper) + len(self.buy_shopper)


def interactions_before(data: Interactions, cutoff: float) -> Interactions:
    """`data` without what happened at or after `cutoff` (epoch seconds); needs the times."""
    if data.buy_time is None or data.view_time is None or data.cart_time is None:
        raise ValueError("interactions without times cannot be cut at a time")
    view, cart, buy = data.view_time < cutoff, data.cart_time < cutoff, data.buy_time < cutoff
    return replace(
        data,
        view_shopper=data.view_shopper[view],
        view_product=data.view_product[view],
        view_session=data.view_session[view],
        view_count=data.view_count[view],
        view_time=data.view_time[view],
        cart_shopper=data.cart_shopper[cart],
        cart_product=data.cart_product[cart],
        cart_time=data.cart_time[cart],
        buy_shopper=data.buy_shopper[buy],
        buy_product=data.buy_product[buy],
        buy_order=data.buy_order[buy],
        buy_time=data.buy_time[buy],
    )


def _ints(values: Iterable[Any]) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64)


def sessionize(shopper: np.ndarray, seconds: np.ndarray, gap: float = SESSION_GAP.total_seconds()) -> np.ndarray:
    """Session numbers 0, 1, ... for events sorted by (shopper, time): a new session
    starts with each shopper and after every pause longer than `gap` seconds."""
    if len(shopper) == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.ones(len(shopper), dtype=bool)
    new[1:] = (shopper[1:] != shopper[:-1]) | (np.diff(seconds) > gap)
    return np.cumsum(new) - 1


def _json_object(payload: str | None) -> dict[str, Any]:
    try:
        data = json.loads(payload or "{}")
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _item_skus(data: dict[str, Any]) -> list[str]:
    items = data.get("items")
    if not isinstance(items, list):
        return []
    return [i["sku"] for i in items if isinstance(i, dict) and isinstance(i.get("sku"), str)]


def _cart_payload(payload: str | None) -> tuple[list[str], str | None]:
    """The skus a cart event lists (the whole cart, as stores report it) and the sku it added."""
    data = _json_object(payload)
    added = data.get("sku")
    return _item_skus(data), added if isinstance(added, str) else None


def _order_payload(payload: str | None) -> tuple[str | None, list[str]]:
    """The order id and skus of an order event."""
    data = _json_object(payload)
    order_id = data.get("order_id")
    return (order_id if isinstance(order_id, str) else None), _item_skus(data)


def _cart_products(product_id: int | None, payload: str | None, sku_to_id: Mapping[str, int]) -> set[int]:
    """Products of one cart event: its product and every sku its payload names."""
    skus, added = _cart_payload(payload)
    found = {sku_to_id[s] for s in [*skus, added] if s in sku_to_id}
    if product_id is not None:
        found.add(product_id)
    return found


def load_interactions(
    engine: Engine, until: datetime | None = None, progress: ProgressFn | None = None
) -> Interactions:
    """Read views, cart adds and purchases (those before `until`, when given) from the database.
    `progress("load", done, 5)` follows the five reads."""
    report = progress or (lambda _step, _done, _total: None)
    ev = StoreEvent.__table__.c
    report("load", 0, 5)
    with engine.connect() as conn:
        catalog = conn.execute(select(Product.id, Product.sku, Product.category).order_by(Product.id)).all()
        sku_to_id = {sku: pid for pid, sku, _cat in catalog}
        report("load", 1, 5)

        def before(column: Any) -> Any:
            return column < until if until is not None else true()

        is_view = and_(ev.kind == EventKind.PRODUCT_VIEW.value, ev.product_id.is_not(None), before(ev.occurred_at))
        grouped = conn.execute(
            select(ev.shopper_id, ev.product_id, ev.visit_id, func.count(), func.max(ev.occurred_at))
            .where(is_view, ev.visit_id.is_not(None))
            .group_by(ev.shopper_id, ev.visit_id, ev.product_id)
        ).all()
        loose = conn.execute(
            select(ev.shopper_id, ev.product_id, ev.occurred_at)
            .where(is_view, ev.visit_id.is_(None))
            .order_by(ev.shopper_id, ev.occurred_at)
        ).all()
        report("load", 2, 5)
        # Sessions without a visit get negative keys, so they never meet a visit id.
        loose_session = -1 - sessionize(_ints(r[0] for r in loose), np.array([r[2].timestamp() for r in loose]))

        carts: dict[tuple[int, int], float] = {}  # (shopper, product) -> first seen in a cart

        def carted(pair: tuple[int, int], at: datetime) -> None:
            seconds = at.timestamp()
            if seconds < carts.get(pair, np.inf):
                carts[pair] = seconds

        for shopper_id, product_id, payload, at in conn.execute(
            select(ev.shopper_id, ev.product_id, ev.payload, ev.occurred_at).where(
                ev.kind == EventKind.CART.value, before(ev.occurred_at)
            )
        ):
            for p in _cart_products(product_id, payload, sku_to_id):
                carted((shopper_id, p), at)
        report("load", 3, 5)
        lines = conn.execute(
            select(Cart.shopper_id, CartLine.product_id, Cart.updated_at)
            .join(Cart, col(Cart.id) == CartLine.cart_id)
            .where(before(Cart.updated_at))
        )
        for shopper_id, product_id, at in lines:
            carted((shopper_id, product_id), at)
        report("load", 4, 5)
        buys = conn.execute(
            select(Order.shopper_id, OrderLine.product_id, OrderLine.order_id, Order.ordered_at)
            .join(Order, col(Order.id) == OrderLine.order_id)
            .where(before(Order.ordered_at))
        ).all()
    report("load", 5, 5)
    return Interactions(
        view_shopper=np.concatenate([_ints(r[0] for r in grouped), _ints(r[0] for r in loose)]),
        view_product=np.concatenate([_ints(r[1] for r in grouped), _ints(r[1] for r in loose)]),
        view_session=np.concatenate([_ints(r[2] for r in grouped), loose_session]),
        view_count=np.concatenate([_ints(r[3] for r in grouped), np.ones(len(loose), dtype=np.int64)]),
        cart_shopper=_ints(s for s, _p in carts),
        cart_product=_ints(p for _s, p in carts),
        cart_time=np.fromiter(carts.values(), dtype=np.float64),
        buy_shopper=_ints(r[0] for r in buys),
        buy_product=_ints(r[1] for r in buys),
        buy_order=_ints(r[2] for r in buys),
        catalog_ids=_ints(r[0] for r in catalog),
        catalog_categories=[r[2] for r in catalog],
        view_time=np.concatenate([_seconds(r[4] for r in grouped), _seconds(r[2] for r in loose)]),
        buy_time=_seconds(r[3] for r in buys),
    )


def _seconds(values: Iterable[Any]) -> np.ndarray:
    return np.fromiter((v.timestamp() for v in values), dtype=np.float64)


@dataclass
class ShopperHistory:
    """What the shopper did, as the serving side reads it from the database."""

    weights: dict[int, float] = field(default_factory=dict)  # product id -> weighted interactions
    carted: set[int] = field(default_factory=set)  # in the cart now
    bought: set[int] = field(default_factory=set)
    viewed_categories: list[str] = field(default_factory=list)  # most viewed first


def load_history(
    session: Session, shopper_id: int, *, max_events: int = 5000, purchase_once: bool = False
) -> ShopperHistory:
    """The shopper's weighted interactions, cart, purchases and viewed categories, read
    with a few indexed queries (their latest `max_events` events, all their orders).

    Purchases are the shopper's order lines, plus the items of order events the
    browser reported without a matching order (tracking keeps those as events only).
    They count for this shopper alone; training leaves them out, so a forged stream
    of orders cannot reach the shared related-products tables.
    """
    ev = StoreEvent.__table__.c
    conn = session.connection()
    history = ShopperHistory()
    weights: Counter[int] = Counter()
    # Filtering on the shopper alone keeps SQLite on ix_storeevent_shopper_time (without
    # ANALYZE statistics it would pick the kind index and scan every view in the store).
    with_payload = ev.kind.in_([EventKind.CART.value, EventKind.ORDER.value])
    events = conn.execute(
        select(ev.kind, ev.product_id, case((with_payload, ev.payload), else_=None))
        .where(ev.shopper_id == shopper_id)
        .order_by(ev.occurred_at.desc(), ev.id.desc())
        .limit(max_events)
    ).all()
    views = Counter(pid for kind, pid, _p in events if kind == EventKind.PRODUCT_VIEW.value and pid is not None)
    carts = [(pid, *_cart_payload(payload)) for kind, pid, payload in events if kind == EventKind.CART.value]
    orders = [_order_payload(payload) for kind, _pid, payload in events if kind == EventKind.ORDER.value]

    skus = {s for _pid, items, added in carts for s in [*items, added] if s} | {
        s for _order_id, items in orders for s in items}
    sku_to_id = _ids_of_skus(conn, skus)
    category_of = dict(conn.execute(select(Product.id, Product.category).where(col(Product.id).in_(views))).all()) \
        if views else {}

    for product_id, n in views.items():
        weights[product_id] += VIEW_WEIGHT * n
    by_category: Counter[str] = Counter()
    for product_id, n in views.items():
        if product_id in category_of:
            by_category[category_of[product_id]] += n
    history.viewed_categories = [c for c, _n in sorted(by_category.items(), key=lambda kv: (-kv[1], kv[0]))]

    in_cart_now = conn.execute(
        select(CartLine.product_id).join(Cart, col(Cart.id) == CartLine.cart_id).where(Cart.shopper_id == shopper_id)
    ).scalars().all()
    history.carted = set(in_cart_now)
    if carts:  # the latest cart event lists what is in the cart now, as the store saw it
        history.carted |= {sku_to_id[s] for s in carts[0][1] if s in sku_to_id}
    carted_ever = set(in_cart_now) | {pid for pid, _items, _added in carts if pid is not None} | {
        sku_to_id[s] for _pid, items, added in carts for s in [*items, added] if s in sku_to_id}
    for product_id in carted_ever:
        weights[product_id] += CART_WEIGHT

    lines = conn.execute(
        select(Order.external_id, OrderLine.product_id)
        .join(Order, col(Order.id) == OrderLine.order_id)
        .where(Order.shopper_id == shopper_id)
    ).all()
    seen_orders = {external_id for external_id, _pid in lines}
    bought = [product_id for _external_id, product_id in lines]
    for order_id, items in orders:
        if order_id not in seen_orders:
            seen_orders.add(order_id)
            bought += {sku_to_id[s] for s in items if s in sku_to_id}
    for product_id in set(bought) if purchase_once else bought:  # as training weighed them
        weights[product_id] += PURCHASE_WEIGHT
    history.bought = set(bought)
    history.weights = dict(weights)
    return history


def _ids_of_skus(conn: Any, skus: set[str]) -> dict[str, int]:
    if not skus:
        return {}
    return dict(conn.execute(select(Product.sku, Product.id).where(col(Product.sku).in_(skus))).all())
