"""Auto-assign: a conversation that reaches the open inbox with nobody on it
goes to the next team member online, round robin. Off unless the owner
switches it on (Settings).

- *Which conversations*: a shopper's new conversation, and one their message
  brings back (a resolved one re-opening, a snoozed one waking) while nobody
  is assigned. A conversation that comes back keeps its assignee; one that
  wakes by the clock stays where it was (nobody new wrote).
- *Online*: a member (owner or agent) whose conversations page renewed
  `AdminUser.online_at` within `agent_online_seconds`; the page renews every
  third of that, and logging out ends it at once (`auth.end_session_hash`). It is kept in the database,
  so every worker sees the same team. Nobody online: the conversation stays
  unassigned.
- *Round robin*: the first online member after the last one given a
  conversation, in the order they joined the team (id), wrapping around; a
  member who comes or goes changes nobody else's turn. The cursor is a
  `setting` row, and a pick first writes it: on PostgreSQL that locks the row
  until the pick's own short transaction commits, on SQLite it takes the
  writer lock, so two conversations started at once never read the same cursor.
- The assignment records the same `ConversationFiled` ("assigned") as an
  agent's, by nobody (0): every list and count follows live. Unlike an
  agent's, it comes with a shopper's message that is news to the assignee:
  chat.shopper_send queues it for their email (if they chose such emails).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from chatdash.db import session_scope, write_scope
from chatdash.models import AdminUser, Conversation, Setting, Status, utcnow
from chatdash.services import conversations as convs
from chatdash.services import store_settings
from chatdash.settings import get_settings

CURSOR_KEY = "auto_assign_cursor"


# ----- who is online ---------------------------------------------------------

def renew_every_seconds() -> float:
    """How often an open conversations page says its agent is still there."""
    return max(2.0, get_settings().agent_online_seconds / 3)


def still_online(admin_id: int, *, engine: Engine | None = None) -> None:
    """`admin_id`'s conversations page is open (on load and every `renew_every_seconds`)."""
    with write_scope(engine) as session:
        session.execute(update(AdminUser).where(col(AdminUser.id) == admin_id).values(online_at=utcnow()))


def _online_query(now: datetime):
    cutoff = now - timedelta(seconds=get_settings().agent_online_seconds)
    return (select(AdminUser)
            .where(col(AdminUser.online_at) >= cutoff, AdminUser.password_hash != "")
            .order_by(col(AdminUser.id)))


def online_names(*, now: datetime | None = None, engine: Engine | None = None) -> list[str]:
    """The members online now, in their round-robin order (the Settings page shows them)."""
    with session_scope(engine) as session:
        return [a.name or a.email for a in session.exec(_online_query(now or utcnow())).all()]


# ----- the round robin ---------------------------------------------------------

def _pick(conn: Connection, now: datetime) -> int | None:
    """Move the cursor to the first member online after it (wrapping) and
    return them (None: nobody online). The cursor row is written before it is
    read, so no other pick reads it until this transaction ends."""
    insert_for = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}[conn.dialect.name]
    table = Setting.__table__
    claim = insert_for(table).values(key=CURSOR_KEY, value="0", updated_at=now)
    conn.execute(claim.on_conflict_do_update(index_elements=["key"], set_={"updated_at": claim.excluded.updated_at}))
    # A statement of its own: on PostgreSQL it sees what the pick we waited for committed.
    last = json.loads(conn.execute(select(table.c.value).where(table.c.key == CURSOR_KEY)).scalar_one() or "0")
    last = last if isinstance(last, int) else 0
    online = list(conn.execute(_online_query(now).with_only_columns(col(AdminUser.id))).scalars())
    if not online:
        return None
    pick = next((i for i in online if i > last), online[0])
    conn.execute(update(table).where(table.c.key == CURSOR_KEY).values(value=json.dumps(pick), updated_at=now))
    return pick


def next_member(session: Session, *, now: datetime | None = None) -> int | None:
    """Whose turn it is among the members online (None: nobody online); the
    cursor moves to them.

    On PostgreSQL the pick is a transaction of its own, committed at once: the
    cursor's row lock is held for three statements, not for the rest of the
    shopper's write (bench/bench_auto_assign.py: holding it there cut
    concurrent new conversations to a third). Should that write roll back, the
    member's turn is skipped, nothing worse. On SQLite the session's own
    transaction holds the writer lock already; a second connection would wait
    for it."""
    now = now or utcnow()
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        with getattr(bind, "engine", bind).begin() as conn:
            return _pick(conn, now)
    return _pick(session.connection(), now)


def assign_if_due(session: Session, conversation: Conversation, *, came_back: bool,
                  window_seconds: int = 60) -> int | None:
    """After a shopper's message: give the conversation to the next member
    online when auto-assign is on and it has just arrived in the open inbox
    (`came_back`: new, re-opened or woken) with nobody on it. Returns the
    assignee, or None when nothing was assigned."""
    if not came_back or conversation.assignee_id is not None or conversation.status != Status.OPEN:
        return None
    if not store_settings.get_auto_assign(session):
        return None
    pick = next_member(session)
    if pick is None:
        return None
    convs.assign(session, conversation, pick, 0, window_seconds)
    return pick
