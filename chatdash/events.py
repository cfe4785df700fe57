"""Domain events: what happened, recorded by the use case that did it and
delivered only after its transaction commits.

A use case calls `record(session, event)` inside its transaction; when that
transaction commits, every listener gets the events in order (Zulip's
`send_event_on_commit`: no caller can forget or misplace a push, and a rolled
back write pushes nothing). Ephemeral signals that write nothing (typing, a
sweep that noticed a shopper went quiet) use `emit(event)` instead.

Nothing here knows about Reflex: `chatdash.live` is the listener that turns
events into screen updates, `chatdash.services.notify` the one that sends email.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

log = logging.getLogger("chatdash.events")


# --------------------------------------------------------------------------- the events


@dataclass(frozen=True)
class DomainEvent:
    """Base of every event. `coalesce_key`: events with the same key, waiting
    for the same screen, collapse to the newest (None: every one counts)."""

    @property
    def coalesce_key(self) -> Hashable | None:
        return None


@dataclass(frozen=True)
class ProductCardView:
    id: int
    sku: str
    name: str
    price_cents: int
    currency: str
    url: str
    image_url: str
    in_stock: bool


@dataclass(frozen=True)
class MessageView:
    """One stored message, as every screen shows it."""

    id: int
    conversation_id: int
    sender: str
    kind: str
    body: str
    client_msg_id: str
    created_at: datetime
    product: ProductCardView | None = None
    author: str = ""  # a note's agent (notes only)


@dataclass(frozen=True)
class ConversationSummary:
    """One row of the admin's inbox."""

    id: int
    shopper_id: int
    label: str
    preview: str
    last_message_at: datetime
    unread: int
    on_site: bool
    current_url: str = ""
    status: str = "open"
    assignee_id: int | None = None
    snoozed_until: datetime | None = None  # status "snoozed": when it comes back


@dataclass(frozen=True)
class MessagePosted(DomainEvent):
    """A shopper or an admin posted a message (text or product card)."""

    message: MessageView
    conversation: ConversationSummary
    # Open conversations holding shopper messages no admin has seen (the bell).
    unseen_conversations: int
    # The screen (tab) that posted it and shows it already, if it said so: a
    # route declared with echo=False does not push the message back to it.
    origin: str = ""

    @property
    def conversation_id(self) -> int:
        return self.message.conversation_id


@dataclass(frozen=True)
class ConversationStarted(DomainEvent):
    """A shopper's first message opened a new conversation."""

    conversation_id: int
    shopper_label: str
    first_message: str


@dataclass(frozen=True)
class MessagesSeen(DomainEvent):
    """One side has read the conversation up to a message."""

    conversation_id: int
    side: str  # Sender value: who read
    up_to_id: int
    unread: int  # shopper messages the admins have not seen, after this
    unseen_conversations: int

    @property
    def coalesce_key(self) -> Hashable:
        return ("seen", self.conversation_id, self.side)


@dataclass(frozen=True)
class PresenceChanged(DomainEvent):
    """A shopper arrived, left, or moved to another page."""

    shopper_id: int
    on_site: bool
    current_url: str = ""
    status: str = "open"
    assignee_id: int | None = None
    current_title: str = ""
    device: str = ""

    @property
    def coalesce_key(self) -> Hashable:
        return ("presence", self.shopper_id)


@dataclass(frozen=True)
class ShopperMerged(DomainEvent):
    """An anonymous shopper identified as a known store customer: everything of
    theirs is the customer's now. `closed_conversation_id` (or 0) left the
    inbox, its messages joined `conversation`, the customer's open one (if any)."""

    shopper_id: int
    into_shopper_id: int
    closed_conversation_id: int
    conversation: ConversationSummary | None


@dataclass(frozen=True)
class ShopperActivity(DomainEvent):
    """A shopper did something on the store (page, product view, cart, order):
    their panel and their Visitors row are out of date. `conversation_id` is
    their open conversation, 0 when they have none."""

    shopper_id: int
    conversation_id: int

    @property
    def coalesce_key(self) -> Hashable:
        return ("activity", self.shopper_id)


@dataclass(frozen=True)
class Typing(DomainEvent):
    """Someone is typing in a conversation (not stored). For an agent, which
    one: the other agents with the conversation open see who."""

    conversation_id: int
    side: str
    agent_id: int = 0
    agent_name: str = ""

    @property
    def coalesce_key(self) -> Hashable:
        return ("typing", self.conversation_id, self.side, self.agent_id)


@dataclass(frozen=True)
class ChatStartedByAgent(DomainEvent):
    """An agent wrote first to a shopper on the store (a proactive message):
    the shopper's widget, open or not yet following a conversation, shows it;
    their Visitors row now has a conversation. (The message itself also
    travels as `MessagePosted`, for the screens following the conversation.)"""

    shopper_id: int
    conversation_id: int
    message: MessageView
    agent_id: int


# ----- the agent workspace (team, status, assignment, notes, viewing)


@dataclass(frozen=True)
class InboxCounts:
    """The numbers on the inbox's filters. `by_assignee`: open conversations
    per agent id, from which each agent's "Mine" is read."""

    open: int
    unassigned: int
    resolved: int
    by_assignee: tuple[tuple[int, int], ...] = ()
    snoozed: int = 0

    def mine(self, admin_id: int) -> int:
        return dict(self.by_assignee).get(admin_id, 0)


@dataclass(frozen=True)
class ConversationFiled(DomainEvent):
    """A conversation was resolved, re-opened, snoozed, woken, assigned or
    unassigned (by an agent, or by the system: auto-assign, the wake-up job):
    its inbox row and the filters' counts as they now are."""

    conversation: ConversationSummary
    counts: InboxCounts
    change: str  # "resolved", "reopened", "snoozed", "woke", "assigned", "unassigned"
    by_agent_id: int = 0  # 0: the shopper or the system (a re-open by a new message, auto-assign, a wake-up)

    @property
    def conversation_id(self) -> int:
        return self.conversation.id


@dataclass(frozen=True)
class NotePosted(DomainEvent):
    """An agent wrote a private note: for the agents' screens only (no route
    to the shopper's widget exists)."""

    note: MessageView

    @property
    def conversation_id(self) -> int:
        return self.note.conversation_id


@dataclass(frozen=True)
class AgentRef:
    id: int
    name: str


@dataclass(frozen=True)
class ViewersChanged(DomainEvent):
    """Who has a conversation open now (collision detection)."""

    conversation_id: int
    viewers: tuple[AgentRef, ...]

    @property
    def coalesce_key(self) -> Hashable:
        return ("viewers", self.conversation_id)


# ----- the recommender (Settings → Recommendations)


@dataclass(frozen=True)
class TrainingRunView:
    """One training of the recommender as the model card shows it."""

    id: int
    status: str  # running, succeeded, failed
    trigger: str  # manual (Retrain) or schedule
    requested_by: str
    started_at: datetime
    finished_at: datetime | None
    step: str  # load, tune, model, relations, save
    step_done: int
    step_total: int
    percent: int
    error: str
    version: str  # the version it published (succeeded only)


@dataclass(frozen=True)
class TrainingChanged(DomainEvent):
    """A training started, moved on, or ended (a succeeded one's version is
    published to every worker, and loaded by the one that trained it)."""

    run: TrainingRunView

    @property
    def coalesce_key(self) -> Hashable:
        return ("training", self.run.id)


# ----- offline follow-up


@dataclass(frozen=True)
class EmailAskDue(DomainEvent):
    """Nobody answered the shopper in time: their widget asks for an email."""

    conversation_id: int


@dataclass(frozen=True)
class ShopperEmailChanged(DomainEvent):
    """The shopper gave (or changed) their email in the widget, or unsubscribed
    from follow-up emails: their widgets and the admin's panel show it."""

    shopper_id: int
    conversation_id: int
    email: str
    label: str
    unsubscribed: bool = False


# --------------------------------------------------------------------------- delivery

Listener = Callable[[list[DomainEvent]], None]


@dataclass
class _Bus:
    listeners: list[Listener] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


_bus = _Bus()
_PENDING = "chatdash.pending_events"


def listen(listener: Listener) -> Callable[[], None]:
    """Call `listener(events)` with each committed batch; returns an unsubscribe.

    Listeners run in the thread that committed: they must be quick and must
    hand real work to their own loop or thread."""
    with _bus.lock:
        _bus.listeners.append(listener)

    def stop() -> None:
        with _bus.lock:
            if listener in _bus.listeners:
                _bus.listeners.remove(listener)

    return stop


def record(session: Session, event: DomainEvent) -> None:
    """Deliver `event` once the session's current transaction commits."""
    session.info.setdefault(_PENDING, []).append(event)


def emit(events: DomainEvent | Iterable[DomainEvent]) -> None:
    """Deliver now: for signals that store nothing."""
    batch = [events] if isinstance(events, DomainEvent) else list(events)
    if batch:
        _deliver(batch)


def _deliver(batch: list[DomainEvent]) -> None:
    with _bus.lock:
        listeners = list(_bus.listeners)
    for listener in listeners:
        try:
            listener(batch)
        except Exception:  # one broken screen must not stop the others, nor the writer
            log.exception("event listener %r failed", listener)


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    batch = session.info.pop(_PENDING, None)
    if batch:
        _deliver(batch)


@sa_event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction) -> None:
    # Runs after after_commit (which took the events) and after a rollback; a
    # savepoint ending (begin_nested) is not the end of the write.
    if transaction.parent is None and not transaction.nested:
        session.info.pop(_PENDING, None)
