"""A new install in real Chromium: the demo store's conversations fill the
inbox (open and resolved, with their messages and product cards) and are
recent, a chat whose card was bought shows what it earned, and the Insights
page's default period counts the demo's cards through every step."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from chatdash.models import utcnow
from chatdash.services import attribution
from chatdash.state.chat import attribution_line
from tests.browser.test_attribution import STATS, shot
from tests.browser.test_live_chat import admin_page

pytestmark = pytest.mark.browser
# `setup` (the live app's, as a new install's) anchors the demo an hour before
# it ran: the Insights page's default period holds it, whatever the date.
PERIOD = 12
# True once the element's height is the same, and not 0, on two polls in a row.
STILL = """sel => { const el = document.querySelector(sel); if (!el) return false;
    const h = el.getBoundingClientRect().height, same = h > 0 && window.__lastHeight === h;
    window.__lastHeight = h; return same; }"""


def demo_conversations(live_db) -> list[tuple[int, str, str]]:
    """(id, status, preview) of the conversations `setup` generated, newest first."""
    with live_db.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT c.id, c.status, c.last_message_preview FROM conversation c WHERE EXISTS (SELECT 1 FROM message m "
            "WHERE m.conversation_id = c.id AND m.client_msg_id LIKE 'demo-%') ORDER BY c.last_message_at DESC"))]


def test_a_new_store_opens_on_the_demo_conversations_and_their_insights(live_app, browser, live_db):
    demo = demo_conversations(live_db)
    assert len(demo) >= 20
    bought = next(cid for cid, status, _ in demo
                  if status == "open" and attribution.conversation_attribution(cid, engine=live_db).ordered)
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    ctx.set_default_timeout(20_000)
    try:
        admin = admin_page(ctx, live_app)
        # Every open demo conversation is listed with its latest message; the resolved ones under their filter.
        # (The demo's are the oldest: other tests' conversations may push them onto the next page.)
        expect(admin.locator(".conv-row").first).to_be_visible()
        for cid, status, preview in demo:
            if status == "open":
                row = admin.locator(f'.conv-row[data-conversation-id="{cid}"]')
                while not row.count() and admin.locator("#conversation-list-more").count():
                    admin.locator("#conversation-list-more").click()
                    admin.wait_for_function("n => document.querySelectorAll('.conv-row').length > n",
                                            arg=admin.locator(".conv-row").count())
                expect(row.locator(".conv-preview")).to_have_text(preview)
        # Recent, not a month old: the newest open demo chat's time is a day of the last few (or a clock: today).
        newest = next(cid for cid, status, _ in demo if status == "open")
        days = [(utcnow() - timedelta(days=d)).strftime("%d %b") for d in range(4)]
        expect(admin.locator(f'.conv-row[data-conversation-id="{newest}"] .conv-time')).to_have_text(
            re.compile(rf"^(\d\d:\d\d|{'|'.join(days)})$"))
        resolved = sum(status == "resolved" for _, status, _ in demo)
        count = admin.locator("#filter-resolved .filter-count")
        expect(count).to_have_text(re.compile(r"^\d+$"))
        assert int(count.inner_text()) >= resolved > 0

        # A chat whose card the shopper bought: the messages, the cards, and what they earned.
        admin.locator(f'.conv-row[data-conversation-id="{bought}"]').click()
        expect(admin.locator("#message-list .product-card").first).to_be_visible()
        cards = attribution.conversation_attribution(bought, engine=live_db)
        expect(admin.locator("#attribution-line")).to_have_text(attribution_line(cards))
        assert cards.ordered > 0 and cards.revenue_cents > 0
        admin.screenshot(path=shot("demo-conversations-1440x900.png"))

        # Insights: the demo's cards through every step.
        admin.locator("#menu-insights").click()
        expect(admin).to_have_url(re.compile(r"/admin/insights/?$"))
        expect(admin.locator("#insights-loaded")).to_be_attached()
        # The bars grow in (an animation): shot once the first one stands still.
        admin.wait_for_function(STILL, arg="#chart-by-source .recharts-bar-rectangle path", polling=150)
        admin.screenshot(path=shot("demo-insights-default-1440x900.png"))  # the default period, to look at
        expect(admin.locator("#insights-period").get_by_role("radio", name=f"{PERIOD} weeks")).to_be_checked()
        total = attribution.insights(PERIOD, engine=live_db).total
        assert total.sent > total.clicked > total.carted > total.ordered > 0 and total.revenue_cents > 0
        for k in STATS:
            expect(admin.locator(f"#stat-{k}")).to_have_text(str(getattr(total, k)))
        expect(admin.locator("#top-products")).to_be_visible()
        admin.set_viewport_size({"width": 1440, "height": 1500})  # the whole page, to look at
        admin.screenshot(path=shot("demo-insights-1440x1500.png"))
    finally:
        ctx.close()
