"""Conversations between a shopper and the store's staff: start, post
(idempotent by client message id), read, mark seen, list for the inbox."""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import bindparam, func, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from chatdash import events
from chatdash.events import ConversationSummary, MessageView, ProductCardView
from chatdash.models import (
    Conversation,
    Message,
    MessageKind,
    Product,
    Sender,
    Shopper,
    Status,
    Visit,
    utcnow,
)
from chatdash.services import staff_emails

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
# A shopper's conversation in one of these is theirs to write to (a merged one is not).
CURRENT_STATUSES = (Status.OPEN, Status.RESOLVED, Status.SNOOZED)
PREVIEW_CHARS = 120


class ChatError(ValueError):
    """A message or request that cannot be accepted; the text is for the user."""


def _keep_char(ch: str) -> bool:
    """Drop control characters, lone surrogates and invisible format characters
    (bidi overrides, zero-width spaces), but keep what real text is made of:
    joiners build emoji (👩‍💻) and Persian/Indic words, tag characters build
    subdivision flags, and emoji newer than Python's Unicode tables are
    "unassigned" (Cn) rather than control."""
    if ch in "\n\t":
        return True
    category = unicodedata.category(ch)
    if category in ("Cc", "Cs"):
        return False
    if category == "Cf":
        return ch in "\u200c\u200d" or "\U000e0020" <= ch <= "\U000e007f"
    return True


def clean_text(body: str, max_chars: int) -> str:
    """Normalise a message: strip control characters (keeping newlines and tabs)
    and surrounding white space; refuse empty or oversize text."""
    if not isinstance(body, str):
        raise ChatError("A message must be text.")
    if len(body) > max_chars * 2:  # cheap early refusal before normalising
        raise ChatError(f"Messages can be at most {max_chars:,} characters.")
    body = "".join(ch for ch in unicodedata.normalize("NFC", body) if _keep_char(ch)).strip()
    if all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in body):  # nothing visible
        raise ChatError("Write a message first.")
    if len(body) > max_chars:
        raise ChatError(f"Messages can be at most {max_chars:,} characters (this one has {len(body):,}).")
    return body


def check_client_id(client_msg_id: str) -> str:
    # fullmatch: `$` would also accept a trailing newline (65 characters, too long for the column).
    if not isinstance(client_msg_id, str) or not CLIENT_ID_RE.fullmatch(client_msg_id):
        raise ChatError("Malformed message id.")
    return client_msg_id


def shopper_label(shopper: Shopper) -> str:
    return _label(shopper.name, shopper.email, shopper.visitor_id, shopper.customer_id)


def _label(name: str | None, email: str | None, visitor_id: str, customer_id: str | None = None) -> str:
    if name:
        return name
    if email:
        return email
    if customer_id:
        return f"Customer {customer_id[:40]}"
    return f"Visitor {visitor_id[:6].upper()}"


def get_or_create_shopper(session: Session, visitor_id: str) -> Shopper:
    """The shopper this browser speaks for: its own row, or the store customer
    it identified as (services/customers.py merged it there)."""
    shopper = visitor_row(session, visitor_id)
    if shopper.merged_into_id is not None:
        return session.get(Shopper, shopper.merged_into_id) or shopper
    return shopper


def visitor_row(session: Session, visitor_id: str) -> Shopper:
    """The row of this visitor id itself, created when new."""
    shopper = session.exec(select(Shopper).where(Shopper.visitor_id == visitor_id)).first()
    if shopper is None:
        shopper = Shopper(visitor_id=visitor_id)
        try:
            # Added inside the savepoint: begin_nested() first flushes what is
            # pending into the outer transaction, where a duplicate would be fatal.
            with session.begin_nested():
                session.add(shopper)
                session.flush()
        except IntegrityError:
            shopper = session.exec(select(Shopper).where(Shopper.visitor_id == visitor_id)).one()
    return shopper


def open_conversation_for(session: Session, shopper_id: int) -> Conversation | None:
    """The shopper's current conversation: open, or resolved or snoozed (their
    next message re-opens it, see `reopen_on_shopper_message`)."""
    return session.exec(
        select(Conversation)
        .where(Conversation.shopper_id == shopper_id, col(Conversation.status).in_(CURRENT_STATUSES))
        .order_by(col(Conversation.id).desc())
    ).first()


def start_conversation(session: Session, shopper_id: int) -> tuple[Conversation, bool]:
    """The shopper's open conversation, or a new one. Returns (conversation, created)."""
    existing = open_conversation_for(session, shopper_id)
    if existing is not None:
        return existing, False
    conv = Conversation(token=secrets.token_urlsafe(32), shopper_id=shopper_id)
    session.add(conv)
    session.flush()
    return conv, True


def post_message(
    session: Session,
    conversation: Conversation,
    sender: Sender,
    client_msg_id: str,
    body: str = "",
    *,
    max_chars: int = 4000,
    product_id: int | None = None,
    admin_id: int | None = None,
    window_seconds: int = 60,
    card_source: str | None = None,
    origin: str = "",
) -> tuple[MessageView, bool]:
    """Store a message once and record `MessagePosted` (and `ConversationStarted`
    for a shopper's first message) for delivery after commit, with the staff
    emails a shopper's message calls for queued in the same transaction. A retry with the
    same client id returns the stored message and created=False. A product
    card keeps `card_source` (a CardSource: where the admin found it).

    The chat's hottest write: a handful of prepared Core statements (insert,
    update, one read for the inbox row), no ORM unit of work."""
    check_client_id(client_msg_id)
    kind = MessageKind.TEXT
    product = None
    if product_id is not None:
        product = session.get(Product, product_id)
        if product is None:
            raise ChatError("That product is not in the catalog.")
        if not product.url.startswith(("https://", "http://")):
            raise ChatError("That product has no web address to send.")
        kind = MessageKind.PRODUCT
        body = product.name
        preview = f"Product: {product.name}"
    else:
        body = clean_text(body, max_chars)
        preview = body
    created_at = utcnow()
    values = dict(conversation_id=conversation.id, sender=str(sender), kind=str(kind), body=body,
                  product_id=product_id, admin_id=admin_id, client_msg_id=client_msg_id, created_at=created_at,
                  card_source=card_source if product is not None else None)
    # ON CONFLICT DO NOTHING: a retry, or a concurrent retry that won the race,
    # inserts nothing and gets the stored row. (Other constraints, such as a
    # deleted admin or product, still raise.)
    msg_id = session.execute(_insert_message_once(session.get_bind().dialect.name), values).scalar()
    if msg_id is None:
        return message_by_client_id(session, conversation.id, client_msg_id), False
    first_from_shopper = sender == Sender.SHOPPER and conversation.last_shopper_message_id == 0
    reopened = reopen_on_shopper_message(session, conversation) if sender == Sender.SHOPPER else ""
    changes: dict[str, object] = {
        "last_message_at": created_at,
        "last_message_preview": " ".join(preview.split())[:PREVIEW_CHARS],
    }
    table = Conversation.__table__
    sql_changes: dict[str, object] = {}
    if sender == Sender.ADMIN:
        changes["admin_seen_message_id"] = max(conversation.admin_seen_message_id, msg_id)
        # Answered: the offline follow-up's "nobody replied" clock stops.
        changes["awaiting_reply_since"] = None
    elif sender == Sender.SHOPPER:
        changes["shopper_seen_message_id"] = max(conversation.shopper_seen_message_id, msg_id)
        changes["last_shopper_message_id"] = msg_id
        # The first unanswered message starts the clock; later ones keep it (the row decides).
        changes["awaiting_reply_since"] = conversation.awaiting_reply_since or created_at
        sql_changes["awaiting_reply_since"] = func.coalesce(table.c.awaiting_reply_since, created_at)
    session.execute(update(table).where(table.c.id == conversation.id).values(**{**changes, **sql_changes}))
    for name, value in changes.items():  # the loaded object matches the row, with nothing left to flush
        set_committed_value(conversation, name, value)
    view = MessageView(msg_id, conversation.id, str(sender), str(kind), body, client_msg_id, created_at,
                       _card(product))
    row = session.execute(_inbox_row_query(), {
        "shopper_id": conversation.shopper_id, "conversation_id": conversation.id,
        "admin_seen": conversation.admin_seen_message_id,
    }).one()
    label = _label(row.name, row.email, row.visitor_id, row.customer_id)
    events.record(session, events.MessagePosted(
        message=view,
        conversation=ConversationSummary(
            id=conversation.id, shopper_id=conversation.shopper_id, label=label,
            preview=conversation.last_message_preview, last_message_at=conversation.last_message_at,
            unread=row.unread, on_site=is_on_site(row if row.last_seen_at else None, utcnow(), window_seconds),
            current_url=row.current_url or "",
            status=conversation.status, assignee_id=conversation.assignee_id,
            snoozed_until=conversation.snoozed_until,
        ),
        unseen_conversations=row.unseen,
        origin=origin,
    ))
    if reopened:
        record_filed(session, conversation.id, reopened, 0)
    if first_from_shopper:
        events.record(session, events.ConversationStarted(conversation.id, label, body))
        staff_emails.queue_new_conversation(session, msg_id)
    if sender == Sender.SHOPPER and conversation.assignee_id:
        staff_emails.queue_assigned_message(session, conversation.assignee_id, msg_id,
                                            first_message=first_from_shopper)
    return view, True


@lru_cache(maxsize=4)
def _insert_message_once(dialect: str):
    """INSERT … ON CONFLICT (conversation_id, client_msg_id) DO NOTHING RETURNING id,
    built once per dialect (executed with the row's values as parameters)."""
    insert_for = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}[dialect]
    table = Message.__table__  # the table, not the class: a plain Core insert, no ORM bulk path
    return (insert_for(table)
            .on_conflict_do_nothing(index_elements=["conversation_id", "client_msg_id"])
            .returning(table.c.id))


@lru_cache(maxsize=1)
def _inbox_row_query():
    """What an inbox row needs after a message, in one read: the shopper's
    name, their latest visit, the conversation's unread count and the bell's
    count. Built once, executed with bound parameters."""
    latest_visit_id = (
        select(Visit.id).where(Visit.shopper_id == Shopper.id)
        .order_by(col(Visit.last_seen_at).desc()).limit(1)
        .correlate(Shopper).scalar_subquery()
    )
    unread = (
        select(func.count()).select_from(Message)
        .where(Message.conversation_id == bindparam("conversation_id"), Message.sender == str(Sender.SHOPPER),
               Message.id > bindparam("admin_seen"))
        .scalar_subquery()
    )
    unseen = (
        select(func.count()).select_from(Conversation)
        .where(Conversation.status == "open",
               Conversation.last_shopper_message_id > Conversation.admin_seen_message_id)
        .scalar_subquery()
    )
    return (
        select(Shopper.name, Shopper.email, Shopper.visitor_id, Shopper.customer_id, Visit.current_url,
               Visit.last_seen_at,
               Visit.left_at, unread.label("unread"), unseen.label("unseen"))
        .select_from(Shopper)
        .outerjoin(Visit, col(Visit.id) == latest_visit_id)
        .where(Shopper.id == bindparam("shopper_id"))
    )


def stored_message_id(session: Session, conversation_id: int, client_msg_id: str) -> int | None:
    """The id of the message stored under this client id, if any (the cheap check)."""
    return session.exec(
        select(Message.id).where(Message.conversation_id == conversation_id, Message.client_msg_id == client_msg_id)
    ).first()


def message_by_client_id(session: Session, conversation_id: int, client_msg_id: str) -> MessageView | None:
    row = session.exec(
        select(Message, Product)
        .join(Product, col(Product.id) == Message.product_id, isouter=True)
        .where(Message.conversation_id == conversation_id, Message.client_msg_id == client_msg_id)
    ).first()
    return _view(*row) if row else None


def _card(product: Product | None) -> ProductCardView | None:
    if product is None:
        return None
    return ProductCardView(product.id, product.sku, product.name, product.price_cents, product.currency,
                           product.url, product.image_url, product.in_stock)


def _view(m: Message, product: Product | None) -> MessageView:
    return MessageView(m.id, m.conversation_id, m.sender, m.kind, m.body, m.client_msg_id, m.created_at,
                       _card(product))


def list_messages(
    session: Session, conversation_id: int, after_id: int = 0, limit: int = 1000, *, include_notes: bool = False,
) -> list[MessageView]:
    """Messages oldest first: the newest `limit`, or only those after `after_id`.
    Private notes only with `include_notes` (the agents' screens, never the shopper's)."""
    query = (
        select(Message, Product)
        .join(Product, col(Product.id) == Message.product_id, isouter=True)
        .where(Message.conversation_id == conversation_id, Message.id > after_id)
    )
    if not include_notes:
        query = query.where(Message.sender != Sender.NOTE)
    rows = session.exec(query.order_by(col(Message.id).desc()).limit(limit)).all()
    views = [_view(m, p) for m, p in reversed(rows)]
    return with_note_authors(session, views) if include_notes else views


def mark_seen(session: Session, conversation: Conversation, side: Sender, up_to_id: int | None = None) -> bool:
    """Record that `side` has seen the conversation up to a message id (default:
    the latest) and record `MessagesSeen`. Returns True if anything changed."""
    if up_to_id is None:
        # Notes are not the shopper's to see, nor counted in what they have seen.
        up_to_id = session.exec(
            select(func.max(Message.id)).where(Message.conversation_id == conversation.id,
                                               Message.sender != Sender.NOTE)
        ).one() or 0
    attr = "admin_seen_message_id" if side == Sender.ADMIN else "shopper_seen_message_id"
    if up_to_id <= getattr(conversation, attr):
        return False
    setattr(conversation, attr, up_to_id)
    session.add(conversation)
    session.flush()
    events.record(session, events.MessagesSeen(
        conversation_id=conversation.id, side=str(side), up_to_id=up_to_id,
        unread=unread_count(session, conversation), unseen_conversations=unseen_conversation_count(session),
    ))
    return True


def unread_count(session: Session, conversation: Conversation) -> int:
    """Shopper messages in this conversation that no admin has seen."""
    if conversation.last_shopper_message_id <= conversation.admin_seen_message_id:
        return 0
    return int(session.exec(
        select(func.count()).where(
            Message.conversation_id == conversation.id,
            Message.sender == Sender.SHOPPER,
            Message.id > conversation.admin_seen_message_id,
        )
    ).one())


def unseen_conversation_count(session: Session) -> int:
    """Open conversations holding shopper messages no admin has seen yet (the bell)."""
    return int(session.exec(
        select(func.count()).select_from(Conversation).where(
            Conversation.status == "open",
            Conversation.last_shopper_message_id > Conversation.admin_seen_message_id,
        )
    ).one())


def open_conversation_count(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(Conversation).where(Conversation.status == "open")).one())


def latest_visit(session: Session, shopper_id: int) -> Visit | None:
    return session.exec(
        select(Visit).where(Visit.shopper_id == shopper_id)
        .order_by(col(Visit.last_seen_at).desc(), col(Visit.id).desc())  # ties: the later visit
    ).first()


def live_visit(session: Session, shopper_id: int, now: datetime | None = None,
               window_seconds: int = 60) -> Visit | None:
    """The visit that says where the shopper is now: a customer on two devices
    has a current visit on each, and the one on site counts (the latest seen of
    those), not a tab just closed on the other device. Else the latest visit."""
    now = now or utcnow()
    present = [v for v in session.exec(_recent_current_visits([shopper_id], now, window_seconds)).all()
               if is_on_site(v, now, window_seconds)]
    return present[0] if present else latest_visit(session, shopper_id)


def _recent_current_visits(shopper_ids: list[int], now: datetime, window_seconds: int):
    """Browsers' current visits seen within the window, latest first."""
    return (select(Visit)
            .where(col(Visit.shopper_id).in_(shopper_ids), col(Visit.open_for).is_not(None),
                   Visit.last_seen_at >= now - timedelta(seconds=window_seconds))
            .order_by(col(Visit.last_seen_at).desc(), col(Visit.id).desc()))


# Moving from one store page to the next closes a page and opens another within
# a second or two: a "left" signal counts only once it has stood this long.
LEAVE_GRACE = timedelta(seconds=3)


def is_on_site(visit: Visit | None, now: datetime, window_seconds: int) -> bool:
    if visit is None:
        return False
    if visit.left_at is not None and visit.left_at >= visit.last_seen_at and now - visit.left_at >= LEAVE_GRACE:
        return False
    return now - visit.last_seen_at <= timedelta(seconds=window_seconds)


def list_conversations(
    session: Session, *, window_seconds: int, now: datetime | None = None, limit: int = 200,
    ids: list[int] | None = None, where: list | None = None,
) -> list[ConversationSummary]:
    """Open conversations (or those matching `where`: see `inbox_filter`),
    newest activity first, with unread counts and presence (or just the
    conversations `ids`, open or not). Plain rows, no ORM objects: this is the
    inbox's hot path."""
    now = now or utcnow()
    query = (
        select(Conversation.id, Conversation.shopper_id, Conversation.last_message_preview,
               Conversation.last_message_at, Conversation.admin_seen_message_id,
               Conversation.last_shopper_message_id, Shopper.name, Shopper.email, Shopper.visitor_id,
               Shopper.customer_id, Conversation.status, Conversation.assignee_id, Conversation.snoozed_until)
        .join(Shopper, col(Shopper.id) == Conversation.shopper_id)
    )
    if ids is not None:
        query = query.where(col(Conversation.id).in_(ids))
    elif where is not None:
        query = query.where(*where)
    else:
        query = query.where(Conversation.status == "open")
    convs = session.exec(query.order_by(col(Conversation.last_message_at).desc()).limit(limit)).all()
    if not convs:
        return []
    with_unread = [c.id for c in convs if c.last_shopper_message_id > c.admin_seen_message_id]
    unread: dict[int, int] = {}
    if with_unread:
        unread = dict(session.exec(
            select(Message.conversation_id, func.count())
            .join(Conversation, col(Conversation.id) == Message.conversation_id)
            .where(
                col(Message.conversation_id).in_(with_unread),
                Message.sender == Sender.SHOPPER,
                Message.id > Conversation.admin_seen_message_id,
            )
            .group_by(Message.conversation_id)
        ).all())
    visits = latest_visits(session, list({c.shopper_id for c in convs}), now=now, window_seconds=window_seconds)
    out = []
    for c in convs:
        visit = visits.get(c.shopper_id)
        out.append(
            ConversationSummary(
                id=c.id,
                shopper_id=c.shopper_id,
                label=_label(c.name, c.email, c.visitor_id, c.customer_id),
                preview=c.last_message_preview,
                last_message_at=c.last_message_at,
                unread=int(unread.get(c.id, 0)),
                on_site=is_on_site(visit, now, window_seconds),
                current_url=visit.current_url if visit else "",
                status=c.status,
                assignee_id=c.assignee_id,
                snoozed_until=c.snoozed_until,
            )
        )
    return out


def latest_visits(session: Session, shopper_ids: list[int], *, now: datetime | None = None,
                  window_seconds: int | None = None) -> dict[int, Visit]:
    """Each shopper's latest visit, in one query; with `window_seconds`, each
    shopper's live visit (`live_visit`), with one more query of the recent ones."""
    if not shopper_ids:
        return {}
    visits = _latest_visits(session, shopper_ids)
    if window_seconds is not None:
        now = now or utcnow()
        live: dict[int, Visit] = {}
        for v in session.exec(_recent_current_visits(shopper_ids, now, window_seconds)).all():
            if v.shopper_id not in live and is_on_site(v, now, window_seconds):
                live[v.shopper_id] = v
        visits.update(live)
    return visits


def _latest_visits(session: Session, shopper_ids: list[int]) -> dict[int, Visit]:
    latest = (
        select(Visit.shopper_id, func.max(Visit.last_seen_at).label("seen"))
        .where(col(Visit.shopper_id).in_(shopper_ids))
        .group_by(Visit.shopper_id)
        .subquery()
    )
    return {
        v.shopper_id: v
        for v in session.exec(
            select(Visit).join(
                latest, (latest.c.shopper_id == Visit.shopper_id) & (latest.c.seen == Visit.last_seen_at)
            )
        ).all()
    }


# --------------------------------------------------------------------------- the agent workspace
# Status, assignment, private notes and who is viewing: each write records its
# event here, like post_message; the use cases are in services/workspace.py.

# The inbox's filters, and what each one shows.
INBOX_FILTERS = ("mine", "unassigned", "open", "snoozed", "resolved")


def inbox_filter(name: str, admin_id: int) -> list:
    """The WHERE clauses of one inbox filter."""
    if name == "mine":
        return [Conversation.status == Status.OPEN, Conversation.assignee_id == admin_id]
    if name == "unassigned":
        return [Conversation.status == Status.OPEN, col(Conversation.assignee_id).is_(None)]
    if name == "resolved":
        return [Conversation.status == Status.RESOLVED]
    if name == "snoozed":
        return [Conversation.status == Status.SNOOZED]
    return [Conversation.status == Status.OPEN]


def inbox_counts(session: Session) -> events.InboxCounts:
    """Every filter's count in one grouped read."""
    rows = session.exec(
        select(Conversation.status, Conversation.assignee_id, func.count())
        .group_by(Conversation.status, Conversation.assignee_id)
    ).all()
    open_, unassigned, resolved, snoozed, mine = 0, 0, 0, 0, {}
    for status, assignee_id, n in rows:
        if status == Status.OPEN:
            open_ += n
            if assignee_id is None:
                unassigned += n
            else:
                mine[assignee_id] = mine.get(assignee_id, 0) + n
        elif status == Status.RESOLVED:
            resolved += n
        elif status == Status.SNOOZED:
            snoozed += n
    return events.InboxCounts(open_, unassigned, resolved, tuple(sorted(mine.items())), snoozed)


def record_filed(session: Session, conversation_id: int, change: str, by_agent_id: int,
                 window_seconds: int = 60) -> None:
    """Record `ConversationFiled`: the row as it now is and the filters' counts."""
    session.flush()
    rows = list_conversations(session, window_seconds=window_seconds, ids=[conversation_id])
    if rows:
        events.record(session, events.ConversationFiled(rows[0], inbox_counts(session), change, by_agent_id))


def set_status(session: Session, conversation: Conversation, status: Status, by_agent_id: int,
               window_seconds: int = 60) -> bool:
    """Resolve or re-open (a snoozed one too: it wakes); records
    `ConversationFiled`. False when it already was."""
    if status == Status.SNOOZED:
        raise ValueError("snooze() sets a wake-up time")
    if conversation.status == status:
        return False
    change = "resolved" if status == Status.RESOLVED else (
        "woke" if conversation.status == Status.SNOOZED else "reopened")
    conversation.status = status
    conversation.snoozed_until = None
    session.add(conversation)
    record_filed(session, conversation.id, change, by_agent_id, window_seconds)
    return True


def snooze(session: Session, conversation: Conversation, until: datetime, by_agent_id: int,
           window_seconds: int = 60) -> bool:
    """Out of the open lists until `until` (or the shopper's next message);
    records `ConversationFiled`. False when it already sleeps until then."""
    if conversation.status == Status.SNOOZED and conversation.snoozed_until == until:
        return False
    conversation.status = Status.SNOOZED
    conversation.snoozed_until = until
    session.add(conversation)
    record_filed(session, conversation.id, "snoozed", by_agent_id, window_seconds)
    return True


def _due(now: datetime):
    return select(Conversation).where(Conversation.status == Status.SNOOZED, col(Conversation.snoozed_until) <= now)


def any_due(session: Session, now: datetime) -> bool:
    return session.exec(_due(now).limit(1)).first() is not None


def wake_due(session: Session, now: datetime, limit: int = 500, window_seconds: int = 60) -> list[int]:
    """Snoozed conversations whose time has come go back to open (oldest
    due first, at most `limit`); each records `ConversationFiled` ("woke")."""
    due = session.exec(_due(now).order_by(col(Conversation.snoozed_until)).limit(limit)).all()
    for conv in due:
        set_status(session, conv, Status.OPEN, 0, window_seconds)
    return [c.id for c in due]


def reopen_on_shopper_message(session: Session, conversation: Conversation) -> str:
    """A resolved conversation re-opens, and a snoozed one wakes, when the
    shopper writes again. Returns the change ("reopened", "woke") or ""."""
    if conversation.status not in (Status.RESOLVED, Status.SNOOZED):
        return ""
    change = "woke" if conversation.status == Status.SNOOZED else "reopened"
    table = Conversation.__table__
    session.execute(update(table).where(table.c.id == conversation.id).values(status=Status.OPEN, snoozed_until=None))
    set_committed_value(conversation, "status", str(Status.OPEN))
    set_committed_value(conversation, "snoozed_until", None)
    return change


def assign(session: Session, conversation: Conversation, assignee_id: int | None, by_agent_id: int,
           window_seconds: int = 60) -> bool:
    """Give the conversation to an agent (None: nobody); records `ConversationFiled`."""
    if conversation.assignee_id == assignee_id:
        return False
    conversation.assignee_id = assignee_id
    session.add(conversation)
    record_filed(session, conversation.id, "assigned" if assignee_id else "unassigned", by_agent_id,
                 window_seconds)
    return True


def post_note(session: Session, conversation: Conversation, admin_id: int, author: str, client_msg_id: str,
              body: str, *, max_chars: int = 4000) -> tuple[MessageView, bool]:
    """Store a private note once (by client id) and record `NotePosted`. The
    conversation's preview, unread marks and the shopper's side are untouched."""
    check_client_id(client_msg_id)
    body = clean_text(body, max_chars)
    existing = message_by_client_id(session, conversation.id, client_msg_id)
    if existing is not None:
        return existing, False
    msg = Message(conversation_id=conversation.id, sender=Sender.NOTE, body=body, admin_id=admin_id,
                  client_msg_id=client_msg_id)
    session.add(msg)
    session.flush()
    view = MessageView(msg.id, conversation.id, str(Sender.NOTE), str(MessageKind.TEXT), body, client_msg_id,
                       msg.created_at, None, author)
    events.record(session, events.NotePosted(view))
    return view, True


def with_note_authors(session: Session, views: list[MessageView]) -> list[MessageView]:
    """Notes carry their author's name (one read for all of them)."""
    from dataclasses import replace

    from chatdash.models import AdminUser

    note_ids = [v.id for v in views if v.sender == Sender.NOTE]
    if not note_ids:
        return views
    names = dict(session.exec(
        select(Message.id, AdminUser.name).join(AdminUser, col(AdminUser.id) == Message.admin_id)
        .where(col(Message.id).in_(note_ids))
    ).all())
    return [replace(v, author=names.get(v.id) or "An agent") if v.sender == Sender.NOTE else v for v in views]
