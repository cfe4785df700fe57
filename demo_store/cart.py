"""The demo store's cart and checkout, kept per shopper in the store's database.

A shopper is the store's own anonymous id (a random token the browser keeps).
Every change re-prices the cart's lines from the catalog and stores the new
total, so ``Cart.total_cents`` always equals the sum of its lines. Arguments
are validated here because they may come straight from a browser.
No Reflex imports.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from demo_store.models import Cart, CartLine, Order, OrderLine, Product, utcnow

MAX_QUANTITY = 99
MAX_LINES = 50
MAX_SKU_CHARS = 64

_SHOPPER_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
# A chatdash visitor token as the widget hands it out: "<id>.<signature>".
_VISITOR_RE = re.compile(r"[A-Za-z0-9_-]{16,64}\.[A-Za-z0-9_-]{16,64}")


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


@dataclass(frozen=True)
class OrderLineView:
    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class OrderView:
    number: str
    total_cents: int
    currency: str
    lines: list[OrderLineView]
    chatdash_visitor: str


# --------------------------------------------------------------------------- validation


def new_shopper() -> str:
    """A new anonymous shopper id for a browser (unguessable, like a session cookie)."""
    return secrets.token_urlsafe(24)


def is_shopper(token: Any) -> bool:
    return isinstance(token, str) and _SHOPPER_RE.fullmatch(token) is not None


def is_visitor_token(token: Any) -> bool:
    """Shaped like a chatdash visitor token; chatdash itself checks its signature."""
    return isinstance(token, str) and len(token) <= 128 and _VISITOR_RE.fullmatch(token) is not None


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


def _check_shopper(shopper: Any) -> str:
    if not is_shopper(shopper):
        raise CartError("Your cart could not be found; please reload the page.")
    return shopper


# --------------------------------------------------------------------------- internals


def _find_cart(session: Session, shopper: str, *, lock: bool = False) -> Cart | None:
    stmt = select(Cart).where(Cart.shopper == shopper)
    if lock:
        stmt = stmt.with_for_update()
    return session.exec(stmt).first()


def _cart_for_update(session: Session, shopper: str) -> Cart:
    """The shopper's cart, created if missing, locked for this transaction
    (a row lock on PostgreSQL; SQLite serialises writers anyway)."""
    cart = _find_cart(session, _check_shopper(shopper), lock=True)
    if cart is not None:
        return cart
    cart = Cart(shopper=shopper)
    session.add(cart)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # created concurrently by another tab
        cart = _find_cart(session, shopper, lock=True)
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


def _order_view(order: Order, lines: list[OrderLine]) -> OrderView:
    return OrderView(order.number, order.total_cents, order.currency,
                     [OrderLineView(li.sku, li.quantity, li.unit_price_cents) for li in lines],
                     order.chatdash_visitor)


# --------------------------------------------------------------------------- public API


def get_cart(session: Session, shopper: str) -> CartView:
    if not is_shopper(shopper):
        return EMPTY_CART
    cart = _find_cart(session, shopper)
    return _view(cart, _lines(session, cart.id) if cart else [])


def add_to_cart(session: Session, shopper: str, sku: Any, quantity: Any = 1) -> CartView:
    """Add items; a line never holds more than MAX_QUANTITY (extra items are dropped)."""
    quantity = check_quantity(quantity)
    product = _product(session, sku)
    if not product.in_stock:
        raise CartError(f"Sorry, {product.name} is out of stock.")
    cart = _cart_for_update(session, shopper)
    current = _line(session, cart, product)
    have = current.quantity if current else 0
    _put(session, cart, product, min(MAX_QUANTITY, have + quantity), current)
    return _reprice(session, cart)


def set_quantity(session: Session, shopper: str, sku: Any, quantity: Any) -> CartView:
    """Set how many of a product are in the cart. An out-of-stock product can
    be lowered but not raised."""
    quantity = check_quantity(quantity)
    product = _product(session, sku)
    cart = _cart_for_update(session, shopper)
    current = _line(session, cart, product)
    have = current.quantity if current else 0
    if quantity > have and not product.in_stock:
        raise CartError(f"Sorry, {product.name} is out of stock.")
    _put(session, cart, product, quantity, current)
    return _reprice(session, cart)


def remove(session: Session, shopper: str, sku: Any) -> CartView:
    product = _product(session, sku)
    cart = _find_cart(session, _check_shopper(shopper), lock=True)
    if cart is None:
        return EMPTY_CART
    session.execute(delete(CartLine).where(CartLine.cart_id == cart.id, CartLine.product_id == product.id))
    return _reprice(session, cart)


def _order_number() -> str:
    return f"DS-{utcnow():%y%m%d}-{secrets.token_hex(3).upper()}"


def place_order(session: Session, shopper: str, chatdash_visitor: str = "") -> OrderView:
    """Turn the shopper's cart into an order at today's prices and empty the
    cart. Refuses an empty cart or one with out-of-stock items. The chat's
    visitor token, when known, is kept with the order so it can be reported."""
    cart = _find_cart(session, shopper, lock=True) if is_shopper(shopper) else None
    rows = _lines(session, cart.id) if cart else []
    if cart is None or not rows:
        raise CartError("Your cart is empty.")
    sold_out = [p.name for _, p in rows if not p.in_stock]
    if sold_out:
        names = ", ".join(sold_out)
        raise CartError(f"Sorry, out of stock: {names}. Remove it from your cart to order the rest.")
    total = sum(line.quantity * p.price_cents for line, p in rows)
    visitor = chatdash_visitor if is_visitor_token(chatdash_visitor) else ""
    for attempt in range(3):
        order = Order(number=_order_number(), shopper=shopper, total_cents=total, currency=cart.currency,
                      chatdash_visitor=visitor)
        session.add(order)
        try:
            with session.begin_nested():
                session.flush()
            break
        except IntegrityError:  # pragma: no cover - a 1-in-16-million clash of order numbers
            session.expunge(order)
            if attempt == 2:
                raise
    lines = [OrderLine(order_id=order.id, sku=p.sku, name=p.name, quantity=line.quantity,
                       unit_price_cents=p.price_cents) for line, p in rows]
    session.add_all(lines)
    session.execute(delete(CartLine).where(CartLine.cart_id == cart.id))
    cart.total_cents = 0
    cart.updated_at = utcnow()
    session.add(cart)
    session.flush()
    return _order_view(order, lines)


def link_visitor(session: Session, shopper: str, chatdash_visitor: str) -> tuple[CartView | None, list[OrderView]]:
    """The chat told the store who this shopper is to chatdash: attach that to
    the shopper's orders not yet reported. Returns the cart (None without one)
    and those orders, to report under this visitor."""
    if not is_shopper(shopper) or not is_visitor_token(chatdash_visitor):
        return None, []
    session.execute(
        update(Order).where(col(Order.shopper) == shopper, col(Order.reported_at).is_(None))
        .values(chatdash_visitor=chatdash_visitor)
    )
    orders = session.exec(
        select(Order).where(Order.shopper == shopper, col(Order.reported_at).is_(None)).order_by(col(Order.id))
    ).all()
    views = [
        _order_view(o, list(session.exec(select(OrderLine).where(OrderLine.order_id == o.id)
                                         .order_by(col(OrderLine.id))).all()))
        for o in orders
    ]
    cart = _find_cart(session, shopper)
    return (_view(cart, _lines(session, cart.id)) if cart else None), views


def mark_reported(session: Session, number: str) -> None:
    """chatdash has the order: it is not sent again."""
    session.execute(
        update(Order).where(col(Order.number) == number, col(Order.reported_at).is_(None)).values(reported_at=utcnow())
    )
