"""The agent workspace's use cases (services/workspace.py): resolve and the
re-open a shopper's message causes, assignment and the filters' counts,
private notes the shopper never gets, who is viewing and typing — on a SQLite
file and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chatdash import events
from chatdash.db import session_scope
from chatdash.models import ConversationViewer, Role, Sender, utcnow
from chatdash.services import auth, chat, workspace
from chatdash.services import conversations as convs


def agent(engine: Engine, name: str) -> auth.AdminInfo:
    with session_scope(engine) as s:
        email = f"{name.split()[0].lower()}-{uuid.uuid4().hex[:6]}@store.test"
        return auth.create_admin(s, email, "agent-password-1", name, role=Role.AGENT)


def shopper_writes(engine: Engine, text: str, visitor: str | None = None) -> tuple[str, int, int]:
    """A shopper's message through the widget's use case: (visitor, shopper id, conversation id)."""
    visitor = visitor or uuid.uuid4().hex
    opened = chat.open_widget(visitor, engine=engine)
    conv_id, _m, _c = chat.shopper_send(visitor, opened.shopper_id, opened.conversation_id, uuid.uuid4().hex, text,
                                        engine=engine)
    return visitor, opened.shopper_id, conv_id


def of(heard: list, kind: type) -> list:
    return [e for e in heard if isinstance(e, kind)]


def test_a_resolved_conversation_reopens_when_the_shopper_writes_again(any_engine, heard):
    dana = agent(any_engine, "Dana")
    visitor, _shopper_id, conv_id = shopper_writes(any_engine, "Where is my parcel?")
    assert workspace.set_status(dana.id, conv_id, "resolved", engine=any_engine)
    filed = of(heard, events.ConversationFiled)[-1]
    assert (filed.change, filed.conversation.status, filed.by_agent_id) == ("resolved", "resolved", dana.id)
    page = workspace.inbox_page("resolved", dana.id, 50, engine=any_engine)
    assert [r.id for r in page.rows] == [conv_id] and page.counts.resolved >= 1
    assert conv_id not in [r.id for r in workspace.inbox_page("open", dana.id, 50, engine=any_engine).rows]
    heard.clear()

    # The shopper comes back: the same conversation, open again, announced.
    _v, _s, again = shopper_writes(any_engine, "Still nothing arrived", visitor)
    assert again == conv_id
    reopened = of(heard, events.ConversationFiled)
    assert [(e.change, e.conversation.status) for e in reopened] == [("reopened", "open")]
    assert of(heard, events.MessagePosted)[0].conversation.status == "open"
    assert not of(heard, events.ConversationStarted)
    assert conv_id in [r.id for r in workspace.inbox_page("open", dana.id, 50, engine=any_engine).rows]


def test_assignment_moves_the_conversation_between_filters_with_counts(any_engine, heard):
    dana, fox = agent(any_engine, "Dana"), agent(any_engine, "Fox")
    _v, _s, conv_id = shopper_writes(any_engine, "Can I pay by invoice?")
    before = workspace.inbox_page("open", dana.id, 50, engine=any_engine).counts
    assert conv_id in [r.id for r in workspace.inbox_page("unassigned", dana.id, 50, engine=any_engine).rows]

    assert workspace.assign(dana.id, conv_id, fox.id, engine=any_engine)
    filed = of(heard, events.ConversationFiled)[-1]
    assert filed.change == "assigned" and filed.conversation.assignee_id == fox.id
    assert filed.counts.mine(fox.id) == 1 and filed.counts.mine(dana.id) == 0
    assert filed.counts.unassigned == before.unassigned - 1
    assert [r.id for r in workspace.inbox_page("mine", fox.id, 50, engine=any_engine).rows] == [conv_id]
    assert workspace.inbox_page("mine", dana.id, 50, engine=any_engine).rows == []
    assert not workspace.assign(dana.id, conv_id, fox.id, engine=any_engine)  # already: nothing announced twice

    assert workspace.assign(dana.id, conv_id, 0, engine=any_engine)
    assert of(heard, events.ConversationFiled)[-1].change == "unassigned"
    assert workspace.filing(conv_id, engine=any_engine).assignee_id is None


@pytest.mark.parametrize("bad", [True, "3", -1, 10**9, None])
def test_assignment_refuses_what_is_not_a_team_member(engine, bad):
    dana = agent(engine, "Dana")
    _v, _s, conv_id = shopper_writes(engine, "hello")
    if bad is None:
        assert not workspace.assign(dana.id, conv_id, None, engine=engine)  # None is "nobody": already so
        return
    with pytest.raises(chat.ChatError, match="No such team member"):
        workspace.assign(dana.id, conv_id, bad, engine=engine)
    for conv in (0, -5, "1", True, 10**9):
        with pytest.raises(chat.ChatError, match="no longer exists"):
            workspace.set_status(dana.id, conv, "resolved", engine=engine)
    with pytest.raises(chat.ChatError, match="Unknown status"):
        workspace.set_status(dana.id, conv_id, "deleted", engine=engine)
    with pytest.raises(chat.ChatError, match="Unknown list filter"):
        workspace.inbox_page("everything", dana.id, 50, engine=engine)


def test_a_note_reaches_the_agents_and_never_the_shopper(any_engine, heard):
    dana = agent(any_engine, "Dana Scully")
    visitor, _s, conv_id = shopper_writes(any_engine, "I want a refund")
    heard.clear()
    note, created = workspace.post_note(dana.id, conv_id, uuid.uuid4().hex, "  VIP, refund approved  ",
                                        engine=any_engine)
    assert created and note.sender == Sender.NOTE and note.body == "VIP, refund approved"
    assert note.author == "Dana Scully"
    # Announced only as a note: no MessagePosted, which the widget listens to.
    assert [type(e) for e in heard] == [events.NotePosted]
    # The agents' history has it (with its author); the shopper's has not.
    admin_view = chat.open_for_admin(conv_id, engine=any_engine)
    assert [(m.body, m.author) for m in admin_view.messages if m.sender == Sender.NOTE] == [
        ("VIP, refund approved", "Dana Scully")]
    widget = chat.open_widget(visitor, engine=any_engine)
    assert [m.body for m in widget.messages] == ["I want a refund"]
    assert chat.messages_after(conv_id, 0, engine=any_engine)[-1].body == "I want a refund"
    # Nor does it change the inbox's preview.
    row = workspace.inbox_page("open", dana.id, 50, engine=any_engine).rows
    assert next(r for r in row if r.id == conv_id).preview == "I want a refund"
    with pytest.raises(chat.ChatError, match="Write a message first"):
        workspace.post_note(dana.id, conv_id, uuid.uuid4().hex, "   ", engine=any_engine)
    with pytest.raises(chat.ChatError, match="at most 4,000"):
        workspace.post_note(dana.id, conv_id, uuid.uuid4().hex, "x" * 4001, engine=any_engine)
    with pytest.raises(chat.ChatError):
        workspace.post_note(dana.id, conv_id, uuid.uuid4().hex, {"not": "text"}, engine=any_engine)


def test_viewers_come_and_go_and_stale_marks_expire(any_engine, heard):
    dana, fox = agent(any_engine, "Dana"), agent(any_engine, "Fox")
    _v, _s, conv_id = shopper_writes(any_engine, "hi")
    _v, _s, other_id = shopper_writes(any_engine, "hello")
    assert [v.name for v in workspace.view(dana.id, conv_id, engine=any_engine)] == ["Dana"]
    assert [v.name for v in workspace.view(fox.id, conv_id, engine=any_engine)] == ["Dana", "Fox"]
    assert [v.name for v in of(heard, events.ViewersChanged)[-1].viewers] == ["Dana", "Fox"]
    heard.clear()
    workspace.view(fox.id, conv_id, engine=any_engine)  # a renewal changes nothing
    assert of(heard, events.ViewersChanged) == []
    # Fox moves to another conversation: Dana hears Fox left.
    workspace.view(fox.id, other_id, conv_id, engine=any_engine)
    left = [e for e in of(heard, events.ViewersChanged) if e.conversation_id == conv_id]
    assert [v.name for v in left[-1].viewers] == ["Dana"]
    # Dana's tab closes without a word: her mark ages out and Fox's next renewal tells.
    with Session(any_engine) as s:
        mark = s.get(ConversationViewer, (conv_id, dana.id))
        mark.seen_at = utcnow() - workspace.VIEWER_TTL - timedelta(seconds=1)
        s.add(mark)
        s.commit()
    heard.clear()
    assert [v.name for v in workspace.view(fox.id, conv_id, other_id, engine=any_engine)] == ["Fox"]
    assert [v.name for v in of(heard, events.ViewersChanged)[-1].viewers] == ["Fox"]


def test_an_agents_typing_is_throttled_on_the_server(heard):
    """Once per agent and conversation per typing window, whatever a client sends."""
    conv = 10**6 + int(uuid.uuid4().int % 10**6)

    async def keystrokes() -> None:
        for _ in range(3):
            await workspace.agent_typing(5, "Dana", conv)
        await workspace.agent_typing(6, "Fox", conv)  # another agent has a window of their own

    asyncio.run(keystrokes())
    assert heard == [events.Typing(conv, "admin", 5, "Dana"), events.Typing(conv, "admin", 6, "Fox")]


def test_counts_at_a_glance(engine):
    dana = agent(engine, "Dana")
    ids = [shopper_writes(engine, f"q{i}")[2] for i in range(4)]
    workspace.assign(dana.id, ids[0], dana.id, engine=engine)
    workspace.assign(dana.id, ids[1], dana.id, engine=engine)
    workspace.set_status(dana.id, ids[1], "resolved", engine=engine)
    workspace.set_status(dana.id, ids[2], "resolved", engine=engine)
    with session_scope(engine) as s:
        counts = convs.inbox_counts(s)
    assert (counts.open, counts.unassigned, counts.resolved, counts.mine(dana.id)) == (2, 1, 2, 1)
