"""The staff emails' outbox: what waits for the next email to each staff
channel, and who sends it, held in the database so that any number of workers
send one email per channel per window between them.

- A channel is one stream of emails: "new" (new conversations, to the
  recipients chosen in Settings) or "assigned:<admin id>" (shoppers' messages
  in the conversations assigned to a member who chose those emails).
- `queue_*` runs inside the transaction that stores the shopper's message
  (conversations.post_message; and chat.shopper_send once auto-assign has given
  the conversation to someone, since that message is news to them): a
  `StaffEmailItem` commits with the message or not at all, so a worker that
  dies after that commit loses nothing.
- A sender (the worker that committed, at once; the leader's periodic job for
  what waits for the end of a window or was left by a dead worker) takes the
  channel with one conditional UPDATE of its `StaffEmailWindow` row — the
  window is over and nobody holds it — so of two workers exactly one wins; it
  lists every item queued by then, sends, and `finish` deletes those items and
  starts the next window.
- A sender that dies between its claim and `finish` holds the channel for
  `LEASE_SECONDS`; then the next sender lists the same items again. Dying in
  the instant between the mail server's acceptance and `finish` therefore
  sends that email twice: a repeat beats a loss for a notification.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import delete, insert, or_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chatdash.db import session_scope, write_scope
from chatdash.models import Conversation, Message, Shopper, StaffEmailItem, StaffEmailWindow, utcnow
from chatdash.services import agent_notifications, store_settings

NEW = "new"
# Longer than a send can take (3 attempts of up to 10 s each, with back-off).
LEASE_SECONDS = 120
# At most this many lines in one email; the rest go in the next window's.
ITEMS_PER_EMAIL = 200


def assigned(admin_id: int) -> str:
    return f"assigned:{admin_id}"


def assignee_of(channel: str) -> int | None:
    """The member an "assigned:<id>" channel emails (None for another channel)."""
    kind, _, admin_id = channel.partition(":")
    return int(admin_id) if kind == "assigned" and admin_id.isdigit() else None


# --------------------------------------------------------------------------- queueing (in the writer's transaction)


def queue_new_conversation(session: Session, message_id: int) -> None:
    """A shopper's first message opened a conversation: list it in the next
    new-conversation email (if the store's emails are on)."""
    if store_settings.get_email_notifications(session).enabled:
        _queue(session, NEW, message_id)


def queue_assigned_message(session: Session, assignee_id: int, message_id: int, *,
                           first_message: bool = False) -> None:
    """A shopper wrote in a conversation assigned to `assignee_id` (or their
    message just brought it to them: auto-assign): list it in their next
    email, if they chose such emails (and the store's are on). The shopper's
    `first_message` is in the new-conversation email already: a member who
    gets that one is not sent it twice."""
    recipient = agent_notifications.assigned_message_recipient(session, assignee_id)
    if recipient is None:
        return
    if first_message and recipient.strip().lower() in agent_notifications.new_conversation_recipients(session):
        return
    _queue(session, assigned(assignee_id), message_id)


def _queue(session: Session, channel: str, message_id: int) -> None:
    # Core, not the ORM: post_message leaves nothing for a flush to do.
    session.execute(insert(StaffEmailItem.__table__).values(channel=channel, message_id=message_id,
                                                            created_at=utcnow()))


def switched(session: Session, *, on: bool, channels: list[str] | None = None) -> None:
    """Staff emails (every channel's, or only `channels`) were switched on or
    off, in the transaction that saves the switch. Off: nothing waits to be
    sent (what was queued would otherwise go with the first email after the
    switch comes back on). On: each window starts over, so the first email
    goes at once rather than at the end of a window an email sent before the
    switch went off started. A send still on its way from before loses its
    hold on the channel too, or its `finish` would start a window after the
    switch: what it listed was dropped when the switch went off, so no other
    sender can list it again."""
    if on:
        table = StaffEmailWindow.__table__
        statement = update(table).values(last_sent_at=None, claim=None, claimed_until=None)
    else:
        table = StaffEmailItem.__table__
        statement = delete(table)
    if channels is not None:
        statement = statement.where(table.c.channel.in_(channels))
    session.execute(statement)


# --------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class Item:
    """One line of a staff email: the shopper, what they wrote, where."""

    conversation_id: int
    shopper_label: str
    text: str


@dataclass(frozen=True)
class Claimed:
    """A channel taken by one sender, with what its email lists."""

    channel: str
    claim: str
    item_ids: tuple[int, ...]
    items: tuple[Item, ...]


def _cutoff(now: datetime, window_seconds: float) -> datetime:
    return now - timedelta(seconds=max(0.0, window_seconds))


def due_channels(window_seconds: float, *, channel: str | None = None, now: datetime | None = None,
                 engine: Engine | None = None) -> list[str]:
    """Channels with items waiting whose window is over and that nobody
    holds (a read: a sender then claims each)."""
    now = now or utcnow()
    with session_scope(engine) as session:
        query = (select(StaffEmailItem.channel).distinct()
                 .join(StaffEmailWindow, col(StaffEmailWindow.channel) == StaffEmailItem.channel, isouter=True)
                 .where(or_(col(StaffEmailWindow.channel).is_(None),
                            (or_(col(StaffEmailWindow.last_sent_at).is_(None),
                                 col(StaffEmailWindow.last_sent_at) <= _cutoff(now, window_seconds)))
                            & (or_(col(StaffEmailWindow.claimed_until).is_(None),
                                   col(StaffEmailWindow.claimed_until) <= now)))))
        if channel is not None:
            query = query.where(StaffEmailItem.channel == channel)
        return list(session.exec(query).all())


@lru_cache(maxsize=4)
def _insert_window_once(dialect: str):
    insert_for = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}[dialect]
    return insert_for(StaffEmailWindow.__table__).on_conflict_do_nothing(index_elements=["channel"])


def claim(channel: str, window_seconds: float, *, now: datetime | None = None,
          engine: Engine | None = None) -> Claimed | None:
    """Take `channel` for one email — its window over, nobody holding it — and
    list what it waits with. None when another sender has it, its window is
    still running, or nothing waits."""
    now = now or utcnow()
    token = secrets.token_hex(16)
    window = StaffEmailWindow.__table__
    with write_scope(engine) as session:
        session.execute(_insert_window_once(session.get_bind().dialect.name), {"channel": channel})
        took = session.execute(
            update(window)
            .where(window.c.channel == channel,
                   or_(window.c.claimed_until.is_(None), window.c.claimed_until <= now),
                   or_(window.c.last_sent_at.is_(None), window.c.last_sent_at <= _cutoff(now, window_seconds)))
            .values(claim=token, claimed_until=now + timedelta(seconds=LEASE_SECONDS))
        ).rowcount
        if took != 1:
            return None
        rows = session.exec(
            select(StaffEmailItem.id, Message, Shopper)
            .join(Message, col(Message.id) == StaffEmailItem.message_id)
            .join(Conversation, col(Conversation.id) == Message.conversation_id)
            .join(Shopper, col(Shopper.id) == Conversation.shopper_id)
            .where(StaffEmailItem.channel == channel)
            .order_by(col(StaffEmailItem.id)).limit(ITEMS_PER_EMAIL)
        ).all()
        if not rows:  # another sender listed them first: let the channel go
            session.execute(update(window).where(window.c.channel == channel, window.c.claim == token)
                            .values(claim=None, claimed_until=None))
            return None
        from chatdash.services.conversations import shopper_label  # (it queues through this module)

        return Claimed(channel, token, tuple(item_id for item_id, _m, _s in rows),
                       tuple(Item(m.conversation_id, shopper_label(s), m.body) for _i, m, s in rows))


def finish(claimed: Claimed, *, sent: bool | None, now: datetime | None = None,
           engine: Engine | None = None) -> None:
    """The sender is done with `claimed`: `sent` True (the mail server took
    the email: its items are done, the next window starts now), None (nobody
    to email: its items are dropped, the window is not used), False (the
    mail server failed: its items wait for the next window's email)."""
    now = now or utcnow()
    window = StaffEmailWindow.__table__
    items = StaffEmailItem.__table__
    values: dict[str, object] = {"claim": None, "claimed_until": None}
    if sent is not None:
        values["last_sent_at"] = now
    with write_scope(engine) as session:
        if sent is not False:
            session.execute(delete(items).where(items.c.id.in_(claimed.item_ids)))
        session.execute(update(window).where(window.c.channel == claimed.channel, window.c.claim == claimed.claim)
                        .values(**values))
