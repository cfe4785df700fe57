"""Auto-assign and snooze in real Chromium, with two agents and shoppers:
the owner switches auto-assign on; each new conversation lands in the next
online agent's Mine, live; an agent snoozes a conversation and it moves to
Snoozed; the shopper writes and it is back in the open list, live; snoozed
until a few seconds from now, it comes back by itself (the leader's job)."""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlmodel import Session

from chatdash.db import make_engine
from chatdash.models import utcnow
from chatdash.services import store_settings
from tests.browser.test_agent_workspace import on_conversations, shot
from tests.browser.test_live_chat import foreign_store, open_widget  # noqa: F401
from tests.conftest import login

pytestmark = pytest.mark.browser


def wait_until_online_are(owner, expected: str, timeout: float = 60.0) -> None:
    """Reload Settings until its "Online now" reads `expected`: members whose
    pages closed in earlier tests (or the owner's own, left for Settings) drop
    out once the online window passes."""
    deadline = time.monotonic() + timeout
    while True:
        owner.reload()
        try:
            expect(owner.locator("#auto-assign-online")).to_have_text(expected, timeout=3_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def shopper_writes(browser, store: str, text: str):
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    ctx.set_default_timeout(20_000)
    page = ctx.new_page()
    page.goto(f"{store}/index.html")
    frame = open_widget(page)
    frame.locator("#widget-input").fill(text)
    frame.locator("#widget-input").press("Enter")
    return ctx, frame


def test_new_conversations_go_round_robin_and_a_snoozed_one_comes_back(live_app, browser, foreign_store):  # noqa: F811
    tag = uuid.uuid4().hex[:6]
    agents = {}
    for name, first in (("Ann Apple", "ann"), ("Ben Bell", "ben")):
        email = f"{first}-{tag}@store.test"
        live_app.cli("add-admin", email, "--name", name, "--role", "agent", "--password", f"{first}-password-1")
        agents[first] = email
    contexts = []

    def new_page():
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        ctx.set_default_timeout(20_000)
        contexts.append(ctx)
        return ctx.new_page()

    try:
        # ----- Ann and Ben have their conversations pages open: they are online
        ann, ben = new_page(), new_page()
        login(ann, live_app, agents["ann"], "ann-password-1")
        login(ben, live_app, agents["ben"], "ben-password-1")
        on_conversations(ann)
        on_conversations(ben)
        # An agent's settings have no auto-assign switch.
        ben.goto(f"{live_app.frontend}/admin/settings")
        expect(ben.locator("#sound-enabled")).to_be_visible()
        expect(ben.locator("#auto-assign-section")).to_have_count(0)
        ben.goto(f"{live_app.frontend}/admin/conversations")
        on_conversations(ben)

        # ----- the owner switches auto-assign on (off by default)
        owner = new_page()
        login(owner, live_app)
        on_conversations(owner)
        owner.goto(f"{live_app.frontend}/admin/settings")
        switch = owner.locator("#auto-assign-enabled")
        expect(switch).to_have_attribute("data-state", "unchecked")
        switch.click()
        expect(switch).to_have_attribute("data-state", "checked")
        wait_until_online_are(owner, "Ann Apple, Ben Bell")
        expect(owner.locator("#auto-assign-enabled")).to_have_attribute("data-state", "checked")  # it was saved
        owner.locator("#auto-assign-section").scroll_into_view_if_needed()
        shot(owner, "settings-auto-assign")

        ann.locator("#filter-mine").click()
        ben.locator("#filter-mine").click()
        expect(ann.locator("#filter-mine .filter-count")).to_have_text("0")
        expect(ben.locator("#filter-mine .filter-count")).to_have_text("0")

        # ----- a shopper writes: the conversation is Ann's, in her Mine, live
        first_text = f"Do you ship to Norway? {tag}"
        shop1, frame1 = shopper_writes(browser, foreign_store, first_text)
        contexts.append(shop1)
        row1 = ann.locator(".conv-row", has_text=first_text)
        expect(row1).to_be_visible()
        expect(row1.locator(".conv-assignee")).to_have_text("AA")
        expect(ann.locator("#filter-mine .filter-count")).to_have_text("1")
        conv1 = row1.get_attribute("data-conversation-id")
        sel1 = f'.conv-row[data-conversation-id="{conv1}"]'

        # ----- the next new conversation is Ben's
        second_text = f"Is the red scarf wool? {tag}"
        shop2, _frame2 = shopper_writes(browser, foreign_store, second_text)
        contexts.append(shop2)
        row2 = ben.locator(".conv-row", has_text=second_text)
        expect(row2).to_be_visible()
        expect(row2.locator(".conv-assignee")).to_have_text("BB")
        expect(ben.locator("#filter-mine .filter-count")).to_have_text("1")
        expect(ann.locator("#filter-mine .filter-count")).to_have_text("1")  # not Ann's too
        expect(ben.locator(sel1)).to_have_count(0)
        shot(ann, "ann-mine")

        # ----- Ann snoozes hers for an hour: it leaves Mine and All open for Snoozed
        ben.locator("#filter-open").click()
        expect(ben.locator(sel1)).to_be_visible()
        ann.locator(sel1).click()
        expect(ann.locator("#message-list .msg-other", has_text=first_text)).to_be_visible()
        ann.locator("#snooze-button").click()
        shot(ann, "snooze-menu")
        ann.locator("#snooze-1h").click()
        expect(ann.locator("#snoozed-until")).to_contain_text("Snoozed until")
        expect(ann.locator(sel1)).to_have_count(0)
        expect(ann.locator("#filter-mine .filter-count")).to_have_text("0")
        expect(ben.locator(sel1)).to_have_count(0)  # gone from Ben's All open, live
        expect(ann.locator("#filter-snoozed .filter-count")).not_to_have_text("0")
        ann.locator("#filter-snoozed").click()
        badge = ann.locator(sel1).locator(".conv-snoozed")
        expect(badge).to_have_text(re.compile(r"^\d\d:\d\d$|^tomorrow \d\d:\d\d$"))
        # An hour from now on the store's clock (the live app keeps UTC).
        hh, mm = map(int, badge.inner_text().split()[-1].split(":"))
        expected = utcnow() + timedelta(hours=1)
        assert abs((hh * 60 + mm) - (expected.hour * 60 + expected.minute)) % (24 * 60) in (0, 1, 1439)
        expect(ann.locator("#snoozed-until")).to_have_text(f"Snoozed until {badge.inner_text()}")
        shot(ann, "ann-snoozed")

        # ----- the shopper writes: it is back in the open lists, live
        again = f"Sorry, one more thing {tag}"
        frame1.locator("#widget-input").fill(again)
        frame1.locator("#widget-input").press("Enter")
        expect(ben.locator(sel1)).to_contain_text(again)
        expect(ann.locator(sel1)).to_have_count(0)  # left Ann's Snoozed list
        expect(ann.locator("#resolve-button")).to_be_visible()  # her open chat: no longer snoozed
        ann.locator("#filter-mine").click()
        expect(ann.locator(sel1)).to_contain_text(again)  # still Ann's

        # ----- snoozed until a few seconds from now: the leader's job wakes it
        until = (utcnow() + timedelta(seconds=15)).strftime("%Y-%m-%dT%H:%M:%S")
        ann.locator("#snooze-button").click()
        ann.locator("#snooze-at").fill(until)
        ann.locator("#snooze-at-send").click()
        expect(ann.locator("#snoozed-until")).to_be_visible()
        expect(ben.locator(sel1)).to_have_count(0)
        # Nobody touches it: it comes back on every screen by itself.
        expect(ben.locator(sel1)).to_be_visible(timeout=45_000)
        expect(ann.locator(sel1)).to_be_visible()
        expect(ann.locator("#resolve-button")).to_be_visible()
        expect(ann.locator("#filter-snoozed .filter-count")).to_have_text("0")
        shot(ben, "ben-woken")
        ann.locator("#filter-snoozed").click()  # how an empty filter reads
        expect(ann.locator(".conv-row")).to_have_count(0)
        expect(ann.locator("#conversation-list-empty")).to_have_text("Nothing snoozed.")
        shot(ann, "ann-snoozed-empty")
    finally:
        engine = make_engine(live_app.db_url)
        with Session(engine) as s:
            store_settings.save_auto_assign(s, False)  # the other tests' conversations wait unassigned
            s.commit()
        engine.dispose()
        for ctx in contexts:
            ctx.close()
