"""Store activity use cases: a browser's tracking batch, a store backend's
order or cart. Each stores its input in one transaction and records
`ShopperActivity` so the admin's panel and the Visitors page follow (presence
changes are recorded by the presence service itself)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Engine

from chatdash import events
from chatdash.db import write_scope
from chatdash.services import conversations as convs
from chatdash.services import tracking
from chatdash.settings import get_settings


def _activity(session, shopper_id: int | None, conversation_id: int | None) -> None:
    if shopper_id:
        events.record(session, events.ShopperActivity(shopper_id, conversation_id or 0))


def store_batch(visitor_id: str, batch: Sequence, user_agent: str, *,
                engine: Engine | None = None) -> tracking.TrackResult:
    with write_scope(engine) as session:
        shopper = convs.get_or_create_shopper(session, visitor_id)
        result = tracking.track_events(session, shopper, batch, user_agent=user_agent,
                                       window_seconds=get_settings().presence_window_seconds,
                                       visitor_id=visitor_id)
        if result.accepted:
            _activity(session, result.shopper_id, result.conversation_id)
        return result


def store_order(order: tracking.ServerOrder, visitor_id: str | None, *,
                engine: Engine | None = None) -> tracking.OrderResult:
    with write_scope(engine) as session:
        result = tracking.record_order(session, order, visitor_id=visitor_id)
        if result.created:
            _activity(session, result.shopper_id, result.conversation_id)
        return result


def store_cart(cart: tracking.ServerCart, visitor_id: str | None, *,
               engine: Engine | None = None) -> tracking.ServerCartResult:
    with write_scope(engine) as session:
        result = tracking.record_cart(session, cart, visitor_id=visitor_id)
        _activity(session, result.shopper_id, result.conversation_id)
        return result
