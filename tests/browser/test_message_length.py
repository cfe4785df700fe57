"""The length limit is said, not applied in silence: a counter near the limit
and a clear word when a paste was cut, in the widget and the admin's reply box."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.test_live_chat import admin_page

pytestmark = pytest.mark.browser


def paste(page, field, text: str) -> None:
    """A real paste (Ctrl+V from the clipboard), which maxlength cuts."""
    page.evaluate("(t) => navigator.clipboard.writeText(t)", text)
    field.focus()
    page.keyboard.press("Control+V")


def check_counter(page, field, counter) -> None:
    expect(counter).to_be_hidden()
    field.fill("a" * 3000)
    field.press("End")
    field.press_sequentially("b")  # typed: the counter listens to input
    expect(counter).to_be_hidden()  # far from the limit: nothing to say
    field.fill("a" * 3700)
    field.press_sequentially("b")
    expect(counter).to_have_text("3,701 / 4,000 characters")
    field.fill("")
    paste(page, field, "c" * 5000)
    expect(field).to_have_js_property("value", "c" * 4000)
    expect(counter).to_have_text("Cut to 4,000 characters: the limit for one message.")
    # Making room again takes the warning back to the count.
    field.press("Backspace")
    expect(counter).to_have_text("3,999 / 4,000 characters")


def test_widget_and_reply_box_count_near_the_limit_and_say_when_a_paste_was_cut(live_app, browser):
    shop_ctx = browser.new_context(
        viewport={"width": 420, "height": 760}, permissions=["clipboard-read", "clipboard-write"]
    )
    admin_ctx = browser.new_context(
        viewport={"width": 1400, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
    )
    try:
        shop = shop_ctx.new_page()
        shop.goto(f"{live_app.frontend}/widget")
        expect(shop.locator("#chat-widget[data-ready='true']")).to_be_visible(timeout=30_000)
        check_counter(shop, shop.locator("#widget-input"), shop.locator("#widget-counter"))
        # Sending empties the box and the counter with it.
        shop.locator("#widget-send").click()
        expect(shop.locator("#widget-input")).to_have_value("")
        expect(shop.locator("#widget-counter")).to_be_hidden()

        question = f"A long answer, please {uuid.uuid4().hex[:6]}"
        shop.locator("#widget-input").fill(question)
        shop.locator("#widget-send").click()
        admin = admin_page(admin_ctx, live_app)
        admin.locator(".conv-row", has_text=question).click()
        expect(admin.locator("#message-list .msg-other", has_text=question)).to_be_visible()
        check_counter(admin, admin.locator("#reply-input"), admin.locator("#reply-counter"))
    finally:
        admin_ctx.close()
        shop_ctx.close()
