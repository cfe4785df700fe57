"""States of the demo store. The shopper is known only by the store's own
random token in the browser; the catalog, cart and orders live in the store's
database. Any client can call any handler with any arguments, so handlers take
as little as possible from the client and the cart validates what they do take.

chatdash hears about this shopper only the way it would from any store: the
embed script's ``chatdash.track`` in the browser, and the server-to-server
reports in :mod:`demo_store.chatdash_api`, which name the shopper by the
visitor token the chat widget holds (``chatdash.visitor()``)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote

import reflex as rx

from demo_store import cart, catalog, routes
from demo_store.cart import MAX_QUANTITY, CartError, CartView
from demo_store.chatdash_api import ChatdashAPI, Reporter, cart_payload, order_payload
from demo_store.db import session_scope
from demo_store.routes import catalog_href, product_href
from demo_store.settings import get_settings

log = logging.getLogger("demo_store")

MAX_CATEGORY_CHARS = 100
T = TypeVar("T")


def money(cents: int, currency: str = "USD") -> str:
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency.upper(), "")
    amount = f"{cents / 100:,.2f}"
    return f"{symbol}{amount}" if symbol else f"{amount} {currency.upper()}"


def image_src(url: str) -> str:
    """The image address if it is http(s) or same-site, else ""."""
    return url if url.startswith(("https://", "http://", "/")) else ""


async def _db(work: Callable[..., T], *args: Any) -> T:
    """Run ``work(session, *args)`` in one transaction, off the event loop."""

    def run() -> T:
        with session_scope() as session:
            return work(session, *args)

    return await asyncio.to_thread(run)


_reporter: Reporter | None = None


def reporter() -> Reporter:
    global _reporter
    if _reporter is None:
        settings = get_settings()

        async def reported(number: str) -> None:
            await _db(cart.mark_reported, number)

        _reporter = Reporter(ChatdashAPI(settings.api_base, settings.secret), on_order_reported=reported)
    return _reporter


def _track(kind: str, payload: dict[str, Any], title: str = "") -> rx.event.EventSpec:
    """Report to chatdash's tracking script like any store would. The embed
    script loads asynchronously, so this waits up to 10 s for window.chatdash;
    without it (chat not installed) nothing happens. With `title`, it also waits
    (as long) for the page to show that title, which the event carries."""
    args = f"{json.dumps(kind)},{json.dumps(payload, separators=(',', ':'))},{json.dumps(title)}"
    # The title is watched, not only polled: a shopper who moves on a moment after
    # the page shows its title still has the event reported under that title.
    return rx.call_script(
        "(function(k,d,t,n){var sent=false,o=null;"
        "var live=function(){var c=window.chatdash;return !!(c&&typeof c.track==='function')};"
        "var send=function(){if(sent)return;sent=true;if(o)o.disconnect();window.chatdash.track(k,d)};"
        "var ready=function(){return live()&&(!t||document.title===t)};"
        "var f=function(){if(sent)return;if(ready()||(n<=0&&live())){send()}else if(n-->0){setTimeout(f,250)}};"
        "if(t&&window.MutationObserver){o=new MutationObserver(function(){if(!sent&&ready())send()});"
        "o.observe(document.head,{subtree:true,childList:true,characterData:true})}"
        "f()})"
        f"({args},40)"
    )


def page_title(*parts: str) -> str:
    """A page's title as shoppers (and the chat's admins) read it: what the page is, then the store."""
    return " · ".join([*(p for p in parts if p), get_settings().name])


# Resolves with the chat's visitor token once the embed script has one (up to
# 15 s), else with "": what a store's page hands its backend (docs/tracking.md).
CHATDASH_VISITOR_JS = (
    "new Promise(function(r){var n=60;(function f(){var c=window.chatdash,"
    "v=c&&typeof c.visitor==='function'&&c.visitor();if(v){r(v)}else if(n-->0){setTimeout(f,250)}"
    "else{r('')}})()})"
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
    def of(cls, p: catalog.ProductSummary) -> ProductTile:
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
    """The shopper and the cart summary shown in every store page's header."""

    # The store's own anonymous shopper id; any string the browser sends that
    # is not shaped like one is replaced by a new one.
    shopper_token: str = rx.LocalStorage("", name="demo_store_shopper")
    cart_count: int = 0
    cart_total: str = ""

    # The chat's visitor token for this tab, as the embed script reported it.
    _chatdash_visitor: str = ""

    @rx.var
    def store_name(self) -> str:
        return get_settings().name

    def _shopper(self) -> str:
        if not cart.is_shopper(self.shopper_token):
            self.shopper_token = cart.new_shopper()
        return self.shopper_token

    def _show_cart(self, view: CartView) -> None:
        self.cart_count = view.item_count
        self.cart_total = money(view.total_cents, view.currency)

    async def _load_cart(self) -> CartView:
        view = await _db(cart.get_cart, self._shopper())
        self._show_cart(view)
        return view

    async def _change_cart(self, change: Callable[..., CartView], *args: Any) -> CartView:
        """Apply a cart change for this shopper and report the new cart to
        chatdash; CartError reaches the caller."""
        shopper = self._shopper()
        view = await _db(change, shopper, *args)
        self._show_cart(view)
        reporter().cart(shopper, self._chatdash_visitor, view)
        return view

    @rx.event
    async def link_chatdash(self, visitor: Any):
        """The embed script's visitor token (from ``chatdash.visitor()``): the
        store's reports name the shopper by it. Sends what chatdash could not
        be told before: the cart, and orders placed before the chat was known."""
        if not cart.is_visitor_token(visitor) or visitor == self._chatdash_visitor:
            return
        self._chatdash_visitor = visitor
        view, orders = await _db(cart.link_visitor, self._shopper(), visitor)
        if view is not None:
            reporter().cart(self.shopper_token, visitor, view)
        for order in orders:
            reporter().order(order)

    @rx.event
    def search(self, form_data: dict):
        query = form_data.get("q", "") if isinstance(form_data, dict) else ""
        query = " ".join(str(query).split())[: catalog.MAX_QUERY_CHARS]
        return rx.redirect(catalog_href(query=query))


def find_chatdash() -> rx.event.EventSpec:
    """On every store page: ask the embed script who this shopper is to chatdash."""
    return rx.call_script(CHATDASH_VISITOR_JS, callback=StoreState.link_chatdash)


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
    async def load(self):
        params = self.router.url.query_parameters
        category = str(params.get("category", ""))[:MAX_CATEGORY_CHARS]
        query = " ".join(str(params.get("q", "")).split())[: catalog.MAX_QUERY_CHARS]
        try:
            page = max(1, min(int(str(params.get("page", "1"))[:6]), 10_000))
        except ValueError:
            page = 1

        def read(session) -> tuple[list[catalog.CategoryCount], str, catalog.ProductPage]:
            counts = catalog.categories(session)
            known = category if category in {c.name for c in counts} else ""
            return counts, known, catalog.browse(session, category=known, query=query, page=page)

        counts, category, result = await _db(read)
        self.category, self.query, self.page = category, query, result.page
        self.pages, self.total = result.pages, result.total
        self.all_count = sum(c.count for c in counts)
        self.categories = [CategoryChip(c.name, c.count, catalog_href(c.name, query), c.name == category)
                           for c in counts]
        self.products = [ProductTile.of(p) for p in result.products]
        self.loaded = True
        await self._load_cart()


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
    async def load(self):
        path = self.router.url.path.rstrip("/")
        sku = unquote(path.rsplit("/", 1)[-1]) if path.startswith(routes.PRODUCT_PREFIX + "/") else ""
        self.quantity, self.added_message, self.error = 1, "", ""

        def read(session) -> tuple[catalog.ProductInfo | None, list[catalog.ProductSummary]]:
            product = catalog.product_by_sku(session, sku)
            return product, catalog.more_in_category(session, product) if product else []

        product, related = await _db(read)
        self.loaded = True
        await self._load_cart()
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
        return _track("product_view", {"sku": product.sku}, title=page_title(product.name))

    @rx.var
    def tab_title(self) -> str:
        if not self.loaded:
            return page_title()
        return page_title(self.name if self.found else "Product not found")

    @rx.event
    def increase(self):
        self.quantity = min(MAX_QUANTITY, self.quantity + 1)

    @rx.event
    def decrease(self):
        self.quantity = max(1, self.quantity - 1)

    @rx.event
    async def add_to_cart(self):
        """Adds the product on screen; the client names neither product nor shopper."""
        self.added_message, self.error = "", ""
        if not self._product_sku:
            return
        try:
            view = await self._change_cart(cart.add_to_cart, self._product_sku, self.quantity)
        except CartError as exc:
            self.error = str(exc)
            return
        noun = "item" if self.quantity == 1 else "items"
        self.added_message = f"Added {self.quantity} {noun} to your cart."
        self.quantity = 1
        return _track("cart", cart_payload(view, "add"))


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
    async def load(self):
        self.error, self.order_number, self.order_total, self.placing = "", "", "", False
        self._show_rows(await self._load_cart())
        self.loaded = True

    async def _apply(self, change: Callable[..., CartView], *args: Any):
        self.error = ""
        try:
            view = await self._change_cart(change, *args)
        except CartError as exc:
            self.error = str(exc)
            self._show_rows(await self._load_cart())
            return None
        self._show_rows(view)
        return _track("cart", cart_payload(view))

    @rx.event
    async def set_line_quantity(self, sku: str, quantity: int):
        return await self._apply(cart.set_quantity, sku, quantity)

    @rx.event
    async def remove_line(self, sku: str):
        return await self._apply(cart.remove, sku)

    @rx.event
    def start_order(self):
        """Disables the button first, so a double click orders once."""
        if self.placing:
            return
        self.placing = True
        return CartState.place_order

    @rx.event
    async def place_order(self):
        self.error = ""
        shopper = self._shopper()
        try:
            order = await _db(cart.place_order, shopper, self._chatdash_visitor)
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
        self.order_number = order.number
        self.order_total = money(order.total_cents, order.currency)
        self.placing = False
        self._show_rows(await self._load_cart())
        # The store's backend reports the order (the record chatdash counts) and
        # the emptied cart; the browser reports them too, as the embed script's events.
        reporter().order(order)
        reporter().cart(shopper, self._chatdash_visitor, cart.EMPTY_CART)
        confirmed = page_title(f"Order {order.number} confirmed")
        return [
            _track("cart", cart_payload(cart.EMPTY_CART, "order")),
            _track("order", order_payload(order)),
            # The confirmation replaces the cart without a new address: a page of its own.
            _track("page_view", {}, title=confirmed),
        ]

    @rx.var
    def tab_title(self) -> str:
        return page_title(f"Order {self.order_number} confirmed" if self.order_number else "Cart")
