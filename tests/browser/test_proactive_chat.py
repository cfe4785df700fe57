"""An agent starts a chat from the Visitors page, in real Chromium: a shopper
browses a store page of another origin with the chat closed; the agent sees
them, clicks Start chat and writes; the shopper's chat opens by itself with
that message (on a phone: beside the launcher), the shopper answers, the agent
reads the answer live in the conversation; a reload does not pop the chat
again for the same message."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.test_identified_customer import (  # noqa: F401
    IPHONE,
    signed,
    third_party_store,
    wait_for_visit,
)
from tests.browser.test_live_chat import admin_page, open_widget

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "shots"
# The store page's heartbeat comes every 15 s: the popup arrives with the next one.
POPUP_TIMEOUT = 40_000


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def visitors_page(admin) -> None:
    admin.locator("#menu-visitors").click()
    expect(admin).to_have_url(re.compile(r"/admin/visitors/?$"))
    expect(admin.locator("#visitor-sort")).to_be_visible()


def start_chat(admin, row, text: str) -> None:
    """Start chat on the row and write the opening message (not sent yet)."""
    row.locator(".visitor-start-chat").click()
    dialog = admin.locator("#start-chat-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("#composer-input").fill(text)


def answers_seen(page, at_least: int) -> None:
    """The positive marker: the store page has acted on `at_least` heartbeat answers
    (each of which could have opened the chat)."""
    expect(page.locator("#chatdash-launcher")).to_have_attribute(
        "data-beats", re.compile(r"^\d+$"), timeout=POPUP_TIMEOUT)
    page.wait_for_function(
        "(n) => Number(document.querySelector('#chatdash-launcher').dataset.beats || 0) >= n", arg=at_least,
        timeout=POPUP_TIMEOUT)


def test_an_agent_starts_a_chat_and_the_shoppers_widget_opens_with_it(live_app, browser, third_party_store):  # noqa: F811
    tag = uuid.uuid4().hex[:6]
    title = f"Summit 2 Tent {tag}"
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    shop_ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        shop = shop_ctx.new_page()
        shop.goto(third_party_store(f"tent-{tag}.html", title))
        expect(shop.locator("#chatdash-launcher")).to_be_visible()
        expect(shop.locator("#chatdash-panel")).to_be_hidden()  # the shopper has not opened the chat
        assert shop.locator("#chatdash-frame").count() == 0

        admin = admin_page(admin_ctx, live_app)
        visitors_page(admin)
        row = admin.locator(".visitor-row", has_text=title)
        expect(row).to_be_visible()
        expect(row.locator(".visitor-open-chat")).to_have_count(0)  # no conversation yet

        text = f"Hi, can I help with the Summit 2 Tent? {tag}"
        start_chat(admin, row, text)
        shot(admin, "proactive-composer-1400.png")
        admin.locator("#composer-input").press("Enter")

        # The agent lands in the new conversation, with the message in it.
        expect(admin).to_have_url(re.compile(r"/admin/conversations/?\?c=\d+$"))
        conv_id = re.search(r"c=(\d+)", admin.url).group(1)
        expect(admin.locator("#message-list .msg-own", has_text=text)).to_be_visible()
        expect(admin.locator(f'.conv-row[data-conversation-id="{conv_id}"]')).to_be_visible()

        # The shopper's chat opens by itself with the agent's message.
        expect(shop.locator("#chatdash-panel")).to_be_visible(timeout=POPUP_TIMEOUT)
        frame = shop.frame_locator("#chatdash-frame")
        expect(frame.locator("#message-list .msg-other", has_text=text)).to_be_visible()
        shot(shop, "proactive-shopper-popped-1200.png")

        # The shopper answers in the same conversation; the agent reads it live.
        reply = f"Yes please: is it waterproof? {tag}"
        frame.locator("#widget-input").fill(reply)
        frame.locator("#widget-input").press("Enter")
        expect(frame.locator(".msg-own", has_text=reply).locator(".msg-sent")).to_be_visible()
        expect(admin.locator("#message-list .msg-other", has_text=reply)).to_be_visible()
        expect(admin.locator(f'.conv-row[data-conversation-id="{conv_id}"]')).to_contain_text(reply)
        shot(admin, "proactive-agent-reply-1400.png")

        # A reload: the heartbeats that follow do not open the chat again.
        shop.reload()
        answers_seen(shop, 1)
        expect(shop.locator("#chatdash-panel")).to_be_hidden()
        expect(shop.locator("#chatdash-preview")).to_be_hidden()
    finally:
        admin_ctx.close()
        shop_ctx.close()


def test_on_a_phone_the_message_shows_beside_the_launcher_once(live_app, browser, third_party_store, live_db):  # noqa: F811
    """A signed-in customer on a phone. A phone's chat would cover the store: the
    message shows beside the launcher, a tap opens it. The page never opened the
    chat, so nothing marks the message seen: only the server's claim keeps a
    reload from showing it again."""
    tag = uuid.uuid4().hex[:6]
    title = f"Trail Shoes {tag}"
    customer_id = f"CUST-{tag}"
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    phone_ctx = browser.new_context(viewport={"width": 390, "height": 844}, user_agent=IPHONE)
    try:
        phone = phone_ctx.new_page()
        phone.goto(third_party_store(f"shoes-{tag}.html", title, customer=signed(customer_id)))
        expect(phone.locator("#chatdash-launcher")).to_be_visible()
        wait_for_visit(live_db, customer_id, title)  # the store's page has said who is signed in

        admin = admin_page(admin_ctx, live_app)
        visitors_page(admin)
        row = admin.locator(".visitor-row", has_text=title)
        expect(row.get_by_text("customer", exact=True)).to_be_visible()  # identified by the store
        text = f"Those run small: want the size chart? {tag}"
        start_chat(admin, row, text)
        admin.locator("#composer-send").click()
        expect(admin).to_have_url(re.compile(r"/admin/conversations/?\?c=\d+$"))

        preview = phone.locator("#chatdash-preview")
        expect(preview).to_have_text(text, timeout=POPUP_TIMEOUT)
        expect(phone.locator("#chatdash-badge")).to_have_text("1")
        expect(phone.locator("#chatdash-panel")).to_be_hidden()
        shot(phone, "proactive-phone-preview-390.png")

        phone.reload()
        answers_seen(phone, 1)
        expect(preview).to_be_hidden()
        expect(phone.locator("#chatdash-badge")).to_be_hidden()

        # The message waits in the chat: a tap on the launcher shows it.
        phone.locator("#chatdash-launcher").click()
        frame = phone.frame_locator("#chatdash-frame")
        expect(frame.locator("#message-list .msg-other", has_text=text)).to_be_visible(timeout=30_000)
    finally:
        admin_ctx.close()
        phone_ctx.close()


def test_a_shopper_who_chatted_before_gets_it_in_the_same_conversation(live_app, browser, third_party_store):  # noqa: F811
    """The shopper wrote earlier and closed the chat; on the next page it is
    loaded collapsed. The agent's opening message joins that conversation and
    the chat opens with both messages in it."""
    tag = uuid.uuid4().hex[:6]
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    shop_ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        shop = shop_ctx.new_page()
        shop.goto(third_party_store(f"bags-{tag}.html", f"Bags {tag}"))
        frame = open_widget(shop)
        earlier = f"Do you have the daypack in blue? {tag}"
        frame.locator("#widget-input").fill(earlier)
        frame.locator("#widget-input").press("Enter")
        expect(frame.locator(".msg-own", has_text=earlier).locator(".msg-sent")).to_be_visible()
        frame.locator("#widget-close").click()
        expect(shop.locator("#chatdash-panel")).to_be_hidden()

        title = f"Daypack 20L {tag}"
        shop.goto(third_party_store(f"daypack-{tag}.html", title))
        expect(shop.locator("#chatdash-frame")).to_have_count(1)  # loaded collapsed: replies show beside the launcher
        expect(shop.locator("#chatdash-panel")).to_be_hidden()

        admin = admin_page(admin_ctx, live_app)
        visitors_page(admin)
        row = admin.locator(".visitor-row", has_text=title)
        expect(row.locator(".visitor-open-chat")).to_be_visible()  # they have a conversation
        text = f"It comes in blue, yes. Shall I send it to the chat? {tag}"
        start_chat(admin, row, text)
        admin.locator("#composer-input").press("Enter")
        expect(admin).to_have_url(re.compile(r"/admin/conversations/?\?c=\d+$"))
        expect(admin.locator("#message-list .msg-other", has_text=earlier)).to_be_visible()
        expect(admin.locator("#message-list .msg-own", has_text=text)).to_be_visible()

        expect(shop.locator("#chatdash-panel")).to_be_visible(timeout=POPUP_TIMEOUT)
        frame = shop.frame_locator("#chatdash-frame")
        expect(frame.locator("#message-list .msg-own", has_text=earlier)).to_be_visible()
        expect(frame.locator("#message-list .msg-other", has_text=text)).to_be_visible()
        # Shown, so seen: the agent's message is marked seen on their side.
        expect(admin.locator("#message-list .msg-own", has_text=text).locator(".msg-seen")).to_be_visible()
    finally:
        admin_ctx.close()
        shop_ctx.close()
