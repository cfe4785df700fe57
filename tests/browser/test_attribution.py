"""Attribution end to end in real Chromium: the admin sends a recommended
product's card, the shopper clicks it in the widget, adds the product to the
cart on the store's page and orders it; the line under the admin's chat and
the Insights page count each step as it lands."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from chatdash.models import Product
from chatdash.state.views import money
from tests.browser.test_live_chat import admin_page, open_widget

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "shots"
STATS = ("sent", "clicked", "carted", "ordered")


def shot(name: str) -> str:
    """Where a screenshot to look at goes (test-artifacts/ is not committed)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    return str(SHOTS / name)


def open_insights(page, live_app) -> None:
    page.locator("#menu-insights").click()
    expect(page).to_have_url(re.compile(r"/admin/insights/?$"))
    expect(page.locator("#chart-by-source")).to_be_visible()


def insights_counts(page) -> dict[str, int]:
    """The Insights page's funnel numbers once loaded (every card in the live
    app so far: other tests send cards too, so this test counts what its own
    flow adds)."""
    expect(page.locator("#insights-loaded")).to_be_attached()
    return {k: int(page.locator(f"#stat-{k}").inner_text()) for k in STATS}


def source_cells(page, source: str):
    """The source's table cells: sent, clicked, cart, ordered, conversion, revenue."""
    return page.locator(f'.source-row[data-source="{source}"] td')


def test_a_recommended_card_is_followed_from_click_to_order(live_app, browser, live_db):
    admin_ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    shop_ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    admin_ctx.set_default_timeout(20_000)
    shop_ctx.set_default_timeout(20_000)
    try:
        admin = admin_page(admin_ctx, live_app)
        open_insights(admin, live_app)
        before = insights_counts(admin)
        recommended_before = [int(c) for c in source_cells(admin, "recommended").all_inner_texts()[:4]]

        shop = shop_ctx.new_page()
        shop.goto(f"{live_app.frontend}/store")
        frame = open_widget(shop)
        text = f"Anything you'd suggest? {uuid.uuid4().hex[:6]}"
        frame.locator("#widget-input").fill(text)
        frame.locator("#widget-input").press("Enter")

        admin.locator("#menu-chat").click()
        admin.locator("#menu-conversations").click()
        admin.locator(".conv-row", has_text=text).click()
        expect(admin.locator("#message-list .msg-other", has_text=text)).to_be_visible()
        expect(admin.locator("#attribution-line")).to_have_count(0)  # nothing sent here yet

        # The first recommendation the store has in stock.
        recs = admin.locator("#recommendations .product-row")
        expect(recs.first).to_be_visible()
        row = next(recs.nth(i) for i in range(recs.count()) if "out of stock" not in recs.nth(i).inner_text())
        sku = row.get_attribute("data-sku")
        with Session(live_db) as s:
            product = s.exec(select(Product).where(Product.sku == sku)).one()
        row.locator(".rec-send").click()
        line = admin.locator("#attribution-line")
        expect(line).to_have_text(f"1 product sent · 0 clicked · 0 bought · {money(0)}")

        # The shopper opens the card: the store's own window goes to the product page.
        frame.locator(".product-card", has_text=product.name).click()
        expect(shop).to_have_url(re.compile(rf"/store/product/{re.escape(sku)}/?$"))
        expect(line).to_have_text(f"1 product sent · 1 clicked · 0 bought · {money(0)}")

        # Added to the cart on the store's page, then ordered.
        shop.click("#add-to-cart")
        expect(shop.locator("#added-message")).to_contain_text("Added 1 item")
        shop.click("#cart-link")
        expect(shop.locator(".cart-line")).to_have_count(1)
        shop.click("#place-order")
        expect(shop.locator("#order-number")).to_have_text(re.compile(r"^DS-"))

        # The store's backend reports the order; the admin's line moves without a reload.
        expect(line).to_have_text(f"1 product sent · 1 clicked · 1 bought · {money(product.price_cents)}",
                                  timeout=30_000)
        admin.screenshot(path=shot("attribution-line-1440x900.png"))

        # Insights count the card at every step, under "Recommended".
        open_insights(admin, live_app)
        for k in STATS:
            expect(admin.locator(f"#stat-{k}")).to_have_text(str(before[k] + 1))
        cells = source_cells(admin, "recommended")
        for i, n in enumerate(recommended_before):
            expect(cells.nth(i)).to_have_text(str(n + 1))
        expect(admin.locator("#top-products")).to_contain_text(product.name)
        expect(admin.locator("#chart-by-week .recharts-line").first).to_be_visible()
        admin.screenshot(path=shot("insights-1440x900.png"))
        admin.set_viewport_size({"width": 1440, "height": 1500})  # the whole page, to look at
        expect(admin.locator("#top-products")).to_be_in_viewport()
        admin.screenshot(path=shot("insights-1440x1500.png"))
    finally:
        admin_ctx.close()
        shop_ctx.close()
