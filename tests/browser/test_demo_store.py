"""The demo store in a real Chromium: browse, filter, open a product, fill the
cart, place an order, and find that order in the store's database — and in
chatdash's, where it arrives through chatdash's public store API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from chatdash.db import make_engine
from chatdash.models import Cart as ChatdashCart
from chatdash.models import Order as ChatdashOrder
from chatdash.models import Shopper
from demo_store import db as store_db
from demo_store.models import Cart, CartLine, Order, OrderLine, Product
from demo_store.state import CartState, StoreState, money
from tests.reflex_client import RawReflexClient
from tests.waiting import wait_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_engine(live_app):
    """The demo store's own database."""
    eng = store_db.make_engine(f"sqlite:///{Path(live_app.env['DEMO_STORE_DATA_DIR']) / 'store.db'}")
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def chatdash_engine(live_app):
    eng = make_engine(live_app.db_url)
    yield eng
    eng.dispose()


def wait_for(check, timeout: float = 15.0):
    """The value of check() once it is truthy (reports to chatdash run in the background)."""
    return wait_until(check, timeout=timeout, what=getattr(check, "__name__", "the check"), every=0.2)


def test_shopper_browses_fills_cart_and_places_an_order(live_app, context, live_engine, chatdash_engine):
    page = context.new_page()
    page.goto(f"{live_app.frontend}/store")
    expect(page.locator("#catalog-heading")).to_have_text("All products")
    expect(page.locator(".product-tile")).to_have_count(24)  # one page of the catalog
    expect(page.locator("#page-info")).to_contain_text("Page 1 of")
    expect(page.locator("#cart-count")).to_have_text("0")
    # Embedded like any store embeds chatdash.
    expect(page.locator("script[data-chatdash]")).to_have_attribute("src", f"{live_app.backend}/widget.js")

    # A category from the sidebar filters the grid.
    link = page.locator(".category-link").nth(2)
    category = link.get_attribute("data-category")
    link.click()
    expect(page).to_have_url(re.compile(r"/store\?category="))
    expect(page.locator("#catalog-heading")).to_have_text(category)

    # Open the first product that can be bought.
    tile = page.locator(".product-tile:not(:has(.oos-badge))").first
    sku = tile.get_attribute("data-sku")
    tile.click()
    expect(page).to_have_url(re.compile(rf"/store/product/{re.escape(sku)}$"))
    with Session(live_engine) as s:
        product = s.exec(select(Product).where(Product.sku == sku)).one()
    assert product.category == category
    expect(page.locator("#product-name")).to_have_text(product.name)
    expect(page.locator("#product-price")).to_have_text(money(product.price_cents))
    expect(page.locator("#more-in-category .product-tile")).not_to_have_count(0)

    # Quantity 2, add to cart: the header shows the count.
    page.locator(".qty-plus").click()
    expect(page.locator(".qty-value")).to_have_text("2")
    page.click("#add-to-cart")
    expect(page.locator("#added-message")).to_contain_text("Added 2 items")
    expect(page.locator("#cart-count")).to_have_text("2")

    page.click("#cart-link")
    expect(page).to_have_url(re.compile(r"/store/cart$"))
    line = page.locator(".cart-line")
    expect(line).to_have_count(1)
    expect(line.locator(".line-qty-value")).to_have_text("2")
    expect(page.locator("#cart-total")).to_have_text(money(2 * product.price_cents))
    # +/- change the line and the total.
    line.locator(".line-qty-plus").click()
    expect(page.locator("#cart-total")).to_have_text(money(3 * product.price_cents))
    line.locator(".line-qty-minus").click()
    expect(page.locator("#cart-total")).to_have_text(money(2 * product.price_cents))
    expect(page.locator("#cart-count")).to_have_text("2")

    page.click("#place-order")
    number = page.locator("#order-number")
    expect(number).to_have_text(re.compile(r"^DS-\d{6}-[0-9A-F]{6}$"))
    expect(page.locator("#order-total")).to_have_text(money(2 * product.price_cents))
    expect(page.locator("#cart-count")).to_have_text("0")

    # The order is the store's, belongs to this browser's shopper, and the cart is empty.
    shopper = page.evaluate("localStorage.getItem('demo_store_shopper')")
    with Session(live_engine) as s:
        order = s.exec(select(Order).where(Order.number == number.inner_text())).one()
        assert (order.shopper, order.total_cents) == (shopper, 2 * product.price_cents)
        lines = s.exec(select(OrderLine).where(OrderLine.order_id == order.id)).all()
        assert [(ol.sku, ol.quantity, ol.unit_price_cents) for ol in lines] == [(sku, 2, product.price_cents)]
        assert s.exec(select(Cart).where(Cart.shopper == shopper)).one().total_cents == 0

    # chatdash heard of it as from any store: the store's backend reported it,
    # naming the shopper by the chat's visitor token.
    visitor_id = page.evaluate("localStorage.getItem('chatdash_visitor')").split(".")[0]

    def reported():
        with Session(chatdash_engine) as s:
            return s.exec(select(ChatdashOrder).where(ChatdashOrder.external_id == order.number)).first()

    def cart_emptied():
        with Session(chatdash_engine) as s:
            return s.exec(select(ChatdashCart).where(ChatdashCart.shopper_id == theirs.shopper_id)
                          ).one().total_cents == 0

    def marked_reported():
        with Session(live_engine) as s:
            return s.get(Order, order.id).reported_at is not None

    theirs = wait_for(reported)
    assert (theirs.source, theirs.total_cents) == ("api", 2 * product.price_cents)
    with Session(chatdash_engine) as s:
        assert s.get(Shopper, theirs.shopper_id).visitor_id == visitor_id
    wait_for(cart_emptied)
    wait_for(marked_reported)

    # Reloading the cart shows it empty.
    page.reload()
    expect(page.locator("#cart-empty")).to_be_visible()


def test_search_finds_products_by_name(live_app, context, live_engine):
    with Session(live_engine) as s:
        product = s.exec(select(Product).order_by(Product.id)).first()
    word = product.name.split()[-1]
    page = context.new_page()
    page.goto(f"{live_app.frontend}/store")
    page.fill("#store-search", word)
    page.press("#store-search", "Enter")
    expect(page).to_have_url(re.compile(rf"/store\?q={re.escape(word)}$"))
    expect(page.locator("#catalog-heading")).to_contain_text(word)
    expect(page.locator(".product-tile").first).to_contain_text(word)


def test_unknown_product_shows_a_friendly_not_found(live_app, context):
    page = context.new_page()
    page.goto(f"{live_app.frontend}/store/product/NO-SUCH-SKU")
    expect(page.locator("#not-found")).to_contain_text("couldn't find that product")
    page.get_by_role("link", name="Browse the store").click()
    expect(page.locator(".product-tile").first).to_be_visible()


def _cart_lines_of(engine, shopper: str) -> list[tuple[str, int]]:
    with Session(engine) as s:
        rows = s.exec(
            select(Product.sku, CartLine.quantity)
            .join(CartLine, CartLine.product_id == Product.id)
            .join(Cart, Cart.id == CartLine.cart_id)
            .where(Cart.shopper == shopper)
        ).all()
    return [tuple(r) for r in rows]


def test_cart_handlers_refuse_bad_arguments_from_a_raw_client(live_app, live_engine):
    """Any client can call any handler with anything: nothing invalid reaches the cart."""
    with Session(live_engine) as s:
        sku = s.exec(select(Product.sku).where(Product.in_stock).order_by(Product.id)).first()
        sold_out = s.exec(select(Product.sku).where(~Product.in_stock)).first()
    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path="/store/cart")
        client.call(CartState, "load", path="/store/cart")
        shopper = next(v for k, v in client.seen_values(StoreState).items() if k.startswith("shopper_token"))
        for payload in (
            {"sku": "NO-SUCH-SKU", "quantity": 2},
            {"sku": sku, "quantity": 100},
            {"sku": sku, "quantity": 0},
            {"sku": sku, "quantity": -3},
            {"sku": sku, "quantity": 2.5},
            {"sku": sku, "quantity": "lots"},
            {"sku": {"$ne": ""}, "quantity": 1},
            {"sku": "X" * 10_000, "quantity": 1},
            {"sku": sold_out, "quantity": 1},
        ):
            client.call(CartState, "set_line_quantity", payload, path="/store/cart")
        client.call(CartState, "remove_line", {"sku": None}, path="/store/cart")
        for visitor in ("x" * 10_000, {"$ne": ""}, None, "not.a-token"):
            client.call(StoreState, "link_chatdash", {"visitor": visitor}, path="/store/cart")
        client.call(CartState, "place_order", path="/store/cart")
        assert _cart_lines_of(live_engine, shopper) == []
        assert "Your cart is empty." in str(client.seen_values(CartState))

        # The same handler with good arguments does work.
        client.call(CartState, "set_line_quantity", {"sku": sku, "quantity": 3}, path="/store/cart")
        assert _cart_lines_of(live_engine, shopper) == [(sku, 3)]
    finally:
        client.close()
