"""The chat's use cases (services/chat.py) as the widget and the admin screen
call them: limits, resends and the inbox row a message announces — on a
SQLite file and on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from chatdash import events
from chatdash.db import session_scope
from chatdash.models import Message, Visit, utcnow
from chatdash.services import chat
from chatdash.services import conversations as convs


def new_shopper(engine: Engine, *, on_page: str | None = None, name: str = "") -> tuple[str, int]:
    visitor_id = uuid.uuid4().hex
    with session_scope(engine) as s:
        shopper = convs.get_or_create_shopper(s, visitor_id)
        shopper.name = name
        s.add(shopper)
        s.flush()
        if on_page:
            s.add(Visit(shopper_id=shopper.id, current_url=on_page, last_seen_at=utcnow()))
        return visitor_id, shopper.id


def stored_texts(engine: Engine, conversation_id: int) -> list[str]:
    with Session(engine) as s:
        return list(s.exec(select(Message.body).where(Message.conversation_id == conversation_id)
                           .order_by(Message.id)).all())


def test_the_31st_message_in_a_minute_is_refused_and_not_stored(any_engine):
    visitor_id, shopper_id = new_shopper(any_engine)
    conv_id = 0
    for i in range(30):
        conv_id, _msg, created = chat.shopper_send(visitor_id, shopper_id, conv_id, uuid.uuid4().hex, f"m{i}",
                                                   engine=any_engine)
        assert created
    with pytest.raises(chat.ChatError, match="too quickly"):
        chat.shopper_send(visitor_id, shopper_id, conv_id, uuid.uuid4().hex, "one too many", engine=any_engine)
    texts = stored_texts(any_engine, conv_id)
    assert len(texts) == 30 and "one too many" not in texts


def test_a_resend_of_a_stored_message_is_answered_even_past_the_limit(any_engine):
    visitor_id, shopper_id = new_shopper(any_engine)
    first_id = uuid.uuid4().hex
    conv_id, first, _ = chat.shopper_send(visitor_id, shopper_id, 0, first_id, "hello", engine=any_engine)
    for i in range(29):
        chat.shopper_send(visitor_id, shopper_id, conv_id, uuid.uuid4().hex, f"m{i}", engine=any_engine)
    # The outbox re-sends the first message (its ack was lost): the stored one comes back.
    again_conv, again, created = chat.shopper_send(visitor_id, shopper_id, conv_id, first_id, "hello",
                                                   engine=any_engine)
    assert (again_conv, again.id, created) == (conv_id, first.id, False)
    with Session(any_engine) as s:
        assert s.exec(select(func.count()).select_from(Message).where(Message.client_msg_id == first_id)).one() == 1


def test_a_message_announces_the_inbox_row_with_presence_unread_and_the_bell(any_engine, heard):
    visitor_id, shopper_id = new_shopper(any_engine, on_page="https://shop.test/p/linen-shirt", name="Dana")
    conv_id, _, _ = chat.shopper_send(visitor_id, shopper_id, 0, uuid.uuid4().hex, "Is this linen?",
                                      engine=any_engine)
    chat.shopper_send(visitor_id, shopper_id, conv_id, uuid.uuid4().hex, "Size M?", engine=any_engine)
    posted = [e for e in heard if isinstance(e, events.MessagePosted)]
    row = posted[-1].conversation
    assert (row.id, row.shopper_id, row.label, row.preview) == (conv_id, shopper_id, "Dana", "Size M?")
    assert (row.unread, row.on_site, row.current_url) == (2, True, "https://shop.test/p/linen-shirt")
    assert posted[-1].unseen_conversations >= 1
    # The admin answers: nothing unread in this conversation any more.
    message, created = chat.admin_send(None, conv_id, uuid.uuid4().hex, "Yes, 100% linen.", engine=any_engine)
    assert created
    reply = [e for e in heard if isinstance(e, events.MessagePosted)][-1]
    assert reply.message.id == message.id and reply.conversation.unread == 0


def test_a_shopper_without_any_visit_is_announced_as_away(any_engine, heard):
    visitor_id, shopper_id = new_shopper(any_engine)
    chat.shopper_send(visitor_id, shopper_id, 0, uuid.uuid4().hex, "hello?", engine=any_engine)
    row = [e for e in heard if isinstance(e, events.MessagePosted)][-1].conversation
    assert (row.on_site, row.current_url, row.label) == (False, "", f"Visitor {visitor_id[:6].upper()}")
