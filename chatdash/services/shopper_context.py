"""Everything the admin's shopper panel shows about one shopper, read in one
go: who they are, where they are now, recommendations, current session and
history. Read off the event loop, once per change, shared by every screen."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from chatdash.db import session_scope
from chatdash.models import Product, Shopper
from chatdash.services import conversations as convs
from chatdash.services import insights, recommender
from chatdash.services.devices import device_from_user_agent
from chatdash.settings import get_settings

RECOMMENDATIONS = 6


@dataclass(frozen=True)
class Presence:
    on_site: bool
    current_url: str
    current_title: str
    device: str


@dataclass(frozen=True)
class ShopperContext:
    shopper_id: int
    label: str
    email: str
    customer_id: str
    presence: Presence
    recommendations: list[tuple[Product, str]]  # (product, reason)
    session: insights.SessionSummary | None
    history: insights.ShopperHistory


def presence_of(session, shopper_id: int) -> Presence:
    now, window = convs.utcnow(), get_settings().presence_window_seconds
    visit = convs.live_visit(session, shopper_id, now, window)
    return Presence(
        on_site=convs.is_on_site(visit, now, window),
        current_url=visit.current_url if visit else "",
        current_title=visit.current_title if visit else "",
        device=device_from_user_agent(visit.user_agent).label if visit else "",
    )


def shopper_context(shopper_id: int, *, engine: Engine | None = None) -> ShopperContext | None:
    with session_scope(engine) as session:
        shopper = session.get(Shopper, shopper_id)
        if shopper is None:
            return None
        recs = recommender.recommend_for(session, shopper.id, n=RECOMMENDATIONS)
        found = products_by_id(session, [r.product_id for r in recs])
        summary = insights.current_session(session, shopper.id,
                                           window_seconds=get_settings().presence_window_seconds)
        history = insights.shopper_history(session, shopper.id, summary.visit_id if summary else None)
        return ShopperContext(
            shopper_id=shopper.id,
            label=convs.shopper_label(shopper),
            email=shopper.email or "",
            customer_id=shopper.customer_id or "",
            presence=presence_of(session, shopper.id),
            recommendations=[(found[r.product_id], r.reason) for r in recs if r.product_id in found],
            session=summary,
            history=history,
        )


def products_by_id(session, ids: list[int]) -> dict[int, Product]:
    if not ids:
        return {}
    return {p.id: p for p in session.exec(select(Product).where(col(Product.id).in_(ids))).all()}
