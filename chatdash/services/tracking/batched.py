"""Many shoppers' tracking batches stored in one PostgreSQL transaction, with
set-based statements: what `track_events` does for one batch, done for a
whole flush of the ingestion queue (`tracking.ingest`) at once.

One flush holds at most one batch per browser (the queue sees to it). Two
browsers may speak for one customer (`Shopper.merged_into_id`), so the flush
is stored in rounds: batches of one round touch no shopper in common, and a
batch comes in a later round than every earlier batch it shares a shopper with
(nearly always a single round). Each batch thus sees the database as
`track_events` would, storing the flush batch by batch in order.

A round's statements, whatever its size: stored event ids, the shoppers'
latest and live visits, catalog, the event rows (COPY, then one insert that
skips ids already stored - a concurrent retry's rows count as duplicates, as
before), closed, new and touched visits, carts and their lines, open
conversations. Visits follow presence.py's rules, with its helpers: one current
visit per browser (`Visit.open_for`, inserted ON CONFLICT DO NOTHING), a
replaced visit closed only if it is still the browser's current one. The
domain events (`PresenceChanged`, `ShopperActivity`) are recorded on the
session, in the flush's order, and delivered after the commit like every
other write's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import any_, bindparam, delete, select, text, update
from sqlalchemy import event as sa_event
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from chatdash import events as domain
from chatdash.models import Cart, CartLine, Conversation, Product, Shopper, StoreEvent, Visit, utcnow
from chatdash.services import presence
from chatdash.services.conversations import is_on_site
from chatdash.services.tracking.schema import CartEvent, PageViewEvent, ProductViewEvent
from chatdash.services.tracking.storage import (
    FUTURE_SKEW,
    TrackResult,
    _CatalogItem,
    _merge_lines,
    clamp_time,
    event_row,
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
    started_at: datetime
    last_seen_at: datetime
    current_url: str
    current_title: str
    left_at: datetime | None
    open_for: str | None


_VISIT = Visit.__table__
_VISIT_COLUMNS = [_VISIT.c[f.name] for f in fields(_VisitRow)]


# An array parameter (`= ANY(...)`), not one parameter per value: a flush's
# lists run to thousands, and expanding them cost more than the query. Sent as
# one untyped text in PostgreSQL's array syntax, which the server reads once as
# an array of the column's type: the driver's list adapter dumps element by
# element in Python, which cost more than the query too. (Not a CAST in the
# SQL: in a prepared statement's generic plan PostgreSQL re-parsed a cast
# array for every row it scanned.)
_BARE = re.compile(r"[A-Za-z0-9_.:/-]+(?:,[A-Za-z0-9_.:/-]+)*")


def _ints(values: list[int]) -> str:
    return "{" + ",".join(map(str, map(int, values))) + "}"


def _strs(values: list[str]) -> str:
    joined = ",".join(values)
    if not (_BARE.fullmatch(joined) and ",NULL," not in f",{joined.upper()},"):
        # Quoted: commas, quotes, braces, spaces, the empty string or NULL inside.
        joined = ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + joined + "}"


def _times(values: list[datetime]) -> str:
    return _strs([v.isoformat() for v in values])


def _unnest(**columns: str) -> str:
    """`unnest(CAST(:a AS t1[]), ...) AS t(a, ...)` for a FROM clause: each
    array parameter read once, a row per position (parallel `_ints`/`_strs`
    texts). One statement for a whole flush where `executemany` ran one
    statement per row, each paying the driver's and the server's per-statement
    cost."""
    casts = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in columns.items())
    return f"unnest({casts}) AS t({', '.join(columns)})"


def _any_int(name: str):
    """`= ANY(:name)`, :name an `_ints` text (no type: the server infers the column's array type)."""
    return any_(bindparam(name))


def _any_str(name: str):
    """`= ANY(:name)`, :name a `_strs` text."""
    return any_(bindparam(name))


# The flush's statements, built once: making a statement object (and its cache
# key) on every flush cost more CPU than running it.
_OWN = Shopper.__table__
_KNOWN_SHOPPERS = text(
    f"SELECT own.visitor_id, coalesce(into_.id, own.id) FROM {_unnest(visitors='varchar')} "
    f"JOIN {_OWN.name} AS own ON own.visitor_id = t.visitors "
    f"LEFT OUTER JOIN {_OWN.name} AS into_ ON into_.id = own.merged_into_id"
)
_NEW_SHOPPERS = pg_insert(_OWN).on_conflict_do_nothing(index_elements=["visitor_id"])
_CURRENT_VISITS = select(*_VISIT_COLUMNS).where(_VISIT.c.open_for == _any_str("visitors"))
_LATEST_VISITS = (
    select(*_VISIT_COLUMNS)
    .where(_VISIT.c.shopper_id == _any_int("sids"))
    .order_by(_VISIT.c.shopper_id, _VISIT.c.last_seen_at.desc(), _VISIT.c.id.desc())
    .ext(distinct_on(_VISIT.c.shopper_id))
)
_RECENT_CURRENT_VISITS = (
    select(*_VISIT_COLUMNS)
    .where(
        _VISIT.c.shopper_id == _any_int("sids"),
        _VISIT.c.open_for.is_not(None),
        _VISIT.c.last_seen_at >= bindparam("since"),
    )
    .order_by(_VISIT.c.last_seen_at.asc(), _VISIT.c.id.asc())
)
_CONVERSATION = Conversation.__table__
_OPEN_CONVERSATIONS = (
    select(_CONVERSATION.c.shopper_id, _CONVERSATION.c.id)
    .where(_CONVERSATION.c.shopper_id == _any_int("sids"), _CONVERSATION.c.status == "open")
    .order_by(_CONVERSATION.c.shopper_id, _CONVERSATION.c.id.desc())
    .ext(distinct_on(_CONVERSATION.c.shopper_id))
)
_EVENT = StoreEvent.__table__
# The (shopper, event id) pairs already stored: one probe of the unique index
# per pair (LATERAL ... LIMIT 1 keeps it a probe: as a join, PostgreSQL hashed
# the pairs and scanned the whole event table). `shopper_id = ANY(...) AND
# event_id = ANY(...)` scanned every stored event of the flush's shoppers
# against the whole id list: 7 ms a flush once shoppers had a hundred events.
_STORED_IDS = text(
    f"SELECT t.sid, t.eid FROM {_unnest(sid='integer', eid='varchar')} "
    f"CROSS JOIN LATERAL (SELECT 1 FROM {_EVENT.name} AS e "
    "WHERE e.shopper_id = t.sid AND e.event_id = t.eid LIMIT 1) AS stored"
)
_CLOSE_VISITS = (
    update(_VISIT)
    .where(_VISIT.c.id == bindparam("vid"), _VISIT.c.open_for == bindparam("visitor"))
    .values(open_for=None)
)
_SHOPPERS_SEEN = update(_OWN).where(_OWN.c.id == _any_int("sids")).values(last_seen_at=bindparam("now"))
_TOUCH_VISITS = text(
    f"UPDATE {_VISIT.name} AS v SET last_seen_at = t.seen, left_at = NULL, current_url = t.url, "
    f"current_title = t.title FROM {_unnest(vid='integer', seen='timestamptz', url='varchar', title='varchar')} "
    "WHERE v.id = t.vid"
)
_PRODUCT = Product.__table__
_CATALOG = text(
    f"SELECT p.sku, p.id, p.price_cents, p.currency FROM {_unnest(skus='varchar')} "
    f"JOIN {_PRODUCT.name} AS p ON p.sku = t.skus"
)
_CART = Cart.__table__
_NEW_CARTS = text(
    f"INSERT INTO {_CART.name} (shopper_id, currency, total_cents, updated_at) "
    f"SELECT sid, currency, 0, at FROM {_unnest(sid='integer', currency='varchar', at='timestamptz')} "
    "ORDER BY sid ON CONFLICT (shopper_id) DO NOTHING"
)
_LOCK_CARTS = (
    select(_CART.c.id, _CART.c.shopper_id, _CART.c.updated_at)
    .where(_CART.c.shopper_id == _any_int("sids"))
    .order_by(_CART.c.shopper_id)
    .with_for_update()
)
_CLEAR_CART_LINES = delete(CartLine.__table__).where(CartLine.__table__.c.cart_id == _any_int("cids"))
_NEW_CART_LINES = text(
    f"INSERT INTO {CartLine.__table__.name} (cart_id, product_id, quantity, unit_price_cents) "
    f"SELECT * FROM {_unnest(cid='integer', pid='integer', qty='integer', price='integer')}"
)
_CART_TOTALS = text(
    f"UPDATE {_CART.name} AS c SET total_cents = t.total, currency = t.currency, updated_at = t.at "
    f"FROM {_unnest(cid='integer', total='integer', currency='varchar', at='timestamptz')} WHERE c.id = t.cid"
)


def _run(session: Session, statement, params=None):
    """Core, on the flush's connection: no ORM session work per statement."""
    return session.connection().execute(statement, params)


def _visit_rows(session: Session, statement, **params) -> list[_VisitRow]:
    return [_VisitRow(*r) for r in _run(session, statement, params).all()]


def _shoppers(session: Session, visitor_ids: list[str]) -> dict[str, int]:
    """The shopper each browser speaks for (`get_or_create_shopper`): its own
    row, created when new, or the customer it was merged into."""
    def known() -> dict[str, int]:
        return dict(_run(session, _KNOWN_SHOPPERS, {"visitors": _strs(visitor_ids)}).all())

    found = known()
    missing = [v for v in visitor_ids if v not in found]
    if missing:
        created = utcnow()  # like a row `get_or_create_shopper` creates
        rows = [{"visitor_id": v, "created_at": created, "last_seen_at": created} for v in missing]
        _run(session, _NEW_SHOPPERS, rows)
        found = known()
    return found


def _current_visits(session: Session, visitor_ids: list[str]) -> dict[str, _VisitRow]:
    """Each browser's current visit (`presence.current_visit`), whoever's it is."""
    return {v.open_for: v for v in _visit_rows(session, _CURRENT_VISITS, visitors=_strs(visitor_ids))}


def _latest_visits(session: Session, shopper_ids: list[int]) -> dict[int, _VisitRow]:
    """Each shopper's latest visit (`latest_visit`)."""
    return {v.shopper_id: v for v in _visit_rows(session, _LATEST_VISITS, sids=_ints(shopper_ids))}


def _live_visits(session: Session, shopper_ids: list[int], now: datetime, window_seconds: int) -> dict[int, _VisitRow]:
    """Each shopper's live visit (`live_visit`): the latest seen of the browsers'
    current visits that is on site, else the latest visit."""
    live = _latest_visits(session, shopper_ids)
    recent = _visit_rows(
        session, _RECENT_CURRENT_VISITS, sids=_ints(shopper_ids), since=now - timedelta(seconds=window_seconds)
    )
    for v in recent:  # oldest first: the latest on site is the one left
        if is_on_site(v, now, window_seconds):
            live[v.shopper_id] = v
    return live


def _open_conversations(session: Session, shopper_ids: list[int]) -> dict[int, int]:
    return dict(_run(session, _OPEN_CONVERSATIONS, {"sids": _ints(shopper_ids)}).all())


def _rounds(batches: Sequence[Batch], shopper_of: dict[str, int], current: dict[str, _VisitRow]) -> list[list[int]]:
    """The flush's batches (their indexes) in rounds. A batch touches its
    shopper and the shopper its browser's current visit belongs to (it may
    close that visit); it goes one round after the last earlier batch that
    touches one of them."""
    rounds: list[list[int]] = []
    last: dict[int, int] = {}  # shopper id -> the last round touching it
    for i, b in enumerate(batches):
        touched = {shopper_of[b.visitor_id]}
        if b.visitor_id in current:
            touched.add(current[b.visitor_id].shopper_id)
        r = max((last[s] + 1 for s in touched if s in last), default=0)
        if r == len(rounds):
            rounds.append([])
        rounds[r].append(i)
        last.update(dict.fromkeys(touched, r))
    return rounds


def store_batches(
    session: Session, batches: Sequence[Batch], *, window_seconds: int, now: datetime | None = None
) -> list[TrackResult]:
    """Store every batch (one per browser) in the session's transaction, each
    once per event id, and apply them as `track_events` would, one after the other."""
    if len({b.visitor_id for b in batches}) != len(batches):
        raise ValueError("one batch per visitor in a flush")
    now = now or utcnow()
    visitor_ids = sorted({b.visitor_id for b in batches})
    shopper_of = _shoppers(session, visitor_ids)
    # Only the browser's own batch changes its current visit: read once for every round.
    current = _current_visits(session, visitor_ids)
    results: list[TrackResult | None] = [None] * len(batches)
    heard: list[list[domain.DomainEvent]] = [[] for _ in batches]
    for indexes in _rounds(batches, shopper_of, current):
        stored = _store_round(
            session, [batches[i] for i in indexes], shopper_of, current, window_seconds=window_seconds, now=now
        )
        for i, (result, said) in zip(indexes, stored, strict=True):
            results[i], heard[i] = result, said
    for said in heard:
        for event in said:
            domain.record(session, event)
    return results  # type: ignore[return-value]


def _store_round(
    session: Session,
    batches: list[Batch],
    shopper_of: dict[str, int],
    current: dict[str, _VisitRow],
    *,
    window_seconds: int,
    now: datetime,
) -> list[tuple[TrackResult, list[domain.DomainEvent]]]:
    """Batches of distinct shoppers, stored at once."""
    sids = [shopper_of[b.visitor_id] for b in batches]

    # Each batch's events, once per id, minus the ids already stored.
    uniques: list[dict[str, Any]] = []
    for b in batches:
        unique: dict[str, Any] = {}
        for event in b.events:
            unique.setdefault(event.id, event)
        uniques.append(unique)
    pair_sids = [sid for u, sid in zip(uniques, sids, strict=True) for _ in u]
    pair_ids = [eid for u in uniques for eid in u]
    stored = set(_run(session, _STORED_IDS, {"sid": _ints(pair_sids), "eid": _strs(pair_ids)}).all())
    fresh = [[e for e in u.values() if (sid, e.id) not in stored] for u, sid in zip(uniques, sids, strict=True)]
    times = [{e.id: clamp_time(e.at, now) for e in f} for f in fresh]

    # Only a page view from the last presence window says where the shopper is now.
    window = timedelta(seconds=window_seconds)
    pages = []
    for f, t in zip(fresh, times, strict=True):
        recent = [e for e in f if isinstance(e, PageViewEvent) and t[e.id] >= now - window]
        pages.append(max(reversed(recent), key=lambda e, t=t: t[e.id]) if recent else None)  # ties: the later
    with_page = sorted({sid for sid, page in zip(sids, pages, strict=True) if page is not None})
    live = _live_visits(session, with_page, now, window_seconds) if with_page else {}
    latest = _latest_visits(session, sids) if any(f for f, p in zip(fresh, pages, strict=True) if p is None) else {}

    visits: list[_VisitRow | None] = []
    touches: list[tuple[int, _VisitRow, bool]] = []  # (batch, visit touched, was on site)
    closing: list[dict[str, Any]] = []
    new: list[tuple[_VisitRow, dict[str, Any]]] = []
    for i, (b, sid, f, t, page) in enumerate(zip(batches, sids, fresh, times, pages, strict=True)):
        mine = current.get(b.visitor_id)
        # The browser's current visit may be another shopper's (it now speaks for another customer).
        visit = mine if mine is not None and mine.shopper_id == sid else None
        if page is None:
            visits.append((visit or latest.get(sid)) if f else None)
            continue
        if presence.is_late_signal(visit, t[page.id]):
            visits.append(visit)  # an event from before the page closed: no sign of life
            continue
        if presence.needs_new_visit(visit, now):
            if mine is not None:
                closing.append({"vid": mine.id, "visitor": b.visitor_id})
            values = presence.new_visit_values(sid, b.visitor_id, b.user_agent, now)
            visit = _VisitRow(None, **{k: values[k] for k in _VisitRow.__dataclass_fields__ if k != "id"})
            new.append((visit, values))
        visits.append(visit)
        touches.append((i, visit, is_on_site(live.get(sid), now, window_seconds)))

    # The browsers' next visits, in place of the stale ones they saw (closed only if still current).
    if closing:
        _run(session, _CLOSE_VISITS, closing)
    page_changed: dict[int, bool] = {}
    for i, visit, _was in touches:  # a new visit goes in with its page already
        page = pages[i]
        page_changed[i] = presence.show_page(visit, now, page.page_url, page.page_title)
    touched = [v for _i, v, _was in touches if v.id is not None]
    if new:
        rows = [{**values, "current_url": v.current_url, "current_title": v.current_title} for v, values in new]
        result = session.connection().execute(presence.insert_visit_once("postgresql"), rows)
        inserted = {open_for: vid for vid, open_for in result.all()}
        lost = [v.open_for for v, _ in new if v.open_for not in inserted]
        # A racing request inserted the browser's visit first: go on with its row.
        winners = {v.open_for: v for v in _visit_rows(session, _CURRENT_VISITS, visitors=_strs(lost))} if lost else {}
        for k, (i, visit, was) in enumerate(touches):
            if visit.id is not None:
                continue
            if visit.open_for in inserted:
                visit.id = inserted[visit.open_for]
                continue
            visit = winners[visit.open_for]
            page_changed[i] = presence.show_page(visit, now, pages[i].page_url, pages[i].page_title)
            touches[k] = (i, visit, was)
            visits[i] = visit
            touched.append(visit)
    # Shoppers before visits, in the order an ORM flush takes them (`touch_visit`):
    # a heartbeat of the same browser takes the same locks in the same order.
    touched_shoppers = sorted({sids[i] for i, _v, _was in touches})
    if touched_shoppers:
        _run(session, _SHOPPERS_SEEN, {"sids": _ints(touched_shoppers), "now": now})
    if touched:
        touched.sort(key=lambda v: v.id)
        _run(
            session,
            _TOUCH_VISITS,
            {
                "vid": _ints([v.id for v in touched]),
                "seen": _times([v.last_seen_at for v in touched]),
                "url": _strs([v.current_url for v in touched]),
                "title": _strs([v.current_title for v in touched]),
            },
        )

    # One catalog look-up for the round: viewed products and the latest carts' lines.
    carts = []
    for f, t in zip(fresh, times, strict=True):
        cart_events = [e for e in f if isinstance(e, CartEvent)]
        carts.append(max(reversed(cart_events), key=lambda e, t=t: t[e.id]) if cart_events else None)
    skus = {e.data.sku for f in fresh for e in f if isinstance(e, ProductViewEvent)}
    skus |= {li.sku for c in carts if c is not None for li in c.data.items}
    catalog = (
        {
            sku: _CatalogItem(pid, price, currency)
            for sku, pid, price, currency in _run(session, _CATALOG, {"skus": _strs(sorted(skus))}).all()
        }
        if skus
        else {}
    )

    rows = []
    for sid, f, t, visit in zip(sids, fresh, times, visits, strict=True):
        for event in f:
            at = t[event.id]
            # An event belongs to the visit it happened in; not to one that ended long before.
            in_visit = visit is not None and (
                min(visit.started_at, now) - FUTURE_SKEW <= at <= visit.last_seen_at + presence.VISIT_TIMEOUT
            )
            rows.append(event_row(event, sid, visit.id if in_visit else None, catalog, at, now))
    inserted_events = _insert_events(session, rows)

    _replace_carts(
        session,
        [
            (sid, cart, t[cart.id])
            for sid, cart, t in zip(sids, carts, times, strict=True)
            if cart is not None and (sid, cart.id) in inserted_events
        ],
        catalog,
        now,
    )

    conversations = _open_conversations(session, sids)
    changes = {i: presence.PresenceChange(sids[i], visit.id, was, True, page_changed[i]) for i, visit, was in touches}
    out = []
    for i, (b, sid, u, visit) in enumerate(zip(batches, sids, uniques, visits, strict=True)):
        accepted = sum(1 for eid in u if (sid, eid) in inserted_events)
        conversation_id = conversations.get(sid)
        changed = i in changes and changes[i].changed
        said: list[domain.DomainEvent] = []
        if changed:  # arrived, or another page
            said.append(presence.presence_event(sid, True, visit))
        if accepted:  # every shopper: the Visitors page follows those who do not chat too
            said.append(domain.ShopperActivity(sid, conversation_id or 0))
        result = TrackResult(
            accepted=accepted,
            duplicates=len(b.events) - accepted,
            shopper_id=sid,
            conversation_id=conversation_id,
            presence_changed=changed,
        )
        out.append((result, said))
    return out


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


_TEMP_READY = "chatdash.ingest_event"  # connection.info: this connection has the temporary table
_TEMP_MADE = "chatdash.ingest_event_made"  # session.info: this transaction made it (the connection's info)


@sa_event.listens_for(OrmSession, "after_commit")
def _temp_table_committed(session: OrmSession) -> None:
    info = session.info.pop(_TEMP_MADE, None)
    if info is not None:
        info[_TEMP_READY] = True  # a rolled back CREATE made nothing: it is made again next time


@sa_event.listens_for(OrmSession, "after_transaction_end")
def _temp_table_transaction_end(session: OrmSession, transaction) -> None:
    if transaction.parent is None and not transaction.nested:
        session.info.pop(_TEMP_MADE, None)


def _insert_events(session: Session, rows: list[dict[str, Any]]) -> set[tuple[int, str]]:
    """COPY the rows into a temporary table, then move them over in one
    statement that skips ids already stored; returns (shopper id, event id) of
    the rows inserted. A concurrent retry that stored the same ids first wins:
    they count as duplicates. (A multi-row VALUES insert spent most of the
    flush compiling thousands of bind parameters.) The table is made once per
    connection. It is emptied right after use although ON COMMIT DELETE ROWS
    would empty it: leaving that to the commit cost PostgreSQL's backend about
    25 us more CPU per event (one A/B of bench_tracking.py --stages, loaded box)."""
    if not rows:
        return set()
    cols = ", ".join(_EVENT_COLUMNS)
    connection = session.connection()
    raw = connection.connection.driver_connection
    with raw.cursor() as cur:
        info = connection.connection.info
        if not info.get(_TEMP_READY):
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS ingest_event ON COMMIT DELETE ROWS "
                f"AS SELECT {cols} FROM storeevent WITH NO DATA"
            )
            session.info[_TEMP_MADE] = info  # it lasts as long as the connection once this commits
        with cur.copy(f"COPY ingest_event ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in _EVENT_COLUMNS])
        cur.execute(
            f"INSERT INTO storeevent ({cols}) SELECT {cols} FROM ingest_event "
            "ON CONFLICT ON CONSTRAINT uq_storeevent_shopper_event DO NOTHING RETURNING shopper_id, event_id"
        )
        inserted = set(cur.fetchall())
        cur.execute("TRUNCATE ingest_event")  # the next round of this flush starts empty too
    return inserted


def _replace_carts(session: Session, changes: list[tuple[int, CartEvent, datetime]], catalog, now: datetime) -> None:
    """`replace_cart` (a browser's cart, at catalog prices) for many shoppers at once."""
    if not changes:
        return
    sids = sorted(sid for sid, _, _ in changes)
    _run(
        session,
        _NEW_CARTS,
        {
            "sid": _ints([sid for sid, _, _ in changes]),
            "currency": _strs([cart.data.currency for _, cart, _ in changes]),
            "at": _times([min(at, now) for _, _, at in changes]),
        },
    )
    existing = {
        r.shopper_id: r
        for r in _run(session, _LOCK_CARTS, {"sids": _ints(sids)}).all()
    }
    lines, totals = [], []
    for sid, cart, at in changes:
        row = existing[sid]
        if row.updated_at > at:
            continue  # a late retry of an older cart
        merged, _ignored = _merge_lines(
            session, cart.data.items, cart.data.currency, trust_prices=False, catalog=catalog
        )
        lines.extend((row.id, pid, qty, price) for pid, (qty, price) in merged.items())
        totals.append((row.id, sum(q * p for q, p in merged.values()), cart.data.currency, min(at, now)))
    if not totals:
        return
    cids, sums, currencies, ats = zip(*totals, strict=True)
    _run(session, _CLEAR_CART_LINES, {"cids": _ints(cids)})
    if lines:
        lcids, pids, qtys, prices = zip(*lines, strict=True)
        _run(session, _NEW_CART_LINES,
             {"cid": _ints(lcids), "pid": _ints(pids), "qty": _ints(qtys), "price": _ints(prices)})
    _run(session, _CART_TOTALS,
         {"cid": _ints(cids), "total": _ints(sums), "currency": _strs(currencies), "at": _times(ats)})
