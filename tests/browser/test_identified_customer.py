"""An identified customer (data-customer-id + data-customer-hmac, computed by the
store's backend) on a store page of another origin: the admin sees them on
site, with their live visit (device, page, items viewed, cart) in Current
session and their earlier visit and order in History; the customer has one
conversation on every device; a visitor who logs in mid-visit brings the
anonymous part along."""

from __future__ import annotations

import http.server
import re
import threading
import uuid
from functools import partial
from html import escape
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from chatdash.models import Product, Shopper, Visit
from chatdash.services.identity import customer_hmac, customer_identity_hmac
from chatdash.settings import get_settings
from chatdash.state.views import money
from tests.browser.test_live_chat import admin_page, open_widget
from tests.waiting import wait_until

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "shots"


def shot(name: str) -> Path:
    """Where a screenshot to look at goes (test-artifacts/ is not committed)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / name

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")
FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"

# A store's page template: its backend renders the logged-in customer's id and
# HMAC into the script tag; product pages report the product view, and the
# "Add to cart" button reports the cart, through the embed's JavaScript API.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif">
<h1 id="page-title">{title}</h1>
<button id="add" onclick='chatdash.track("cart", {cart}); this.textContent = "Added"'>Add to cart</button>
<button id="login" onclick='chatdash.identify({login})'>Log in</button>
<script>
  window.addEventListener("load", function () {{
    var sku = {sku};
    (function report() {{
      if (!sku) return;
      window.chatdash ? chatdash.track("product_view", {{sku: sku}}) : setTimeout(report, 50);
    }})();
  }});
</script>
<script src="{backend}/widget.js" async {customer}></script>
</body></html>
"""


@pytest.fixture(scope="module")
def third_party_store(live_app, tmp_path_factory):
    """Pages written per test, served from an origin (port) other than the app's."""
    root = tmp_path_factory.mktemp("third-party-store")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    assert not live_app.backend.startswith(base)

    def write(name: str, title: str, *, customer: dict[str, str] | None = None, product: Product | None = None,
              login: dict[str, str] | None = None) -> str:
        import json

        attrs = " ".join(f'{k}="{escape(v)}"' for k, v in (customer or {}).items())
        cart = {"items": [{"sku": product.sku, "quantity": 1, "price": product.price_cents / 100}],
                "currency": product.currency} if product else {}
        login_args = ", ".join(json.dumps(v) for v in (login or {}).values())
        (root / name).write_text(PAGE.format(
            title=escape(title), backend=live_app.backend, customer=attrs, cart=json.dumps(cart),
            sku=json.dumps(product.sku if product else ""), login=login_args))
        return f"{base}/{name}"

    yield write
    server.shutdown()


def products(live_db, n: int) -> list[Product]:
    with Session(live_db) as s:
        return list(s.exec(select(Product).where(Product.in_stock).order_by(Product.id).offset(30).limit(n)).all())


def signed(customer_id: str) -> dict[str, str]:
    """What the store's backend renders into the script tag for a logged-in customer."""
    return {"data-customer-id": customer_id, "data-customer-hmac": customer_hmac(get_settings().store_secret,
                                                                                  customer_id)}


def earlier_order(live_app, customer_id: str, product: Product) -> None:
    """The store's backend reported an order of this customer (server to server)."""
    r = httpx.post(f"{live_app.backend}/api/store/orders", timeout=30,
                   headers={"Authorization": f"Bearer {get_settings().store_secret}"},
                   json={"order_id": f"o-{uuid.uuid4().hex[:10]}", "customer_id": customer_id,
                         "total": product.price_cents / 100, "currency": product.currency,
                         "items": [{"sku": product.sku, "quantity": 1, "price": product.price_cents / 100}]})
    assert r.status_code == 201, r.text


def wait_for_visit(live_db, customer_id: str, title: str) -> None:
    """The admin's data has the visit (polled where the app reads it)."""
    def found():
        with Session(live_db) as s:
            return s.exec(select(Visit).join(Shopper, Shopper.id == Visit.shopper_id)
                          .where(Shopper.customer_id == customer_id, Visit.current_title == title)).first()

    wait_until(found, timeout=20, what=f"a visit on {title!r} for {customer_id}", every=0.2)


def test_an_identified_customer_shows_on_site_with_their_live_visit(live_app, browser, third_party_store, live_db):
    customer_id = f"CUST-{uuid.uuid4().hex[:8]}"
    tent, bag = products(live_db, 2)
    earlier_order(live_app, customer_id, bag)
    old_ctx = browser.new_context(user_agent=FIREFOX_WINDOWS)
    phone_ctx = browser.new_context(viewport={"width": 390, "height": 844}, user_agent=IPHONE)
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        # Days ago, in the story: the order's confirmation page on a Windows desktop.
        old = old_ctx.new_page()
        old.goto(third_party_store(f"confirm-{customer_id}.html", "Order 1001 confirmed",
                                   customer=signed(customer_id)))
        wait_for_visit(live_db, customer_id, "Order 1001 confirmed")
        old.close(run_before_unload=True)

        admin = admin_page(admin_ctx, live_app)
        # Now, on an iPhone: a product page, a question in the chat.
        shop = phone_ctx.new_page()
        shop.goto(third_party_store(f"tent-{customer_id}.html", tent.name, customer=signed(customer_id),
                                    product=tent))
        frame = open_widget(shop)
        text = f"Is this tent waterproof? {uuid.uuid4().hex[:6]}"
        frame.locator("#widget-input").fill(text)
        frame.locator("#widget-input").press("Enter")
        expect(frame.locator(".msg-own", has_text=text).locator(".msg-sent")).to_be_visible()

        conv_id = admin.locator(".conv-row", has_text=text).get_attribute("data-conversation-id")
        row = admin.locator(f'.conv-row[data-conversation-id="{conv_id}"]')
        expect(row.locator(".presence-on")).to_be_visible()
        row.click()
        panel = admin.locator("#shopper-panel")
        expect(panel.locator("#shopper-device")).to_contain_text("Mobile")
        expect(panel.locator("#shopper-device")).to_contain_text("iOS")
        expect(panel.locator("#shopper-current-page")).to_contain_text(tent.name)
        expect(panel.locator(f'#session-items [data-sku="{tent.sku}"]')).to_be_visible()
        # History: the Windows visit and the order.
        expect(panel.locator("#previous-visits")).to_have_text("1")
        expect(panel.locator("#orders-summary")).to_contain_text("1 · ")

        # On a phone the open chat fills the screen: the shopper closes it to shop on.
        frame.locator("#widget-close").click()
        shop.locator("#add").click()
        expect(panel.locator("#cart-total")).to_have_text(money(tent.price_cents, tent.currency))
        # Still on site once the cart (reported after the heartbeats) has arrived.
        expect(row.locator(".presence-on")).to_be_visible()
        expect(panel.locator("#shopper-device")).to_contain_text("iOS")
        admin.screenshot(path=str(shot("identified-customer-live-1400.png")))

        # Leaving flips the customer to "left the site", as for any shopper.
        shop.close(run_before_unload=True)
        expect(row.locator(".presence-left")).to_be_visible(timeout=20_000)
    finally:
        admin_ctx.close()
        phone_ctx.close()
        old_ctx.close()


def test_one_customer_has_one_conversation_on_every_device(live_app, browser, third_party_store, live_db):
    customer_id = f"CUST-{uuid.uuid4().hex[:8]}"
    phone_ctx = browser.new_context(viewport={"width": 390, "height": 844}, user_agent=IPHONE)
    laptop_ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        admin = admin_page(admin_ctx, live_app)
        url = third_party_store(f"home-{customer_id}.html", "Home", customer=signed(customer_id))
        phone = phone_ctx.new_page()
        phone.goto(url)
        on_phone = open_widget(phone)
        first = f"Asked on my phone {uuid.uuid4().hex[:6]}"
        on_phone.locator("#widget-input").fill(first)
        on_phone.locator("#widget-input").press("Enter")
        expect(on_phone.locator(".msg-own", has_text=first).locator(".msg-sent")).to_be_visible()

        laptop = laptop_ctx.new_page()
        laptop.goto(url)
        on_laptop = open_widget(laptop)
        expect(on_laptop.locator(".msg-own", has_text=first)).to_be_visible()
        second = f"And now from the laptop {uuid.uuid4().hex[:6]}"
        on_laptop.locator("#widget-input").fill(second)
        on_laptop.locator("#widget-input").press("Enter")
        expect(on_phone.locator(".msg-own", has_text=second)).to_be_visible()

        row = admin.locator(".conv-row", has_text=second)
        expect(row).to_have_count(1)
        conv_id = row.get_attribute("data-conversation-id")
        row.click()
        expect(admin.locator("#message-list .msg-other", has_text=first)).to_be_visible()
        expect(admin.locator("#message-list .msg-other", has_text=second)).to_be_visible()
        reply = f"Both of you get this {uuid.uuid4().hex[:6]}"
        admin.locator("#reply-input").fill(reply)
        admin.locator("#reply-input").press("Enter")
        expect(on_phone.locator(".msg-other", has_text=reply)).to_be_visible()
        expect(on_laptop.locator(".msg-other", has_text=reply)).to_be_visible()
        # One conversation row for the customer: none of "Visitor …" per device.
        expect(admin.locator(".conv-row", has_text=first)).to_have_count(0)
        expect(admin.locator(f'.conv-row[data-conversation-id="{conv_id}"]')).to_have_count(1)
    finally:
        admin_ctx.close()
        laptop_ctx.close()
        phone_ctx.close()


def test_logging_in_mid_visit_joins_the_visit_and_the_chat_to_the_customer(live_app, browser, third_party_store,
                                                                           live_db):
    customer_id = f"CUST-{uuid.uuid4().hex[:8]}"
    name = f"Grace Hopper {uuid.uuid4().hex[:4]}"
    (tent,) = products(live_db, 1)
    earlier_order(live_app, customer_id, tent)
    login = {"id": customer_id, "hmac": customer_identity_hmac(get_settings().store_secret, customer_id, name),
             "name": name}
    shop_ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        admin = admin_page(admin_ctx, live_app)
        shop = shop_ctx.new_page()
        shop.goto(third_party_store(f"anon-{customer_id}.html", tent.name, product=tent, login=login))
        frame = open_widget(shop)
        text = f"Question before logging in {uuid.uuid4().hex[:6]}"
        frame.locator("#widget-input").fill(text)
        frame.locator("#widget-input").press("Enter")
        conv_id = admin.locator(".conv-row", has_text=text).get_attribute("data-conversation-id")
        row = admin.locator(f'.conv-row[data-conversation-id="{conv_id}"]')
        expect(row).to_contain_text(re.compile(r"Visitor [A-Z0-9_-]{6}", re.IGNORECASE))
        row.click()
        panel = admin.locator("#shopper-panel")
        expect(panel.locator(f'#session-items [data-sku="{tent.sku}"]')).to_be_visible()
        expect(panel.locator("#history-empty")).to_be_visible()

        shop.locator("#login").click()  # the store calls chatdash.identify() after its login
        # The same row now names the customer; the panel shows their history and
        # keeps the visit's product view; the chat keeps its message.
        expect(row).to_contain_text(name)
        expect(panel.locator("#shopper-name")).to_have_text(name)
        expect(panel.locator("#orders-summary")).to_contain_text("1 · ")
        expect(panel.locator(f'#session-items [data-sku="{tent.sku}"]')).to_be_visible()
        expect(panel.locator("#session-items .session-item")).to_have_count(1)
        frame = shop.frame_locator("#chatdash-frame")
        expect(frame.locator(".msg-own", has_text=text)).to_have_count(1)
        after = f"Logged in now {uuid.uuid4().hex[:6]}"
        expect(frame.locator("#chat-widget[data-ready='true']")).to_be_visible(timeout=30_000)
        frame.locator("#widget-input").fill(after)
        frame.locator("#widget-input").press("Enter")
        expect(admin.locator("#message-list .msg-other", has_text=after)).to_be_visible()
        expect(admin.locator(".conv-row", has_text=name)).to_have_count(1)
        expect(row.locator(".presence-on")).to_be_visible()
    finally:
        admin_ctx.close()
        shop_ctx.close()


def test_logging_out_leaves_the_next_person_on_the_computer_none_of_the_customers_chat(
        live_app, browser, third_party_store, live_db):
    """A customer chats, then logs out of the store (which calls chatdash.logout()):
    the browser is a new anonymous visitor, its chat starts empty, and what the
    next person writes is a conversation of its own, not the customer's."""
    customer_id = f"CUST-{uuid.uuid4().hex[:8]}"
    shop_ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        admin = admin_page(admin_ctx, live_app)
        shop = shop_ctx.new_page()
        shop.goto(third_party_store(f"logout-{customer_id}.html", "Account", customer=signed(customer_id)))
        frame = open_widget(shop)
        private = f"My address is 12 Elm Street {uuid.uuid4().hex[:6]}"
        frame.locator("#widget-input").fill(private)
        frame.locator("#widget-input").press("Enter")
        expect(frame.locator(".msg-own", has_text=private).locator(".msg-sent")).to_be_visible()
        customer_visitor = shop.evaluate("chatdash.visitor()")

        new_visitor = shop.evaluate("chatdash.logout()")  # the store's logout
        assert new_visitor and new_visitor != customer_visitor
        expect(shop.locator("#chatdash-frame")).to_have_count(0)
        expect(shop.locator("#chatdash-panel")).to_be_hidden()

        frame = open_widget(shop)
        expect(frame.locator("#chat-widget[data-ready='true']")).to_be_visible()
        next_person = f"Is this in stock {uuid.uuid4().hex[:6]}"
        frame.locator("#widget-input").fill(next_person)
        frame.locator("#widget-input").press("Enter")
        expect(frame.locator(".msg-own", has_text=next_person).locator(".msg-sent")).to_be_visible()
        # The customer's message was never in this chat (checked after the marker above).
        expect(frame.locator(".msg-own", has_text=private)).to_have_count(0)
        # Two conversations in the inbox: the customer's, and the new anonymous visitor's.
        mine = admin.locator(".conv-row", has_text=next_person)
        expect(mine).to_have_count(1)
        expect(mine).to_contain_text(re.compile(r"Visitor [A-Z0-9_-]{6}", re.IGNORECASE))
        expect(admin.locator(".conv-row", has_text=private)).to_have_count(1)
        with Session(live_db) as s:
            customer = s.exec(select(Shopper).where(Shopper.customer_id == customer_id)).one()
            from chatdash.models import Conversation, Message
            theirs = s.exec(select(Message.body).join(Conversation, Conversation.id == Message.conversation_id)
                            .where(Conversation.shopper_id == customer.id)).all()
        assert private in theirs and next_person not in theirs
    finally:
        admin_ctx.close()
        shop_ctx.close()
