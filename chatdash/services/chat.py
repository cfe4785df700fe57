"""Chat use cases: each opens and commits its own transaction, enforces the
limits, and leaves the domain events (MessagePosted, MessagesSeen, …) to be
delivered after commit. States and routes call these and nothing lower."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from chatdash import events
from chatdash.db import session_scope, write_scope
from chatdash.events import ConversationSummary, MessageView
from chatdash.models import CardSource, Conversation, Sender, Status
from chatdash.services import admission, auto_assign, customers, followup, staff_emails
from chatdash.services import conversations as convs
from chatdash.services.conversations import ChatError
from chatdash.services.ratelimit import limiter
from chatdash.settings import get_settings

CARD_SOURCES = frozenset(s.value for s in CardSource)

# The widget shows the newest messages; older ones stay in the database.
HISTORY_LIMIT = 500

__all__ = ["AdminChat", "ChatError", "WidgetChat"]


def _send_limiter():
    return limiter("widget-send", 30, 60)


def _start_limiter():
    return limiter("widget-start", 5, 3600)


@dataclass(frozen=True)
class Customer:
    """A store customer whose id the store vouched for (HMAC already checked)."""

    customer_id: str
    name: str = ""
    email: str = ""


@dataclass(frozen=True)
class WidgetChat:
    """What a shopper's widget shows on opening."""

    shopper_id: int
    conversation_id: int  # 0: no conversation yet (the first message starts one)
    messages: list[MessageView]
    admin_seen_id: int
    followup: followup.WidgetFollowup = field(default_factory=followup.WidgetFollowup)


@dataclass(frozen=True)
class AdminChat:
    """What the admin's chat panel shows for one conversation."""

    conversation_id: int
    shopper_id: int
    messages: list[MessageView]
    shopper_seen_id: int


def open_widget(visitor_id: str, customer: Customer | None = None, *, engine: Engine | None = None,
                client: admission.Client | None = None, seen: bool = True) -> WidgetChat:
    """The shopper behind a verified visitor id, their open conversation and its
    history; what the shopper now sees is marked seen (not when `seen` is False:
    a collapsed widget shows nothing yet). A visitor new to us counts
    against `client`'s limits (ChatError when over them; nothing is stored)."""
    with write_scope(engine) as session:
        admission.admit_visitor(session, visitor_id, client)
        if customer is not None:
            shopper = customers.identify_customer(session, visitor_id, customer.customer_id,
                                                  name=customer.name, email=customer.email,
                                                  window_seconds=get_settings().presence_window_seconds)
        else:
            shopper = convs.get_or_create_shopper(session, visitor_id)
        conv = convs.open_conversation_for(session, shopper.id)
        if conv is None:
            return WidgetChat(shopper.id, 0, [], 0)
        messages = convs.list_messages(session, conv.id, limit=HISTORY_LIMIT)
        if seen:
            convs.mark_seen(session, conv, Sender.SHOPPER)
        return WidgetChat(shopper.id, conv.id, messages, conv.admin_seen_message_id,
                          followup.widget_view(conv, shopper))


def shopper_send(visitor_id: str, shopper_id: int, conversation_id: int, client_id: object, text: object,
                 *, engine: Engine | None = None, client: admission.Client | None = None,
                 origin: str = "") -> tuple[int, MessageView, bool]:
    """Store a shopper's message once (by its client id), starting their
    conversation if they have none. Returns (conversation id, message, created)."""
    settings = get_settings()
    if not isinstance(client_id, str) or not isinstance(text, str):
        raise ChatError("Malformed message.")
    convs.check_client_id(client_id)
    convs.clean_text(text, settings.message_max_chars)
    with write_scope(engine) as session:
        # The browser may have identified as a customer since this widget opened.
        shopper_id = convs.get_or_create_shopper(session, visitor_id).id
        conv = _shoppers_conversation(session, shopper_id, conversation_id)
        came_back = conv is None or conv.status != Status.OPEN  # new, or re-opened / woken by this message
        if conv is None:
            if not _start_limiter().hit(visitor_id):
                raise ChatError("Too many new conversations. Try again later.")
            admission.admit_new_conversation(client)
            conv, _created = convs.start_conversation(session, shopper_id)
        first_message = conv.last_shopper_message_id == 0
        message, created = convs.post_message(
            session, conv, Sender.SHOPPER, client_id, text, max_chars=settings.message_max_chars,
            window_seconds=settings.presence_window_seconds, origin=origin,
        )
        if created:
            assignee_id = auto_assign.assign_if_due(session, conv, came_back=came_back,
                                                    window_seconds=settings.presence_window_seconds)
            if assignee_id is not None:
                # post_message queued the staff emails while nobody had the
                # conversation: the message that brought it is news to its new
                # assignee too (in this transaction: committed with it or not at all).
                staff_emails.queue_assigned_message(session, assignee_id, message.id, first_message=first_message)
        # Counted only once stored: a resend of a stored message is no new
        # message. A refusal rolls the insert back with the transaction.
        if created and not _send_limiter().hit(visitor_id):
            raise ChatError("You are sending messages too quickly. Wait a minute and try again.")
        return conv.id, message, created


def _shoppers_conversation(session, shopper_id: int, conversation_id: int) -> Conversation | None:
    """The shopper's own open conversation: never one named by the client alone."""
    if conversation_id:
        conv = session.get(Conversation, conversation_id)
        if conv is not None and conv.shopper_id == shopper_id and conv.status in convs.CURRENT_STATUSES:
            return conv
    return convs.open_conversation_for(session, shopper_id)


def _continued(session, conv: Conversation | None) -> Conversation | None:
    """A conversation merged into an identified customer's goes on there: an
    admin who had it open replies where the customer reads (nothing is lost)."""
    if conv is not None and conv.status == customers.MERGED:
        return convs.open_conversation_for(session, conv.shopper_id) or conv
    return conv


def admin_send(admin_id: int, conversation_id: int, client_id: str, text: str = "", *,
               product_id: int | None = None, source: str | None = None,
               engine: Engine | None = None) -> tuple[MessageView, bool]:
    """Store an admin's reply or product card once (by its client id). A card
    records `source`, where the admin found it (a CardSource), for attribution."""
    settings = get_settings()
    if source is not None and source not in CARD_SOURCES:
        raise ChatError("Unknown product source.")
    with write_scope(engine) as session:
        conv = _continued(session, session.get(Conversation, conversation_id))
        if conv is None:
            raise ChatError("That conversation no longer exists.")
        message, created = convs.post_message(
            session, conv, Sender.ADMIN, client_id, text, product_id=product_id, admin_id=admin_id,
            max_chars=settings.message_max_chars, window_seconds=settings.presence_window_seconds,
            card_source=source,
        )
        if created:
            # A shopper who left the site and gave an email gets it by email too.
            followup.schedule_reply_email(session, conv.id)
        return message, created


def mark_seen(conversation_id: int, side: Sender, up_to_id: int | None = None, *,
              engine: Engine | None = None) -> bool:
    with write_scope(engine) as session:
        conv = session.get(Conversation, conversation_id)
        return conv is not None and convs.mark_seen(session, conv, side, up_to_id)


def open_for_admin(conversation_id: int, *, engine: Engine | None = None) -> AdminChat | None:
    """One conversation's history for the admin's chat panel, marked seen."""
    with write_scope(engine) as session:
        conv = _continued(session, session.get(Conversation, conversation_id))
        if conv is None:
            return None
        messages = convs.list_messages(session, conv.id, limit=HISTORY_LIMIT, include_notes=True)
        convs.mark_seen(session, conv, Sender.ADMIN)
        return AdminChat(conv.id, conv.shopper_id, messages, conv.shopper_seen_message_id)


def messages_after(conversation_id: int, after_id: int, *, engine: Engine | None = None) -> list[MessageView]:
    with session_scope(engine) as session:
        return convs.list_messages(session, conversation_id, after_id=after_id, limit=HISTORY_LIMIT)


def inbox(limit: int = 200, *, engine: Engine | None = None) -> list[ConversationSummary]:
    """The inbox rows: open conversations, newest activity first."""
    with session_scope(engine) as session:
        return convs.list_conversations(session, window_seconds=get_settings().presence_window_seconds,
                                        limit=limit)


def unseen_count(*, engine: Engine | None = None) -> int:
    with session_scope(engine) as session:
        return convs.unseen_conversation_count(session)


# One typing signal per conversation and side within this window reaches the
# screens (the pages send one per 2.5 s; a client calling the handler directly
# gets no more through, and with several workers every signal is relayed).
TYPING_WINDOW_SECONDS = 2.0


def _typing_limiter():
    return limiter("typing", 1, TYPING_WINDOW_SECONDS)


async def typing(conversation_id: int, side: Sender, *, agent_id: int = 0, agent_name: str = "") -> None:
    """Someone is typing (for an agent, which one): nothing stored, screens told
    now, at most once per typist and window (shared by every worker when
    REDIS_URL is set). Awaited on the event loop."""
    if conversation_id and await _typing_limiter().hit_async(f"{conversation_id}:{side}:{agent_id}"):
        events.emit(events.Typing(conversation_id, str(side), agent_id, agent_name))
