"""Offline follow-up (services/followup.py): the widget asks a shopper nobody
answered for an email; an agent's replies to a shopper who left go there, one
email per conversation per window, with a link back to the same conversation
and an unsubscribe link — on a SQLite file and on PostgreSQL, emails
delivered to a real SMTP server on loopback. Time is passed in (`now=`) to the
same functions the periodic jobs call, so no test waits minutes."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chatdash import events
from chatdash.db import session_scope
from chatdash.models import Conversation, Product, Role, Shopper, utcnow
from chatdash.services import auth, chat, followup, presence, store_settings
from chatdash.services import conversations as convs
from chatdash.services.shopper_context import shopper_context
from chatdash.settings import Settings

WINDOW = timedelta(seconds=followup.window_seconds())


def of(heard: list, kind: type) -> list:
    return [e for e in heard if isinstance(e, kind)]


def ask_after(engine: Engine, seconds: int) -> None:
    with session_scope(engine) as s:
        store_settings.save_offline_followup(s, store_settings.OfflineFollowup(seconds))


def shopper_writes(engine: Engine, text: str, visitor: str | None = None) -> tuple[str, int]:
    """A shopper's message through the widget's use case: (visitor id, conversation id)."""
    visitor = visitor or uuid.uuid4().hex
    opened = chat.open_widget(visitor, engine=engine)
    conv_id, _m, _c = chat.shopper_send(visitor, opened.shopper_id, opened.conversation_id, uuid.uuid4().hex,
                                        text, engine=engine)
    return visitor, conv_id


def an_agent(engine: Engine) -> int:
    with session_scope(engine) as s:
        return auth.create_admin(s, f"agent-{uuid.uuid4().hex[:6]}@store.test", "agent-password-1", "Dana",
                                 role=Role.AGENT).id


def a_product(engine: Engine) -> int:
    with session_scope(engine) as s:
        p = Product(sku=f"TENT-{uuid.uuid4().hex[:6]}", name="Alpine Tent 2P", category="Tents",
                    price_cents=24900, url="https://shop.example/p/alpine-tent")
        s.add(p)
        s.flush()
        return p.id


def conversation(engine: Engine, conv_id: int) -> Conversation:
    with Session(engine) as s:
        return s.get(Conversation, conv_id)


def leaves(engine: Engine, visitor: str) -> None:
    """The shopper was on a store page and closed it (the page's beacon)."""
    presence.beat(visitor, True, url="https://shop.example/", engine=engine)
    presence.beat(visitor, False, engine=engine)


def mail_settings(smtp_port: int) -> Settings:
    return Settings(smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_from="chat@shop.example",
                    store_name="Trail Shop")


def send_due(engine: Engine, port: int, now) -> int:
    return asyncio.run(followup.send_due_emails(lambda: mail_settings(port), now=now, engine=engine))


def plain(msg) -> str:
    return msg.get_body(("plain",)).get_content().replace("\r\n", "\n")


def to(address: str):
    return lambda m: address in m[0]


# --------------------------------------------------------------------------- asking


def test_the_widget_asks_for_an_email_only_once_nobody_answered_in_time(any_engine, heard):
    ask_after(any_engine, 120)
    visitor, conv_id = shopper_writes(any_engine, "Is the tent waterproof?")
    started = conversation(any_engine, conv_id).awaiting_reply_since
    shopper_writes(any_engine, "Hello?", visitor)  # the clock runs from the first unanswered message
    assert conversation(any_engine, conv_id).awaiting_reply_since == started

    assert followup.ask_due(now=started + timedelta(seconds=119), engine=any_engine) == []
    assert chat.open_widget(visitor, engine=any_engine).followup.ask is False
    assert followup.ask_due(now=started + timedelta(seconds=121), engine=any_engine) == [conv_id]
    assert [e.conversation_id for e in of(heard, events.EmailAskDue)] == [conv_id]
    # Asked once: the next sweep (any worker's) finds it claimed.
    assert followup.ask_due(now=started + timedelta(seconds=180), engine=any_engine) == []
    assert len(of(heard, events.EmailAskDue)) == 1
    assert chat.open_widget(visitor, engine=any_engine).followup == followup.WidgetFollowup(ask=True)


def test_an_answer_in_time_stops_the_clock_and_a_new_question_restarts_it(any_engine):
    ask_after(any_engine, 120)
    visitor, conv_id = shopper_writes(any_engine, "Do you ship to Norway?")
    chat.admin_send(an_agent(any_engine), conv_id, uuid.uuid4().hex, "Yes, in 3 days.", engine=any_engine)
    assert conversation(any_engine, conv_id).awaiting_reply_since is None
    assert followup.ask_due(now=utcnow() + timedelta(hours=1), engine=any_engine) == []

    shopper_writes(any_engine, "And to Iceland?", visitor)
    again = conversation(any_engine, conv_id).awaiting_reply_since
    assert again is not None
    assert followup.ask_due(now=again + timedelta(seconds=121), engine=any_engine) == [conv_id]


def test_zero_minutes_turns_the_question_off(any_engine):
    ask_after(any_engine, 0)
    _visitor, conv_id = shopper_writes(any_engine, "Anyone there?")
    assert followup.ask_due(now=utcnow() + timedelta(days=1), engine=any_engine) == []
    assert conversation(any_engine, conv_id).email_asked_at is None


def test_a_shopper_whose_email_we_know_is_not_asked(any_engine):
    ask_after(any_engine, 60)
    visitor = uuid.uuid4().hex
    chat.open_widget(visitor, chat.Customer("C-77", "Ada", "ada@example.com"), engine=any_engine)
    shopper_writes(any_engine, "Where is my order?", visitor)
    assert followup.ask_due(now=utcnow() + timedelta(hours=1), engine=any_engine) == []


def test_the_ask_minutes_setting_is_checked():
    assert store_settings.parse_ask_minutes("2") == 120
    assert store_settings.parse_ask_minutes("0,5") == 30
    assert store_settings.parse_ask_minutes("0") == 0
    for bad, says in [("soon", "number of minutes"), ("-1", "between 0 and 1440"), ("99999", "between 0"),
                      ("nan", "between 0"), ("0.001", "at least")]:
        with pytest.raises(store_settings.SettingsError, match=says):
            store_settings.parse_ask_minutes(bad)


# --------------------------------------------------------------------------- the shopper's answer


def test_a_given_email_is_checked_stored_and_shown_to_the_agents(any_engine, heard):
    ask_after(any_engine, 60)
    visitor, conv_id = shopper_writes(any_engine, "Is it in stock?")
    followup.ask_due(now=utcnow() + timedelta(minutes=2), engine=any_engine)
    for bad, says in [("not-an-email", "is not an email address"), ("a@b", "is not an email address"),
                      ("x" * 500 + "@a.com", "Enter an email address"), ("", "Enter an email address"),
                      ("<a@b.com>", "is not an email address"), (["a@b.com"], "Enter an email address")]:
        with pytest.raises(followup.FollowupError, match=says):
            followup.give_email(visitor, bad, engine=any_engine)

    shown = followup.give_email(visitor, "  Sam.Walker@Example.COM ", engine=any_engine)
    assert shown == followup.WidgetFollowup(ask=False, email="sam.walker@example.com")
    changed = of(heard, events.ShopperEmailChanged)[-1]
    assert (changed.conversation_id, changed.email, changed.label) == (conv_id, "sam.walker@example.com",
                                                                      "sam.walker@example.com")
    shopper_id = chat.open_widget(visitor, engine=any_engine).shopper_id
    assert shopper_context(shopper_id, engine=any_engine).email == "sam.walker@example.com"
    # The widget, opened again, says where replies go.
    assert chat.open_widget(visitor, engine=any_engine).followup.email == "sam.walker@example.com"


def test_a_dismissed_question_stays_dismissed(any_engine):
    ask_after(any_engine, 60)
    visitor, _conv_id = shopper_writes(any_engine, "Hi")
    followup.ask_due(now=utcnow() + timedelta(minutes=2), engine=any_engine)
    assert chat.open_widget(visitor, engine=any_engine).followup.ask is True
    followup.dismiss_ask(visitor, engine=any_engine)
    assert chat.open_widget(visitor, engine=any_engine).followup == followup.WidgetFollowup()


# --------------------------------------------------------------------------- replies by email


def departed_shopper_with_email(engine: Engine, email: str) -> tuple[str, int]:
    visitor, conv_id = shopper_writes(engine, "Which tent for two people?")
    followup.give_email(visitor, email, engine=engine)
    leaves(engine, visitor)
    return visitor, conv_id


def test_replies_inside_the_window_reach_a_departed_shopper_as_one_email(any_engine, smtp_server):
    address = f"sam-{uuid.uuid4().hex[:6]}@example.com"
    visitor, conv_id = departed_shopper_with_email(any_engine, address)
    agent = an_agent(any_engine)
    text = "Try this one: <b>light</b> & dry."
    chat.admin_send(agent, conv_id, uuid.uuid4().hex, text, engine=any_engine)
    chat.admin_send(agent, conv_id, uuid.uuid4().hex, product_id=a_product(any_engine), engine=any_engine)
    replied = utcnow()

    # Nothing before the window ends; then one email holding both replies.
    assert followup.claim_due_emails(now=replied + WINDOW - timedelta(seconds=5), engine=any_engine) == []
    assert send_due(any_engine, smtp_server.port, replied + WINDOW + timedelta(seconds=1)) == 1
    rcpts, msg = smtp_server.wait_for(to(address))
    assert rcpts == [address]
    assert msg["From"] == "Trail Shop <chat@shop.example>"
    assert msg["Subject"] == "Trail Shop: 2 new replies"
    body = plain(msg)
    assert text in body
    assert "Alpine Tent 2P — $249.00\n  https://shop.example/p/alpine-tent" in body
    page = msg.get_body(("html",)).get_content()
    assert "&lt;b&gt;light&lt;/b&gt; &amp; dry." in page and "<b>light</b>" not in page
    assert '<a href="https://shop.example/p/alpine-tent" class="product-link"><strong>Alpine Tent 2P' in page
    assert msg["List-Unsubscribe"].startswith("<http")

    # The link opens the same conversation, for this shopper only.
    link = re.search(r"Continue the conversation: (\S+)", body).group(1)
    token = parse_qs(urlsplit(link).query)["r"][0]
    assert urlsplit(link).path == "/widget"
    resumed = followup.resume(token, engine=any_engine)
    assert resumed == visitor
    assert chat.open_widget(resumed, engine=any_engine).conversation_id == conv_id
    # The conversation's own token is nowhere in the email.
    assert conversation(any_engine, conv_id).token not in msg.as_string()

    # Sent: nothing more is due, and the next reply starts a new window with only itself.
    assert send_due(any_engine, smtp_server.port, replied + 3 * WINDOW) == 0
    chat.admin_send(agent, conv_id, uuid.uuid4().hex, "Still interested?", engine=any_engine)
    assert send_due(any_engine, smtp_server.port, utcnow() + WINDOW + timedelta(seconds=1)) == 1
    _rcpts, second = smtp_server.wait_for(lambda m: address in m[0] and "Still interested?" in plain(m[1]))
    assert text not in plain(second) and second["Subject"] == "Trail Shop replied to your message"


def page_signal(engine: Engine, visitor: str, at, *, alive: bool) -> None:
    """The shopper's store page at `at`: a heartbeat, or the page closing."""
    window = 60
    with session_scope(engine) as s:
        shopper = convs.get_or_create_shopper(s, visitor)
        if alive:
            presence.touch_visit(s, shopper, user_agent="", url="https://shop.example/tents",
                                 window_seconds=window, now=at)
        else:
            presence.leave(s, shopper, window_seconds=window, now=at)


def test_a_shopper_still_on_the_site_is_emailed_only_once_they_leave_unread(any_engine, smtp_server):
    address = f"onsite-{uuid.uuid4().hex[:6]}@example.com"
    visitor, conv_id = shopper_writes(any_engine, "Hello")
    followup.give_email(visitor, address, engine=any_engine)
    chat.admin_send(an_agent(any_engine), conv_id, uuid.uuid4().hex, "We are here!", engine=any_engine)
    due = utcnow() + WINDOW + timedelta(seconds=1)
    # Due, but the shopper is on the site then: no email, looked at again a window later.
    page_signal(any_engine, visitor, due - timedelta(seconds=5), alive=True)
    assert followup.claim_due_emails(now=due, engine=any_engine) == []
    assert conversation(any_engine, conv_id).followup_due_at == due + WINDOW
    # They close the page without opening the chat: the next look emails them.
    page_signal(any_engine, visitor, due + timedelta(seconds=10), alive=False)
    assert send_due(any_engine, smtp_server.port, due + WINDOW) == 1
    smtp_server.wait_for(lambda m: address in m[0] and "We are here!" in plain(m[1]))


def test_replies_the_shopper_has_seen_are_not_emailed(any_engine):
    visitor, conv_id = departed_shopper_with_email(any_engine, f"seen-{uuid.uuid4().hex[:6]}@example.com")
    chat.admin_send(an_agent(any_engine), conv_id, uuid.uuid4().hex, "Answer", engine=any_engine)
    chat.open_widget(visitor, engine=any_engine)  # the shopper opened the chat (standalone) and read it
    assert followup.claim_due_emails(now=utcnow() + WINDOW * 2, engine=any_engine) == []


def test_two_workers_claiming_at_once_send_one_email(any_engine):
    address = f"race-{uuid.uuid4().hex[:6]}@example.com"
    _visitor, conv_id = departed_shopper_with_email(any_engine, address)
    chat.admin_send(an_agent(any_engine), conv_id, uuid.uuid4().hex, "Reply", engine=any_engine)
    when = utcnow() + WINDOW + timedelta(seconds=1)
    found: list = []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        found.extend(followup.claim_due_emails(now=when, engine=any_engine))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e.to for e in found] == [address]


def test_unsubscribing_stops_the_emails_and_a_forged_link_changes_nothing(any_engine, heard):
    address = f"unsub-{uuid.uuid4().hex[:6]}@example.com"
    visitor, conv_id = departed_shopper_with_email(any_engine, address)
    agent = an_agent(any_engine)
    chat.admin_send(agent, conv_id, uuid.uuid4().hex, "First reply", engine=any_engine)
    email = followup.claim_due_emails(now=utcnow() + WINDOW * 2, engine=any_engine)[0]
    token = parse_qs(urlsplit(email.unsubscribe_url).query)["t"][0]
    shopper_id = int(token.split(".")[0])

    other_id = shopper_id + 1
    for forged in (f"{other_id}.{token.split('.')[1]}", token[:-1] + ("A" if token[-1] != "A" else "B"),
                   "", "x" * 500, None, 42):
        assert followup.unsubscribe(forged, engine=any_engine) is False
    with Session(any_engine) as s:
        assert s.get(Shopper, shopper_id).followup_unsubscribed_at is None

    assert followup.unsubscribe(token, engine=any_engine) is True
    assert of(heard, events.ShopperEmailChanged)[-1].unsubscribed is True
    chat.admin_send(agent, conv_id, uuid.uuid4().hex, "Second reply", engine=any_engine)
    assert conversation(any_engine, conv_id).followup_due_at is None
    assert followup.claim_due_emails(now=utcnow() + WINDOW * 2, engine=any_engine) == []
    assert chat.open_widget(visitor, engine=any_engine).followup.email == ""


def test_the_link_expires_and_a_new_address_revokes_the_old_links(any_engine):
    visitor, conv_id = departed_shopper_with_email(any_engine, f"old-{uuid.uuid4().hex[:6]}@example.com")
    chat.admin_send(an_agent(any_engine), conv_id, uuid.uuid4().hex, "Reply", engine=any_engine)
    email = followup.claim_due_emails(now=utcnow() + WINDOW * 2, engine=any_engine)[0]
    token = parse_qs(urlsplit(email.conversation_url).query)["r"][0]
    assert followup.resume(token, engine=any_engine) == visitor
    for bad in (token[:-2], token + "x", "", None, "A" * 43):
        assert followup.resume(bad, engine=any_engine) is None

    with session_scope(any_engine) as s:
        from chatdash.models import FollowupLink

        link = s.exec(select(FollowupLink).where(FollowupLink.conversation_id == conv_id)).one()
        link.expires_at = utcnow() - timedelta(seconds=1)
        s.add(link)
    assert followup.resume(token, engine=any_engine) is None

    with session_scope(any_engine) as s:
        link = s.exec(select(FollowupLink).where(FollowupLink.conversation_id == conv_id)).one()
        link.expires_at = utcnow() + timedelta(days=1)
        s.add(link)
    assert followup.resume(token, engine=any_engine) == visitor
    followup.give_email(visitor, f"new-{uuid.uuid4().hex[:6]}@example.com", engine=any_engine)
    assert followup.resume(token, engine=any_engine) is None


def test_a_bad_mail_server_is_logged_and_its_replies_go_with_the_next_email(any_engine, smtp_server, caplog):
    from tests.live_app import free_port

    address = f"retry-{uuid.uuid4().hex[:6]}@example.com"
    _visitor, conv_id = departed_shopper_with_email(any_engine, address)
    agent = an_agent(any_engine)
    chat.admin_send(agent, conv_id, uuid.uuid4().hex, "Lost in the post?", engine=any_engine)
    nobody = free_port()  # nothing listens there
    with caplog.at_level(logging.WARNING):
        sent = asyncio.run(followup.send_due_emails(
            lambda: Settings(smtp_host="127.0.0.1", smtp_port=nobody, smtp_from="chat@shop.example"),
            now=utcnow() + WINDOW * 2, engine=any_engine))
    assert sent == 0
    assert f"follow-up email for conversation {conv_id} was not sent (mail server 127.0.0.1:{nobody}" in caplog.text
    assert conversation(any_engine, conv_id).followup_sent_message_id == 0

    chat.admin_send(agent, conv_id, uuid.uuid4().hex, "Here is the answer.", engine=any_engine)
    assert send_due(any_engine, smtp_server.port, utcnow() + WINDOW * 3) == 1
    _rcpts, msg = smtp_server.wait_for(to(address))
    assert "Lost in the post?" in plain(msg) and "Here is the answer." in plain(msg)


def test_private_notes_never_go_by_email_and_long_runs_of_replies_continue_in_the_next(any_engine):
    from chatdash.services import workspace

    _visitor, conv_id = departed_shopper_with_email(any_engine, f"notes-{uuid.uuid4().hex[:6]}@example.com")
    agent = an_agent(any_engine)
    workspace.post_note(agent, conv_id, uuid.uuid4().hex, "internal: refund is risky", engine=any_engine)
    for i in range(followup.REPLIES_PER_EMAIL + 2):
        chat.admin_send(agent, conv_id, uuid.uuid4().hex, f"reply {i}", engine=any_engine)
    first_at = utcnow() + WINDOW + timedelta(seconds=1)
    [first] = followup.claim_due_emails(now=first_at, engine=any_engine)
    assert [r.text for r in first.replies] == [f"reply {i}" for i in range(followup.REPLIES_PER_EMAIL)]
    followup.mark_sent(conv_id, first.up_to_id, now=first_at, engine=any_engine)
    [rest] = followup.claim_due_emails(now=first_at + WINDOW, engine=any_engine)
    assert [r.text for r in rest.replies] == [f"reply {i}" for i in range(followup.REPLIES_PER_EMAIL,
                                                                          followup.REPLIES_PER_EMAIL + 2)]
    assert "refund" not in str(first) + str(rest)
