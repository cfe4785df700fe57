"""Email on new conversations, switched on in the Settings page, delivered to a
real SMTP server on loopback."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.conftest import login
from tests.reflex_client import RawReflexClient

pytestmark = pytest.mark.browser


def _plain(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def _start_conversation(live_app, text: str) -> None:
    """Another shopper's first message, sent through the widget's own events."""
    from chatdash.state.widget import WidgetState

    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path="/widget")
        client.call(WidgetState, "adopt_visitor", {"token": ""}, path="/widget")
        client.call(WidgetState, "send", {"item": {"id": uuid.uuid4().hex, "text": text}}, path="/widget")
    finally:
        client.close()


def test_admin_turns_on_email_and_a_new_conversation_sends_one(live_app, live_staff_emails, browser, smtp_server):
    admin_ctx = browser.new_context()
    shop_ctx = browser.new_context()
    try:
        admin = admin_ctx.new_page()
        login(admin, live_app)
        expect(admin).to_have_url(re.compile(r"/admin/conversations/?$"))
        admin.goto(f"{live_app.frontend}/admin/settings")

        # A bad address is refused with a reason, and nothing is saved.
        admin.locator("#email-enabled").click()
        admin.locator("#email-recipients").fill("owner@demo-store.test, not-an-address")
        admin.locator("#settings-save").click()
        expect(admin.locator("#settings-error")).to_contain_text("'not-an-address' is not an email address")

        admin.locator("#email-recipients").fill("owner@demo-store.test, help@demo-store.test")
        admin.locator("#settings-save").click()
        expect(admin.locator("#settings-saved")).to_be_visible()
        admin.reload()
        expect(admin.locator("#email-recipients")).to_have_value("owner@demo-store.test, help@demo-store.test")

        already = len(smtp_server.messages)
        shop = shop_ctx.new_page()
        shop.goto(f"{live_app.frontend}/widget")
        expect(shop.locator("#chat-widget[data-ready='true']")).to_be_visible(timeout=30_000)
        text = f"Is the <b>tent</b> waterproof? {uuid.uuid4().hex[:6]}"
        shop.locator("#widget-input").fill(text)
        shop.locator("#widget-send").click()
        expect(shop.locator(".msg-own", has_text=text)).to_be_visible()
        shop.locator("#widget-input").fill("a second message sends no second email")
        shop.locator("#widget-send").click()
        expect(shop.locator(".msg-own", has_text="a second message")).to_be_visible()  # stored

        # Emails go out one at a time in the order their writes committed: once
        # a conversation started after that second message has its email, any
        # email the second message caused would have arrived before it.
        later = f"Do you ship to Norway? {uuid.uuid4().hex[:6]}"
        _start_conversation(live_app, later)
        smtp_server.wait_for(lambda m: later in _plain(m[1]))
        # (Staff emails only: a shopper's follow-up email from another test may land meanwhile.)
        new = [m for m in smtp_server.messages[already:] if "conversation" in m[1]["Subject"]]
        # This conversation's email, then the later one's, and nothing in between.
        assert len(new) == 2 and later in _plain(new[1][1]), "exactly one email per new conversation"
        rcpts, msg = new[0]
        assert sorted(rcpts) == ["help@demo-store.test", "owner@demo-store.test"]
        assert "New conversation on Demo Store" in msg["Subject"]
        plain = _plain(msg)
        html = msg.get_body(("html",)).get_content()
        assert text in plain
        assert "&lt;b&gt;tent&lt;/b&gt;" in html and "<b>tent</b>" not in html
        link = re.search(r"(http://\S+/admin/conversations\?c=\d+)", plain).group(1)

        # The link opens that conversation in the dashboard.
        admin.goto(link)
        expect(admin.locator("#message-list .msg-other", has_text=text)).to_be_visible()
    finally:
        admin_ctx.close()
        shop_ctx.close()
