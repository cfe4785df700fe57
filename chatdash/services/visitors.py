"""Live visitors: everyone on the store right now (from presence), with where
they are, how far they got this visit, their cart, and whether they chat."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chatdash.db import session_scope
from chatdash.models import Cart, Conversation, Shopper, StoreEvent, Visit, utcnow
from chatdash.services.conversations import CURRENT_STATUSES, is_on_site, shopper_label
from chatdash.services.devices import device_from_user_agent
from chatdash.services.insights import PAGE_KINDS
from chatdash.settings import get_settings

MAX_VISITORS = 500
Sort = Literal["recent", "cart"]
SORTS: tuple[Sort, ...] = ("recent", "cart")


@dataclass(frozen=True)
class VisitorRow:
    shopper_id: int
    label: str
    identified: bool  # a customer of the store (signed in), not an anonymous browser
    current_url: str
    current_title: str
    device: str
    pages: int  # pages looked at this visit
    cart_cents: int
    currency: str
    conversation_id: int  # their latest conversation (open, snoozed or resolved), 0 when none
    conversation_status: str  # its status ("open", "snoozed", "resolved"), "" when none
    started_at: datetime
    last_seen_at: datetime


def visitors_on_site(sort: Sort = "recent", *, limit: int = MAX_VISITORS, engine: Engine | None = None,
                     now: datetime | None = None) -> list[VisitorRow]:
    """Everyone on the store now: most recently active first, or biggest cart first."""
    now = now or utcnow()
    window = get_settings().presence_window_seconds
    with session_scope(engine) as session:
        visits = session.exec(
            select(Visit)
            .where(Visit.last_seen_at >= now - timedelta(seconds=window))
            .order_by(col(Visit.last_seen_at).desc())
        ).all()
        latest: dict[int, Visit] = {}
        for visit in visits:  # newest first: a shopper's first visit here is their current one
            if visit.shopper_id not in latest and is_on_site(visit, now, window):
                latest[visit.shopper_id] = visit
        rows = _rows(session, list(latest.values()))
    if sort == "cart":
        rows.sort(key=lambda r: (-r.cart_cents, -r.last_seen_at.timestamp(), r.shopper_id))
    return rows[:limit]


def visitor(shopper_id: int, *, engine: Engine | None = None, now: datetime | None = None) -> VisitorRow | None:
    """One shopper's row, or None when they are not on the store now."""
    now = now or utcnow()
    with session_scope(engine) as session:
        visit = session.exec(
            select(Visit).where(Visit.shopper_id == shopper_id).order_by(col(Visit.last_seen_at).desc())
        ).first()
        if not is_on_site(visit, now, get_settings().presence_window_seconds):
            return None
        rows = _rows(session, [visit])
    return rows[0] if rows else None


def visitor_with_conversation(conversation_id: int, *, engine: Engine | None = None,
                              now: datetime | None = None) -> VisitorRow | None:
    """The row of the shopper whose conversation this is, or None when they are not on the store now."""
    with session_scope(engine) as session:
        shopper_id = session.exec(select(Conversation.shopper_id).where(Conversation.id == conversation_id)).first()
    return None if shopper_id is None else visitor(shopper_id, engine=engine, now=now)


def _rows(session: Session, visits: list[Visit]) -> list[VisitorRow]:
    """Rows for these current visits (in their order), four queries for any number."""
    if not visits:
        return []
    shopper_ids = [v.shopper_id for v in visits]
    shoppers = {s.id: s for s in session.exec(select(Shopper).where(col(Shopper.id).in_(shopper_ids))).all()}
    carts = {
        sid: (total, currency)
        for sid, total, currency in session.exec(
            select(Cart.shopper_id, Cart.total_cents, Cart.currency).where(col(Cart.shopper_id).in_(shopper_ids))
        ).all()
    }
    # Each shopper's latest conversation whatever its status: a snoozed or
    # resolved chat is still theirs (their next message re-opens it).
    latest = (
        select(func.max(Conversation.id))
        .where(col(Conversation.shopper_id).in_(shopper_ids), col(Conversation.status).in_(CURRENT_STATUSES))
        .group_by(col(Conversation.shopper_id))
    )
    conversations = {
        shopper_id: (conv_id, str(status))
        for shopper_id, conv_id, status in session.exec(
            select(Conversation.shopper_id, Conversation.id, Conversation.status)
            .where(col(Conversation.id).in_(latest))
        ).all()
    }
    pages = dict(
        session.exec(
            select(StoreEvent.visit_id, func.count())
            .where(col(StoreEvent.visit_id).in_([v.id for v in visits]), col(StoreEvent.kind).in_(PAGE_KINDS))
            .group_by(col(StoreEvent.visit_id))
        ).all()
    )
    rows = []
    for v in visits:
        if v.shopper_id not in shoppers:
            continue
        shopper = shoppers[v.shopper_id]
        total, currency = carts.get(v.shopper_id, (0, "USD"))
        conversation_id, status = conversations.get(v.shopper_id, (0, ""))
        rows.append(VisitorRow(
            shopper_id=v.shopper_id,
            label=shopper_label(shopper),
            identified=bool(shopper.customer_id),
            current_url=v.current_url,
            current_title=v.current_title,
            device=device_from_user_agent(v.user_agent).label,
            pages=int(pages.get(v.id, 0)),
            cart_cents=int(total),
            currency=currency,
            conversation_id=int(conversation_id),
            conversation_status=status,
            started_at=v.started_at,
            last_seen_at=v.last_seen_at,
        ))
    return rows
