"""The shopper panel follows the shopper live: the shopper browses three
products on the demo store and adds one to the cart while the admin has the
conversation open."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from chatdash.db import make_engine
from chatdash.models import Product
from chatdash.state.views import money
from tests.browser.test_live_chat import admin_page, open_widget

pytestmark = pytest.mark.browser


def test_admin_sees_the_shoppers_session_live(live_app, browser):
    eng = make_engine(live_app.db_url)
    with Session(eng) as s:
        products = s.exec(select(Product).where(Product.in_stock).order_by(Product.id).offset(10).limit(3)).all()
    eng.dispose()
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    shop_ctx = browser.new_context(
        viewport={"width": 390, "height": 844},
        user_agent=("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
                    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"),
    )
    try:
        admin = admin_page(admin_ctx, live_app)
        shop = shop_ctx.new_page()
        shop.goto(f"{live_app.frontend}/store")
        frame = open_widget(shop)
        text = f"Which of these is best? {uuid.uuid4().hex[:6]}"
        frame.locator("#widget-input").fill(text)
        frame.locator("#widget-input").press("Enter")
        expect(frame.locator(".msg-own", has_text=text)).to_be_visible()
        admin.locator(".conv-row", has_text=text).click()
        panel = admin.locator("#shopper-panel")
        expect(panel.locator("#shopper-device")).to_contain_text("Mobile")
        expect(panel.locator("#shopper-device")).to_contain_text("iOS")
        expect(panel.locator("#history-empty")).to_be_visible()

        for i, product in enumerate(products, start=1):
            shop.goto(f"{live_app.frontend}/store/product/{product.sku}")
            expect(shop.locator("#product-name")).to_have_text(product.name)
            # Live, without reloading the admin's page: current page and viewed items.
            expect(panel.locator("#shopper-current-page a")).to_have_attribute(
                "href", f"{live_app.frontend}/store/product/{product.sku}")
            expect(panel.locator(f'#session-items [data-sku="{product.sku}"]')).to_be_visible()
            expect(panel.locator("#session-items .session-item")).to_have_count(i)
        # Newest first.
        expect(panel.locator("#session-items .session-item").first).to_contain_text(products[-1].name)
        assert int(panel.locator("#pages-count").inner_text()) >= 4

        shop.locator("#add-to-cart").click()
        expect(shop.locator("#added-message")).to_be_visible()
        expect(panel.locator("#cart-total")).to_have_text(money(products[-1].price_cents, products[-1].currency))
        expect(panel.locator(f'#cart-lines [data-sku="{products[-1].sku}"]')).to_contain_text(products[-1].name)
    finally:
        admin_ctx.close()
        shop_ctx.close()
