"""The widget stays out of the shopper's way on the demo store's product pages:
it opens only when asked, stays closed once closed, comes back collapsed on
another page with new replies beside the launcher, and fills a phone's screen
with a clear way to close it."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from chatdash.db import make_engine
from chatdash.models import Product
from tests.browser.test_live_chat import admin_page, open_widget

pytestmark = pytest.mark.browser


def two_products(live_app) -> list[Product]:
    eng = make_engine(live_app.db_url)
    try:
        with Session(eng) as s:
            return list(s.exec(select(Product).where(Product.in_stock).order_by(Product.id).limit(2)).all())
    finally:
        eng.dispose()


def test_closed_stays_closed_and_another_page_shows_replies_collapsed(live_app, browser):
    first, second = two_products(live_app)
    shop_ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        shop = shop_ctx.new_page()
        shop.goto(f"{live_app.frontend}/store/product/{first.sku}")
        panel = shop.locator("#chatdash-panel")
        expect(shop.locator("#chatdash-launcher")).to_be_visible()
        expect(panel).to_be_hidden()  # nothing opens by itself
        frame = open_widget(shop)
        question = f"Does it come in red? {uuid.uuid4().hex[:6]}"
        frame.locator("#widget-input").fill(question)
        frame.locator("#widget-send").click()
        expect(frame.locator(".msg-own", has_text=question).locator(".msg-sent")).to_be_visible()

        # A reload of the page it was open on keeps it open.
        shop.reload()
        expect(panel).to_be_visible()
        # Closed from its own header, it stays closed: reload, another page.
        shop.frame_locator("#chatdash-frame").locator("#widget-close").click()
        expect(panel).to_be_hidden()
        shop.reload()
        expect(shop.locator("#chatdash-launcher")).to_be_visible()
        expect(panel).to_be_hidden()
        shop.goto(f"{live_app.frontend}/store/product/{second.sku}")
        expect(shop.locator("#chatdash-launcher")).to_be_visible()
        expect(panel).to_be_hidden()
        expect(shop.locator("#add-to-cart")).to_be_visible()

        # Collapsed, the chat is still live: a reply shows beside the launcher.
        admin = admin_page(admin_ctx, live_app)
        admin.locator(".conv-row", has_text=question).click()
        answer = f"Yes, in red and blue {uuid.uuid4().hex[:6]}"
        admin.locator("#reply-input").fill(answer)
        admin.locator("#reply-send").click()
        expect(shop.locator("#chatdash-preview")).to_have_text(answer)
        expect(shop.locator("#chatdash-badge")).to_have_text("1")
        expect(panel).to_be_hidden()
        # Not on the shopper's screen yet, so not "Seen" for the admin: checked
        # once a second reply has reached the collapsed chat after the first.
        second_answer = f"And in green {uuid.uuid4().hex[:6]}"
        admin.locator("#reply-input").fill(second_answer)
        admin.locator("#reply-send").click()
        expect(shop.locator("#chatdash-preview")).to_have_text(second_answer)
        expect(shop.locator("#chatdash-badge")).to_have_text("2")
        expect(admin.locator(".msg-own", has_text=answer).locator(".msg-sent")).to_be_visible()
        expect(admin.locator(".msg-own .msg-seen")).to_have_count(0)
        # A click on the preview opens the chat at that reply.
        shop.locator("#chatdash-preview").click()
        expect(panel).to_be_visible()
        expect(shop.frame_locator("#chatdash-frame").locator(".msg-other", has_text=answer)).to_be_visible()
        # Now it is on screen: the admin sees "Seen".
        expect(admin.locator(".msg-own", has_text=second_answer).locator(".msg-seen")).to_be_visible()
        expect(shop.locator("#chatdash-preview")).to_be_hidden()
        expect(shop.locator("#chatdash-badge")).to_be_hidden()

        # Open on this page, it does not follow the shopper to the next one.
        shop.goto(f"{live_app.frontend}/store/product/{first.sku}")
        expect(shop.locator("#chatdash-launcher")).to_be_visible()
        expect(panel).to_be_hidden()
    finally:
        admin_ctx.close()
        shop_ctx.close()


def test_on_a_phone_the_chat_fills_the_screen_and_closes_from_its_header(live_app, browser):
    (product, _) = two_products(live_app)
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        shop = ctx.new_page()
        shop.goto(f"{live_app.frontend}/store/product/{product.sku}")
        frame = open_widget(shop)
        panel = shop.locator("#chatdash-panel")
        box = panel.bounding_box()
        assert box == {"x": 0, "y": 0, "width": 390, "height": 844}, box
        # The launcher would sit on the chat's send button: it steps aside.
        expect(shop.locator("#chatdash-launcher")).to_be_hidden()
        close = frame.locator("#widget-close")
        expect(close).to_be_visible()
        expect(close).to_have_accessible_name("Close chat")
        close.tap()
        expect(panel).to_be_hidden()
        expect(shop.locator("#chatdash-launcher")).to_be_visible()
        expect(shop.locator("#add-to-cart")).to_be_visible()
    finally:
        ctx.close()
