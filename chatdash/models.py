"""SQLModel tables: the single source of truth.

Money is stored as integer cents. Times are timezone-aware UTC datetimes
(`utcnow()`); SQLModel's UTCDateTime refuses naive ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Column, Index, LargeBinary, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventKind(StrEnum):
    PAGE_VIEW = "page_view"
    PRODUCT_VIEW = "product_view"
    CART = "cart"
    ORDER = "order"


class Sender(StrEnum):
    SHOPPER = "shopper"
    ADMIN = "admin"
    SYSTEM = "system"
    # A private note between agents: stored with the messages, never shown to the shopper.
    NOTE = "note"


class Role(StrEnum):
    OWNER = "owner"  # settings and the team, and everything an agent does
    AGENT = "agent"  # conversations


class Status(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    # Out of the open lists until `Conversation.snoozed_until` (or the shopper writes).
    SNOOZED = "snoozed"


class MessageKind(StrEnum):
    TEXT = "text"
    PRODUCT = "product"


class Product(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    sku: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=200, index=True)
    category: str = Field(max_length=100, index=True)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    price_cents: int = Field(ge=0)
    currency: str = Field(default="USD", max_length=3)
    url: str = Field(max_length=500)
    image_url: str = Field(default="", max_length=500)
    in_stock: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class Shopper(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    visitor_id: str = Field(max_length=64, unique=True, index=True)
    customer_id: str | None = Field(default=None, max_length=128, unique=True, index=True)
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow, index=True)
    # Set when this browser identified as a store customer known under another
    # shopper: its visits, events, cart and chat moved there, and every later
    # request naming this visitor id is that customer's (services/customers.py).
    merged_into_id: int | None = Field(default=None, index=True)
    # The shopper followed an email's unsubscribe link: no more follow-up emails
    # (cleared when they give an email in the widget again).
    followup_unsubscribed_at: datetime | None = None


class Visit(SQLModel, table=True):
    """One browsing session of a shopper on the store."""

    __table_args__ = (
        Index("ix_visit_shopper_started", "shopper_id", "started_at"),
        Index("ix_visit_shopper_seen", "shopper_id", "last_seen_at"),  # each shopper's latest visit
    )

    id: int | None = Field(default=None, primary_key=True)
    shopper_id: int = Field(foreign_key="shopper.id", ondelete="CASCADE")
    user_agent: str = Field(default="", max_length=512)
    device: str = Field(default="desktop", max_length=16)
    browser: str = Field(default="", max_length=64)
    os: str = Field(default="", max_length=64)
    started_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow, index=True)
    current_url: str = Field(default="", max_length=2000)
    current_title: str = Field(default="", max_length=300)
    # Set when the page was closed (beacon); cleared when the shopper returns.
    left_at: datetime | None = None
    # The browser's visitor id while this is its current visit, NULL once a
    # later visit replaced it. Unique: one browser can never have two current
    # visits, however its heartbeats and page views race (presence.touch_visit).
    open_for: str | None = Field(default=None, max_length=64, unique=True, index=True)


class StoreEvent(SQLModel, table=True):
    """Something the store reported: page view, product view, cart change, order."""

    __table_args__ = (
        UniqueConstraint("shopper_id", "event_id", name="uq_storeevent_shopper_event"),
        Index("ix_storeevent_shopper_time", "shopper_id", "occurred_at"),
        Index("ix_storeevent_kind_product", "kind", "product_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=64)
    shopper_id: int = Field(foreign_key="shopper.id", ondelete="CASCADE")
    visit_id: int | None = Field(default=None, foreign_key="visit.id", index=True, ondelete="SET NULL")
    kind: str = Field(max_length=16)
    url: str = Field(default="", max_length=2000)
    title: str = Field(default="", max_length=300)
    referrer: str = Field(default="", max_length=2000)
    product_id: int | None = Field(default=None, foreign_key="product.id", ondelete="SET NULL")
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    occurred_at: datetime = Field(default_factory=utcnow)
    received_at: datetime = Field(default_factory=utcnow)


class Cart(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    shopper_id: int = Field(foreign_key="shopper.id", unique=True, ondelete="CASCADE")
    total_cents: int = 0
    currency: str = Field(default="USD", max_length=3)
    updated_at: datetime = Field(default_factory=utcnow)


class CartLine(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("cart_id", "product_id"),)

    id: int | None = Field(default=None, primary_key=True)
    cart_id: int = Field(foreign_key="cart.id", index=True, ondelete="CASCADE")
    product_id: int = Field(foreign_key="product.id", ondelete="CASCADE")
    quantity: int = Field(ge=1)
    unit_price_cents: int = Field(ge=0)


class Order(SQLModel, table=True):
    __tablename__ = "orders"  # "order" is an SQL keyword
    __table_args__ = (Index("ix_orders_shopper_time", "shopper_id", "ordered_at"),)

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=128, unique=True, index=True)
    shopper_id: int = Field(foreign_key="shopper.id", ondelete="CASCADE")
    total_cents: int = Field(ge=0)
    currency: str = Field(default="USD", max_length=3)
    ordered_at: datetime = Field(default_factory=utcnow, index=True)
    source: str = Field(default="import", max_length=16)


class OrderLine(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("order_id", "product_id"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True, ondelete="CASCADE")
    product_id: int = Field(foreign_key="product.id", index=True, ondelete="CASCADE")
    quantity: int = Field(ge=1)
    unit_price_cents: int = Field(ge=0)


class Conversation(SQLModel, table=True):
    __table_args__ = (
        Index("ix_conversation_status_last", "status", "last_message_at"),
        Index("ix_conversation_assignee_status", "assignee_id", "status", "last_message_at"),
        # Offline follow-up: the sweeps that ask for an email and send replies by email.
        Index("ix_conversation_awaiting_reply", "awaiting_reply_since"),
        Index("ix_conversation_followup_due", "followup_due_at"),
        # The leader's wake-up job: snoozed conversations whose time has come.
        Index("ix_conversation_status_snoozed", "status", "snoozed_until"),
        # The bell: open conversations with shopper messages no admin has seen.
        Index("ix_conversation_unseen", "status",
              sqlite_where=text("last_shopper_message_id > admin_seen_message_id"),
              postgresql_where=text("last_shopper_message_id > admin_seen_message_id")),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Unguessable: the shopper's widget reaches the conversation only through it.
    token: str = Field(max_length=64, unique=True, index=True)
    shopper_id: int = Field(foreign_key="shopper.id", index=True, ondelete="CASCADE")
    status: str = Field(default="open", max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    last_message_at: datetime = Field(default_factory=utcnow)
    last_message_preview: str = Field(default="", max_length=200)
    # Highest message id each side has seen: drives unread counts and read marks.
    admin_seen_message_id: int = 0
    shopper_seen_message_id: int = 0
    # The shopper's latest message: the bell counts conversations where it is
    # past admin_seen_message_id without reading the messages.
    last_shopper_message_id: int = 0
    # The agent looking after it (None: unassigned).
    assignee_id: int | None = Field(default=None, foreign_key="adminuser.id", ondelete="SET NULL")
    # Offline follow-up (services/followup.py). The shopper's first message
    # since the last agent reply (None: answered); when the widget asked for
    # an email, and when the shopper dismissed that.
    awaiting_reply_since: datetime | None = None
    email_asked_at: datetime | None = None
    email_ask_dismissed_at: datetime | None = None
    # Replies waiting for one coalesced email (claimed atomically by the sender),
    # the last email sent, and the newest reply it held.
    followup_due_at: datetime | None = None
    followup_sent_at: datetime | None = None
    followup_sent_message_id: int = 0

    # An agent started the chat (services/proactive.py): the latest message
    # that should open the shopper's widget by itself, and the latest one a
    # store page has already opened it for (each opens it once).
    proactive_message_id: int = 0
    proactive_shown_id: int = 0
    # When a snoozed conversation comes back to the open lists (status "snoozed").
    snoozed_until: datetime | None = None


class CardSource(StrEnum):
    """Where the admin found the product they sent into the chat (attribution)."""

    SEARCH = "search"
    RECOMMENDED = "recommended"  # the shopper's personal recommendations
    BOUGHT_ALSO = "bought_also"  # related: people who bought this also bought
    SAME_ORDER = "same_order"  # related: frequently bought in the same order
    VIEWED_TOGETHER = "viewed_together"  # related: frequently viewed together


class Message(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("conversation_id", "client_msg_id", name="uq_message_client_id"),
        Index("ix_message_conversation_id", "conversation_id", "id"),
        # Product cards only (a few per conversation), covering what attribution
        # reads of them: one card per (conversation, product), in index order.
        Index("ix_message_product_card", "conversation_id", "product_id", "created_at", "clicked_at",
              sqlite_where=text("kind = 'product'"), postgresql_where=text("kind = 'product'")),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", ondelete="CASCADE")
    sender: str = Field(max_length=16)
    kind: str = Field(default=MessageKind.TEXT, max_length=16)
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    product_id: int | None = Field(default=None, foreign_key="product.id", ondelete="SET NULL")
    admin_id: int | None = Field(default=None, foreign_key="adminuser.id", ondelete="SET NULL")
    # Client-generated id: a retried send is stored once.
    client_msg_id: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    # A product card's source (CardSource; None for cards sent before it was recorded)
    # and the first time the shopper clicked it in the widget (services/attribution.py).
    card_source: str | None = Field(default=None, max_length=16)
    clicked_at: datetime | None = None


class AdminUser(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)
    name: str = Field(default="", max_length=200)
    # "" until an invited agent sets a password (no password matches it).
    password_hash: str = Field(max_length=255)
    role: str = Field(default=Role.AGENT, max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None
    # This member's own notification choices (Settings → My notifications).
    notify_sound: bool = True
    notify_new_conversation: bool = False
    notify_assigned_message: bool = False
    # Last sign of life from their conversations page (renewed while it is open):
    # "online" for auto-assign (services/auto_assign.py). None: offline.
    online_at: datetime | None = None


class AdminInvite(SQLModel, table=True):
    """A one-time link that lets a staff member set their password (an invite,
    or a reset the owner asked for). Only the token's hash is stored."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    admin_id: int = Field(foreign_key="adminuser.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class ConversationViewer(SQLModel, table=True):
    """An agent with a conversation open (renewed while the tab stays open)."""

    conversation_id: int = Field(foreign_key="conversation.id", primary_key=True, ondelete="CASCADE")
    admin_id: int = Field(foreign_key="adminuser.id", primary_key=True, ondelete="CASCADE")
    seen_at: datetime = Field(default_factory=utcnow)


class AdminSession(SQLModel, table=True):
    """A logged-in admin browser. Only the token's hash is stored."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    admin_id: int = Field(foreign_key="adminuser.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    # Last use (updated at most once a minute): unused for admin_idle_hours, it ends.
    last_seen_at: datetime | None = None


class Setting(SQLModel, table=True):
    """Store-wide settings edited in the admin (JSON values)."""

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(default="null", sa_column=Column(Text, nullable=False, default="null"))
    updated_at: datetime = Field(default_factory=utcnow)


class ModelArtifact(SQLModel, table=True):
    """A trained recommender version, packed (a gzipped tar of its directory).
    Every worker loads the newest from here into its own model directory, so
    workers need no shared disk."""

    __tablename__ = "model_artifact"

    version: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(index=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # The version's manifest.json (when, on how much, with what, how well), so the
    # model card reads it without unpacking `data` (None: published before 0008).
    manifest: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TrainingRun(SQLModel, table=True):
    """One training of the recommender the staff can watch (Retrain, the
    schedule). At most one row is `running`, across every worker: the partial
    unique index is the claim; a runner renews `heartbeat_at` while it lives."""

    __tablename__ = "training_run"
    __table_args__ = (
        Index("ux_training_run_running", "status", unique=True,
              sqlite_where=text("status = 'running'"), postgresql_where=text("status = 'running'")),
    )

    id: int | None = Field(default=None, primary_key=True)
    trigger: str = Field(max_length=16)  # "manual" (Retrain) or "schedule"
    requested_by: str = Field(default="", max_length=320)
    status: str = Field(default=RunStatus.RUNNING, max_length=16)
    started_at: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    # Progress as the training reports it: the step, its count, the whole run's percent.
    step: str = Field(default="", max_length=32)
    step_done: int = 0
    step_total: int = 0
    percent: int = 0
    error: str = Field(default="", max_length=1000)
    version: str = Field(default="", max_length=64)


class SavedReply(SQLModel, table=True):
    """A canned answer in the team's library: `/shortcut` in the reply box
    offers it; `{first_name}` becomes the shopper's first name."""

    id: int | None = Field(default=None, primary_key=True)
    shortcut: str = Field(max_length=40, unique=True, index=True)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class FollowupLink(SQLModel, table=True):
    """The link in a follow-up email that opens the shopper's conversation in
    the standalone chat page: only the token's hash is stored; it expires and
    is revoked when the shopper's email address changes."""

    __tablename__ = "followup_link"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    shopper_id: int = Field(foreign_key="shopper.id", index=True, ondelete="CASCADE")
    conversation_id: int = Field(foreign_key="conversation.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class StaffEmailItem(SQLModel, table=True):
    """A shopper's message waiting for a staff email (services/staff_emails.py):
    the first of a new conversation (channel "new") or one in a conversation
    assigned to a member who chose those emails ("assigned:<admin id>").
    Written in the transaction that stored the message, so a worker dying
    after that commit loses nothing; deleted once an email listed it."""

    __tablename__ = "staff_email_item"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32, index=True)
    message_id: int = Field(foreign_key="message.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)


class StaffEmailWindow(SQLModel, table=True):
    """One channel's coalescing window: when its last email went, and which
    sender holds the next (`claim`, until `claimed_until`: a sender that died
    mid-send is replaced once that passes)."""

    __tablename__ = "staff_email_window"

    channel: str = Field(primary_key=True, max_length=32)
    last_sent_at: datetime | None = None
    claim: str | None = Field(default=None, max_length=32)
    claimed_until: datetime | None = None
