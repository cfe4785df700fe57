"""States of the demo store. The visitor is known only by a signed token in the
browser; the cart lives in the database. Any client can call any handler with
any arguments, so handlers take as little as possible from the client and the
cart service validates what they do take."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any
from urllib.parse import quote, unquote, urlencode

import reflex as rx

from chatdash import routes
from chatdash.db import session_scope
from chatdash.services import identity, store_cart, storefront
from chatdash.services.store_cart import MAX_QUANTITY, CartError, CartView
from chatdash.settings import get_settings
from chatdash.state.views import image_src, money

log = logging.getLogger("chatdash.store")

MAX_CATEGORY_CHARS = 100


def product_href(sku: str) -> str:
    return f"{routes.STORE_PRODUCT_PREFIX}/{quote(sku, safe='')}"


def catalog_href(category: str = "", query: str = "", page: int = 1) -> str:
    params = {k: v for k, v in (("category", category), ("q", query)) if v}
    if page > 1:
        params["page"] = str(page)
    return f"{routes.STORE}?{urlencode(params)}" if params else routes.STORE


def _track(kind: str, payload: dict[str, Any]) -> rx.event.EventSpec:
    """Report to chatdash's tracking script like any store would. The embed
    script loads asynchronously, so this waits up to 10 s for window.chatdash;
    without it (chat not installed) nothing happens."""
    args = f"{json.dumps(kind)},{json.dumps(payload, separators=(',', ':'))}"
    return rx.call_script(
        "(function(k,d,n){var f=function(){var c=window.chatdash;"
        "if(c&&typeof c.track==='function'){c.track(k,d)}else if(n-->0){setTimeout(f,250)}};f()})"
        f"({args},40)"
    )


@dataclasses.dataclass
class ProductTile:
    sku: str = ""
    name: str = ""
    price: str = ""
    image: str = ""
    in_stock: bool = True
    href: str = ""

    @classmethod
    def of(cls, p: storefront.ProductSummary) -> ProductTile:
        return cls(p.sku, p.name, money(p.price_cents, p.currency), image_src(p.image_url), p.in_stock,
                   product_href(p.sku))


@dataclasses.dataclass
class CategoryChip:
    name: str = ""
    count: int = 0
    href: str = ""
    active: bool = False


@dataclasses.dataclass
class CartRow:
    sku: str = ""
    name: str = ""
    image: str = ""
    href: str = ""
    quantity: int = 1
    unit_price: str = ""
    line_total: str = ""
    in_stock: bool = True
    can_decrease: bool = False
    can_increase: bool = True


class StoreState(rx.State):
    """The visitor and the cart summary shown in every store page's header."""

    # The signed visitor token; verified on every use, since the browser may
    # send anything. Shared with the chat widget served from the same origin.
    visitor_token: str = rx.LocalStorage("", name="chatdash_visitor")
    cart_count: int = 0
    cart_total: str = ""

    _visitor_id: str = ""
    _shopper_id: int = 0

    @rx.var
    def store_name(self) -> str:
        return get_settings().store_name

    def _visitor(self) -> str:
        """This browser's verified visitor id; a new token when it has none (or a forged one)."""
        secret = get_settings().secret_key
        visitor_id = identity.verify_visitor_token(secret, self.visitor_token)
        if visitor_id is None:
            self.visitor_token = identity.issue_visitor_token(secret)
            visitor_id = identity.verify_visitor_token(secret, self.visitor_token)
        if visitor_id != self._visitor_id:
            self._visitor_id = visitor_id or ""
            self._shopper_id = 0
        return self._visitor_id

    def _shopper(self, session, *, create: bool) -> int:
        visitor_id = self._visitor()
        if not self._shopper_id:
            self._shopper_id = store_cart.shopper_id_for_visitor(session, visitor_id, create=create) or 0
        return self._shopper_id

    def _show_cart(self, view: CartView) -> None:
        self.cart_count = view.item_count
        self.cart_total = money(view.total_cents, view.currency)

    def _load_cart(self) -> CartView:
        with session_scope() as session:
            shopper_id = self._shopper(session, create=False)
            view = store_cart.get_cart(session, shopper_id) if shopper_id else store_cart.EMPTY_CART
        self._show_cart(view)
        return view

    def _change_cart(self, change, *args: Any) -> CartView:
        """Apply a cart service call for this visitor; CartError reaches the caller."""
        try:
            with session_scope() as session:
                view = change(session, self._shopper(session, create=True), *args)
        except CartError:
            self._shopper_id = 0  # looked up afresh next time, in case it went stale
            raise
        self._show_cart(view)
        return view

    @rx.event
    def search(self, form_data: dict):
        query = form_data.get("q", "") if isinstance(form_data, dict) else ""
        query = " ".join(str(query).split())[: storefront.MAX_QUERY_CHARS]
        return rx.redirect(catalog_href(query=query))


class CatalogState(StoreState):
    """/store: categories, search and one page of products."""

    categories: list[CategoryChip] = []
    products: list[ProductTile] = []
    category: str = ""
    query: str = ""
    page: int = 1
    pages: int = 1
    total: int = 0
    all_count: int = 0
    loaded: bool = False

    @rx.var
    def prev_href(self) -> str:
        return catalog_href(self.category, self.query, self.page - 1) if self.page > 1 else ""

    @rx.var
    def next_href(self) -> str:
        return catalog_href(self.category, self.query, self.page + 1) if self.page < self.pages else ""

    @rx.var
    def all_href(self) -> str:
        return catalog_href(query=self.query)

    @rx.var
    def heading(self) -> str:
        if self.query:
            return f"Results for “{self.query}”" + (f" in {self.category}" if self.category else "")
        return self.category or "All products"

    @rx.event
    def load(self):
        params = self.router.url.query_parameters
        category = str(params.get("category", ""))[:MAX_CATEGORY_CHARS]
        query = " ".join(str(params.get("q", "")).split())[: storefront.MAX_QUERY_CHARS]
        try:
            page = max(1, min(int(str(params.get("page", "1"))[:6]), 10_000))
        except ValueError:
            page = 1
        with session_scope() as session:
            counts = storefront.categories(session)
            if category not in {c.name for c in counts}:
                category = ""
            result = storefront.browse(session, category=category, query=query, page=page)
        self.category, self.query, self.page = category, query, result.page
        self.pages, self.total = result.pages, result.total
        self.all_count = sum(c.count for c in counts)
        self.categories = [CategoryChip(c.name, c.count, catalog_href(c.name, query), c.name == category)
                           for c in counts]
        self.products = [ProductTile.of(p) for p in result.products]
        self.loaded = True
        self._load_cart()


class ProductState(StoreState):
    """/store/product/[sku]: one product, a quantity, add to cart."""

    found: bool = False
    loaded: bool = False
    name: str = ""
    category: str = ""
    category_href: str = ""
    price: str = ""
    description: str = ""
    image: str = ""
    in_stock: bool = False
    quantity: int = 1
    related: list[ProductTile] = []
    added_message: str = ""
    error: str = ""

    _product_sku: str = ""

    @rx.event
    def load(self):
        path = self.router.url.path.rstrip("/")
        sku = unquote(path.rsplit("/", 1)[-1]) if path.startswith(routes.STORE_PRODUCT_PREFIX + "/") else ""
        self.quantity, self.added_message, self.error = 1, "", ""
        with session_scope() as session:
            product = storefront.product_by_sku(session, sku)
            related = storefront.more_in_category(session, product) if product else []
        self.loaded = True
        self._load_cart()
        if product is None:
            self.found, self._product_sku, self.related = False, "", []
            return
        self.found, self._product_sku = True, product.sku
        self.name, self.category, self.description = product.name, product.category, product.description
        self.category_href = catalog_href(product.category)
        self.price = money(product.price_cents, product.currency)
        self.image = image_src(product.image_url)
        self.in_stock = product.in_stock
        self.related = [ProductTile.of(p) for p in related]
        return _track("product_view", {"sku": product.sku})

    @rx.event
    def increase(self):
        self.quantity = min(MAX_QUANTITY, self.quantity + 1)

    @rx.event
    def decrease(self):
        self.quantity = max(1, self.quantity - 1)

    @rx.event
    def add_to_cart(self):
        """Adds the product on screen; the client names neither product nor shopper."""
        self.added_message, self.error = "", ""
        if not self._product_sku:
            return
        try:
            view = self._change_cart(store_cart.add_to_cart, self._product_sku, self.quantity)
        except CartError as exc:
            self.error = str(exc)
            return
        noun = "item" if self.quantity == 1 else "items"
        self.added_message = f"Added {self.quantity} {noun} to your cart."
        self.quantity = 1
        return _track("cart", store_cart.tracking_payload(view, "add"))


class CartState(StoreState):
    """/store/cart: the lines, their quantities, and placing the order."""

    rows: list[CartRow] = []
    loaded: bool = False
    error: str = ""
    placing: bool = False
    order_number: str = ""
    order_total: str = ""
    has_sold_out: bool = False

    def _show_rows(self, view: CartView) -> None:
        self.rows = [
            CartRow(line.sku, line.name, image_src(line.image_url), product_href(line.sku), line.quantity,
                    money(line.unit_price_cents, view.currency),
                    money(line.line_total_cents, view.currency), line.in_stock,
                    can_decrease=line.quantity > 1,
                    can_increase=line.in_stock and line.quantity < MAX_QUANTITY)
            for line in view.lines
        ]
        self.has_sold_out = any(not line.in_stock for line in view.lines)

    @rx.event
    def load(self):
        self.error, self.order_number, self.order_total, self.placing = "", "", "", False
        self._show_rows(self._load_cart())
        self.loaded = True

    def _apply(self, change, *args: Any):
        self.error = ""
        try:
            view = self._change_cart(change, *args)
        except CartError as exc:
            self.error = str(exc)
            self._show_rows(self._load_cart())
            return None
        self._show_rows(view)
        return _track("cart", store_cart.tracking_payload(view))

    @rx.event
    def set_line_quantity(self, sku: str, quantity: int):
        return self._apply(store_cart.set_quantity, sku, quantity)

    @rx.event
    def remove_line(self, sku: str):
        return self._apply(store_cart.remove, sku)

    @rx.event
    def start_order(self):
        """Disables the button first, so a double click orders once."""
        if self.placing:
            return
        self.placing = True
        return CartState.place_order

    @rx.event
    def place_order(self):
        self.error = ""
        try:
            with session_scope() as session:
                shopper_id = self._shopper(session, create=False)
                if not shopper_id:
                    raise CartError("Your cart is empty.")
                order = store_cart.place_order(session, shopper_id)
                order_payload = store_cart.order_tracking_payload(session, order)
        except CartError as exc:
            self.placing = False
            if not self.order_number:  # a repeated click after success is not an error
                self.error = str(exc)
            return
        except Exception:
            log.exception("placing a store order failed")
            self.placing = False
            self.error = "Your order could not be placed. Please try again."
            return
        self.order_number = order.external_id
        self.order_total = money(order.total_cents, order.currency)
        self.placing = False
        self._show_rows(self._load_cart())
        return [
            _track("cart", store_cart.tracking_payload(store_cart.EMPTY_CART, "order")),
            _track("order", order_payload),
        ]
