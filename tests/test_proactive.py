"""Proactive chat (services/proactive.py): an agent starts a chat with a shopper
on the store now; the store page's heartbeat opens the widget once per such
message; anonymous and identified shoppers alike; limits — on a SQLite file
and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text as sql
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chatdash import events
from chatdash.db import session_scope
from chatdash.models import Conversation, Message, Role, Sender, Shopper, Visit, utcnow
from chatdash.services import auth, chat, customers, presence, proactive, workspace
from chatdash.services.ratelimit import clear_limiters
from tests.waiting import wait_until

STORE = "https://shop.test"


@pytest.fixture(autouse=True)
def fresh_limits():
    """Agent and shopper ids restart at 1 in every test database: so do the limits."""
    clear_limiters()
    yield
    clear_limiters()


def agent(engine: Engine, name: str) -> auth.AdminInfo:
    with session_scope(engine) as s:
        email = f"{name.split()[0].lower()}-{uuid.uuid4().hex[:6]}@store.test"
        return auth.create_admin(s, email, "agent-password-1", name, role=Role.AGENT)


def on_store(engine: Engine, page: str = "/tents/summit", visitor: str | None = None) -> tuple[str, int]:
    """A shopper's store page sends its heartbeat: (visitor id, shopper id)."""
    visitor = visitor or uuid.uuid4().hex
    presence.beat(visitor, True, url=f"{STORE}{page}", title="Summit Tent", engine=engine)
    with Session(engine) as s:
        row = s.exec(select(Shopper).where(Shopper.visitor_id == visitor)).one()
        return visitor, row.merged_into_id or row.id


def start(engine: Engine, agent_id: int, shopper_id: object, text: object = "Hi, can I help with the tent?",
          client_id: object = None) -> proactive.StartedChat:
    return proactive.start_chat(agent_id, shopper_id, client_id or uuid.uuid4().hex, text, engine=engine)


def conversation(engine: Engine, conv_id: int) -> Conversation:
    with Session(engine) as s:
        return s.get(Conversation, conv_id)


def messages(engine: Engine, conv_id: int) -> list[tuple[str, str]]:
    with Session(engine) as s:
        return [(m.sender, m.body) for m in s.exec(
            select(Message).where(Message.conversation_id == conv_id).order_by(Message.id)).all()]


def of(heard: list, kind: type) -> list:
    return [e for e in heard if isinstance(e, kind)]


def test_an_agent_starts_a_chat_the_page_opens_it_once_and_the_shopper_answers_there(any_engine, heard):
    dana = agent(any_engine, "Dana Reyes")
    visitor, shopper_id = on_store(any_engine)
    assert proactive.claim_popup(visitor, engine=any_engine) is None  # nothing yet

    started = start(any_engine, dana.id, shopper_id)
    assert started.created and started.shopper_id == shopper_id
    conv = conversation(any_engine, started.conversation_id)
    assert (conv.shopper_id, conv.status, conv.assignee_id) == (shopper_id, "open", dana.id)
    assert messages(any_engine, conv.id) == [("admin", "Hi, can I help with the tent?")]

    # The screens hear of it: the inbox row (assigned to Dana), the filters' counts,
    # the shopper's widget and Visitors row; no "new conversation" email to staff.
    posted = of(heard, events.MessagePosted)
    assert [(p.conversation.id, p.conversation.assignee_id, p.message.sender) for p in posted] == [
        (conv.id, dana.id, "admin")]
    filed = of(heard, events.ConversationFiled)
    assert [(f.change, f.counts.mine(dana.id), f.by_agent_id) for f in filed] == [("assigned", 1, dana.id)]
    told = of(heard, events.ChatStartedByAgent)
    assert [(t.shopper_id, t.conversation_id, t.message.body, t.agent_id) for t in told] == [
        (shopper_id, conv.id, "Hi, can I help with the tent?", dana.id)]
    assert not of(heard, events.ConversationStarted)

    # The next heartbeat opens the widget; the one after it (another tab, a reload) does not.
    popup = proactive.claim_popup(visitor, engine=any_engine)
    assert popup == proactive.Popup(started.message_id, "Hi, can I help with the tent?")
    assert proactive.claim_popup(visitor, engine=any_engine) is None

    # The widget shows the message in that conversation, and the answer goes there.
    opened = chat.open_widget(visitor, engine=any_engine)
    assert opened.conversation_id == conv.id
    assert [m.body for m in opened.messages] == ["Hi, can I help with the tent?"]
    conv_id, _m, _c = chat.shopper_send(visitor, opened.shopper_id, opened.conversation_id, uuid.uuid4().hex,
                                        "Yes: is it waterproof?", engine=any_engine)
    assert conv_id == conv.id
    assert messages(any_engine, conv.id)[-1] == ("shopper", "Yes: is it waterproof?")


def test_a_shopper_who_has_seen_the_message_gets_no_popup(any_engine):
    dana = agent(any_engine, "Dana")
    visitor, shopper_id = on_store(any_engine)
    start(any_engine, dana.id, shopper_id)
    # A collapsed widget (a page after the one the chat was open on) shows nothing yet.
    chat.open_widget(visitor, engine=any_engine, seen=False)
    # An open one shows it: the shopper has seen it, nothing pops.
    chat.open_widget(visitor, engine=any_engine)
    assert proactive.claim_popup(visitor, engine=any_engine) is None


def test_a_collapsed_widget_does_not_count_as_seen(any_engine):
    dana = agent(any_engine, "Dana")
    visitor, shopper_id = on_store(any_engine)
    started = start(any_engine, dana.id, shopper_id)
    chat.open_widget(visitor, engine=any_engine, seen=False)
    assert proactive.claim_popup(visitor, engine=any_engine).message_id == started.message_id


def test_each_new_opening_message_pops_once_and_a_stale_one_not_at_all(any_engine):
    dana = agent(any_engine, "Dana")
    visitor, shopper_id = on_store(any_engine)
    first = start(any_engine, dana.id, shopper_id, "Need a hand?")
    assert proactive.claim_popup(visitor, engine=any_engine).text == "Need a hand?"
    second = start(any_engine, dana.id, shopper_id, "We have the tent in green too.")
    assert second.conversation_id == first.conversation_id
    assert proactive.claim_popup(visitor, engine=any_engine).text == "We have the tent in green too."
    assert proactive.claim_popup(visitor, engine=any_engine) is None

    # Written half an hour ago and never shown (the shopper went away): it waits in the chat.
    other_visitor, other = on_store(any_engine)
    stale = start(any_engine, dana.id, other, "Still there?")
    with session_scope(any_engine) as s:
        s.execute(update(Message).where(Message.id == stale.message_id)
                  .values(created_at=utcnow() - proactive.POPUP_WITHIN - timedelta(minutes=1)))
    assert proactive.claim_popup(other_visitor, engine=any_engine) is None


ANOTHER_WORKER = """
import sys
from chatdash.db import make_engine
from chatdash.services import proactive
url, agent_id, shopper_id, text = sys.argv[1:5]
print(proactive.start_chat(int(agent_id), int(shopper_id), "other-worker-1", text, engine=make_engine(url)).message_id)
"""


def test_an_opening_message_written_on_another_worker_pops_up_here_once(any_engine):
    """Each worker reads who has a popup waiting at most once a second: a
    message another worker stored pops up with one of the next heartbeats here."""
    dana = agent(any_engine, "Dana")
    visitor, shopper_id = on_store(any_engine)
    assert proactive.claim_popup(visitor, engine=any_engine) is None  # this worker has looked: nothing
    url = any_engine.url.render_as_string(hide_password=False)
    if any_engine.dialect.name == "postgresql":  # the test's own schema, which the fixture sets per connection
        with any_engine.connect() as conn:
            url += "?options=-csearch_path%3D" + conn.execute(sql("SELECT current_schema()")).scalar()
    done = subprocess.run([sys.executable, "-c", ANOTHER_WORKER, url, str(dana.id), str(shopper_id), "Need a hand?"],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    popup = wait_until(lambda: proactive.claim_popup(visitor, engine=any_engine), timeout=30,
                       what="the other worker's opening message to pop up here")
    assert (popup.message_id, popup.text) == (int(done.stdout), "Need a hand?")
    assert proactive.claim_popup(visitor, engine=any_engine) is None


def test_a_long_message_pops_up_as_a_one_line_preview(any_engine):
    dana = agent(any_engine, "Dana")
    visitor, shopper_id = on_store(any_engine)
    text = "Hello!\n\n" + "word " * 100
    start(any_engine, dana.id, shopper_id, text)
    popup = proactive.claim_popup(visitor, engine=any_engine)
    assert popup.text.startswith("Hello! word word") and len(popup.text) == proactive.POPUP_CHARS
    assert "\n" not in popup.text


def test_an_existing_conversation_is_reused_reopened_and_keeps_its_assignee(any_engine, heard):
    dana, fox = agent(any_engine, "Dana"), agent(any_engine, "Fox")
    visitor, shopper_id = on_store(any_engine)
    opened = chat.open_widget(visitor, engine=any_engine)
    conv_id, _m, _c = chat.shopper_send(visitor, opened.shopper_id, 0, uuid.uuid4().hex, "Do you ship abroad?",
                                        engine=any_engine)
    workspace.assign(fox.id, conv_id, fox.id, engine=any_engine)
    workspace.set_status(fox.id, conv_id, "resolved", engine=any_engine)
    heard.clear()

    started = start(any_engine, dana.id, shopper_id, "Anything else I can help with?")
    assert started.conversation_id == conv_id
    conv = conversation(any_engine, conv_id)
    assert (conv.status, conv.assignee_id) == ("open", fox.id)  # Fox's conversation stays Fox's
    assert [f.change for f in of(heard, events.ConversationFiled)] == ["reopened"]
    assert [b for _s, b in messages(any_engine, conv_id)] == ["Do you ship abroad?", "Anything else I can help with?"]

    # Open and unassigned: the agent who writes first takes it.
    workspace.assign(fox.id, conv_id, None, engine=any_engine)
    clear_limiters()
    start(any_engine, dana.id, shopper_id, "Shall I send you the size chart?")
    assert conversation(any_engine, conv_id).assignee_id == dana.id


def test_only_a_visitor_on_the_store_now(any_engine):
    dana = agent(any_engine, "Dana")
    _gone_visitor, gone = on_store(any_engine)
    with session_scope(any_engine) as s:
        s.execute(update(Visit).where(Visit.shopper_id == gone).values(last_seen_at=utcnow() - timedelta(minutes=5)))
    for shopper_id in (gone, 999_999, 0, -3, True, "1", None, 1.5):
        with pytest.raises(proactive.ChatError, match=r"not on the store|left the store"):
            start(any_engine, dana.id, shopper_id)
    with Session(any_engine) as s:
        assert s.exec(select(Conversation)).all() == []

    # A page that just said "left" (the shopper may be on the next page already): the message
    # is taken, and waits in the chat.
    between_pages, shopper_id = on_store(any_engine)
    presence.beat(between_pages, False, engine=any_engine)
    assert start(any_engine, dana.id, shopper_id).created


def test_messages_are_checked_for_shape_and_size(any_engine):
    dana = agent(any_engine, "Dana")
    _visitor, shopper_id = on_store(any_engine)
    for text, says in [("", "Write a message"), ("   \n ", "Write a message"), (None, "Malformed"),
                       (["hi"], "Malformed"), ("x" * (proactive.MAX_CHARS + 1), "at most 1,000 characters")]:
        with pytest.raises(proactive.ChatError, match=says):
            start(any_engine, dana.id, shopper_id, text)
    for client_id in ("bad id!", "x" * 65, 12345678):
        with pytest.raises(proactive.ChatError, match="Malformed"):
            start(any_engine, dana.id, shopper_id, client_id=client_id)
    with Session(any_engine) as s:
        assert s.exec(select(Message)).all() == []
    assert start(any_engine, dana.id, shopper_id, "y" * proactive.MAX_CHARS).created


def test_a_resent_message_is_stored_once_and_counted_once(any_engine, heard):
    dana = agent(any_engine, "Dana")
    _visitor, shopper_id = on_store(any_engine)
    client_id = uuid.uuid4().hex
    first = start(any_engine, dana.id, shopper_id, client_id=client_id)
    again = start(any_engine, dana.id, shopper_id, client_id=client_id)
    assert (again.conversation_id, again.message_id, again.created) == (first.conversation_id, first.message_id,
                                                                        False)
    assert len(messages(any_engine, first.conversation_id)) == 1
    assert len(of(heard, events.ChatStartedByAgent)) == 1
    # The retry took none of the shopper's three opening messages.
    for _ in range(2):
        start(any_engine, dana.id, shopper_id)


def test_opening_messages_are_limited_per_shopper_and_per_agent(any_engine):
    dana, fox, gus = agent(any_engine, "Dana"), agent(any_engine, "Fox"), agent(any_engine, "Gus")
    # Three opening messages to one shopper, from all agents together.
    _visitor, shopper_id = on_store(any_engine)
    for i in range(3):
        start(any_engine, gus.id if i % 2 else fox.id, shopper_id, f"Opening {i}")
    with pytest.raises(proactive.ChatError, match="a short while ago"):
        start(any_engine, gus.id, shopper_id, "Opening 3")
    with Session(any_engine) as s:
        bodies = s.exec(select(Message.body).join(Conversation, Conversation.id == Message.conversation_id)
                        .where(Conversation.shopper_id == shopper_id)).all()
    assert sorted(bodies) == ["Opening 0", "Opening 1", "Opening 2"]

    # One agent, many shoppers: 20 in ten minutes, then a pause.
    shoppers = [on_store(any_engine, f"/p/{i}")[1] for i in range(21)]
    for shopper in shoppers[:20]:
        start(any_engine, dana.id, shopper)
    with pytest.raises(proactive.ChatError, match="many chats"):
        start(any_engine, dana.id, shoppers[20])
    start(any_engine, fox.id, shoppers[20])  # another agent is not held up


def test_an_anonymous_shopper_who_logs_in_still_gets_the_popup_once(any_engine):
    """The message was written to the browser's anonymous shopper; the browser
    then identifies as a customer known from another device (with their own
    open conversation): the customer's heartbeat opens it, once."""
    dana = agent(any_engine, "Dana")
    customer_id = f"C-{uuid.uuid4().hex[:6]}"
    phone, _ = on_store(any_engine, "/home")
    customer_shopper = customers.identify(phone, customer_id, "Ada Lovelace", engine=any_engine)
    opened = chat.open_widget(phone, engine=any_engine)
    chat.shopper_send(phone, opened.shopper_id, 0, uuid.uuid4().hex, "Order 1001: where is it?", engine=any_engine)
    chat.open_widget(phone, engine=any_engine)  # read the answers so far

    laptop, anonymous = on_store(any_engine, "/tents/summit")
    assert anonymous != customer_shopper
    started = start(any_engine, dana.id, anonymous, "Hi, can I help with the tent?")
    customers.identify(laptop, customer_id, "Ada Lovelace", engine=any_engine)

    popup = proactive.claim_popup(laptop, engine=any_engine)
    assert popup is not None and popup.message_id == started.message_id
    assert proactive.claim_popup(laptop, engine=any_engine) is None
    assert proactive.claim_popup(phone, engine=any_engine) is None  # one customer, one popup
    merged = chat.open_widget(laptop, engine=any_engine)
    assert merged.shopper_id == customer_shopper
    assert [m.body for m in merged.messages] == ["Order 1001: where is it?", "Hi, can I help with the tent?"]


def test_a_visitors_row_from_before_a_login_reaches_the_customer(any_engine):
    """The agent's Visitors page still lists the anonymous shopper's id when the
    browser has just logged in: the message goes to the customer."""
    dana = agent(any_engine, "Dana")
    customer_id = f"C-{uuid.uuid4().hex[:6]}"
    other_device, _ = on_store(any_engine, "/home")
    customer_shopper = customers.identify(other_device, customer_id, engine=any_engine)
    browser, anonymous = on_store(any_engine, "/tents")
    customers.identify(browser, customer_id, engine=any_engine)

    started = start(any_engine, dana.id, anonymous)
    assert started.shopper_id == customer_shopper
    assert conversation(any_engine, started.conversation_id).shopper_id == customer_shopper
    assert proactive.claim_popup(browser, engine=any_engine).message_id == started.message_id
    assert messages(any_engine, started.conversation_id) == [(str(Sender.ADMIN), "Hi, can I help with the tent?")]
