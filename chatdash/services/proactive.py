"""Proactive chat: an agent starts a conversation with a shopper who is on the
store right now, and the shopper's widget opens by itself with that message.

The widget's iframe loads only when the shopper opens it, so the store page's
loader (widget.js) learns of the message from its presence heartbeat: the
answer carries a popup when the shopper has an agent's opening message that
no page has opened the widget for yet (`claim_popup`). The claim is one
conditional UPDATE, so one heartbeat wins and the widget opens once per
message, however many tabs, reloads or workers. A widget already loaded gets
the message at once through the live path (`ChatStartedByAgent`,
`MessagePosted`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from sqlalchemy import bindparam, func, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from chatdash import events
from chatdash.db import get_engine, session_scope, write_scope
from chatdash.models import Conversation, Message, Sender, Shopper, Status, Visit, utcnow
from chatdash.services import conversations as convs
from chatdash.services.conversations import ChatError
from chatdash.services.ratelimit import limiter
from chatdash.settings import get_settings

__all__ = ["ChatError", "Popup", "StartedChat", "claim_popup", "start_chat"]

# An opening line, shown in a small popup: shorter than a reply may be.
MAX_CHARS = 1000
# The text the store page shows beside the launcher (phones) is cut here.
POPUP_CHARS = 140
# A message older than this no longer opens the widget (the shopper left and
# came back another day: the question is stale; it waits in the chat).
POPUP_WITHIN = timedelta(minutes=30)


def _agent_limiter():
    """Each agent starts at most 20 chats in 10 minutes: plenty for a person
    working the Visitors page, and a runaway script cannot pop the widget on
    the whole store."""
    return limiter("proactive-agent", 20, 600)


def _shopper_limiter():
    """A shopper gets at most 3 opening messages an hour, from all agents
    together: the widget must not keep jumping open on them."""
    return limiter("proactive-shopper", 3, 3600)


@dataclass(frozen=True)
class StartedChat:
    conversation_id: int
    shopper_id: int
    message_id: int
    created: bool  # False: a retry of a message already stored (same client id)


def start_chat(agent_id: int, shopper_id: object, client_id: object, text: object, *,
               engine: Engine | None = None) -> StartedChat:
    """An agent's opening message to a shopper on the store now: their open (or
    resolved: re-opened) conversation, else a new one, assigned to the agent
    when nobody has it. Stored once per client id; the shopper's widget opens
    with it (`claim_popup`)."""
    if not isinstance(shopper_id, int) or isinstance(shopper_id, bool) or shopper_id <= 0:
        raise ChatError("That visitor is not on the store.")
    if not isinstance(client_id, str) or not isinstance(text, str):
        raise ChatError("Malformed message.")
    convs.check_client_id(client_id)
    settings = get_settings()
    max_chars = min(MAX_CHARS, settings.message_max_chars)
    body = convs.clean_text(text, max_chars)
    window = settings.presence_window_seconds
    try:
        return _start_chat(agent_id, shopper_id, client_id, body, window, max_chars, engine)
    finally:
        _pending.forget()  # this worker's next heartbeat of theirs looks at once


def _start_chat(agent_id: int, shopper_id: int, client_id: str, body: str, window: int, max_chars: int,
                engine: Engine | None) -> StartedChat:
    with write_scope(engine) as session:
        shopper = _shopper(session, shopper_id)
        if shopper is None or not _seen_lately(session, shopper.id, window):
            raise ChatError("That visitor has left the store.")
        conv = convs.open_conversation_for(session, shopper.id)
        if conv is not None:
            stored = convs.message_by_client_id(session, conv.id, client_id)
            if stored is not None:  # a retry (double click, a re-sent form): nothing new
                return StartedChat(conv.id, shopper.id, stored.id, False)
        if not _shopper_limiter().hit(str(shopper.id)):
            raise ChatError("This visitor was sent an opening message a short while ago: "
                            "open their conversation to write more.")
        if not _agent_limiter().hit(str(agent_id)):
            raise ChatError("You have started many chats in the last few minutes. Try again shortly.")
        change = ""  # what the inbox's rows and counts hear (ConversationFiled), if anything
        if conv is None:
            conv, _ = convs.start_conversation(session, shopper.id)
        elif conv.status != Status.OPEN:
            conv.status = Status.OPEN
            change = "reopened"
        if conv.assignee_id is None:  # a colleague's conversation stays theirs
            conv.assignee_id = agent_id
            change = "assigned"
        session.add(conv)
        session.flush()  # the inbox row the message announces shows the status and assignee
        message, _created = convs.post_message(session, conv, Sender.ADMIN, client_id, body, admin_id=agent_id,
                                               max_chars=max_chars, window_seconds=window)
        table = Conversation.__table__
        session.execute(update(table).where(table.c.id == conv.id).values(proactive_message_id=message.id))
        if change:
            convs.record_filed(session, conv.id, change, agent_id, window)
        events.record(session, events.ChatStartedByAgent(shopper.id, conv.id, message, agent_id))
        return StartedChat(conv.id, shopper.id, message.id, True)


def _seen_lately(session, shopper_id: int, window_seconds: int) -> bool:
    """A page of the shopper's was alive within the presence window. A closed
    page's "left" does not count against it: moving to the next page, that
    beacon can be stored after the new page's first heartbeat (it then reads
    as gone until the next one), and a message to a shopper who really left
    just waits in their chat."""
    since = utcnow() - timedelta(seconds=window_seconds)
    return session.exec(
        select(Visit.id).where(Visit.shopper_id == shopper_id, Visit.last_seen_at >= since).limit(1)
    ).first() is not None


def _shopper(session, shopper_id: int) -> Shopper | None:
    """The shopper, or the customer an anonymous shopper has since joined."""
    shopper = session.get(Shopper, shopper_id)
    if shopper is not None and shopper.merged_into_id is not None:
        return session.get(Shopper, shopper.merged_into_id)
    return shopper


# --------------------------------------------------------------------------- the store page's side


@dataclass(frozen=True)
class Popup:
    """Open the widget: an agent wrote this (`text`, cut for a preview)."""

    message_id: int
    text: str


@lru_cache(maxsize=1)
def _pending_query():
    """The browser's (or its customer's) open conversation whose proactive
    message no page has opened the widget for, nor the shopper seen: one read
    per heartbeat, by the visitor id's unique index and conversation.shopper_id."""
    shopper_id = func.coalesce(Shopper.merged_into_id, Shopper.id)
    return (
        select(Conversation.id, Conversation.proactive_message_id, Message.body)
        .join(Shopper, col(Conversation.shopper_id) == shopper_id)
        .join(Message, col(Message.id) == Conversation.proactive_message_id)
        .where(Shopper.visitor_id == bindparam("visitor_id"),
               Conversation.status == Status.OPEN,
               Conversation.proactive_message_id > Conversation.proactive_shown_id,
               Conversation.proactive_message_id > Conversation.shopper_seen_message_id,
               Message.created_at >= bindparam("since"))
        .order_by(col(Conversation.id).desc())
        .limit(1)
    )


class _PendingVisitors:
    """The browsers with an opening message waiting (or that might have one),
    read at most once a second per worker: every heartbeat asks, and at a busy
    store almost none has one, so the per-visitor read and claim run only for
    these. Another worker's new message is seen within REFRESH_SECONDS."""

    REFRESH_SECONDS = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read: tuple[Engine, float, frozenset[str]] | None = None
        self._forgotten = 0  # a read begun before a forget() is used once, not kept

    def forget(self) -> None:
        with self._lock:
            self._read = None
            self._forgotten += 1

    def may_have(self, visitor_id: str, engine: Engine) -> bool:
        with self._lock:
            read, generation = self._read, self._forgotten
        if read is None or read[0] is not engine or time.monotonic() - read[1] >= self.REFRESH_SECONDS:
            read = (engine, time.monotonic(), _visitors_with_pending(engine))
            with self._lock:
                if self._forgotten == generation:
                    self._read = read
        return visitor_id in read[2]


def _visitors_with_pending(engine: Engine) -> frozenset[str]:
    """Every visitor id whose shopper (or the customer it joined) has an open
    conversation with an opening message not yet popped up: open conversations
    active within POPUP_WITHIN (by their status and last message), then their shoppers."""
    since = utcnow() - POPUP_WITHIN
    with session_scope(engine) as session:
        shopper_ids = session.exec(
            select(Conversation.shopper_id)
            .where(Conversation.status == Status.OPEN, Conversation.last_message_at >= since,
                   col(Conversation.proactive_message_id) > Conversation.proactive_shown_id,
                   col(Conversation.proactive_message_id) > Conversation.shopper_seen_message_id)
        ).all()
        if not shopper_ids:
            return frozenset()
        ids = sorted(set(shopper_ids))
        return frozenset(session.exec(
            select(Shopper.visitor_id).where(or_(col(Shopper.id).in_(ids), col(Shopper.merged_into_id).in_(ids)))
        ).all())


_pending = _PendingVisitors()


def claim_popup(visitor_id: str, *, engine: Engine | None = None) -> Popup | None:
    """Called with a store page's heartbeat: the popup this page is to show, at
    most once per proactive message (the first heartbeat to claim it wins)."""
    engine = engine or get_engine()
    if not _pending.may_have(visitor_id, engine):
        return None
    with session_scope(engine) as session:
        row = session.execute(_pending_query(), {"visitor_id": visitor_id,
                                                 "since": utcnow() - POPUP_WITHIN}).first()
    if row is None:
        return None
    conversation_id, message_id, body = row
    with write_scope(engine) as session:
        table = Conversation.__table__
        claimed = session.execute(
            update(table).where(table.c.id == conversation_id, table.c.proactive_shown_id < message_id)
            .values(proactive_shown_id=message_id)
        ).rowcount
    if not claimed:
        return None
    return Popup(message_id, " ".join(body.split())[:POPUP_CHARS])
