"""Presence: the store page's heartbeat keeps a visit alive; a closed page or a
silent one (older than the presence window) means the shopper left the site."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import bindparam, func, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from chatdash import events
from chatdash.db import session_scope, write_scope
from chatdash.models import Shopper, Visit, utcnow
from chatdash.services.conversations import get_or_create_shopper, is_on_site, latest_visits, live_visit
from chatdash.services.devices import device_from_user_agent
from chatdash.settings import get_settings

# A visit idle longer than this starts a new browsing session.
VISIT_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class PresenceChange:
    shopper_id: int
    visit_id: int
    was_on_site: bool
    on_site: bool
    page_changed: bool

    @property
    def changed(self) -> bool:
        return self.was_on_site != self.on_site or self.page_changed


def current_visit(session: Session, visitor_id: str, shopper_id: int | None = None) -> Visit | None:
    """The browser's current visit (maybe timed out), if it belongs to this shopper."""
    visit = session.exec(select(Visit).where(Visit.open_for == visitor_id)).first()
    if visit is None or (shopper_id is not None and visit.shopper_id != shopper_id):
        return None
    return visit


def _open_visit(session: Session, shopper: Shopper, visitor_id: str, user_agent: str, now: datetime,
                replacing: Visit | None) -> Visit:
    """Start the browser's next visit, in place of the one it had (timed out, or
    another shopper's). The unique `open_for` makes it the browser's one current
    visit: a request racing this one closes nothing more (only the visit it saw,
    if still current), inserts nothing (ON CONFLICT DO NOTHING) and goes on with
    the row the winner inserted."""
    if replacing is not None:
        session.execute(update(Visit).where(col(Visit.id) == replacing.id, col(Visit.open_for) == visitor_id)
                        .values(open_for=None))
    visit_id = session.execute(insert_visit_once(session.get_bind().dialect.name),
                               new_visit_values(shopper.id, visitor_id, user_agent, now)).scalar()
    if visit_id is not None:
        return session.get(Visit, visit_id)
    return session.exec(select(Visit).where(Visit.open_for == visitor_id)).one()


def new_visit_values(shopper_id: int, visitor_id: str, user_agent: str, now: datetime) -> dict:
    """The row of a browser's new current visit (`insert_visit_once`)."""
    info = device_from_user_agent(user_agent)
    return dict(
        shopper_id=shopper_id, user_agent=user_agent[:512], device=info.device, browser=info.browser[:64],
        os=info.os[:64], started_at=now, last_seen_at=now, current_url="", current_title="", left_at=None,
        open_for=visitor_id,
    )


@lru_cache(maxsize=4)
def insert_visit_once(dialect: str):
    """INSERT a visit unless its browser has a current one already; returns the
    new row's id and open_for (nothing when a racing request inserted first)."""
    insert_for = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}[dialect]
    table = Visit.__table__
    return (insert_for(table).on_conflict_do_nothing(index_elements=["open_for"])
            .returning(table.c.id, table.c.open_for))


def is_late_signal(visit, happened_at: datetime | None) -> bool:
    """A page's event from before the shopper closed it, delivered late by the
    closing page's beacon: no sign of life."""
    return (visit is not None and visit.left_at is not None and happened_at is not None
            and happened_at <= visit.left_at and visit.left_at >= visit.last_seen_at)


def needs_new_visit(visit, now: datetime) -> bool:
    """No visit of this shopper in this browser, or one idle past the timeout."""
    return visit is None or now - visit.last_seen_at > VISIT_TIMEOUT


def show_page(visit, now: datetime, url: str, title: str) -> bool:
    """The visit is alive now, on this page (if given); whether the page changed."""
    page_changed = bool(url) and (url[:2000] != visit.current_url)
    visit.last_seen_at = now
    visit.left_at = None
    if url:
        visit.current_url = url[:2000]
        visit.current_title = title[:300]
    return page_changed


def touch_visit(
    session: Session,
    shopper: Shopper,
    *,
    user_agent: str,
    url: str = "",
    title: str = "",
    window_seconds: int,
    now: datetime | None = None,
    happened_at: datetime | None = None,
    visitor_id: str | None = None,
) -> PresenceChange:
    """Record a sign of life (heartbeat or page view) from the shopper's page in
    the browser `visitor_id` (by default the shopper's own): a customer on two
    devices has a visit on each.

    `happened_at` is when the page reported it (a queued tracking event): one
    from before the shopper closed the page, delivered late by the closing
    page's beacon, is no sign of life and changes nothing."""
    now = now or utcnow()
    visitor_id = visitor_id or shopper.visitor_id
    was = is_on_site(live_visit(session, shopper.id, now, window_seconds), now, window_seconds)
    current = current_visit(session, visitor_id)
    # The browser's current visit may be another shopper's (it now speaks for another customer).
    visit = current if current is not None and current.shopper_id == shopper.id else None
    if is_late_signal(visit, happened_at):
        return PresenceChange(shopper.id, visit.id, was, was, False)
    if needs_new_visit(visit, now):
        visit = _open_visit(session, shopper, visitor_id, user_agent, now, replacing=current)
    page_changed = show_page(visit, now, url, title)
    session.add(visit)
    shopper.last_seen_at = now
    session.add(shopper)
    session.flush()
    return _recorded(session, PresenceChange(shopper.id, visit.id, was, True, page_changed), visit)


def leave(session: Session, shopper: Shopper, *, window_seconds: int,
          now: datetime | None = None, visitor_id: str | None = None) -> PresenceChange | None:
    """The shopper closed the page (beacon) in the browser `visitor_id`."""
    now = now or utcnow()
    visit = current_visit(session, visitor_id or shopper.visitor_id, shopper.id)
    if visit is None:
        return None
    was = is_on_site(live_visit(session, shopper.id, now, window_seconds), now, window_seconds)
    # A later beacon (another tab closing, hidden so silent) must not restart the
    # grace and show a shopper who already left as on site again.
    if visit.left_at is None or visit.left_at < visit.last_seen_at:
        visit.left_at = now
    session.add(visit)
    session.flush()
    live = live_visit(session, shopper.id, now, window_seconds)
    return _recorded(session, PresenceChange(shopper.id, visit.id, was, is_on_site(live, now, window_seconds),
                                             False), live or visit)


def _recorded(session: Session, change: PresenceChange, visit: Visit) -> PresenceChange:
    """Screens hear of a change (arrived, left, another page) after commit."""
    if change.changed:
        events.record(session, presence_event(change.shopper_id, change.on_site, visit))
    return change


def presence_event(shopper_id: int, on_site: bool, visit: Visit | None) -> events.PresenceChanged:
    return events.PresenceChanged(
        shopper_id=shopper_id, on_site=on_site,
        current_url=visit.current_url if visit else "", current_title=visit.current_title if visit else "",
        device=device_from_user_agent(visit.user_agent).label if visit else "",
    )


def shoppers_on_site(session: Session, shopper_ids: list[int], *, window_seconds: int,
                     now: datetime | None = None) -> set[int]:
    """Which of these shoppers are on the site now, judged like the inbox judges
    them: by each shopper's latest visit (a customer on two devices has a
    visit on each; an older one that stayed open must not outvote the latest)."""
    now = now or utcnow()
    if not shopper_ids:
        return set()
    visits = session.exec(
        select(Visit).where(
            col(Visit.shopper_id).in_(shopper_ids),
            Visit.last_seen_at >= now - timedelta(seconds=window_seconds),
        )
    ).all()
    return _on_site(visits, now, window_seconds)


def _on_site(recent_visits, now: datetime, window_seconds: int) -> set[int]:
    """The shoppers on site: by a browser's current visit that is (a customer
    may be on two devices), else by their latest recent visit."""
    latest: dict[int, Visit] = {}
    present = set()
    for v in recent_visits:
        if v.shopper_id not in latest or v.last_seen_at > latest[v.shopper_id].last_seen_at:
            latest[v.shopper_id] = v
        if v.open_for is not None and is_on_site(v, now, window_seconds):
            present.add(v.shopper_id)
    return present | {sid for sid, v in latest.items() if is_on_site(v, now, window_seconds)}


def everyone_on_site(session: Session, *, window_seconds: int, now: datetime | None = None) -> set[int]:
    """The shoppers on the site now, chatting or not (the Visitors page shows
    them all). Reads only the visits seen within the window (indexed by
    last_seen_at)."""
    now = now or utcnow()
    # Only the columns presence is judged by: the leader runs this every 2 s over
    # everyone on the site, and whole rows (user agent, URL, title) cost 4x more.
    visits = session.execute(
        select(Visit.shopper_id, Visit.last_seen_at, Visit.left_at, Visit.open_for)
        .where(Visit.last_seen_at >= now - timedelta(seconds=window_seconds))).all()
    return _on_site(visits, now, window_seconds)


def on_site_at(at: datetime, window_seconds: int, *, engine=None) -> set[int]:
    """Who was on the site at `at` (a
    moment ago): where a sweeper that just took over starts from."""
    with session_scope(engine) as session:
        return everyone_on_site(session, window_seconds=window_seconds, now=at)


def sweep(previous: set[int] | None, window_seconds: int, *, engine=None) -> set[int]:
    """Who is on the site now; each shopper whose presence flipped since
    `previous` (left quietly, or a closed page's grace ran out) is announced
    (PresenceChanged). Returns the new set, to pass in next time."""
    with session_scope(engine) as session:
        now_on = everyone_on_site(session, window_seconds=window_seconds)
        if previous is None:
            return now_on
        flipped = (now_on - previous) | (previous - now_on)
        visits = latest_visits(session, sorted(flipped), window_seconds=window_seconds) if flipped else {}
    events.emit([presence_event(sid, sid in now_on, visits.get(sid)) for sid in sorted(flipped)])
    return now_on


# Heartbeats that only say "still here, same page" are written at most this
# often per visitor (a fraction of the presence window, so presence stays
# exact): at 1,000 shoppers they were most of the database writes.
_written: OrderedDict[str, tuple[str, float]] = OrderedDict()
_written_lock = threading.Lock()
MAX_REMEMBERED = 100_000


def _fresh(visitor_id: str, url: str, window_seconds: int) -> bool:
    """This visitor's last written beat was for the same page, recently enough."""
    with _written_lock:
        last = _written.get(visitor_id)
    return last is not None and last[0] == url and time.monotonic() - last[1] < window_seconds / 3


def _remember(visitor_id: str, url: str | None) -> None:
    with _written_lock:
        _written.pop(visitor_id, None)
        if url is not None:
            _written[visitor_id] = (url, time.monotonic())
            while len(_written) > MAX_REMEMBERED:
                _written.popitem(last=False)


def _still_here(session: Session, visitor_id: str, url: str, title: str, window_seconds: int,
                now: datetime | None = None) -> PresenceChange | None:
    """Most heartbeats, in two UPDATEs and no reads: the browser's current
    visit is this shopper's, on site (seen within the window, not closed) and on
    the same page. Then nothing changes on any screen (on site before and
    after, same page), so `touch_visit`'s reads and its event are not needed.
    None when the visit is not in that state: `touch_visit` decides.

    The shopper row is updated first, then the visit: the order `touch_visit`'s
    flush takes them in, so racing heartbeats never wait for each other in a
    circle (the other order deadlocked on PostgreSQL in tests/test_visit_race.py)."""
    now = now or utcnow()
    shopper_update, visit_update = _still_here_statements(bool(url))
    connection = session.connection()  # plain statements: no ORM objects to track
    params = {"visitor": visitor_id, "since": now - timedelta(seconds=window_seconds), "seen_at": now,
              "page_url": url[:2000], "page_title": title[:300]}
    shopper_id = connection.execute(shopper_update, params).scalar()
    if shopper_id is None:
        return None
    visit_id = connection.execute(visit_update, params).scalar()
    if visit_id is None:  # the visit changed in between: touch_visit decides (its shopper is seen now anyway)
        return None
    return PresenceChange(shopper_id, visit_id, True, True, False)


@lru_cache(maxsize=2)
def _still_here_statements(on_a_page: bool):
    """`_still_here`'s UPDATEs (the shopper's, then the visit's), built once: a
    heartbeat is the hottest write there is."""
    visits, shoppers = Visit.__table__, Shopper.__table__
    browser = shoppers.alias("browser")
    # The shopper this browser speaks for (`get_or_create_shopper`: its own row or the customer it merged into).
    speaks_for = (select(func.coalesce(browser.c.merged_into_id, browser.c.id))
                  .where(browser.c.visitor_id == bindparam("visitor")).scalar_subquery())
    where = [visits.c.open_for == bindparam("visitor"), visits.c.shopper_id == speaks_for,
             visits.c.left_at.is_(None), visits.c.last_seen_at >= bindparam("since")]
    values = {"last_seen_at": bindparam("seen_at")}
    if on_a_page:
        where.append(visits.c.current_url == bindparam("page_url"))
        values["current_title"] = bindparam("page_title")
    still_here = select(visits.c.shopper_id).where(*where).scalar_subquery()
    return (update(shoppers).where(shoppers.c.id == still_here).values(last_seen_at=bindparam("seen_at"))
            .returning(shoppers.c.id),
            update(visits).where(*where).values(values).returning(visits.c.id))


def beat(visitor_id: str, alive: bool, *, user_agent: str = "", url: str = "", title: str = "",
         engine=None) -> PresenceChange | None:
    """A heartbeat (alive) or a closing page's beacon from a verified visitor.
    A repeat heartbeat from the same page within a third of the presence
    window changes nothing worth a write and returns None."""
    window = get_settings().presence_window_seconds
    if alive and _fresh(visitor_id, url, window):
        return None
    with write_scope(engine) as session:
        if alive:
            change = _still_here(session, visitor_id, url, title, window) or touch_visit(
                session, get_or_create_shopper(session, visitor_id), user_agent=user_agent, url=url, title=title,
                window_seconds=window, visitor_id=visitor_id)
        else:
            change = leave(session, get_or_create_shopper(session, visitor_id), window_seconds=window,
                           visitor_id=visitor_id)
    _remember(visitor_id, url if alive else None)
    return change
