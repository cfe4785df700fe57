"""The chat page opened on its own (a link to /widget, not the embed): a reload
keeps the shopper's conversation and the store's answer."""

from __future__ import annotations

import time
import uuid

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from chatdash.db import make_engine
from chatdash.models import Message
from tests.browser.test_live_chat import admin_page

pytestmark = pytest.mark.browser


def conversation_of(db_url: str, text: str) -> int:
    eng = make_engine(db_url)
    try:
        with Session(eng) as s:
            (message,) = s.exec(select(Message).where(Message.body == text)).all()
            return message.conversation_id
    finally:
        eng.dispose()


def test_reloading_the_standalone_chat_keeps_the_conversation_and_the_answer(live_app, browser):
    shop_ctx = browser.new_context(viewport={"width": 420, "height": 760})
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        shop = shop_ctx.new_page()
        # chat.js (which keeps the shopper's token) arrives after the page has
        # connected, as on a slow network or a dev server: the page must wait for it.
        shop.route("**/chat.js", lambda route: (time.sleep(1.5), route.continue_()))
        shop.goto(f"{live_app.frontend}/widget")
        expect(shop.locator("#chat-widget[data-ready='true']")).to_be_visible(timeout=30_000)
        question = f"Opened the chat link directly {uuid.uuid4().hex[:6]}"
        shop.locator("#widget-input").fill(question)
        shop.locator("#widget-send").click()
        expect(shop.locator(".msg-own", has_text=question).locator(".msg-sent")).to_be_visible()

        admin = admin_page(admin_ctx, live_app)
        admin.locator(".conv-row", has_text=question).click()
        answer = f"Here is your answer {uuid.uuid4().hex[:6]}"
        admin.locator("#reply-input").fill(answer)
        admin.locator("#reply-send").click()
        expect(shop.locator(".msg-other", has_text=answer)).to_be_visible()

        for _ in range(3):
            shop.reload()
            expect(shop.locator("#chat-widget[data-ready='true']")).to_be_visible(timeout=30_000)
            expect(shop.locator(".msg-own", has_text=question)).to_be_visible()
            expect(shop.locator(".msg-other", has_text=answer)).to_be_visible()

        # The next message continues that conversation; no new "Visitor …" one starts.
        follow_up = f"Thanks, one more thing {uuid.uuid4().hex[:6]}"
        shop.locator("#widget-input").fill(follow_up)
        shop.locator("#widget-send").click()
        expect(shop.locator(".msg-own", has_text=follow_up).locator(".msg-sent")).to_be_visible()
        expect(admin.locator("#message-list .msg-other", has_text=follow_up)).to_be_visible()
        assert conversation_of(live_app.db_url, follow_up) == conversation_of(live_app.db_url, question)
    finally:
        admin_ctx.close()
        shop_ctx.close()
