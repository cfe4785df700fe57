"""Presence: heartbeats keep a visit alive, a closed page or silence means the
shopper left — with explicit clocks, on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chatdash.db import session_scope
from chatdash.models import Shopper, Visit, utcnow
from chatdash.services import conversations as convs
from chatdash.services import presence
from chatdash.services.conversations import LEAVE_GRACE, is_on_site, latest_visit
from chatdash.services.presence import VISIT_TIMEOUT

WINDOW = 60
T0 = utcnow().replace(microsecond=0)
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.2 Mobile/15E148 Safari/604.1")
WINDOWS_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/120.0.0.0 Safari/537.36")


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def new_shopper_id(engine: Engine) -> int:
    with session_scope(engine) as s:
        return convs.get_or_create_shopper(s, uuid.uuid4().hex[:24]).id


def touch(engine: Engine, shopper_id: int, when, url: str = "", title: str = "",
          user_agent: str = WINDOWS_CHROME) -> presence.PresenceChange:
    with session_scope(engine) as s:
        return presence.touch_visit(s, s.get(Shopper, shopper_id), user_agent=user_agent, url=url, title=title,
                                    window_seconds=WINDOW, now=when)


def leave(engine: Engine, shopper_id: int, when) -> presence.PresenceChange | None:
    with session_scope(engine) as s:
        return presence.leave(s, s.get(Shopper, shopper_id), window_seconds=WINDOW, now=when)


def on_site(engine: Engine, shopper_id: int, when) -> bool:
    with Session(engine) as s:
        return is_on_site(latest_visit(s, shopper_id), when, WINDOW)


def visits(engine: Engine, shopper_id: int) -> list[Visit]:
    with Session(engine) as s:
        return list(s.exec(select(Visit).where(Visit.shopper_id == shopper_id).order_by(Visit.id)).all())


def test_first_sign_of_life_starts_a_visit_with_the_device(any_engine):
    shopper_id = new_shopper_id(any_engine)
    change = touch(any_engine, shopper_id, at(0), "https://shop.test/", "Home", user_agent=IPHONE)
    assert (change.was_on_site, change.on_site, change.page_changed, change.changed) == (False, True, True, True)
    (visit,) = visits(any_engine, shopper_id)
    assert change.visit_id == visit.id
    assert change.shopper_id == shopper_id
    assert (visit.device, visit.browser, visit.os) == ("mobile", "Mobile Safari", "iOS")
    assert visit.user_agent == IPHONE
    assert (visit.current_url, visit.current_title) == ("https://shop.test/", "Home")
    assert visit.started_at == at(0)
    assert visit.last_seen_at == at(0)
    assert visit.left_at is None
    with Session(any_engine) as s:
        assert s.get(Shopper, shopper_id).last_seen_at == at(0)


def test_page_views_and_heartbeats_update_the_same_visit(any_engine):
    shopper_id = new_shopper_id(any_engine)
    touch(any_engine, shopper_id, at(0), "https://shop.test/", "Home")

    heartbeat = touch(any_engine, shopper_id, at(10))  # no url: the page is just alive
    assert (heartbeat.was_on_site, heartbeat.page_changed, heartbeat.changed) == (True, False, False)

    same_page = touch(any_engine, shopper_id, at(20), "https://shop.test/", "Home")
    assert not same_page.page_changed

    new_page = touch(any_engine, shopper_id, at(30), "https://shop.test/p/shirt", "Linen shirt")
    assert (new_page.was_on_site, new_page.page_changed, new_page.changed) == (True, True, True)

    (visit,) = visits(any_engine, shopper_id)
    assert {heartbeat.visit_id, same_page.visit_id, new_page.visit_id} == {visit.id}
    assert (visit.current_url, visit.current_title) == ("https://shop.test/p/shirt", "Linen shirt")
    assert visit.started_at == at(0)
    assert visit.last_seen_at == at(30)


def test_device_is_taken_from_the_visits_first_user_agent(any_engine):
    shopper_id = new_shopper_id(any_engine)
    touch(any_engine, shopper_id, at(0), "https://shop.test/", user_agent=IPHONE)
    touch(any_engine, shopper_id, at(5), user_agent=WINDOWS_CHROME)
    (visit,) = visits(any_engine, shopper_id)
    assert visit.device == "mobile"


def test_long_fields_are_cut_to_fit(any_engine):
    # PostgreSQL enforces the column lengths; a crafted page must not turn a heartbeat into an error.
    shopper_id = new_shopper_id(any_engine)
    url = "https://shop.test/" + "p" * 3000
    touch(any_engine, shopper_id, at(0), url, "T" * 1000, user_agent="Mozilla/5.0 " + "x" * 1000)
    (visit,) = visits(any_engine, shopper_id)
    assert visit.current_url == url[:2000]
    assert len(visit.current_title) == 300
    assert len(visit.user_agent) == 512
    # The same over-long url again is the same page.
    assert not touch(any_engine, shopper_id, at(1), url).page_changed


def test_heartbeat_after_the_visit_timeout_starts_a_new_visit(any_engine):
    shopper_id = new_shopper_id(any_engine)
    touch(any_engine, shopper_id, at(0), "https://shop.test/a", user_agent=IPHONE)
    just_in_time = at(VISIT_TIMEOUT.total_seconds())
    touch(any_engine, shopper_id, just_in_time)
    assert len(visits(any_engine, shopper_id)) == 1

    later = just_in_time + VISIT_TIMEOUT + timedelta(seconds=1)
    change = touch(any_engine, shopper_id, later, "https://shop.test/b", user_agent=WINDOWS_CHROME)
    first, second = visits(any_engine, shopper_id)
    assert change.visit_id == second.id
    assert (change.was_on_site, change.on_site, change.page_changed) == (False, True, True)
    assert first.last_seen_at == just_in_time  # the old visit is history, untouched
    assert first.current_url == "https://shop.test/a"
    assert second.started_at == later
    assert second.device == "desktop"
    assert second.current_url == "https://shop.test/b"
    with Session(any_engine) as s:
        assert latest_visit(s, shopper_id).id == second.id


def test_silent_shopper_is_off_site_after_the_window(any_engine):
    shopper_id = new_shopper_id(any_engine)
    assert not on_site(any_engine, shopper_id, at(0))  # never seen
    touch(any_engine, shopper_id, at(0), "https://shop.test/")
    assert on_site(any_engine, shopper_id, at(0))
    assert on_site(any_engine, shopper_id, at(WINDOW))
    assert not on_site(any_engine, shopper_id, at(WINDOW + 1))
    # A heartbeat after silence is a return: reported as a change.
    back = touch(any_engine, shopper_id, at(WINDOW + 30))
    assert (back.was_on_site, back.on_site, back.changed) == (False, True, True)


def test_closed_page_counts_as_left_only_after_the_grace(any_engine):
    assert timedelta(seconds=3) == LEAVE_GRACE
    shopper_id = new_shopper_id(any_engine)
    touch(any_engine, shopper_id, at(0), "https://shop.test/")
    change = leave(any_engine, shopper_id, at(10))
    # Moving to the next page closes this one first: still on site for now.
    assert (change.was_on_site, change.on_site, change.changed) == (True, True, False)
    (visit,) = visits(any_engine, shopper_id)
    assert visit.left_at == at(10)
    assert on_site(any_engine, shopper_id, at(10))
    assert on_site(any_engine, shopper_id, at(12.9))
    assert not on_site(any_engine, shopper_id, at(13))
    assert not on_site(any_engine, shopper_id, at(20))


def test_next_page_within_the_grace_keeps_the_shopper_on_site(any_engine):
    shopper_id = new_shopper_id(any_engine)
    touch(any_engine, shopper_id, at(0), "https://shop.test/a")
    leave(any_engine, shopper_id, at(10))
    change = touch(any_engine, shopper_id, at(11), "https://shop.test/b")
    assert (change.was_on_site, change.on_site, change.page_changed) == (True, True, True)
    assert on_site(any_engine, shopper_id, at(20))
    (visit,) = visits(any_engine, shopper_id)
    assert visit.left_at is None


def test_coming_back_after_leaving_flips_to_on_site(any_engine):
    shopper_id = new_shopper_id(any_engine)
    touch(any_engine, shopper_id, at(0), "https://shop.test/a")
    leave(any_engine, shopper_id, at(10))
    assert not on_site(any_engine, shopper_id, at(30))

    back = touch(any_engine, shopper_id, at(40), "https://shop.test/a")
    assert (back.was_on_site, back.on_site, back.changed) == (False, True, True)
    assert not back.page_changed  # same page as before leaving
    assert on_site(any_engine, shopper_id, at(41))
    (visit,) = visits(any_engine, shopper_id)  # within the visit timeout: the same visit
    assert visit.left_at is None


def test_closing_a_silent_second_tab_does_not_bring_a_departed_shopper_back(any_engine):
    # Two tabs: the visible one closes, then later the hidden one (hidden tabs send
    # no heartbeat). The admin must not see "on site" flash back for the grace.
    shopper_id = new_shopper_id(any_engine)
    touch(any_engine, shopper_id, at(0), "https://shop.test/a")
    leave(any_engine, shopper_id, at(10))
    assert not on_site(any_engine, shopper_id, at(30))
    again = leave(any_engine, shopper_id, at(31))
    assert (again.was_on_site, again.on_site, again.changed) == (False, False, False)
    assert not on_site(any_engine, shopper_id, at(32))
    (visit,) = visits(any_engine, shopper_id)
    assert visit.left_at == at(10)


def test_two_beacons_within_the_grace_count_from_the_first(any_engine):
    shopper_id = new_shopper_id(any_engine)
    touch(any_engine, shopper_id, at(0), "https://shop.test/a")
    leave(any_engine, shopper_id, at(10))
    second = leave(any_engine, shopper_id, at(11))
    assert (second.was_on_site, second.on_site) == (True, True)
    assert not on_site(any_engine, shopper_id, at(13))


def test_leave_without_any_visit_reports_nothing(any_engine):
    shopper_id = new_shopper_id(any_engine)
    assert leave(any_engine, shopper_id, at(0)) is None
    assert visits(any_engine, shopper_id) == []


def test_shoppers_on_site_picks_the_present_ones(any_engine):
    here, silent, left, grace, never, not_asked = (new_shopper_id(any_engine) for _ in range(6))
    now = at(100)
    touch(any_engine, here, now - timedelta(seconds=5), "https://shop.test/")
    touch(any_engine, silent, now - timedelta(seconds=WINDOW + 1), "https://shop.test/")
    touch(any_engine, left, now - timedelta(seconds=20), "https://shop.test/")
    leave(any_engine, left, now - timedelta(seconds=10))
    touch(any_engine, grace, now - timedelta(seconds=20), "https://shop.test/")
    leave(any_engine, grace, now - timedelta(seconds=1))
    touch(any_engine, not_asked, now, "https://shop.test/")
    asked = [here, silent, left, grace, never]
    with Session(any_engine) as s:
        assert presence.shoppers_on_site(s, asked, window_seconds=WINDOW, now=now) == {here, grace}
        assert presence.shoppers_on_site(s, asked, window_seconds=WINDOW, now=now + timedelta(seconds=5)) == {here}
        assert presence.shoppers_on_site(s, [], window_seconds=WINDOW, now=now) == set()


def test_the_sweep_sees_every_shopper_on_site_chatting_or_not(any_engine):
    now = utcnow()
    chatting, closed, silent, browsing = (new_shopper_id(any_engine) for _ in range(4))
    with session_scope(any_engine) as s:
        for sid in (chatting, closed, silent):
            conv, _ = convs.start_conversation(s, sid)
            if sid == closed:
                conv.status = "closed"
                s.add(conv)
        for sid in (chatting, closed, browsing):
            s.add(Visit(shopper_id=sid, started_at=now, last_seen_at=now))
        s.add(Visit(shopper_id=silent, started_at=now - timedelta(hours=1),
                    last_seen_at=now - timedelta(seconds=WINDOW + 1)))
    with Session(any_engine) as s:
        assert presence.everyone_on_site(s, window_seconds=WINDOW, now=now) == {chatting, closed, browsing}


def test_a_page_view_reported_late_by_the_closing_page_does_not_bring_the_shopper_back(engine):
    from datetime import UTC, datetime, timedelta

    from sqlmodel import Session

    from chatdash.services import conversations as convs
    from chatdash.services import presence

    t0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    with Session(engine) as s:
        shopper = convs.get_or_create_shopper(s, "late-beacon-visitor-0001")
        presence.touch_visit(s, shopper, user_agent="", url="https://shop.test/a", window_seconds=60, now=t0)
        presence.leave(s, shopper, window_seconds=60, now=t0 + timedelta(seconds=10))
        # The page view of /a (from t0) arrives with the closing beacon, after the leave.
        change = presence.touch_visit(s, shopper, user_agent="", url="https://shop.test/a", window_seconds=60,
                                      now=t0 + timedelta(seconds=11), happened_at=t0)
        assert not change.page_changed
        later = t0 + timedelta(seconds=20)
        assert not convs.is_on_site(convs.latest_visit(s, shopper.id), later, 60)
        # A genuinely new page view after the leave does bring them back.
        presence.touch_visit(s, shopper, user_agent="", url="https://shop.test/b", window_seconds=60,
                             now=later, happened_at=later)
        assert convs.is_on_site(convs.latest_visit(s, shopper.id), later, 60)


def test_an_older_twin_visit_does_not_keep_a_departed_shopper_on_site(engine):
    """Heartbeat and page view racing on a first page load can open two visits."""
    from datetime import UTC, datetime, timedelta

    from sqlmodel import Session

    from chatdash.models import Visit
    from chatdash.services import conversations as convs
    from chatdash.services import presence

    t0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    with Session(engine) as s:
        shopper = convs.get_or_create_shopper(s, "twin-visit-visitor-0001")
        s.add(Visit(shopper_id=shopper.id, started_at=t0, last_seen_at=t0))
        s.add(Visit(shopper_id=shopper.id, started_at=t0, last_seen_at=t0 + timedelta(seconds=5),
                    left_at=t0 + timedelta(seconds=6)))
        s.commit()
        at = t0 + timedelta(seconds=20)
        assert presence.shoppers_on_site(s, [shopper.id], window_seconds=60, now=at) == set()
        assert not convs.is_on_site(convs.latest_visit(s, shopper.id), at, 60)


def _last_seen(engine: Engine, visitor_id: str):
    with Session(engine) as s:
        shopper = s.exec(select(Shopper).where(Shopper.visitor_id == visitor_id)).one()
        visit = latest_visit(s, shopper.id)
        return visit.last_seen_at, visit.current_url, visit.left_at


def test_a_repeat_heartbeat_from_the_same_page_is_not_written_again(engine):
    visitor = uuid.uuid4().hex
    first = presence.beat(visitor, True, url="https://shop.test/a", title="A", engine=engine)
    assert first is not None and first.on_site
    seen, _, _ = _last_seen(engine, visitor)
    assert presence.beat(visitor, True, url="https://shop.test/a", title="A", engine=engine) is None
    assert _last_seen(engine, visitor)[0] == seen  # nothing written
    # Another page is news, and so is leaving and coming back.
    moved = presence.beat(visitor, True, url="https://shop.test/b", title="B", engine=engine)
    assert moved is not None and moved.page_changed
    assert _last_seen(engine, visitor)[1] == "https://shop.test/b"
    presence.beat(visitor, False, engine=engine)
    assert _last_seen(engine, visitor)[2] is not None
    back = presence.beat(visitor, True, url="https://shop.test/b", title="B", engine=engine)
    assert back is not None
    assert _last_seen(engine, visitor)[2] is None  # the visit is open again


def _shopper_seen(engine: Engine, visitor_id: str):
    with Session(engine) as s:
        return s.exec(select(Shopper).where(Shopper.visitor_id == visitor_id)).one().last_seen_at


def test_a_still_here_heartbeat_on_another_worker_is_written_without_news(any_engine):
    """The same page beats again and reaches a worker that has not seen it beat
    (so writes it): the visit and the shopper are seen later, the title is the
    page's latest, and no screen hears of it (nothing changed). A beat whose
    visit is not plainly on site (closed, another page) still goes the long way."""
    from chatdash import events

    visitor = uuid.uuid4().hex
    presence.beat(visitor, True, url="https://shop.test/a", title="A", engine=any_engine)
    seen, _, _ = _last_seen(any_engine, visitor)
    heard: list = []
    stop = events.listen(heard.extend)
    try:
        presence._written.clear()  # another worker's memory: it has not seen this page beat
        again = presence.beat(visitor, True, url="https://shop.test/a", title="A (2 in cart)", engine=any_engine)
        later_seen, url, left = _last_seen(any_engine, visitor)
        assert (again.on_site, again.was_on_site, again.changed) == (True, True, False)
        assert later_seen > seen and url == "https://shop.test/a" and left is None
        assert _shopper_seen(any_engine, visitor) == later_seen
        with Session(any_engine) as s:
            assert s.get(Visit, again.visit_id).current_title == "A (2 in cart)"
        presence.beat(visitor, False, engine=any_engine)
        presence._written.clear()
        back = presence.beat(visitor, True, url="https://shop.test/a", title="A", engine=any_engine)
        assert _last_seen(any_engine, visitor)[2] is None  # the closed visit is open again
        presence._written.clear()
        moved = presence.beat(visitor, True, url="https://shop.test/b", title="B", engine=any_engine)
    finally:
        stop()
    assert back.visit_id == again.visit_id and moved.page_changed
    assert [e.current_url for e in heard if isinstance(e, events.PresenceChanged)] == ["https://shop.test/b"]


def test_a_sweeper_taking_over_announces_a_shopper_who_left_while_no_one_swept(any_engine):
    """The leader died; the shopper's page closed before the next leader's first
    sweep. Starting from who was on site a takeover ago, that first sweep
    tells the screens, which still show the shopper on site."""
    from chatdash import events

    now = utcnow()
    gone, staying = new_shopper_id(any_engine), new_shopper_id(any_engine)
    with session_scope(any_engine) as s:
        for sid in (gone, staying):
            convs.start_conversation(s, sid)
        s.add(Visit(shopper_id=gone, started_at=now - timedelta(minutes=5), last_seen_at=now - timedelta(seconds=20),
                    left_at=now - timedelta(seconds=6)))
        s.add(Visit(shopper_id=staying, started_at=now - timedelta(minutes=5), last_seen_at=now))
    heard: list = []
    stop = events.listen(heard.extend)
    try:
        baseline = presence.on_site_at(now - timedelta(seconds=14), WINDOW, engine=any_engine)
        assert baseline == {gone, staying}
        presence.sweep(baseline, WINDOW, engine=any_engine)
        # Without a baseline (how a new sweeper started before) nothing is announced.
        presence.sweep(None, WINDOW, engine=any_engine)
    finally:
        stop()
    assert [(e.shopper_id, e.on_site) for e in heard] == [(gone, False)]
