"""Live chat in real Chromium with two pages open at once: a shopper on a store
page of another origin (the embed) and an admin on the conversations page."""

from __future__ import annotations

import http.server
import itertools
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from chatdash.models import Message
from tests.conftest import login

pytestmark = pytest.mark.browser

STORE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif">
<h1>Some other shop</h1><p>A plain HTML page on another origin.</p>
<script src="{backend}/widget.js" async></script>
</body></html>
"""


@pytest.fixture(scope="module")
def foreign_store(live_app, tmp_path_factory):
    """A plain HTML store page served from a different origin than chatdash."""
    root = tmp_path_factory.mktemp("foreign")
    (root / "index.html").write_text(STORE_PAGE.format(title="Foreign shop", backend=live_app.backend))
    (root / "other.html").write_text(STORE_PAGE.format(title="Other page", backend=live_app.backend))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def messages_with(live_db, text: str) -> list[Message]:
    with Session(live_db) as s:
        return list(s.exec(select(Message).where(Message.body == text)).all())


def open_widget(page):
    page.click("#chatdash-launcher")
    frame = page.frame_locator("#chatdash-frame")
    try:
        expect(frame.locator("#chat-widget[data-ready='true']")).to_be_visible(timeout=30_000)
    except AssertionError:
        out = Path(__file__).resolve().parents[2] / "test-artifacts"
        out.mkdir(exist_ok=True)
        page.screenshot(path=str(out / "open-widget-failed.png"))
        for f in page.frames:
            (out / "open-widget-frames.txt").open("a").write(f"{f.url}\n{f.content()[:3000]}\n\n")
        raise
    return frame


def unseen_conversations(live_db) -> int:
    """What the bell counts, read where the app reads it."""
    from chatdash.services.conversations import unseen_conversation_count

    with Session(live_db) as s:
        return unseen_conversation_count(s)


def expect_bell(admin, count: int) -> None:
    badge = admin.locator("#notification-count")
    if count:
        expect(badge).to_have_text(str(count))
    else:
        expect(badge).to_have_count(0)


def type_until_visible(field, text: str, indicator, timeout: float = 20.0) -> None:
    """Type as a person would, key by key, until `indicator` shows. Typing
    signals are throttled to one per 2.5 s, so the first keys may fall in the
    window of earlier typing (the first message's)."""
    deadline = time.monotonic() + timeout
    for key in itertools.cycle(text):
        field.press_sequentially(key)
        try:
            expect(indicator).to_be_visible(timeout=200)
            return
        except AssertionError:
            assert time.monotonic() < deadline, f"{indicator} not visible after {timeout} s of typing"


def admin_page(browser_context, live_app):
    page = browser_context.new_page()
    login(page, live_app)
    expect(page).to_have_url(re.compile(r"/admin/conversations/?$"))
    expect(page.locator("#conversation-list")).to_be_visible()
    return page


def test_chat_round_trip_live_with_presence(live_app, browser, foreign_store, live_db):
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    shop_ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        admin = admin_page(admin_ctx, live_app)
        # Conversations earlier tests left unread; the bell shows them once loaded.
        before = unseen_conversations(live_db)
        expect_bell(admin, before)

        shop = shop_ctx.new_page()
        shop.goto(f"{foreign_store}/index.html")
        frame = open_widget(shop)
        text = f"Do you ship to Canada? {uuid.uuid4().hex[:6]}"
        frame.locator("#widget-input").fill(text)
        frame.locator("#widget-input").press("Enter")  # Enter sends
        # Local echo, then marked sent once stored.
        expect(frame.locator(".msg-own", has_text=text).locator(".msg-sent")).to_be_visible()

        # The admin sees the new conversation live: row, unread mark, bell count, tab title.
        expect(admin.locator(".conv-row", has_text=text)).to_be_visible()
        # Pin the row by id: its preview text changes with every message.
        conv_id = admin.locator(".conv-row", has_text=text).get_attribute("data-conversation-id")
        row = admin.locator(f'.conv-row[data-conversation-id="{conv_id}"]')
        expect(row.locator(".conv-unread")).to_have_text("1")
        expect(row.locator(".presence-on")).to_be_visible()
        expect_bell(admin, before + 1)
        expect(admin).to_have_title(re.compile(rf"^\({before + 1}\) "))

        # Opening it shows the history and the shopper; the shopper sees "Seen".
        row.click()
        expect(admin.locator("#message-list .msg-other", has_text=text)).to_be_visible()
        expect(admin.locator("#shopper-current-page")).to_contain_text("Foreign shop")
        expect(frame.locator(".msg-own", has_text=text).locator(".msg-seen")).to_be_visible()
        expect(row.locator(".conv-unread")).to_have_count(0)

        # Typing indicator, then the reply arrives live in the widget.
        admin.locator("#reply-input").press_sequentially("Yes", delay=30)
        expect(frame.locator(".typing-indicator")).to_be_visible()
        reply = f"Yes, 3-5 days to Canada. {uuid.uuid4().hex[:6]}"
        admin.locator("#reply-input").fill(reply)
        admin.locator("#reply-input").press("Enter")
        expect(frame.locator(".msg-other", has_text=reply)).to_be_visible()
        expect(admin.locator(".msg-own", has_text=reply).locator(".msg-seen")).to_be_visible()

        # The shopper moves to another page: the admin's panel follows.
        shop.goto(f"{foreign_store}/other.html")
        expect(admin.locator("#shopper-current-page")).to_contain_text("Other page")

        # Reload keeps the whole history. The chat was opened on the first page,
        # so on this one it is collapsed (it never opens by itself on another page).
        shop.reload()
        frame = open_widget(shop)
        expect(frame.locator(".msg-own", has_text=text)).to_be_visible()
        expect(frame.locator(".msg-other", has_text=reply)).to_be_visible()

        # Closing the page flips the shopper to "left the site".
        # Closed the way a person closes a tab, so the page gets its pagehide.
        shop.close(run_before_unload=True)
        expect(row.locator(".presence-left")).to_be_visible(timeout=20_000)
        assert len(messages_with(live_db, text)) == 1
        assert len(messages_with(live_db, reply)) == 1
    finally:
        admin_ctx.close()
        shop_ctx.close()


def test_a_click_before_the_visitor_is_known_opens_the_chat_once_it_is(live_app, browser, foreign_store):
    """On a slow connection the shopper may click the launcher before the page
    has its visitor token: the chat must open when the token arrives, not ignore the click."""
    ctx = browser.new_context()
    try:
        shop = ctx.new_page()
        # The page's request for its visitor token waits until the test lets it go.
        shop.add_init_script("""(() => {
          const realFetch = window.fetch; let release;
          const gate = new Promise((resolve) => { release = resolve; });
          window.__releaseVisitor = release;
          window.fetch = (url, options) => String(url).includes("/api/visitor")
            ? gate.then(() => realFetch(url, options)) : realFetch(url, options);
        })()""")
        shop.goto(f"{foreign_store}/index.html")
        shop.wait_for_function("() => window.chatdash && window.chatdash.__loaded")
        shop.click("#chatdash-launcher")
        assert shop.locator("#chatdash-frame").count() == 0  # nothing to open yet
        shop.evaluate("window.__releaseVisitor()")
        frame = shop.frame_locator("#chatdash-frame")
        expect(frame.locator("#chat-widget[data-ready='true']")).to_be_visible(timeout=30_000)
    finally:
        ctx.close()


def test_message_typed_offline_is_delivered_once(live_app, browser, foreign_store, live_db):
    shop_ctx = browser.new_context()
    try:
        shop = shop_ctx.new_page()
        sockets = []
        shop.on("websocket", lambda ws: sockets.append(ws))
        shop.goto(f"{foreign_store}/index.html")
        frame = open_widget(shop)
        frame.locator("#widget-input").fill("first message while online")
        frame.locator("#widget-send").click()
        expect(frame.locator(".msg-own", has_text="first message while online")).to_be_visible()
        widget_socket = next(ws for ws in sockets if "/_event" in ws.url)

        shop_ctx.set_offline(True)
        text = f"typed while offline {uuid.uuid4().hex[:6]}"
        frame.locator("#widget-input").fill(text)
        # The widget hands the message to its socket while offline; the network holds it.
        with widget_socket.expect_event("framesent", predicate=lambda payload: text in str(payload)):
            frame.locator("#widget-send").click()
        pending = frame.locator(".outbox-item", has_text=text)
        expect(pending).to_contain_text("Sending…")
        assert messages_with(live_db, text) == []

        back_online = datetime.now(UTC).replace(tzinfo=None)
        shop_ctx.set_offline(False)
        expect(frame.locator(".msg-own", has_text=text)).to_be_visible(timeout=30_000)
        expect(pending).to_have_count(0)
        # Really not delivered while offline: stored only once the network was back.
        (stored,) = messages_with(live_db, text)
        assert stored.created_at.replace(tzinfo=None) > back_online
        # A reload re-runs the outbox flush: still exactly one copy.
        shop.reload()
        frame = shop.frame_locator("#chatdash-frame")
        expect(frame.locator(".msg-own", has_text=text)).to_have_count(1, timeout=30_000)
        assert len(messages_with(live_db, text)) == 1
    finally:
        shop_ctx.close()


def test_empty_and_oversize_messages_get_a_clear_error(live_app, browser, foreign_store, live_db):
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(f"{foreign_store}/index.html")
        frame = open_widget(page)
        frame.locator("#widget-input").fill("   ")
        frame.locator("#widget-send").click()
        # maxlength stops typing past the limit; a pasted oversize text set by
        # script is refused with a message.
        frame.locator("#widget-input").evaluate("(el) => { el.removeAttribute('maxlength'); "
                                                "el.value = 'x'.repeat(4001); }")
        frame.locator("#widget-send").click()
        expect(frame.locator("#widget-local-error")).to_contain_text("at most 4,000 characters")
        # Clicks are handled in order, so by now the blank one was too: it queued nothing.
        expect(frame.locator(".outbox-item")).to_have_count(0)
        assert messages_with(live_db, "x" * 4001) == []
    finally:
        ctx.close()


def test_shopper_on_the_demo_store_chats_with_the_admin(live_app, browser, live_db):
    from chatdash.models import Product

    with Session(live_db) as s:
        product = s.exec(select(Product).where(Product.in_stock).order_by(Product.id)).first()
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    shop_ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    try:
        admin = admin_page(admin_ctx, live_app)
        shop = shop_ctx.new_page()
        shop.goto(f"{live_app.frontend}/store/product/{product.sku}")
        frame = open_widget(shop)
        text = f"Is the {product.name} in stock? {uuid.uuid4().hex[:6]}"
        frame.locator("#widget-input").fill(text)
        frame.locator("#widget-input").press("Enter")
        row = admin.locator(".conv-row", has_text=text)
        expect(row).to_be_visible()
        # The store page and the widget iframe share an origin but not a Reflex client token.
        store_token = shop.evaluate("sessionStorage.getItem('token')")
        widget_frame = next(f for f in shop.frames if "/widget" in f.url)
        widget_token = widget_frame.evaluate("sessionStorage.getItem('token')")
        assert store_token and widget_token and store_token != widget_token
        row.click()
        expect(admin.locator("#shopper-current-page a")).to_have_attribute(
            "href", re.compile(rf"/store/product/{re.escape(product.sku)}/?$"))
        # The shopper typing shows on the admin's screen.
        type_until_visible(frame.locator("#widget-input"), "and in blue ", admin.locator(".typing-indicator"))
        admin.locator("#reply-input").fill("It is, ships today.")
        admin.locator("#reply-send").click()
        expect(frame.locator(".msg-other", has_text="It is, ships today.")).to_be_visible()
    finally:
        admin_ctx.close()
        shop_ctx.close()
