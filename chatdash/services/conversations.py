"""Conversations between a shopper and the store's staff: start, post
(idempotent by client message id), read, mark seen, list for the inbox."""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from chatdash.models import (
    Conversation,
    Message,
    MessageKind,
    Product,
    Sender,
    Shopper,
    Visit,
    utcnow,
)

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
PREVIEW_CHARS = 120


class ChatError(ValueError):
    """A message or request that cannot be accepted; the text is for the user."""


@dataclass(frozen=True)
class MessageView:
    id: int
    conversation_id: int
    sender: str
    kind: str
    body: str
    client_msg_id: str
    created_at: datetime
    product: ProductCard | None = None


@dataclass(frozen=True)
class ProductCard:
    id: int
    sku: str
    name: str
    price_cents: int
    currency: str
    url: str
    image_url: str
    in_stock: bool


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    shopper_id: int
    label: str
    preview: str
    last_message_at: datetime
    unread: int
    on_site: bool
    current_url: str


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
    if shopper.name:
        return shopper.name
    if shopper.email:
        return shopper.email
    return f"Visitor {shopper.visitor_id[:6].upper()}"


def get_or_create_shopper(session: Session, visitor_id: str) -> Shopper:
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


def identify_customer(
    session: Session, shopper: Shopper, customer_id: str, name: str = "", email: str = ""
) -> Shopper:
    """Attach a verified store customer id (and name/email) to this visitor.
    When the customer is already known under another visitor, that shopper wins."""
    existing = session.exec(select(Shopper).where(Shopper.customer_id == customer_id)).first()
    target = existing or shopper
    target.customer_id = customer_id
    if name:
        target.name = name.strip()[:200]
    if email:
        target.email = email.strip()[:320]
    session.add(target)
    session.flush()
    return target


def open_conversation_for(session: Session, shopper_id: int) -> Conversation | None:
    return session.exec(
        select(Conversation)
        .where(Conversation.shopper_id == shopper_id, Conversation.status == "open")
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


def conversation_by_token(session: Session, token: str) -> Conversation | None:
    if not token or len(token) > 64:
        return None
    return session.exec(select(Conversation).where(Conversation.token == token)).first()


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
) -> tuple[Message, bool]:
    """Store a message once. A retry with the same client id returns the stored
    message and created=False."""
    check_client_id(client_msg_id)
    existing = session.exec(
        select(Message).where(
            Message.conversation_id == conversation.id, Message.client_msg_id == client_msg_id
        )
    ).first()
    if existing is not None:
        return existing, False
    kind = MessageKind.TEXT
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
    msg = Message(
        conversation_id=conversation.id,
        sender=sender,
        kind=kind,
        body=body,
        product_id=product_id,
        admin_id=admin_id,
        client_msg_id=client_msg_id,
    )
    try:
        # Added inside the savepoint (see get_or_create_shopper).
        with session.begin_nested():
            session.add(msg)
            session.flush()
    except IntegrityError:
        # A concurrent retry of the same send won the race: return its row.
        existing = session.exec(
            select(Message).where(
                Message.conversation_id == conversation.id, Message.client_msg_id == client_msg_id
            )
        ).one()
        return existing, False
    conversation.last_message_at = msg.created_at
    conversation.last_message_preview = " ".join(preview.split())[:PREVIEW_CHARS]
    if sender == Sender.ADMIN:
        conversation.admin_seen_message_id = max(conversation.admin_seen_message_id, msg.id)
    elif sender == Sender.SHOPPER:
        conversation.shopper_seen_message_id = max(conversation.shopper_seen_message_id, msg.id)
    session.add(conversation)
    return msg, True


def _card(product: Product | None) -> ProductCard | None:
    if product is None:
        return None
    return ProductCard(product.id, product.sku, product.name, product.price_cents, product.currency,
                       product.url, product.image_url, product.in_stock)


def list_messages(
    session: Session, conversation_id: int, after_id: int = 0, limit: int = 1000
) -> list[MessageView]:
    rows = session.exec(
        select(Message, Product)
        .join(Product, col(Product.id) == Message.product_id, isouter=True)
        .where(Message.conversation_id == conversation_id, Message.id > after_id)
        .order_by(col(Message.id).desc())
        .limit(limit)
    ).all()
    return [
        MessageView(m.id, m.conversation_id, m.sender, m.kind, m.body, m.client_msg_id, m.created_at,
                    _card(p))
        for m, p in reversed(rows)
    ]


def mark_seen(session: Session, conversation: Conversation, side: Sender, up_to_id: int | None = None) -> bool:
    """Record that `side` has seen the conversation up to a message id (default:
    the latest). Returns True if anything changed."""
    if up_to_id is None:
        up_to_id = session.exec(
            select(func.max(Message.id)).where(Message.conversation_id == conversation.id)
        ).one() or 0
    attr = "admin_seen_message_id" if side == Sender.ADMIN else "shopper_seen_message_id"
    if up_to_id <= getattr(conversation, attr):
        return False
    setattr(conversation, attr, up_to_id)
    session.add(conversation)
    return True


def latest_visit(session: Session, shopper_id: int) -> Visit | None:
    return session.exec(
        select(Visit).where(Visit.shopper_id == shopper_id).order_by(col(Visit.last_seen_at).desc())
    ).first()


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
    session: Session, *, window_seconds: int, now: datetime | None = None, limit: int = 200
) -> list[ConversationSummary]:
    """Open conversations, newest activity first, with unread counts and presence."""
    now = now or utcnow()
    convs = session.exec(
        select(Conversation, Shopper)
        .join(Shopper, col(Shopper.id) == Conversation.shopper_id)
        .where(Conversation.status == "open")
        .order_by(col(Conversation.last_message_at).desc())
        .limit(limit)
    ).all()
    if not convs:
        return []
    ids = [c.id for c, _ in convs]
    unread_rows = session.exec(
        select(Message.conversation_id, func.count())
        .join(Conversation, col(Conversation.id) == Message.conversation_id)
        .where(
            col(Message.conversation_id).in_(ids),
            Message.sender == Sender.SHOPPER,
            Message.id > Conversation.admin_seen_message_id,
        )
        .group_by(Message.conversation_id)
    ).all()
    unread = dict(unread_rows)
    shopper_ids = [s.id for _, s in convs]
    # Latest visit per shopper in one query.
    latest = (
        select(Visit.shopper_id, func.max(Visit.last_seen_at).label("seen"))
        .where(col(Visit.shopper_id).in_(shopper_ids))
        .group_by(Visit.shopper_id)
        .subquery()
    )
    visits = {
        v.shopper_id: v
        for v in session.exec(
            select(Visit).join(
                latest, (latest.c.shopper_id == Visit.shopper_id) & (latest.c.seen == Visit.last_seen_at)
            )
        ).all()
    }
    out = []
    for conv, shopper in convs:
        visit = visits.get(shopper.id)
        out.append(
            ConversationSummary(
                id=conv.id,
                shopper_id=shopper.id,
                label=shopper_label(shopper),
                preview=conv.last_message_preview,
                last_message_at=conv.last_message_at,
                unread=int(unread.get(conv.id, 0)),
                on_site=is_on_site(visit, now, window_seconds),
                current_url=visit.current_url if visit else "",
            )
        )
    return out


def shopper_message_count(session: Session, conversation_id: int) -> int:
    return int(session.exec(
        select(func.count()).where(
            Message.conversation_id == conversation_id, Message.sender == Sender.SHOPPER
        )
    ).one())
