"""New visitors and new conversations are limited per client IP and per
socket; new-conversation emails are coalesced."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from chatdash.db import make_engine
from chatdash.models import Conversation, Message, Shopper
from chatdash.services import chat, identity, ratelimit, store_settings
from chatdash.services.admission import Client
from chatdash.settings import get_settings
from chatdash.state.widget import WidgetState
from tests.conftest import EMAIL_COALESCE_SECONDS
from tests.reflex_client import RawReflexClient

NAT = Client("203.0.113.5", "")


@pytest.fixture
def strict_limits(monkeypatch):
    monkeypatch.setenv("CHATDASH_NEW_VISITORS_PER_IP", "4")
    monkeypatch.setenv("CHATDASH_NEW_CONVERSATIONS_PER_IP", "2")
    get_settings.cache_clear()
    ratelimit.clear_limiters()
    yield
    get_settings.cache_clear()
    ratelimit.clear_limiters()


def _visitor() -> str:
    return identity.verify_visitor_token("k", identity.issue_visitor_token("k"))


def _count(engine, model) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(model)).one()


def test_one_address_cannot_make_new_visitors_without_end(engine, strict_limits):
    known = _visitor()
    for visitor in [known, _visitor(), _visitor(), _visitor()]:
        chat.open_widget(visitor, engine=engine, client=NAT)
    with pytest.raises(chat.ChatError, match=r"^Too many new chats from your network right now\. "
                                             r"Try again in 10 minutes\.$"):
        chat.open_widget(_visitor(), engine=engine, client=NAT)
    assert _count(engine, Shopper) == 4  # nothing stored for the refused one
    # A shopper we know still opens the chat from there, and other addresses are not affected.
    assert chat.open_widget(known, engine=engine, client=NAT).shopper_id
    chat.open_widget(_visitor(), engine=engine, client=Client("198.51.100.1"))
    assert _count(engine, Shopper) == 5


def test_one_address_cannot_start_conversations_without_end(engine, strict_limits):
    def first_message(visitor: str, text: str):
        shopper_id = chat.open_widget(visitor, engine=engine).shopper_id
        return chat.shopper_send(visitor, shopper_id, 0, uuid.uuid4().hex, text, engine=engine, client=NAT)

    started = [first_message(_visitor(), f"hello {i}") for i in range(2)]
    with pytest.raises(chat.ChatError, match=r"^Too many new conversations from your network\. "
                                             r"Try again in 12 hours\.$"):
        first_message(_visitor(), "one too many")
    assert _count(engine, Conversation) == 2
    with Session(engine) as s:
        assert not s.exec(select(Message).where(Message.body == "one too many")).all()
    # Conversations already open go on as before.
    conv_id = started[0][0]
    with Session(engine) as s:
        shopper = s.get(Shopper, s.get(Conversation, conv_id).shopper_id)
        visitor, shopper_id = shopper.visitor_id, shopper.id
    chat.shopper_send(visitor, shopper_id, conv_id, uuid.uuid4().hex, "still here", engine=engine, client=NAT)


# --- the running app: one socket minting visitors with junk tokens ----------------

@pytest.fixture
def live_engine(live_app):
    eng = make_engine(live_app.db_url)
    yield eng
    eng.dispose()


def _errors(client: RawReflexClient) -> list[str]:
    return [v for d in client.deltas for k, v in d.get(WidgetState.get_full_name(), {}).items()
            if k.removesuffix("_rx_state_") == "error" and v]


def test_one_socket_cannot_open_conversations_without_end(live_app, live_engine):
    """The probe's flood: adopt a junk token, write, repeat. Three visitors a
    socket, then a clear refusal, and no more shoppers or conversations."""
    shoppers, conversations = _count(live_engine, Shopper), _count(live_engine, Conversation)
    marker = uuid.uuid4().hex[:8]
    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path="/widget")
        for i in range(8):
            client.call(WidgetState, "adopt_visitor", {"token": f"junk-{i}"}, path="/widget")
            client.call(WidgetState, "send", {"item": {"id": uuid.uuid4().hex, "text": f"{marker} {i}"}},
                        path="/widget")
        assert "Too many new chats from your network right now. Try again in 10 minutes." in _errors(client)
    finally:
        client.close()
    assert _count(live_engine, Shopper) - shoppers == 3
    assert _count(live_engine, Conversation) - conversations == 3
    with Session(live_engine) as s:
        stored = s.exec(select(Message).where(Message.body.like(f"{marker} %"))).all()
    # Every message went into one of those three conversations; none is lost
    # silently: the refused visitor's sends were answered with the error.
    assert len({m.conversation_id for m in stored}) == 3


def _start_conversation(live_app, text: str) -> None:
    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path="/widget")
        client.call(WidgetState, "adopt_visitor", {"token": ""}, path="/widget")
        client.call(WidgetState, "send", {"item": {"id": uuid.uuid4().hex, "text": text}}, path="/widget")
    finally:
        client.close()


def _plain(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def test_new_conversation_emails_are_coalesced(live_app, live_engine, live_staff_emails, smtp_server):
    recipients = ["owner@demo-store.test", "help@demo-store.test"]
    with Session(live_engine) as s:
        store_settings.save_email_notifications(s, store_settings.EmailNotifications(True, recipients))
        s.commit()
    tag = uuid.uuid4().hex[:6]
    first = f"first {tag}"
    _start_conversation(live_app, first)
    smtp_server.wait_for(lambda m: first in _plain(m[1]))
    after_first = len(smtp_server.messages)
    # Three more right after an email: held, then sent together in one email.
    flood = [f"flood {tag} {i}" for i in range(3)]
    for text in flood:
        _start_conversation(live_app, text)
    rcpts, digest = smtp_server.wait_for(lambda m: flood[-1] in _plain(m[1]),
                                         timeout=EMAIL_COALESCE_SECONDS + 30)
    later = smtp_server.messages[after_first:]
    assert len(later) == 1, [m[1]["Subject"] for m in later]
    assert sorted(rcpts) == sorted(recipients)
    assert digest["Subject"] == "3 new conversations on Demo Store"
    body = _plain(digest)
    assert all(text in body for text in flood)
    assert body.count("/admin/conversations?c=") == 3


def test_emails_switched_off_and_on_again_are_not_held_by_the_old_window(live_app, live_engine, live_staff_emails,
                                                                         smtp_server):
    """In the running app: an email starts a window; the owner switches the
    emails off and on again; the next conversation's email arrives before
    that window would have ended (held, it came only after)."""
    owner = [f"owner-{uuid.uuid4().hex[:6]}@demo-store.test"]

    def switch(on: bool) -> None:
        with Session(live_engine) as s:
            store_settings.save_email_notifications(s, store_settings.EmailNotifications(on, owner))
            s.commit()

    switch(True)
    tag = uuid.uuid4().hex[:6]
    _start_conversation(live_app, f"before {tag}")
    smtp_server.wait_for(lambda m: f"before {tag}" in _plain(m[1]))
    window_ends = time.monotonic() + EMAIL_COALESCE_SECONDS
    switch(False)
    switch(True)
    _start_conversation(live_app, f"after {tag}")
    smtp_server.wait_for(lambda m: f"after {tag}" in _plain(m[1]), timeout=EMAIL_COALESCE_SECONDS + 30)
    assert time.monotonic() < window_ends, "the first email after the switch came back on waited for the old window"
