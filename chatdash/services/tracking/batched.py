"""Many shoppers' tracking batches stored in one PostgreSQL transaction, with
set-based statements: what `track_events` does for one batch, done for a
whole flush of the ingestion queue (`tracking.ingest`) at once.

One flush holds at most one batch per shopper (the queue sees to it), so each
batch sees the database as `track_events` would. The statements, whatever the
flush's size: shoppers (one select, one insert of the new), stored event ids,
latest visits, catalog, the event rows (one multi-row insert that skips ids
already stored - a concurrent retry's rows count as duplicates, as before),
new and touched visits, carts and their lines, open conversations. The domain
events (`PresenceChanged`, `ShopperActivity`) are recorded on the session and
delivered after the commit, like every other write's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ARRAY, Integer, String, any_, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, col

from chatdash import events as domain
from chatdash.models import Cart, CartLine, Conversation, Product, Shopper, StoreEvent, Visit, utcnow
from chatdash.services import presence
from chatdash.services.conversations import is_on_site
from chatdash.services.devices import device_from_user_agent
from chatdash.services.tracking.schema import CartEvent, PageViewEvent, ProductViewEvent
from chatdash.services.tracking.storage import (
    FUTURE_SKEW,
    TrackResult,
    _CatalogItem,
    _merge_lines,
    _payload,
    _product_id,
    clamp_time,
)


@dataclass(frozen=True)
class Batch:
    visitor_id: str
    events: Sequence[Any]
    user_agent: str = ""


@dataclass
class _VisitRow:
    """A visit as this flush sees it (from the database, or new)."""

    id: int | None
    shopper_id: int
    user_agent: str
    device: str
    started_at: datetime
    last_seen_at: datetime
    current_url: str
    current_title: str
    left_at: datetime | None
    browser: str = ""
    os: str = ""


def _ints(values: list[int]):
    """One array parameter (`= ANY(...)`), not one parameter per value: a flush's
    lists run to thousands, and expanding them cost more than the query."""
    return bindparam(None, values, type_=ARRAY(Integer))


def _strs(values: list[str]):
    return bindparam(None, values, type_=ARRAY(String))


def _shoppers(session: Session, visitor_ids: list[str], now: datetime) -> dict[str, int]:
    def known() -> dict[str, int]:
        rows = session.execute(
            select(Shopper.visitor_id, Shopper.id).where(col(Shopper.visitor_id) == any_(_strs(visitor_ids)))
        )
        return dict(rows.all())

    found = known()
    missing = [v for v in visitor_ids if v not in found]
    if missing:
        session.connection().execute(
            pg_insert(Shopper.__table__).on_conflict_do_nothing(index_elements=["visitor_id"]),
            [{"visitor_id": v, "created_at": now, "last_seen_at": now} for v in missing],
        )
        found = known()
    return found


def _latest_visits(session: Session, shopper_ids: list[int]) -> dict[int, _VisitRow]:
    rows = session.execute(
        select(
            Visit.id,
            Visit.shopper_id,
            Visit.user_agent,
            Visit.device,
            Visit.started_at,
            Visit.last_seen_at,
            Visit.current_url,
            Visit.current_title,
            Visit.left_at,
        )
        .where(col(Visit.shopper_id) == any_(_ints(shopper_ids)))
        .order_by(col(Visit.shopper_id), col(Visit.last_seen_at).desc())
        .ext(distinct_on(col(Visit.shopper_id)))
    ).all()
    return {r.shopper_id: _VisitRow(*r) for r in rows}


def _open_conversations(session: Session, shopper_ids: list[int]) -> dict[int, int]:
    rows = session.execute(
        select(Conversation.shopper_id, Conversation.id)
        .where(col(Conversation.shopper_id) == any_(_ints(shopper_ids)), Conversation.status == "open")
        .order_by(col(Conversation.shopper_id), col(Conversation.id).desc())
        .ext(distinct_on(col(Conversation.shopper_id)))
    ).all()
    return dict(rows)


def store_batches(
    session: Session, batches: Sequence[Batch], *, window_seconds: int, now: datetime | None = None
) -> list[TrackResult]:
    """Store every batch (one per visitor) in the session's transaction, each
    once per event id, and apply them as `track_events` would."""
    if len({b.visitor_id for b in batches}) != len(batches):
        raise ValueError("one batch per visitor in a flush")
    now = now or utcnow()
    shopper_of = _shoppers(session, sorted({b.visitor_id for b in batches}), now)
    sids = [shopper_of[b.visitor_id] for b in batches]

    # Each batch's events, once per id, minus the ids already stored.
    uniques: list[dict[str, Any]] = []
    for b in batches:
        unique: dict[str, Any] = {}
        for event in b.events:
            unique.setdefault(event.id, event)
        uniques.append(unique)
    all_ids = sorted({eid for u in uniques for eid in u})
    stored = set(
        session.execute(
            select(StoreEvent.shopper_id, StoreEvent.event_id).where(
                col(StoreEvent.shopper_id) == any_(_ints(sids)), col(StoreEvent.event_id) == any_(_strs(all_ids))
            )
        ).all()
    )
    fresh = [[e for e in u.values() if (sid, e.id) not in stored] for u, sid in zip(uniques, sids, strict=True)]
    times = [{e.id: clamp_time(e.at, now) for e in f} for f in fresh]

    latest = _latest_visits(session, sids)
    window = timedelta(seconds=window_seconds)
    visits: list[_VisitRow | None] = []
    changes: list[tuple[bool, bool]] = []  # (touched, presence changed)
    new_visits: list[_VisitRow] = []
    touched_visits: list[_VisitRow] = []
    for b, sid, f, t in zip(batches, sids, fresh, times, strict=True):
        pages = [e for e in f if isinstance(e, PageViewEvent) and t[e.id] >= now - window]
        visit = latest.get(sid)
        if not pages:
            visits.append(visit if f else None)
            changes.append((False, False))
            continue
        page = max(reversed(pages), key=lambda e, t=t: t[e.id])  # ties: the later in the batch
        happened_at = t[page.id]
        was = is_on_site(visit, now, window_seconds)
        if (
            visit is not None
            and visit.left_at is not None
            and happened_at <= visit.left_at
            and visit.left_at >= visit.last_seen_at
        ):
            visits.append(visit)  # an event from before the page closed: no sign of life
            changes.append((False, False))
            continue
        if visit is None or now - visit.last_seen_at > presence.VISIT_TIMEOUT:
            info = device_from_user_agent(b.user_agent)
            visit = _VisitRow(
                None, sid, b.user_agent[:512], info.device, now, now, "", "", None, info.browser[:64], info.os[:64]
            )
            new_visits.append(visit)
        else:
            touched_visits.append(visit)
        url = page.page_url
        page_changed = bool(url) and url[:2000] != visit.current_url
        visit.last_seen_at, visit.left_at = now, None
        if url:
            visit.current_url, visit.current_title = url[:2000], page.page_title[:300]
        visits.append(visit)
        changes.append((True, not was or page_changed))

    if new_visits:
        ids = (
            session.connection()
            .execute(
                insert(Visit.__table__).returning(Visit.__table__.c.id, sort_by_parameter_order=True),
                [
                    {
                        "shopper_id": v.shopper_id,
                        "user_agent": v.user_agent,
                        "device": v.device,
                        "browser": v.browser,
                        "os": v.os,
                        "started_at": v.started_at,
                        "last_seen_at": v.last_seen_at,
                        "current_url": v.current_url,
                        "current_title": v.current_title,
                        "left_at": None,
                    }
                    for v in new_visits
                ],
            )
            .scalars()
            .all()
        )
        for v, vid in zip(new_visits, ids, strict=True):
            v.id = vid
    if touched_visits:
        session.connection().execute(
            update(Visit.__table__)
            .where(Visit.__table__.c.id == bindparam("vid"))
            .values(
                last_seen_at=bindparam("seen"),
                left_at=None,
                current_url=bindparam("url"),
                current_title=bindparam("title"),
            ),
            [
                {"vid": v.id, "seen": v.last_seen_at, "url": v.current_url, "title": v.current_title}
                for v in sorted(touched_visits, key=lambda v: v.id)
            ],
        )
    touched_shoppers = sorted({sid for sid, (touched, _) in zip(sids, changes, strict=True) if touched})
    if touched_shoppers:
        session.execute(
            update(Shopper).where(col(Shopper.id) == any_(_ints(touched_shoppers))).values(last_seen_at=now)
        )

    # One catalog look-up for the flush: viewed products and the latest carts' lines.
    carts = []
    for f, t in zip(fresh, times, strict=True):
        cart_events = [e for e in f if isinstance(e, CartEvent)]
        carts.append(max(reversed(cart_events), key=lambda e, t=t: t[e.id]) if cart_events else None)
    skus = {e.data.sku for f in fresh for e in f if isinstance(e, ProductViewEvent)}
    skus |= {li.sku for c in carts if c is not None for li in c.data.items}
    catalog = (
        {
            sku: _CatalogItem(pid, price, currency)
            for sku, pid, price, currency in session.execute(
                select(Product.sku, Product.id, Product.price_cents, Product.currency).where(
                    col(Product.sku) == any_(_strs(sorted(skus)))
                )
            ).all()
        }
        if skus
        else {}
    )

    rows = []
    for sid, f, t, visit in zip(sids, fresh, times, visits, strict=True):
        for event in f:
            at = t[event.id]
            in_visit = visit is not None and (
                min(visit.started_at, now) - FUTURE_SKEW <= at <= visit.last_seen_at + presence.VISIT_TIMEOUT
            )
            is_page = isinstance(event, PageViewEvent)
            rows.append(
                {
                    "event_id": event.id,
                    "shopper_id": sid,
                    "visit_id": visit.id if in_visit else None,
                    "kind": event.kind,
                    "url": event.page_url if is_page else event.url,
                    "title": event.page_title if is_page else event.title,
                    "referrer": event.page_referrer if is_page else event.referrer,
                    "product_id": _product_id(catalog, event.data.sku) if isinstance(event, ProductViewEvent) else None,
                    "payload": json.dumps(_payload(event), separators=(",", ":"), ensure_ascii=False),
                    "occurred_at": at,
                    "received_at": now,
                }
            )
    inserted = _insert_events(session, rows)

    _replace_carts(
        session,
        [
            (sid, cart, t[cart.id])
            for sid, cart, t in zip(sids, carts, times, strict=True)
            if cart is not None and (sid, cart.id) in inserted
        ],
        catalog,
        now,
    )

    conversations = _open_conversations(session, sids)
    results = []
    for b, sid, u, visit, (_touched, changed) in zip(batches, sids, uniques, visits, changes, strict=True):
        accepted = sum(1 for eid in u if (sid, eid) in inserted)
        conversation_id = conversations.get(sid)
        if changed:
            domain.record(
                session,
                domain.PresenceChanged(
                    shopper_id=sid,
                    on_site=True,
                    current_url=visit.current_url,
                    current_title=visit.current_title,
                    device=device_from_user_agent(visit.user_agent).label,
                ),
            )
        if accepted:  # every shopper: the Visitors page follows those who do not chat too
            domain.record(session, domain.ShopperActivity(sid, conversation_id or 0))
        results.append(
            TrackResult(
                accepted=accepted,
                duplicates=len(b.events) - accepted,
                shopper_id=sid,
                conversation_id=conversation_id,
                presence_changed=changed,
            )
        )
    return results


_EVENT_COLUMNS = (
    "event_id",
    "shopper_id",
    "visit_id",
    "kind",
    "url",
    "title",
    "referrer",
    "product_id",
    "payload",
    "occurred_at",
    "received_at",
)


def _insert_events(session: Session, rows: list[dict[str, Any]]) -> set[tuple[int, str]]:
    """COPY the rows into a temporary table, then move them over in one
    statement that skips ids already stored; returns (shopper id, event id) of
    the rows inserted. A concurrent retry that stored the same ids first wins:
    they count as duplicates. (A multi-row VALUES insert spent most of the
    flush compiling thousands of bind parameters.)"""
    if not rows:
        return set()
    cols = ", ".join(_EVENT_COLUMNS)
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS ingest_event ON COMMIT DELETE ROWS "
            f"AS SELECT {cols} FROM storeevent WITH NO DATA"
        )
        with cur.copy(f"COPY ingest_event ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(tuple(row[c] for c in _EVENT_COLUMNS))
        cur.execute(
            f"INSERT INTO storeevent ({cols}) SELECT {cols} FROM ingest_event "
            "ON CONFLICT ON CONSTRAINT uq_storeevent_shopper_event DO NOTHING RETURNING shopper_id, event_id"
        )
        inserted = {(sid, eid) for sid, eid in cur.fetchall()}
        cur.execute("TRUNCATE ingest_event")  # the next flush of this transaction starts empty
    return inserted


def _replace_carts(session: Session, changes: list[tuple[int, CartEvent, datetime]], catalog, now: datetime) -> None:
    """`replace_cart` (a browser's cart, at catalog prices) for many shoppers at once."""
    if not changes:
        return
    sids = sorted(sid for sid, _, _ in changes)
    session.connection().execute(
        pg_insert(Cart.__table__).on_conflict_do_nothing(index_elements=["shopper_id"]),
        [
            {"shopper_id": sid, "currency": cart.data.currency, "total_cents": 0, "updated_at": min(at, now)}
            for sid, cart, at in sorted(changes, key=lambda c: c[0])
        ],
    )
    existing = {
        r.shopper_id: r
        for r in session.execute(
            select(Cart.id, Cart.shopper_id, Cart.updated_at)
            .where(col(Cart.shopper_id) == any_(_ints(sids)))
            .order_by(col(Cart.shopper_id))
            .with_for_update()
        ).all()
    }
    lines, totals = [], []
    for sid, cart, at in changes:
        row = existing[sid]
        if row.updated_at > at:
            continue  # a late retry of an older cart
        merged, _ignored = _merge_lines(
            session, cart.data.items, cart.data.currency, trust_prices=False, catalog=catalog
        )
        lines.extend(
            {"cart_id": row.id, "product_id": pid, "quantity": qty, "unit_price_cents": price}
            for pid, (qty, price) in merged.items()
        )
        totals.append(
            {
                "cid": row.id,
                "total": sum(q * p for q, p in merged.values()),
                "currency": cart.data.currency,
                "at": min(at, now),
            }
        )
    if not totals:
        return
    session.execute(delete(CartLine).where(col(CartLine.cart_id) == any_(_ints([t["cid"] for t in totals]))))
    if lines:
        session.connection().execute(insert(CartLine.__table__), lines)
    session.connection().execute(
        update(Cart.__table__)
        .where(Cart.__table__.c.id == bindparam("cid"))
        .values(total_cents=bindparam("total"), currency=bindparam("currency"), updated_at=bindparam("at")),
        totals,
    )
