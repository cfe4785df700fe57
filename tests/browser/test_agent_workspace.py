"""The agent workspace in real Chromium, with two agents and a shopper: the
owner invites an agent, assigns her a conversation she sees arrive live, both
see each other viewing and typing, a private note reaches the other agent and
never the shopper, and a resolved conversation re-opens when the shopper
writes again."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.test_live_chat import foreign_store, open_widget, type_until_visible  # noqa: F401
from tests.conftest import login

pytestmark = pytest.mark.browser
# Screenshots of each step, for a person to look at: CHATDASH_SHOTS=<folder>.
SHOTS = os.environ.get("CHATDASH_SHOTS", "")


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def on_conversations(page) -> None:
    expect(page).to_have_url(re.compile(r"/admin/conversations/?$"))
    expect(page.locator("#conversation-list")).to_be_visible()


def invite_agent(owner, name: str, email: str) -> str:
    """Settings → Team → Invite: the one-time link the owner sends."""
    owner.goto(owner.url.split("/admin")[0] + "/admin/settings")
    expect(owner.locator("#team-section")).to_be_visible()
    owner.locator("#invite-email").fill(email)
    owner.locator("#invite-name").fill(name)
    owner.locator("#invite-send").click()
    link = owner.locator("#invite-link")
    expect(link).to_contain_text("/invite?t=")
    expect(owner.locator(".team-member", has_text=email)).to_contain_text("Invited")
    return link.inner_text()


def test_two_agents_and_a_shopper_work_one_conversation(live_app, browser, foreign_store):  # noqa: F811
    owner_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    dana_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    shop_ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    for ctx in (owner_ctx, dana_ctx, shop_ctx):
        ctx.set_default_timeout(20_000)
    tag = uuid.uuid4().hex[:6]
    try:
        # ----- the owner invites Dana; Dana sets her password through the link
        owner = owner_ctx.new_page()
        login(owner, live_app)
        on_conversations(owner)
        dana_email = f"dana-{tag}@store.test"
        link = invite_agent(owner, "Dana Scully", dana_email)
        shot(owner, "settings-team")

        dana = dana_ctx.new_page()
        dana.goto(link)
        expect(dana.locator("#invite-for")).to_have_text(dana_email)
        dana.locator("#invite-password").fill("dana-password-1")
        dana.locator("#invite-password2").fill("dana-password-2")
        dana.locator("#invite-submit").click()
        expect(dana.locator("#invite-error")).to_have_text("The two passwords differ.")
        dana.locator("#invite-password").fill("dana-password-1")
        dana.locator("#invite-password2").fill("dana-password-1")
        shot(dana, "invite-page")
        dana.locator("#invite-submit").click()
        on_conversations(dana)
        # An agent's settings hold no team and no store-wide email settings.
        dana.goto(f"{live_app.frontend}/admin/settings")
        expect(dana.locator("#sound-enabled")).to_be_visible()
        expect(dana.locator("#team-section")).to_have_count(0)
        expect(dana.locator("#email-recipients")).to_have_count(0)
        # The link was used up.
        other = dana_ctx.new_page()
        other.goto(link)
        expect(other.locator("#invite-error")).to_contain_text("expired or was already used")
        other.close()
        dana.goto(f"{live_app.frontend}/admin/conversations")
        on_conversations(dana)
        owner.goto(f"{live_app.frontend}/admin/conversations")
        on_conversations(owner)

        # ----- a shopper writes; both agents see the conversation
        shop = shop_ctx.new_page()
        received: list[str] = []  # everything the shopper's browser is sent over its sockets
        shop.on("websocket", lambda ws: ws.on("framereceived", lambda payload: received.append(str(payload))))
        shop.goto(f"{foreign_store}/index.html")
        frame = open_widget(shop)
        question = f"Is the blue kettle back in stock? {tag}"
        frame.locator("#widget-input").fill(question)
        frame.locator("#widget-input").press("Enter")
        row_sel = ".conv-row"
        expect(owner.locator(row_sel, has_text=question)).to_be_visible()
        conv_id = owner.locator(row_sel, has_text=question).get_attribute("data-conversation-id")
        row = f'{row_sel}[data-conversation-id="{conv_id}"]'
        expect(dana.locator(row)).to_be_visible()
        expect(dana.locator(row).locator(".conv-unassigned")).to_be_visible()

        # ----- both open it: each sees the other viewing
        owner.locator(row).click()
        expect(owner.locator("#message-list .msg-other", has_text=question)).to_be_visible()
        dana.locator(row).click()
        expect(dana.locator("#message-list .msg-other", has_text=question)).to_be_visible()
        expect(owner.locator("#viewers-text")).to_have_text("Dana Scully is viewing")
        expect(dana.locator("#viewers-text")).to_have_text("Admin is viewing")

        # ----- the owner assigns it to Dana: Dana sees it arrive, live
        dana.locator("#filter-mine").click()
        expect(dana.locator(row)).to_have_count(0)
        mine_before = int(dana.locator("#filter-mine .filter-count").inner_text())
        owner.locator("#assign-select").click()
        owner.get_by_role("option", name="Dana Scully").click()
        expect(dana.locator(row)).to_be_visible()
        expect(dana.locator(row).locator(".conv-assignee")).to_have_text("DS")
        expect(dana.locator("#filter-mine .filter-count")).to_have_text(str(mine_before + 1))
        expect(dana.locator("#assign-select")).to_contain_text("Dana Scully (me)")
        expect(owner.locator(row).locator(".conv-assignee")).to_have_text("DS")

        # ----- Dana types: the owner sees who
        type_until_visible(dana.locator("#reply-input"), "Checking the stock", owner.locator("#agent-typing"))
        expect(owner.locator("#agent-typing")).to_have_text("Dana Scully is typing…")
        dana.locator("#reply-input").fill("")

        # ----- a private note: Dana sees it, the shopper never does
        note = f"VIP customer, offer free shipping {tag}"
        owner.locator("#compose-mode").get_by_role("radio", name="Private note").click()
        owner.locator("#note-input").fill(note)
        owner.locator("#note-send").click()
        expect(owner.locator(".msg-note", has_text=note)).to_be_visible()
        expect(dana.locator(".msg-note", has_text=note)).to_contain_text("Private note · Admin")
        # The positive marker, sent after the note: once the shopper has it,
        # the note would have arrived too if it ever could.
        owner.locator("#compose-mode").get_by_role("radio", name="Reply").click()
        marker = f"Yes, back on Monday {tag}"
        owner.locator("#reply-input").fill(marker)
        owner.locator("#reply-input").press("Enter")
        expect(frame.locator(".msg-other", has_text=marker)).to_be_visible()
        shot(owner, "owner-conversation")
        shot(dana, "dana-mine")
        assert any(marker in p for p in received)  # the capture sees the shopper's deltas
        assert not any(note in p for p in received)
        assert note not in shop.frames[-1].content() and all(note not in f.content() for f in shop.frames)

        # ----- resolve with `e`; the shopper writes again and it re-opens for both
        owner.locator("#message-list").click()
        owner.keyboard.press("e")
        expect(owner.locator("#reopen-button")).to_be_visible()
        expect(owner.locator(row)).to_have_count(0)  # gone from "All open"
        expect(dana.locator(row)).to_have_count(0)  # and from Dana's "Mine", live
        owner.locator("#filter-resolved").click()
        expect(owner.locator(row).locator(".conv-resolved")).to_be_visible()
        shot(owner, "owner-resolved")
        owner.locator("#filter-open").click()
        again = f"One more question {tag}"
        frame.locator("#widget-input").fill(again)
        frame.locator("#widget-input").press("Enter")
        expect(owner.locator(row)).to_contain_text(again)
        expect(dana.locator(row)).to_contain_text(again)  # still Dana's
        expect(dana.locator("#resolve-button")).to_be_visible()
        expect(frame.locator(".msg-other", has_text=marker)).to_be_visible()  # the same conversation
    finally:
        owner_ctx.close()
        dana_ctx.close()
        shop_ctx.close()


def test_an_agent_finds_a_conversation_by_a_word_from_it(live_app, browser, foreign_store):  # noqa: F811
    agent_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    shop_ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    word = f"zq{uuid.uuid4().hex[:8]}"
    try:
        agent = agent_ctx.new_page()
        login(agent, live_app)
        on_conversations(agent)
        shop = shop_ctx.new_page()
        shop.goto(f"{foreign_store}/index.html")
        frame = open_widget(shop)
        frame.locator("#widget-input").fill(f"My order number is {word}, where is it?")
        frame.locator("#widget-input").press("Enter")
        expect(agent.locator(".conv-row", has_text=word)).to_be_visible()
        conv_id = agent.locator(".conv-row", has_text=word).get_attribute("data-conversation-id")
        # Another message moves it out of the preview: only the index can find the word now.
        frame.locator("#widget-input").fill("Hello?")
        frame.locator("#widget-input").press("Enter")
        expect(agent.locator(f'.conv-row[data-conversation-id="{conv_id}"]')).to_contain_text("Hello?")

        agent.locator("body").press("/")  # `/` goes to the search box
        expect(agent.locator("#inbox-search")).to_be_focused()
        agent.keyboard.type(word[:6])  # a prefix is enough
        expect(agent.locator("#search-count")).to_have_text("1 found (open and resolved)")
        expect(agent.locator(".conv-row")).to_have_count(1)
        expect(agent.locator(f'.conv-row[data-conversation-id="{conv_id}"]')).to_be_visible()
        shot(agent, "search")
        agent.locator("#inbox-search").fill("nothingmatchesthis")
        expect(agent.locator("#search-count")).to_have_text("0 found (open and resolved)")
        # A filter ends the search.
        agent.locator("#filter-open").click()
        expect(agent.locator("#inbox-search")).to_have_value("")
        expect(agent.locator(f'.conv-row[data-conversation-id="{conv_id}"]')).to_be_visible()

        # The keyboard: down moves through the list, Enter opens the row.
        agent.locator("#inbox-search").blur()
        agent.keyboard.press("ArrowDown")
        first = agent.locator(".conv-row").first
        expect(first).to_have_attribute("data-keyboard", "true")
        first_id = first.get_attribute("data-conversation-id")
        agent.keyboard.press("Enter")
        expect(agent.locator(f'.conv-row[data-conversation-id="{first_id}"]')).to_have_class(
            re.compile("conv-selected"))
        expect(agent.locator("#chat-title")).to_be_visible()
    finally:
        agent_ctx.close()
        shop_ctx.close()


def test_a_saved_reply_is_offered_by_slash_and_filled_in_for_the_shopper(live_app, browser, foreign_store):  # noqa: F811
    from sqlmodel import Session

    from chatdash.db import make_engine
    from chatdash.models import Conversation, Shopper

    agent_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    shop_ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    shortcut = f"ship{uuid.uuid4().hex[:4]}"
    try:
        agent = agent_ctx.new_page()
        login(agent, live_app)
        on_conversations(agent)
        # Settings → Saved replies: the team's library.
        agent.goto(f"{live_app.frontend}/admin/settings")
        agent.locator("#saved-shortcut").fill(shortcut)
        agent.locator("#saved-body").fill("Hi {first_name}, it ships {tomorrow}.")
        agent.locator("#saved-add").click()
        expect(agent.locator("#saved-error")).to_contain_text("Unknown variable {tomorrow}")
        agent.locator("#saved-body").fill("Hi {first_name}, it ships tomorrow.")
        agent.locator("#saved-add").click()
        expect(agent.locator(f'.saved-reply-row[data-shortcut="{shortcut}"]')).to_be_visible()
        shot(agent, "settings-saved-replies")

        shop = shop_ctx.new_page()
        shop.goto(f"{foreign_store}/index.html")
        frame = open_widget(shop)
        question = f"When does it ship? {shortcut}"
        frame.locator("#widget-input").fill(question)
        frame.locator("#widget-input").press("Enter")
        agent.goto(f"{live_app.frontend}/admin/conversations")
        on_conversations(agent)
        row = agent.locator(".conv-row", has_text=question)
        expect(row).to_be_visible()
        # The store knows this shopper's name (as an identified customer would be).
        engine = make_engine(live_app.db_url)
        with Session(engine) as s:
            conv = s.get(Conversation, int(row.get_attribute("data-conversation-id")))
            s.get(Shopper, conv.shopper_id).name = "Grace Hopper"
            s.commit()
        engine.dispose()
        row.click()
        expect(agent.locator("#message-list .msg-other", has_text=question)).to_be_visible()

        box = agent.locator("#reply-input")
        box.press_sequentially(f"/{shortcut[:5]}")
        offer = agent.locator(f'#saved-replies .saved-reply[data-shortcut="{shortcut}"]')
        expect(offer).to_be_visible()
        expect(offer).to_contain_text("Hi Grace, it ships tomorrow.")
        shot(agent, "saved-reply-offer")
        box.press("Enter")  # picks the offer; a second Enter sends
        expect(box).to_have_value("Hi Grace, it ships tomorrow.")
        expect(offer).to_be_hidden()
        box.press("Enter")
        expect(frame.locator(".msg-other", has_text="Hi Grace, it ships tomorrow.")).to_be_visible()
    finally:
        agent_ctx.close()
        shop_ctx.close()
