"""The demo store's cart and checkout, kept per shopper in the database.

Every change re-prices the cart's lines from the catalog and stores the new
total, so ``Cart.total_cents`` always equals the sum of its lines. Arguments
are validated here because they may come straight from a browser.
No Reflex imports.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from chatdash.models import Cart, CartLine, Order, OrderLine, Product, Shopper, utcnow
from chatdash.services.conversations import get_or_create_shopper

MAX_QUANTITY = 99
MAX_LINES = 50
MAX_SKU_CHARS = 64
ORDER_SOURCE = "store"


class CartError(ValueError):
    """A cart change or order that cannot be done; the text is for the shopper."""


@dataclass(frozen=True)
class CartLineView:
    sku: str
    name: str
    image_url: str
    quantity: int
    unit_price_cents: int
    line_total_cents: int
    in_stock: bool


@dataclass(frozen=True)
class CartView:
    lines: list[CartLineView]
    total_cents: int
    currency: str

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)


EMPTY_CART = CartView([], 0, "USD")


# --------------------------------------------------------------------------- validation


def check_sku(sku: Any) -> str:
    if not isinstance(sku, str) or not sku or len(sku) > MAX_SKU_CHARS:
        raise CartError("That product is not in the catalog.")
    return sku


def check_quantity(quantity: Any) -> int:
    # bool is an int in Python; True must not count as one item.
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise CartError("The quantity must be a whole number.")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise CartError(f"The quantity must be between 1 and {MAX_QUANTITY}.")
    return quantity


# --------------------------------------------------------------------------- shoppers


def shopper_id_for_visitor(session: Session, visitor_id: str, *, create: bool) -> int | None:
    """The shopper behind a (verified) visitor id; created only when asked, so
    merely looking at the store writes nothing."""
    if create:
        return get_or_create_shopper(session, visitor_id).id
    return session.exec(select(Shopper.id).where(Shopper.visitor_id == visitor_id)).first()


# --------------------------------------------------------------------------- internals


def _find_cart(session: Session, shopper_id: int, *, lock: bool = False) -> Cart | None:
    stmt = select(Cart).where(Cart.shopper_id == shopper_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.exec(stmt).first()


def _cart_for_update(session: Session, shopper_id: int) -> Cart:
    """The shopper's cart, created if missing, locked for this transaction
    (a row lock on PostgreSQL; SQLite serialises writers anyway)."""
    cart = _find_cart(session, shopper_id, lock=True)
    if cart is not None:
        return cart
    if session.get(Shopper, shopper_id) is None:
        raise CartError("Unknown shopper.")
    cart = Cart(shopper_id=shopper_id)
    session.add(cart)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # created concurrently by another tab
        cart = _find_cart(session, shopper_id, lock=True)
        assert cart is not None
    return cart


def _product(session: Session, sku: Any) -> Product:
    product = session.exec(select(Product).where(Product.sku == check_sku(sku))).first()
    if product is None:
        raise CartError("That product is not in the catalog.")
    return product


def _lines(session: Session, cart_id: int) -> list[tuple[CartLine, Product]]:
    return list(
        session.exec(
            select(CartLine, Product)
            .join(Product, col(Product.id) == CartLine.product_id)
            .where(CartLine.cart_id == cart_id)
            .order_by(col(CartLine.id))
        ).all()
    )


def _view(cart: Cart | None, rows: list[tuple[CartLine, Product]]) -> CartView:
    if cart is None:
        return EMPTY_CART
    lines = [
        CartLineView(p.sku, p.name, p.image_url, line.quantity, line.unit_price_cents,
                     line.quantity * line.unit_price_cents, p.in_stock)
        for line, p in rows
    ]
    return CartView(lines, cart.total_cents, cart.currency)


def _reprice(session: Session, cart: Cart) -> CartView:
    """Bring every line to the catalog's current price and store the total."""
    rows = _lines(session, cart.id)
    total = 0
    for line, product in rows:
        if line.unit_price_cents != product.price_cents:
            line.unit_price_cents = product.price_cents
            session.add(line)
        total += line.quantity * line.unit_price_cents
    cart.total_cents = total
    cart.updated_at = utcnow()
    session.add(cart)
    session.flush()
    return _view(cart, rows)


def _line(session: Session, cart: Cart, product: Product) -> CartLine | None:
    return session.exec(
        select(CartLine).where(CartLine.cart_id == cart.id, CartLine.product_id == product.id)
    ).first()


def _put(session: Session, cart: Cart, product: Product, quantity: int, current: CartLine | None) -> None:
    if current is None:
        count = len(session.exec(select(CartLine.id).where(CartLine.cart_id == cart.id)).all())
        if count >= MAX_LINES:
            raise CartError(f"A cart can hold at most {MAX_LINES} different products.")
        if count == 0:
            cart.currency = product.currency
        elif product.currency != cart.currency:
            raise CartError(
                f"Your cart is in {cart.currency}; {product.name} is priced in {product.currency}."
            )
        current = CartLine(cart_id=cart.id, product_id=product.id, quantity=quantity,
                           unit_price_cents=product.price_cents)
    current.quantity = quantity
    session.add(current)
    session.flush()


# --------------------------------------------------------------------------- public API


def get_cart(session: Session, shopper_id: int) -> CartView:
    cart = _find_cart(session, shopper_id)
    return _view(cart, _lines(session, cart.id) if cart else [])


def add_to_cart(session: Session, shopper_id: int, sku: Any, quantity: Any = 1) -> CartView:
    """Add items; a line never holds more than MAX_QUANTITY (extra items are dropped)."""
    quantity = check_quantity(quantity)
    product = _product(session, sku)
    if not product.in_stock:
        raise CartError(f"Sorry, {product.name} is out of stock.")
    cart = _cart_for_update(session, shopper_id)
    current = _line(session, cart, product)
    have = current.quantity if current else 0
    _put(session, cart, product, min(MAX_QUANTITY, have + quantity), current)
    return _reprice(session, cart)


def set_quantity(session: Session, shopper_id: int, sku: Any, quantity: Any) -> CartView:
    """Set how many of a product are in the cart. An out-of-stock product can
    be lowered but not raised."""
    quantity = check_quantity(quantity)
    product = _product(session, sku)
    cart = _cart_for_update(session, shopper_id)
    current = _line(session, cart, product)
    have = current.quantity if current else 0
    if quantity > have and not product.in_stock:
        raise CartError(f"Sorry, {product.name} is out of stock.")
    _put(session, cart, product, quantity, current)
    return _reprice(session, cart)


def remove(session: Session, shopper_id: int, sku: Any) -> CartView:
    product = _product(session, sku)
    cart = _find_cart(session, shopper_id, lock=True)
    if cart is None:
        return EMPTY_CART
    session.execute(delete(CartLine).where(CartLine.cart_id == cart.id, CartLine.product_id == product.id))
    return _reprice(session, cart)


def _order_number() -> str:
    return f"DS-{utcnow():%y%m%d}-{secrets.token_hex(3).upper()}"


def place_order(session: Session, shopper_id: int) -> Order:
    """Turn the shopper's cart into an order (source "store") at today's prices
    and empty the cart. Refuses an empty cart or one with out-of-stock items."""
    cart = _find_cart(session, shopper_id, lock=True)
    rows = _lines(session, cart.id) if cart else []
    if cart is None or not rows:
        raise CartError("Your cart is empty.")
    sold_out = [p.name for _, p in rows if not p.in_stock]
    if sold_out:
        names = ", ".join(sold_out)
        raise CartError(f"Sorry, out of stock: {names}. Remove it from your cart to order the rest.")
    total = sum(line.quantity * p.price_cents for line, p in rows)
    for attempt in range(3):
        order = Order(external_id=_order_number(), shopper_id=shopper_id, total_cents=total,
                      currency=cart.currency, source=ORDER_SOURCE)
        session.add(order)
        try:
            with session.begin_nested():
                session.flush()
            break
        except IntegrityError:  # pragma: no cover - a 1-in-16-million clash of order numbers
            session.expunge(order)
            if attempt == 2:
                raise
    session.add_all(
        OrderLine(order_id=order.id, product_id=p.id, quantity=line.quantity, unit_price_cents=p.price_cents)
        for line, p in rows
    )
    session.execute(delete(CartLine).where(CartLine.cart_id == cart.id))
    cart.total_cents = 0
    cart.updated_at = utcnow()
    session.add(cart)
    session.flush()
    return order


def tracking_payload(view: CartView, action: str = "update") -> dict[str, Any]:
    """The cart as the store reports it to chatdash's tracking API (prices in units)."""
    return {
        "action": action,
        "items": [
            {"sku": line.sku, "quantity": line.quantity, "price": line.unit_price_cents / 100}
            for line in view.lines
        ],
        "total": view.total_cents / 100,
        "currency": view.currency,
    }


def order_tracking_payload(session: Session, order: Order) -> dict[str, Any]:
    """An order as the store reports it to chatdash's tracking API."""
    rows = session.exec(
        select(OrderLine, Product.sku)
        .join(Product, col(Product.id) == OrderLine.product_id)
        .where(OrderLine.order_id == order.id)
        .order_by(col(OrderLine.id))
    ).all()
    return {
        "order_id": order.external_id,
        "items": [
            {"sku": sku, "quantity": line.quantity, "price": line.unit_price_cents / 100}
            for line, sku in rows
        ],
        "total": order.total_cents / 100,
        "currency": order.currency,
    }
