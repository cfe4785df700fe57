"""The Visitors page follows the store live: shoppers appear when they open a
store page, their row follows their page and cart, sorting by cart value puts
the biggest cart first, a shopper's conversation is linked from their row
whatever its status (shown beside it), and a shopper who closes the page
goes away."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from chatdash.db import make_engine
from chatdash.models import Product
from chatdash.state.views import money
from tests.browser.test_live_chat import admin_page, open_widget

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _visitor_row(admin, path: str):
    """The row of the visitor whose current page is `path`."""
    return admin.locator(".visitor-row", has=admin.get_by_text(re.compile(rf"^{re.escape(path)}/?$")))


def test_the_visitors_page_follows_the_store_live(live_app, browser):
    eng = make_engine(live_app.db_url)
    with Session(eng) as s:
        in_stock = s.exec(select(Product).where(Product.in_stock).order_by(Product.price_cents)).all()
        cheap, dear = in_stock[0], in_stock[-1]  # the dearest cart on the store sorts first
    eng.dispose()
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    one_ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    two_ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        admin = admin_page(admin_ctx, live_app)
        admin.locator("#menu-visitors").click()
        expect(admin).to_have_url(re.compile(r"/admin/visitors/?$"))
        expect(admin.locator("#visitor-sort")).to_be_visible()

        one, two = one_ctx.new_page(), two_ctx.new_page()
        one.goto(f"{live_app.frontend}/store/product/{cheap.sku}")
        expect(one.locator("#product-name")).to_have_text(cheap.name)
        row_one = _visitor_row(admin, f"/store/product/{cheap.sku}")
        expect(row_one).to_be_visible()  # arrived, without reloading the admin's page

        one.locator("#add-to-cart").click()
        expect(one.locator("#added-message")).to_be_visible()
        expect(row_one.locator(".visitor-cart")).to_have_text(money(cheap.price_cents, cheap.currency))

        two.goto(f"{live_app.frontend}/store/product/{dear.sku}")
        expect(two.locator("#product-name")).to_have_text(dear.name)
        row_two = _visitor_row(admin, f"/store/product/{dear.sku}")
        expect(row_two).to_be_visible()
        two.locator("#add-to-cart").click()
        expect(row_two.locator(".visitor-cart")).to_have_text(money(dear.price_cents, dear.currency))

        # Most recent first: one moves on and comes to the top; by cart value, two does.
        one.goto(f"{live_app.frontend}/store/cart")
        row_one = _visitor_row(admin, "/store/cart")
        expect(admin.locator(".visitor-row").first).to_contain_text("/store/cart")
        admin.get_by_role("radio", name="Cart value").click()
        expect(admin.locator(".visitor-row").first).to_contain_text(f"/store/product/{dear.sku}")
        SHOTS.mkdir(exist_ok=True)
        admin.screenshot(path=str(SHOTS / "visitors-page.png"))

        # One writes in the chat: their row links to the conversation, live, and
        # the row's chat button says it pops that chat up rather than starting one.
        expect(row_one.locator(".visitor-open-chat")).to_have_count(0)
        expect(row_one.locator(".visitor-start-chat")).to_have_text("Start chat")
        frame = open_widget(one)
        text = f"Do these come in blue? {uuid.uuid4().hex[:6]}"
        frame.locator("#widget-input").fill(text)
        frame.locator("#widget-input").press("Enter")
        expect(frame.locator(".msg-own", has_text=text).locator(".msg-sent")).to_be_visible()
        expect(row_one.locator(".visitor-open-chat")).to_be_visible()
        expect(row_one.locator(".visitor-start-chat")).to_have_text("Pop up chat")
        expect(row_one.locator(".visitor-chat-status")).to_have_count(0)  # open: no badge
        expect(row_two.locator(".visitor-start-chat")).to_have_text("Start chat")
        href = row_one.locator(".visitor-open-chat").get_attribute("href")

        # An agent resolves it in another tab: the row keeps the link, now marked resolved.
        agent = admin_ctx.new_page()
        agent.goto(f"{live_app.frontend}{href}")
        expect(agent.locator("#message-list .msg-other", has_text=text)).to_be_visible()
        agent.locator("#resolve-button").click()
        expect(agent.locator("#reopen-button")).to_be_visible()
        expect(row_one.locator(".visitor-chat-status")).to_have_text("resolved")
        expect(row_one.locator(".visitor-start-chat")).to_have_text("Pop up chat")
        admin.screenshot(path=str(SHOTS / "visitors-page-resolved-chat.png"))
        # The composer says where the message goes (cancelled: nothing is sent).
        row_one.locator(".visitor-start-chat").click()
        dialog = admin.locator("#start-chat-dialog")
        expect(dialog).to_contain_text("Pop up the chat for Visitor")
        expect(dialog).to_contain_text("goes into their conversation")
        admin.screenshot(path=str(SHOTS / "visitors-pop-up-composer.png"))
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_have_count(0)
        row_one.locator(".visitor-open-chat").click()
        conv_id = href.rpartition("c=")[2]
        expect(admin).to_have_url(re.compile(rf"/admin/conversations/?\?c={conv_id}$"))
        expect(admin.locator("#message-list .msg-other", has_text=text)).to_be_visible()
        admin.locator("#menu-visitors").click()
        expect(admin).to_have_url(re.compile(r"/admin/visitors/?$"))
        row_one = _visitor_row(admin, "/store/cart")
        row_two = _visitor_row(admin, f"/store/product/{dear.sku}")
        expect(row_one.locator(".visitor-chat-status")).to_have_text("resolved")  # read afresh, the same

        # Closing the page: the visitor leaves the list.
        two.close(run_before_unload=True)  # as a browser closes a tab: the page says goodbye
        expect(row_two).to_have_count(0, timeout=20_000)
        expect(row_one).to_be_visible()
    finally:
        admin_ctx.close()
        one_ctx.close()
        two_ctx.close()
