"""Identified store customers: one shopper per customer, on every device.

A browser starts anonymous (its own Shopper row, keyed by its visitor id).
When the store vouches for a customer (HMAC checked by the caller), the browser
speaks for that customer's shopper from then on:

- a customer new to us: the browser's own shopper becomes the customer;
- a customer already known (another device, imported orders): the browser's
  anonymous shopper is merged into the customer's. Its visits (the live one
  included), store events, orders, cart and conversation move there, and its
  row stays behind only to point at the customer (``merged_into_id``), so every
  later heartbeat, page view or chat message of that browser is the customer's;
- a browser that spoke for another customer (a shared computer, a new login)
  is pointed at the new customer and takes nothing of the previous one along.
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chatdash import events
from chatdash.db import write_scope
from chatdash.models import Cart, CartLine, Conversation, Message, Order, Shopper, StoreEvent, Visit
from chatdash.services import conversations as convs
from chatdash.settings import get_settings

MERGED = "merged"  # the status of a conversation whose messages moved into the customer's


def identify_customer(session: Session, visitor_id: str, customer_id: str, name: str = "",
                      email: str = "", *, window_seconds: int = 60) -> Shopper:
    """The customer's shopper, with this browser joined to it (see the module docstring)."""
    # The page's identify call and the chat's own race when a customer logs in:
    # the browser's row, locked (PostgreSQL) and re-read, lets one merge and
    # shows the other that it is done.
    row = session.exec(
        select(Shopper).where(Shopper.id == convs.visitor_row(session, visitor_id).id).with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    current = session.get(Shopper, row.merged_into_id) if row.merged_into_id else row
    current = current or row
    customer = session.exec(select(Shopper).where(Shopper.customer_id == customer_id)).first()
    if customer is None and current.customer_id is None:
        customer = current
        customer.customer_id = customer_id
    elif customer is None:
        customer = Shopper(visitor_id=_backend_visitor_id(), customer_id=customer_id)
        session.add(customer)
        session.flush()
    # Named first: the inbox row a merge announces shows the name.
    if name:
        customer.name = name.strip()[:200]
    if email:
        customer.email = email.strip()[:320]
    if customer.id != current.id:
        if current.customer_id is None:
            _merge(session, current, customer, window_seconds)
        if row.customer_id is not None:
            # This browser's own row is another customer's: that customer keeps
            # the row (under an id no browser holds) and the browser gets a new one.
            row.visitor_id = _backend_visitor_id()
            session.add(row)
            session.flush()
            row = Shopper(visitor_id=visitor_id)
        row.merged_into_id = customer.id
        session.add(row)
    session.add(customer)
    session.flush()
    return customer


def _backend_visitor_id() -> str:
    """A visitor id no browser holds a token for (the row is reached by customer id)."""
    return f"cust_{secrets.token_urlsafe(18)}"


def _merge(session: Session, source: Shopper, target: Shopper, window_seconds: int) -> None:
    """Move everything of the anonymous `source` to the customer `target`."""
    session.flush()
    session.execute(update(Visit).where(col(Visit.shopper_id) == source.id).values(shopper_id=target.id))
    session.execute(update(Order).where(col(Order.shopper_id) == source.id).values(shopper_id=target.id))
    # A (shopper, event id) pair is stored once: an event both already have stays the target's.
    known = select(StoreEvent.event_id).where(StoreEvent.shopper_id == target.id)
    session.execute(update(StoreEvent).where(col(StoreEvent.shopper_id) == source.id,
                                             col(StoreEvent.event_id).not_in(known))
                    .values(shopper_id=target.id), execution_options={"synchronize_session": False})
    session.execute(delete(StoreEvent).where(col(StoreEvent.shopper_id) == source.id))
    _merge_carts(session, source.id, target.id)
    closed, kept = _merge_conversations(session, source.id, target.id)
    source.merged_into_id = target.id
    session.add(source)
    session.flush()
    summary = convs.list_conversations(session, window_seconds=window_seconds, ids=[kept]) if kept else []
    events.record(session, events.ShopperMerged(
        shopper_id=source.id, into_shopper_id=target.id, closed_conversation_id=closed,
        conversation=summary[0] if summary else None,
    ))


def _merge_carts(session: Session, source_id: int, target_id: int) -> None:
    """The cart changed last is the live one: it stays, the other goes."""
    carts = {c.shopper_id: c for c in session.exec(
        select(Cart).where(col(Cart.shopper_id).in_([source_id, target_id])))}
    source, target = carts.get(source_id), carts.get(target_id)
    if source is None:
        return
    drop = source if target is not None and target.updated_at > source.updated_at else target
    if drop is not None:
        session.execute(delete(CartLine).where(col(CartLine.cart_id) == drop.id))
        session.execute(delete(Cart).where(col(Cart.id) == drop.id))
        session.expunge(drop)
    if drop is not source:
        session.execute(update(Cart).where(col(Cart.id) == source.id).values(shopper_id=target_id))


def _merge_conversations(session: Session, source_id: int, target_id: int) -> tuple[int, int]:
    """Both shoppers' conversations become the target's. When both have an open
    one, the source's messages join the target's (the customer's one thread on
    every device) and the source's is marked merged. Returns (the conversation
    closed or 0, the open one the customer now has or 0)."""
    source = convs.open_conversation_for(session, source_id)
    target = convs.open_conversation_for(session, target_id)
    closed = 0
    if source is not None and target is not None:
        session.execute(update(Message).where(col(Message.conversation_id) == source.id)
                        .values(conversation_id=target.id))
        last = session.exec(select(Message).where(Message.conversation_id == target.id)
                            .order_by(col(Message.id).desc())).first()
        if last is not None:
            preview = f"Product: {last.body}" if last.product_id is not None else last.body
            target.last_message_at = last.created_at
            target.last_message_preview = " ".join(preview.split())[:convs.PREVIEW_CHARS]
        target.last_shopper_message_id = max(target.last_shopper_message_id, source.last_shopper_message_id)
        # Seen marks are "up to a message id": the lower one hides nothing unread.
        if source.last_shopper_message_id:
            target.admin_seen_message_id = min(target.admin_seen_message_id, source.admin_seen_message_id)
        target.shopper_seen_message_id = min(target.shopper_seen_message_id, source.shopper_seen_message_id)
        # An agent's opening message to the anonymous browser still opens the customer's widget once.
        if source.proactive_message_id > target.proactive_message_id:
            target.proactive_message_id = source.proactive_message_id
            target.proactive_shown_id = source.proactive_shown_id
        source.status = MERGED
        session.add_all([source, target])
        session.flush()
        closed = source.id
    session.execute(update(Conversation).where(col(Conversation.shopper_id) == source_id)
                    .values(shopper_id=target_id))
    kept = target or source
    return closed, kept.id if kept is not None else 0


def identify(visitor_id: str, customer_id: str, name: str = "", email: str = "", *,
             engine: Engine | None = None) -> int:
    """Use case: the store page says this browser is a logged-in customer (the
    HMAC already checked). Returns the customer's shopper id."""
    with write_scope(engine) as session:
        return identify_customer(session, visitor_id, customer_id, name, email,
                                 window_seconds=get_settings().presence_window_seconds).id
