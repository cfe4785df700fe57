"""The agent workspace's use cases: file a conversation (resolve, re-open,
snooze, assign), write private notes, and know who else has it open (viewing,
typing). Each opens its own transaction and records its events; the domain
writes are in services/conversations.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from chatdash import events
from chatdash.db import session_scope, write_scope
from chatdash.events import AgentRef, ConversationSummary, InboxCounts, MessageView
from chatdash.models import AdminUser, Conversation, ConversationViewer, Sender, Status, utcnow
from chatdash.services import chat
from chatdash.services import conversations as convs
from chatdash.services.conversations import INBOX_FILTERS, ChatError, record_filed
from chatdash.settings import get_settings

__all__ = ["INBOX_FILTERS", "ChatError", "record_filed"]

# A viewer's tab renews its mark this often; a mark older than VIEWER_TTL
# (a closed tab, a lost network) no longer counts.
VIEWER_RENEW_SECONDS = 20
VIEWER_TTL = timedelta(seconds=60)


def _conversation(session, conversation_id: object) -> Conversation:
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool) or conversation_id <= 0:
        raise ChatError("That conversation no longer exists.")
    conv = session.get(Conversation, conversation_id)
    if conv is None:
        raise ChatError("That conversation no longer exists.")
    return conv


# ----- the inbox -------------------------------------------------------------

@dataclass(frozen=True)
class InboxPage:
    rows: list[ConversationSummary]
    counts: InboxCounts


def inbox_page(filter_name: str, admin_id: int, limit: int, *, engine: Engine | None = None) -> InboxPage:
    """The newest `limit` rows of one filter, and every filter's count."""
    if filter_name not in INBOX_FILTERS:
        raise ChatError("Unknown list filter.")
    with session_scope(engine) as session:
        rows = convs.list_conversations(session, window_seconds=get_settings().presence_window_seconds,
                                        limit=limit, where=convs.inbox_filter(filter_name, admin_id))
        return InboxPage(rows, convs.inbox_counts(session))


def matches(filter_name: str, admin_id: int, row: ConversationSummary) -> bool:
    """Whether `row` belongs in the list `filter_name` shows to `admin_id`."""
    if filter_name == "resolved":
        return row.status == Status.RESOLVED
    if filter_name == "snoozed":
        return row.status == Status.SNOOZED
    if row.status != Status.OPEN:
        return False
    if filter_name == "mine":
        return row.assignee_id == admin_id
    if filter_name == "unassigned":
        return row.assignee_id is None
    return True


# ----- status and assignment ------------------------------------------------

def set_status(agent_id: int, conversation_id: object, status: str, *, engine: Engine | None = None) -> bool:
    """Resolve or re-open a conversation (a resolved one also re-opens by itself
    when the shopper writes again); re-opening a snoozed one wakes it now."""
    if status not in (Status.OPEN, Status.RESOLVED):
        raise ChatError("Unknown status.")
    with write_scope(engine) as session:
        conv = _conversation(session, conversation_id)
        return convs.set_status(session, conv, Status(status), agent_id, get_settings().presence_window_seconds)


def assign(agent_id: int, conversation_id: object, assignee_id: object, *, engine: Engine | None = None) -> bool:
    """Assign to a team member (0 or None: unassign)."""
    if assignee_id in (0, None):
        assignee_id = None
    elif not isinstance(assignee_id, int) or isinstance(assignee_id, bool):
        raise ChatError("No such team member.")
    with write_scope(engine) as session:
        conv = _conversation(session, conversation_id)
        if assignee_id is not None and session.get(AdminUser, assignee_id) is None:
            raise ChatError("No such team member.")
        return convs.assign(session, conv, assignee_id, agent_id, get_settings().presence_window_seconds)


@dataclass(frozen=True)
class Filing:
    status: str
    assignee_id: int | None
    snoozed_until: datetime | None = None


def filing(conversation_id: int, *, engine: Engine | None = None) -> Filing | None:
    with session_scope(engine) as session:
        conv = session.get(Conversation, conversation_id)
        return Filing(conv.status, conv.assignee_id, conv.snoozed_until) if conv else None


# ----- snooze ----------------------------------------------------------------

SNOOZE_PRESETS = ("1h", "tomorrow")
MAX_SNOOZE = timedelta(days=366)
TOMORROW_AT = time(9, 0)
_LOCAL_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?")


def snooze_time(choice: object, now: datetime, tz: tzinfo) -> datetime:
    """When a snooze chosen in the chat header ends (UTC): "1h", "tomorrow"
    (9:00 on the store's clock `tz`), or a time on that clock as the page's
    datetime input gives it ("2026-12-24T09:30", seconds optional)."""
    if not isinstance(choice, str) or len(choice) > 32:
        raise ChatError("Choose when the conversation should come back.")
    if choice == "1h":
        return now + timedelta(hours=1)
    if choice == "tomorrow":
        day = now.astimezone(tz).date() + timedelta(days=1)
        return datetime.combine(day, TOMORROW_AT, tz).astimezone(UTC)
    if not _LOCAL_TIME_RE.fullmatch(choice):
        raise ChatError("Choose a date and a time.")
    try:
        until = datetime.fromisoformat(choice).replace(tzinfo=tz).astimezone(UTC)
    except ValueError:
        raise ChatError("That date does not exist.") from None
    if until <= now:
        raise ChatError("Choose a time in the future.")
    if until > now + MAX_SNOOZE:
        raise ChatError("A conversation can be snoozed for at most a year.")
    return until


def snooze(agent_id: int, conversation_id: object, choice: object, *, now: datetime | None = None,
           engine: Engine | None = None) -> datetime:
    """Snooze a conversation (open, or resolved) until the time `choice` names
    (see `snooze_time`): it leaves the open lists, and comes back by itself
    then (`wake_due`, the leader's job) or when the shopper writes. Returns
    the wake-up time."""
    settings = get_settings()
    until = snooze_time(choice, now or utcnow(), settings.store_tz)
    with write_scope(engine) as session:
        conv = _conversation(session, conversation_id)
        if conv.status not in convs.CURRENT_STATUSES:
            raise ChatError("That conversation no longer exists.")
        convs.snooze(session, conv, until, agent_id, settings.presence_window_seconds)
        return until


def wake_due(*, now: datetime | None = None, engine: Engine | None = None) -> list[int]:
    """Snoozed conversations whose time has come go back to open, every
    screen told (the leader's periodic job). Returns their ids."""
    now = now or utcnow()
    with session_scope(engine) as session:  # most ticks find nothing: no writer's turn taken for them
        if not convs.any_due(session, now):
            return []
    with write_scope(engine) as session:
        return convs.wake_due(session, now, window_seconds=get_settings().presence_window_seconds)


# ----- private notes ---------------------------------------------------------

def post_note(agent_id: int, conversation_id: object, client_id: str, text: object, *,
              engine: Engine | None = None) -> tuple[MessageView, bool]:
    """A note the other agents see and the shopper never does."""
    if not isinstance(text, str):
        raise ChatError("A note must be text.")
    with write_scope(engine) as session:
        conv = _conversation(session, conversation_id)
        author = session.get(AdminUser, agent_id)
        name = (author.name or author.email) if author else "An agent"
        return convs.post_note(session, conv, agent_id, name, client_id, text,
                               max_chars=get_settings().message_max_chars)


# ----- who else has it open --------------------------------------------------

def _viewers(session, conversation_id: int) -> tuple[AgentRef, ...]:
    cutoff = utcnow() - VIEWER_TTL
    rows = session.exec(
        select(AdminUser.id, AdminUser.name, AdminUser.email)
        .join(ConversationViewer, col(ConversationViewer.admin_id) == AdminUser.id)
        .where(ConversationViewer.conversation_id == conversation_id, ConversationViewer.seen_at >= cutoff)
        .order_by(AdminUser.id)
    ).all()
    return tuple(AgentRef(i, name or email) for i, name, email in rows)


def view(agent_id: int, conversation_id: int, previous_id: int = 0, *,
         engine: Engine | None = None) -> tuple[AgentRef, ...]:
    """`agent_id` has `conversation_id` open (and no longer `previous_id`):
    renew the mark and tell the screens when who-is-viewing changed. Returns
    the viewers now. Called on opening and every VIEWER_RENEW_SECONDS after."""
    with write_scope(engine) as session:
        if previous_id and previous_id != conversation_id:
            _leave(session, agent_id, previous_id)
        if not conversation_id:
            return ()
        # Marks not renewed (a closed tab) go, and the screens hear of it.
        stale = session.exec(delete(ConversationViewer).where(
            ConversationViewer.conversation_id == conversation_id,
            ConversationViewer.seen_at < utcnow() - VIEWER_TTL)).rowcount
        mark = session.get(ConversationViewer, (conversation_id, agent_id))
        arrived = mark is None
        if arrived:
            if session.get(Conversation, conversation_id) is None:
                return ()
            mark = ConversationViewer(conversation_id=conversation_id, admin_id=agent_id)
        mark.seen_at = utcnow()
        session.add(mark)
        session.flush()
        now = _viewers(session, conversation_id)
        if arrived or stale:
            events.record(session, events.ViewersChanged(conversation_id, now))
        return now


def leave(agent_id: int, conversation_id: int, *, engine: Engine | None = None) -> None:
    if conversation_id:
        with write_scope(engine) as session:
            _leave(session, agent_id, conversation_id)


def _leave(session, agent_id: int, conversation_id: int) -> None:
    gone = session.exec(delete(ConversationViewer).where(
        ConversationViewer.conversation_id == conversation_id, ConversationViewer.admin_id == agent_id))
    if gone.rowcount:
        session.flush()
        events.record(session, events.ViewersChanged(conversation_id, _viewers(session, conversation_id)))


async def agent_typing(agent_id: int, agent_name: str, conversation_id: int) -> None:
    """An agent is typing a reply: the shopper and the other agents are told
    (nothing stored), at most once per agent and conversation per typing window
    (chat.typing's throttle, shared by every worker when REDIS_URL is set)."""
    await chat.typing(conversation_id, Sender.ADMIN, agent_id=agent_id, agent_name=agent_name)
