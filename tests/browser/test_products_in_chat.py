"""Products in the chat: the admin searches the catalog and sends a product
card; the shopper sees it in the widget and clicking it opens the product page
in the store's own window."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from chatdash.models import Message, MessageKind, Product
from tests.browser.test_live_chat import admin_page, open_widget

pytestmark = pytest.mark.browser


def test_admin_searches_and_sends_a_product_card(live_app, browser, live_db):
    with Session(live_db) as s:
        product = s.exec(select(Product).where(Product.in_stock).order_by(Product.id.desc())).first()
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    shop_ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    try:
        admin = admin_page(admin_ctx, live_app)
        shop = shop_ctx.new_page()
        shop.goto(f"{live_app.frontend}/store")
        frame = open_widget(shop)
        text = f"Looking for a gift {uuid.uuid4().hex[:6]}"
        frame.locator("#widget-input").fill(text)
        frame.locator("#widget-input").press("Enter")
        admin.locator(".conv-row", has_text=text).click()
        expect(admin.locator("#message-list .msg-other", has_text=text)).to_be_visible()

        admin.locator("#product-search-button").click()
        admin.locator("#product-search-input").fill(product.sku)
        result = admin.locator(".search-result", has=admin.locator(f'[data-sku="{product.sku}"]'))
        expect(result).to_be_visible()
        expect(result).to_contain_text(product.name)
        # A query matching nothing says so.
        admin.locator("#product-search-input").fill("zzzz-no-such-product")
        expect(admin.get_by_text("No products match.")).to_be_visible()
        admin.locator("#product-search-input").fill(product.sku)
        result.click()

        card = frame.locator(".product-card", has_text=product.name)
        expect(card).to_be_visible()
        expect(admin.locator(".product-card", has_text=product.name)).to_be_visible()
        with Session(live_db) as s:
            sent = s.exec(select(Message).where(Message.kind == MessageKind.PRODUCT,
                                                Message.product_id == product.id)).all()
        assert len(sent) == 1
        # Recommendations: open "related" for one and send a product from the popup.
        recs = admin.locator("#recommendations .product-row")
        expect(recs.first).to_be_visible()
        assert recs.count() >= 3
        sent_name = None
        for i in range(recs.count()):
            recs.nth(i).locator(".rec-related").click()
            dialog = admin.locator("#related-dialog")
            expect(dialog).to_be_visible()
            expect(dialog.locator("#related-bought")).to_be_visible()
            candidates = dialog.locator(".product-row")
            if candidates.count():
                sent_name = candidates.first.locator(".product-name").inner_text()
                candidates.first.locator(".related-send").click()
                expect(dialog).to_have_count(0)
                break
            # A product with no data says so in all three lists.
            expect(dialog.locator(".related-empty")).to_have_count(3)
            admin.keyboard.press("Escape")
        assert sent_name, "no recommended product had related products"
        expect(frame.locator(".product-card", has_text=sent_name)).to_be_visible()

        # The card opens the product page in the store's window, not in the iframe.
        card.click()
        expect(shop).to_have_url(re.compile(rf"/store/product/{re.escape(product.sku)}/?$"))
    finally:
        admin_ctx.close()
        shop_ctx.close()
