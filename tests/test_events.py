"""Domain events: recorded by the write that causes them, delivered only after
its transaction commits, never for a write that rolled back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from chatdash import events
from chatdash.db import session_scope
from chatdash.models import Conversation, Sender, Shopper
from chatdash.services import chat
from chatdash.services import conversations as convs


@pytest.fixture
def heard() -> Iterator[list[events.DomainEvent]]:
    got: list[events.DomainEvent] = []
    stop = events.listen(got.extend)
    yield got
    stop()


def _admin(engine: Engine) -> int:
    from chatdash.services import auth

    with session_scope(engine) as s:
        return auth.create_admin(s, f"{uuid.uuid4().hex[:8]}@example.com", "a-long-password-1").id


def _conversation(engine: Engine) -> tuple[int, int, str]:
    visitor = uuid.uuid4().hex
    with session_scope(engine) as s:
        shopper = Shopper(visitor_id=visitor)
        s.add(shopper)
        s.flush()
        conv, _ = convs.start_conversation(s, shopper.id)
        return shopper.id, conv.id, visitor


def test_a_posted_message_is_announced_after_commit_with_its_inbox_row(engine, heard):
    _shopper_id, conv_id, visitor = _conversation(engine)
    with session_scope(engine) as s:
        conv = s.get(Conversation, conv_id)
        msg, created = convs.post_message(s, conv, Sender.SHOPPER, uuid.uuid4().hex, "Do you ship to Norway?")
        assert created
        assert heard == []  # nothing before the commit
    posted = [e for e in heard if isinstance(e, events.MessagePosted)]
    assert len(posted) == 1
    event = posted[0]
    assert event.message.body == "Do you ship to Norway?" and event.message.id == msg.id
    assert event.conversation.id == conv_id and event.conversation.unread == 1
    assert event.conversation.preview == "Do you ship to Norway?"
    assert event.unseen_conversations == 1
    started = [e for e in heard if isinstance(e, events.ConversationStarted)]
    assert started == [events.ConversationStarted(conv_id, f"Visitor {visitor[:6].upper()}",
                                                  "Do you ship to Norway?")]


def test_a_rolled_back_write_announces_nothing(engine, heard):
    _, conv_id, _ = _conversation(engine)
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        conv = s.get(Conversation, conv_id)
        convs.post_message(s, conv, Sender.SHOPPER, uuid.uuid4().hex, "never stored")
        raise RuntimeError("the use case failed after posting")
    # The next write in a new session announces only itself.
    with session_scope(engine) as s:
        conv = s.get(Conversation, conv_id)
        convs.post_message(s, conv, Sender.SHOPPER, uuid.uuid4().hex, "stored")
    assert [e.message.body for e in heard if isinstance(e, events.MessagePosted)] == ["stored"]


def test_a_retried_send_announces_the_message_once(engine, heard):
    _, conv_id, _ = _conversation(engine)
    client_id = uuid.uuid4().hex
    for _ in range(3):
        with session_scope(engine) as s:
            convs.post_message(s, s.get(Conversation, conv_id), Sender.SHOPPER, client_id, "once")
    assert len([e for e in heard if isinstance(e, events.MessagePosted)]) == 1


def test_only_the_first_shopper_message_starts_a_conversation(engine, heard):
    shopper_id, conv_id, visitor = _conversation(engine)
    for text in ("first", "second"):
        chat.shopper_send(visitor, shopper_id, conv_id, uuid.uuid4().hex, text, engine=engine)
    chat.admin_send(_admin(engine), conv_id, uuid.uuid4().hex, "an answer", engine=engine)
    started = [e for e in heard if isinstance(e, events.ConversationStarted)]
    assert [e.first_message for e in started] == ["first"]


def test_reading_announces_the_seen_mark_and_the_new_counts(engine, heard):
    shopper_id, conv_id, visitor = _conversation(engine)
    chat.shopper_send(visitor, shopper_id, conv_id, uuid.uuid4().hex, "hello?", engine=engine)
    heard.clear()
    opened = chat.open_for_admin(conv_id, engine=engine)
    assert [m.body for m in opened.messages] == ["hello?"]
    (seen,) = [e for e in heard if isinstance(e, events.MessagesSeen)]
    assert seen.side == Sender.ADMIN and seen.up_to_id == opened.messages[-1].id
    assert seen.unread == 0 and seen.unseen_conversations == 0
    heard.clear()
    chat.open_for_admin(conv_id, engine=engine)  # nothing new to see: nothing to announce
    assert heard == []


def test_an_admin_reply_is_seen_by_the_admin_and_counts_no_unread(engine, heard):
    shopper_id, conv_id, visitor = _conversation(engine)
    chat.shopper_send(visitor, shopper_id, conv_id, uuid.uuid4().hex, "question", engine=engine)
    chat.admin_send(_admin(engine), conv_id, uuid.uuid4().hex, "answer", engine=engine)
    last = [e for e in heard if isinstance(e, events.MessagePosted)][-1]
    assert last.message.sender == Sender.ADMIN
    assert last.conversation.unread == 0 and last.unseen_conversations == 0


def test_typing_is_announced_at_once_and_stores_nothing(heard):
    asyncio.run(chat.typing(7, Sender.SHOPPER))
    asyncio.run(chat.typing(0, Sender.SHOPPER))  # no conversation yet: nobody to tell
    assert heard == [events.Typing(7, "shopper")]


def test_typing_signals_beyond_one_per_window_reach_no_screen(heard):
    """A client calling the handler in a loop gets one signal per window through."""

    async def hammer() -> None:
        for _ in range(50):
            await chat.typing(8, Sender.SHOPPER)
        await chat.typing(8, Sender.ADMIN)  # the other side has its own window

    asyncio.run(hammer())
    assert heard == [events.Typing(8, "shopper"), events.Typing(8, "admin")]


def test_a_failing_listener_does_not_stop_the_others_or_the_writer(engine, heard):
    def broken(_batch):
        raise ValueError("a broken screen")

    stop = events.listen(broken)
    try:
        shopper_id, conv_id, visitor = _conversation(engine)
        chat.shopper_send(visitor, shopper_id, conv_id, uuid.uuid4().hex, "still stored", engine=engine)
    finally:
        stop()
    assert [e.message.body for e in heard if isinstance(e, events.MessagePosted)] == ["still stored"]

