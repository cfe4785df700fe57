"""No phantom visits: a page's first heartbeat and page view arrive together and
must open one visit, never two. The database itself refuses a second current
visit for one browser (a unique index on visit.open_for), so no lock is needed
for it — tested with truly concurrent requests on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from chatdash.db import get_engine, make_engine, migrate, session_scope
from chatdash.models import Shopper, Visit, utcnow
from chatdash.services import conversations as convs
from chatdash.services import identity, presence, store_activity, tracking
from chatdash.services.ratelimit import clear_limiters
from chatdash.settings import get_settings
from tests.conftest import PG_URL

STORE = "https://shop.test"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
RACERS = 16
PAGES = 4


def visits_of(engine: Engine, visitor_id: str) -> list[Visit]:
    with Session(engine) as s:
        shopper = s.exec(select(Shopper).where(Shopper.visitor_id == visitor_id)).one()
        return list(s.exec(select(Visit).where(Visit.shopper_id == shopper.id)).all())


def test_the_database_refuses_a_second_current_visit_for_one_browser(any_engine):
    with session_scope(any_engine) as s:
        shopper_id = convs.get_or_create_shopper(s, "race-visitor-0001").id
        s.add(Visit(shopper_id=shopper_id, open_for="race-visitor-0001"))
    with pytest.raises(IntegrityError), session_scope(any_engine) as s:
        s.add(Visit(shopper_id=shopper_id, open_for="race-visitor-0001"))
    # Past visits (open_for NULL) are as many as the shopper had.
    with session_scope(any_engine) as s:
        s.add_all([Visit(shopper_id=shopper_id), Visit(shopper_id=shopper_id)])
    assert len(visits_of(any_engine, "race-visitor-0001")) == 3


def race(calls) -> list:
    """Run the calls at the same instant, each in its own thread."""
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def page_view(url: str) -> list[tracking.Event]:
    return tracking.parse_events([{"id": uuid.uuid4().hex, "kind": "page_view", "url": url, "title": "Home"}])


def known_visitor(engine: Engine, visitor_id: str) -> None:
    """A shopper row already there (the widget opened first), so the racing
    requests do not queue behind each other's insert of the shopper."""
    with session_scope(engine) as s:
        convs.get_or_create_shopper(s, visitor_id)


def test_heartbeats_and_page_views_racing_on_a_first_page_open_one_visit(any_engine):
    for _ in range(PAGES):
        visitor_id = uuid.uuid4().hex[:24]
        known_visitor(any_engine, visitor_id)
        url = f"{STORE}/{visitor_id}"
        calls = []
        for i in range(RACERS):
            if i % 2:
                calls.append(lambda v=visitor_id, u=url: presence.beat(v, True, user_agent=UA, url=u, title="Home",
                                                                    engine=any_engine))
            else:
                calls.append(lambda v=visitor_id, u=url: store_activity.store_batch(v, page_view(u), UA,
                                                                                  engine=any_engine))
        race(calls)
        (visit,) = visits_of(any_engine, visitor_id)
        assert visit.open_for == visitor_id and visit.current_url == url


def test_the_next_visit_after_a_timeout_is_opened_once_under_a_race(any_engine):
    visitor_id = uuid.uuid4().hex[:24]
    long_ago = utcnow() - presence.VISIT_TIMEOUT * 2
    with session_scope(any_engine) as s:
        shopper = convs.get_or_create_shopper(s, visitor_id)
        presence.touch_visit(s, shopper, user_agent=UA, url=f"{STORE}/old", window_seconds=60, now=long_ago)

    def touch():
        with session_scope(any_engine) as s:  # no writer lock: only the database keeps them apart
            presence.touch_visit(s, convs.get_or_create_shopper(s, visitor_id), user_agent=UA,
                                 url=f"{STORE}/new", window_seconds=60)

    race([touch] * RACERS)
    visits = visits_of(any_engine, visitor_id)
    assert len(visits) == 2
    assert sorted(v.current_url for v in visits) == [f"{STORE}/new", f"{STORE}/old"]
    assert [v.current_url for v in visits if v.open_for] == [f"{STORE}/new"]


# --------------------------------------------------------------------------- real routes


@pytest.fixture(params=["sqlite", "postgresql"])
def api_over(request, tmp_path, monkeypatch):
    """The HTTP API app on a SQLite file or a PostgreSQL schema of its own."""
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'race.db'}"
    else:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = make_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    clear_limiters()
    migrate(get_engine())
    from starlette.testclient import TestClient

    from chatdash.api.routes import api

    try:
        with TestClient(api) as client:
            yield client, get_engine()
    finally:
        get_engine().dispose()
        get_settings.cache_clear()
        get_engine.cache_clear()
        clear_limiters()
        if schema:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def test_simultaneous_requests_to_the_real_routes_open_one_visit(api_over):
    client, engine = api_over
    for _ in range(PAGES):
        token = identity.issue_visitor_token(get_settings().secret_key)
        visitor_id = identity.verify_visitor_token(get_settings().secret_key, token)
        known_visitor(engine, visitor_id)
        url = f"{STORE}/{uuid.uuid4().hex[:8]}"
        beat = json.dumps({"visitor": token, "state": "alive", "url": url, "title": "Home"})
        track = json.dumps({"visitor": token, "events": [
            {"id": uuid.uuid4().hex, "kind": "page_view", "url": url, "title": "Home"}]})
        calls = [
            (lambda body=body, path=path: client.post(path, content=body,
                                                      headers={"Content-Type": "text/plain;charset=UTF-8"}))
            for i in range(RACERS)
            for path, body in [("/api/presence", beat) if i % 2 else ("/api/track", track)]
        ]
        answers = race(calls)
        # SQLite may ask a loser to retry (503); nothing else fails.
        assert {r.status_code for r in answers} <= {200, 503}, [r.text for r in answers]
        assert any(r.status_code == 200 for r in answers)
        with Session(engine) as s:
            count = s.exec(select(func.count()).select_from(Visit).join(Shopper, Shopper.id == Visit.shopper_id)
                           .where(Shopper.visitor_id == visitor_id)).one()
        assert count == 1
