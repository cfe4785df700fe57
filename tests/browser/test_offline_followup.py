"""Offline follow-up in real Chromium, with the app's emails delivered to a
real SMTP server on loopback: nobody answers a shopper in time, the widget
asks for an email, the shopper leaves, the agent's reply (text and a product
card) arrives as one email whose link opens the same conversation in a fresh
browser, and its unsubscribe link stops further emails. Then a member's own
notification choices in Settings."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from chatdash.models import AdminUser, Product
from chatdash.services import chat, followup, store_settings
from tests.browser.test_live_chat import admin_page, foreign_store, open_widget  # noqa: F401
from tests.live_app import ADMIN_EMAIL
from tests.reflex_client import RawReflexClient

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("CHATDASH_SHOTS", "") or Path(__file__).resolve().parents[2] / "test-artifacts")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"followup-{name}.png"))


def plain(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def html_part(msg) -> str:
    return msg.get_body(("html",)).get_content()


def test_a_reply_to_a_shopper_who_left_reaches_them_by_email_and_leads_back(
        live_app, browser, foreign_store, smtp_server, live_db):  # noqa: F811
    tag = uuid.uuid4().hex[:6]
    address = f"sam-{tag}@example.com"
    with Session(live_db) as s:
        owner_id = s.exec(select(AdminUser.id).where(AdminUser.email == ADMIN_EMAIL)).one()
        followup_before = store_settings.get_offline_followup(s)
    owner_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    shop_ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    fresh_ctx = browser.new_context(viewport={"width": 420, "height": 760})
    try:
        owner = admin_page(owner_ctx, live_app)
        # The owner has the question come after 3 seconds without an answer (0.05 minutes).
        owner.goto(f"{live_app.frontend}/admin/settings")
        owner.locator("#followup-minutes").fill("soon")
        owner.locator("#followup-save").click()
        expect(owner.locator("#followup-error")).to_contain_text("Enter a number of minutes")
        owner.locator("#followup-minutes").fill("0.05")
        owner.locator("#followup-save").click()
        expect(owner.locator("#followup-saved")).to_be_visible()
        shot(owner, "settings")
        owner.goto(f"{live_app.frontend}/admin/conversations")
        expect(owner.locator("#conversation-list")).to_be_visible()

        # ----- the shopper writes; nobody answers; the widget asks for an email
        shop = shop_ctx.new_page()
        shop.goto(f"{foreign_store}/index.html")
        frame = open_widget(shop)
        question = f"Do you have the tent in green? {tag}"
        frame.locator("#widget-input").fill(question)
        frame.locator("#widget-input").press("Enter")
        expect(frame.locator(".msg-own", has_text=question).locator(".msg-sent")).to_be_visible()
        expect(frame.locator("#email-ask")).to_be_visible(timeout=20_000)
        shot(shop, "widget-asks")
        frame.locator("#email-ask-input").fill("sam@nowhere")
        frame.locator("#email-ask-save").click()
        expect(frame.locator("#email-ask-error")).to_contain_text("is not an email address")
        frame.locator("#email-ask-input").fill(address)
        frame.locator("#email-ask-save").click()
        expect(frame.locator("#email-followup-note")).to_contain_text(f"Replies will also go to {address}")
        expect(frame.locator("#email-ask")).to_have_count(0)
        shot(shop, "widget-email-given")

        # The agent sees the address, live, in the list and the shopper panel.
        row = owner.locator(".conv-row", has_text=address)
        expect(row).to_be_visible()
        row.click()
        expect(owner.locator("#message-list .msg-other", has_text=question)).to_be_visible()
        expect(owner.locator("#shopper-email")).to_have_text(address)

        # ----- the shopper leaves; the agent answers with text and a product card
        shop.close(run_before_unload=True)
        expect(row.locator(".presence-left")).to_be_visible(timeout=20_000)
        # A recommended product goes with the reply: one click, well inside the window.
        rec = owner.locator("#recommendations .product-row").first
        expect(rec).to_be_visible()
        name = rec.locator(".product-name").inner_text()
        with Session(live_db) as s:
            product = s.exec(select(Product).where(Product.name == name)).first()
        reply = f"Yes, green is back in stock. {tag}"
        owner.locator("#reply-input").fill(reply)
        owner.locator("#reply-input").press("Enter")
        expect(owner.locator(".msg-own", has_text=reply)).to_be_visible()
        rec.locator(".rec-send").click()
        expect(owner.locator("#message-list .product-card", has_text=product.name)).to_be_visible()
        shot(owner, "agent-replied")

        _rcpts, msg = smtp_server.wait_for(lambda m: address in m[0], timeout=60)
        assert msg["From"] == "Demo Store <chat@demo-store.test>"
        body = plain(msg)
        assert reply in body
        assert product.name in body and product.url in body
        assert f'href="{product.url}"' in html_part(msg)

        # ----- the email's link opens the same conversation in a fresh browser
        link = re.search(r"Continue the conversation: (\S+)", body).group(1)
        page = fresh_ctx.new_page()
        page.goto(link)
        expect(page.locator("#chat-widget[data-ready='true']")).to_be_visible(timeout=30_000)
        expect(page.locator(".msg-own", has_text=question)).to_be_visible()
        expect(page.locator(".msg-other", has_text=reply)).to_be_visible()
        expect(page.locator(".product-card", has_text=product.name)).to_be_visible()
        expect(page.locator("#email-followup-note")).to_contain_text(address)
        expect(page).not_to_have_url(re.compile(r"[?&]r="))  # the link's token left the address bar
        shot(page, "standalone-from-email")
        # And the shopper can go on writing there; the agent gets it live.
        more = f"Great, I'll take it. {tag}"
        page.locator("#widget-input").fill(more)
        page.locator("#widget-input").press("Enter")
        expect(owner.locator("#message-list .msg-other", has_text=more)).to_be_visible()

        # ----- unsubscribe: a page with one button, then no more emails
        unsubscribe = re.search(r"No more emails: (\S+)", body).group(1)
        page.goto(unsubscribe)
        page.locator("#unsubscribe-confirm").click()
        expect(page.locator("#unsubscribe-done")).to_be_visible()
        shot(page, "unsubscribed")
        after = f"One more thing: it folds small. {tag}"
        owner.locator("#reply-input").fill(after)
        owner.locator("#reply-input").press("Enter")
        expect(owner.locator(".msg-own", has_text=after)).to_be_visible()
        # The marker: another departed shopper with an email, answered later; the
        # mailer sends in order of due time, so an email for `after` would come first.
        marker = f"marker-{tag}@example.com"
        visitor = uuid.uuid4().hex
        opened = chat.open_widget(visitor, engine=live_db, seen=False)
        marker_conv, _m, _c = chat.shopper_send(visitor, opened.shopper_id, 0, uuid.uuid4().hex, "hi", engine=live_db)
        followup.give_email(visitor, marker, engine=live_db)
        chat.admin_send(owner_id, marker_conv, uuid.uuid4().hex, f"marker reply {tag}", engine=live_db)
        smtp_server.wait_for(lambda m: marker in m[0], timeout=60)
        to_sam = [m for m in smtp_server.messages if address in m[0]]
        assert len(to_sam) == 1, "one email for the two replies, none after unsubscribing"
        assert after not in str([plain(m[1]) for m in smtp_server.messages])
    finally:
        owner_ctx.close()
        shop_ctx.close()
        fresh_ctx.close()
        with Session(live_db) as s:  # leave the shared app as found
            store_settings.save_offline_followup(s, followup_before)
            s.commit()


def test_a_member_sets_their_own_notifications(live_app, browser, live_db):
    """My notifications, for every role: the choices stay put, and the sound
    choice decides whether a shopper's message chimes on the admin's pages."""
    from chatdash.state.widget import WidgetState

    tag = uuid.uuid4().hex[:6]
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    shopper = RawReflexClient(live_app.backend)  # a shopper's widget, through its own events
    try:
        admin = admin_page(ctx, live_app)
        admin.goto(f"{live_app.frontend}/admin/settings")
        card = admin.locator("#my-notifications")
        expect(card).to_be_visible()
        expect(card.locator("#store-emails-off")).to_be_visible()  # the owner's switch is off
        card.locator("#notify-assigned-message").click()
        expect(card.locator("#notify-assigned-message")).to_have_attribute("data-state", "checked")
        shot(admin, "my-notifications")
        admin.reload()
        expect(admin.locator("#notify-assigned-message")).to_have_attribute("data-state", "checked")
        expect(admin.locator("#sound-enabled")).to_have_attribute("data-state", "checked")

        # A shopper's message chimes (the page counts its chimes on the element chat.js reads).
        admin.goto(f"{live_app.frontend}/admin/conversations")
        bell = admin.locator("#unseen-count-value")
        expect(bell).to_have_attribute("data-sound", "on")
        expect(bell).to_have_attribute("data-chimed", "0")  # the page listens from now on
        shopper.hydrate(path="/widget")
        shopper.call(WidgetState, "adopt_visitor", {"token": ""}, path="/widget")
        ding = f"ding? {tag}"
        shopper.call(WidgetState, "send", {"item": {"id": uuid.uuid4().hex, "text": ding}}, path="/widget")
        expect(admin.locator(".conv-row", has_text=ding)).to_be_visible()
        expect(bell).to_have_attribute("data-chimed", "1")

        # Sound off: the next message does not chime.
        admin.goto(f"{live_app.frontend}/admin/settings")
        admin.locator("#sound-enabled").click()
        expect(admin.locator("#sound-enabled")).to_have_attribute("data-state", "unchecked")
        admin.goto(f"{live_app.frontend}/admin/conversations")
        expect(bell).to_have_attribute("data-sound", "off")
        expect(bell).to_have_attribute("data-chimed", "0")
        chimes = bell.get_attribute("data-chime")
        silent = f"silent? {tag}"
        shopper.call(WidgetState, "send", {"item": {"id": uuid.uuid4().hex, "text": silent}}, path="/widget")
        # The message is on screen, pushed in the same update a chime would have come with.
        expect(admin.locator(".conv-row", has_text=silent)).to_be_visible()
        expect(bell).to_have_attribute("data-chime", chimes)
        assert bell.get_attribute("data-chimed") == "0"
    finally:
        shopper.close()
        ctx.close()
        with Session(live_db) as s:
            owner = s.exec(select(AdminUser).where(AdminUser.email == ADMIN_EMAIL)).one()
            owner.notify_sound, owner.notify_assigned_message = True, False
            s.add(owner)
            s.commit()
