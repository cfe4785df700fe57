"""What the admin reads: the demo store's pages have real titles, the shopper
panel's Pages viewed says what each page was (a readable path when a page has
no title) without running past the panel's edge, the selected conversation is
clearly blue, and the conversations page stays usable at 1024×768."""

from __future__ import annotations

import http.server
import re
import threading
import uuid
from functools import partial

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from chatdash.db import make_engine
from chatdash.models import Product
from tests.browser.test_identified_customer import shot
from tests.browser.test_live_chat import admin_page, open_widget

pytestmark = pytest.mark.browser

LONG_PATH = "/collections/outdoor/tents-and-shelters/" + "ultralight-" * 12 + "tent.html"
UNTITLED = """<!doctype html><html><head><meta charset="utf-8"><title></title></head>
<body><p>A page its store forgot to title.</p><script src="{backend}/widget.js" async></script></body></html>"""


@pytest.fixture(scope="module")
def untitled_page(live_app, tmp_path_factory):
    root = tmp_path_factory.mktemp("untitled")
    target = root / LONG_PATH.lstrip("/")
    target.parent.mkdir(parents=True)
    target.write_text(UNTITLED.format(backend=live_app.backend))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             partial(http.server.SimpleHTTPRequestHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}{LONG_PATH}"
    server.shutdown()


def in_stock(live_app, n: int) -> list[Product]:
    eng = make_engine(live_app.db_url)
    with Session(eng) as s:
        found = list(s.exec(select(Product).where(Product.in_stock).order_by(Product.id).offset(50).limit(n)).all())
    eng.dispose()
    return found


OVERFLOWING = """(panel) => {
  const edge = panel.getBoundingClientRect().right;
  return [...panel.querySelectorAll('.session-page, .session-page *, #shopper-current-page *')]
    .filter(el => el.getBoundingClientRect().right > edge + 0.5)
    .map(el => el.className + ': ' + el.textContent.slice(0, 60));
}"""

# How many lines the reply box's placeholder takes, measured with the box's own
# font and inner width (a textarea's placeholder wraps like its text).
PLACEHOLDER_LINES = """(box) => {
  const style = getComputedStyle(box);
  const probe = document.createElement('div');
  for (const p of ['font', 'letterSpacing', 'paddingLeft', 'paddingRight', 'boxSizing', 'lineHeight',
                   'wordBreak', 'overflowWrap'])
    probe.style[p] = style[p];
  probe.style.width = box.clientWidth + 'px';
  probe.style.whiteSpace = 'pre-wrap';
  probe.style.position = 'absolute';
  probe.style.visibility = 'hidden';
  probe.textContent = box.placeholder;
  document.body.appendChild(probe);
  const lines = Math.round(probe.getBoundingClientRect().height / parseFloat(style.lineHeight));
  probe.remove();
  return lines;
}"""


PANEL_WAIT = 20_000


def tracked(page) -> None:
    """The store page's tracker has run (it queued the page view, kept across pages) and
    knows its visitor. A page left before its async script runs reports nothing: on a
    loaded machine the next goto could come first, and the panel would never list it."""
    page.wait_for_function("() => window.chatdash && window.chatdash.visitor()")


def test_the_admin_reads_titled_pages_a_blue_selection_and_a_usable_narrow_page(live_app, browser, untitled_page):
    first, second = in_stock(live_app, 2)
    untitled_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    shop_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    admin_ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        # One shopper on another store's page that has no title and a long address.
        untitled = untitled_ctx.new_page()
        untitled.goto(untitled_page)
        frame = open_widget(untitled)
        lost = f"Does the tent fit two? {uuid.uuid4().hex[:6]}"
        frame.locator("#widget-input").fill(lost)
        frame.locator("#widget-input").press("Enter")
        expect(frame.locator(".msg-own", has_text=lost).locator(".msg-sent")).to_be_visible()

        # Another on the demo store: two products, the cart, an order.
        shop = shop_ctx.new_page()
        for product in (first, second):
            shop.goto(f"{live_app.frontend}/store/product/{product.sku}")
            expect(shop).to_have_title(f"{product.name} · Demo Store")
            tracked(shop)
        shop.locator("#add-to-cart").click()
        expect(shop.locator("#added-message")).to_be_visible()
        shop.goto(f"{live_app.frontend}/store/cart")
        expect(shop).to_have_title("Cart · Demo Store")
        tracked(shop)
        shop.locator("#place-order").click()
        number = shop.locator("#order-number")
        expect(number).to_be_visible()
        order_title = f"Order {number.inner_text()} confirmed · Demo Store"
        expect(shop).to_have_title(order_title)
        frame = open_widget(shop)
        text = f"When does my order ship? {uuid.uuid4().hex[:6]}"
        frame.locator("#widget-input").fill(text)
        frame.locator("#widget-input").press("Enter")
        expect(frame.locator(".msg-own", has_text=text).locator(".msg-sent")).to_be_visible()

        admin = admin_page(admin_ctx, live_app)
        panel = admin.locator("#shopper-panel")
        pages = panel.locator("#session-pages .session-page")
        admin.locator(".conv-row", has_text=lost).click()
        # A page without a title reads as its path, inside the panel.
        expect(pages.filter(has_text=LONG_PATH[:40])).to_have_count(1)
        expect(panel.locator("#shopper-current-page")).to_contain_text(LONG_PATH[:40])
        expect(panel.locator("#shopper-panel, #session-pages, #shopper-current-page").filter(
            has_text=re.compile(r"https?://"))).to_have_count(0)
        assert panel.evaluate(OVERFLOWING) == []

        admin.locator(".conv-row", has_text=text).click()
        # The panel follows the tracking batches the store page sends on its own
        # schedule (pushed at most once a second): on a loaded machine that can
        # take longer than Playwright's 5 s default, so wait for what the admin sees.
        # What each demo store page was, by its title; never the store's bare name.
        expect(pages.filter(has_text=f"{first.name} · Demo Store")).to_have_count(1, timeout=PANEL_WAIT)
        expect(pages.filter(has_text=f"{second.name} · Demo Store")).to_have_count(1, timeout=PANEL_WAIT)
        expect(pages.filter(has_text="Cart · Demo Store")).to_have_count(1, timeout=PANEL_WAIT)
        expect(pages.filter(has_text=order_title)).to_have_count(1, timeout=PANEL_WAIT)
        expect(pages.filter(has_text=re.compile(r"^\s*\d\d:\d\d\s*Demo Store\s*$"))).to_have_count(0)
        expect(pages.filter(has_text=re.compile(r"https?://"))).to_have_count(0)
        assert panel.evaluate(OVERFLOWING) == []

        # The selected conversation is clearly blue; the others are not.
        selected = admin.locator(".conv-row.conv-selected")
        expect(selected).to_have_count(1)
        r, g, b = map(int, re.findall(r"\d+", selected.evaluate("e => getComputedStyle(e).backgroundColor"))[:3])
        assert b > 180 and b - r > 100 and b - g > 60, (r, g, b)
        assert selected.locator(".conv-label").evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
        admin.screenshot(path=str(shot("conversations-1440x900.png")))

        # 1024×768: three panels, a reply box whose hint takes at most two lines, nothing past the edge.
        admin.set_viewport_size({"width": 1024, "height": 768})
        expect(admin.locator("#reply-input")).to_be_visible()
        reply_box = admin.locator("#reply-input")
        assert reply_box.evaluate(PLACEHOLDER_LINES) <= 2
        assert admin.evaluate("document.documentElement.scrollWidth") <= 1024
        assert admin.locator("#chat-panel").bounding_box()["width"] >= 400
        assert panel.evaluate(OVERFLOWING) == []
        admin.screenshot(path=str(shot("conversations-1024x768.png")))
    finally:
        admin_ctx.close()
        shop_ctx.close()
        untitled_ctx.close()
