"""/api/track on the real PostgreSQL, through the ingestion queue: many
requests at once over one ASGI app, as a worker serves them. Each answer
comes after its events are committed; an event id sent twice is stored once
even when both requests land in one flush; a malformed batch is refused with
a reason while the requests beside it are stored."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from chatdash.db import get_engine, make_engine, migrate, session_scope
from chatdash.models import Product, Shopper, StoreEvent
from chatdash.services import identity
from chatdash.services.customers import identify_customer
from chatdash.services.ratelimit import clear_limiters
from chatdash.services.tracking import ingest
from chatdash.settings import get_settings

STORE = "https://shop.test"


@pytest.fixture
def pg_api(monkeypatch) -> Iterator[None]:
    """The API app on a schema of its own on the machine's PostgreSQL."""
    from tests.conftest import PG_URL

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    monkeypatch.setenv("DATABASE_URL", f"{PG_URL}?options=-csearch_path%3D{schema}")
    monkeypatch.delenv("CHATDASH_ALLOWED_ORIGINS", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    get_engine.cache_clear()
    clear_limiters()
    migrate(get_engine())
    with session_scope() as s:
        s.add(Product(sku="TENT-1", name="Summit Tent", category="Camping", price_cents=19_900,
                      url=f"{STORE}/p/TENT-1"))
    assert ingest.batched()
    yield
    ingest.close_all()
    get_engine().dispose()
    get_settings.cache_clear()
    get_engine.cache_clear()
    clear_limiters()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def token() -> str:
    return identity.issue_visitor_token(get_settings().secret_key)


def view(event_id: str | None = None, **fields) -> dict:
    return {"id": event_id or uuid.uuid4().hex, "kind": "product_view", "url": f"{STORE}/p/TENT-1",
            "title": "Summit Tent", "data": {"sku": "TENT-1"}, **fields}


def stored_ids(visitor: str | None = None) -> list[str]:
    with Session(get_engine()) as s:
        query = select(StoreEvent.event_id)
        if visitor is not None:
            query = query.join(Shopper, Shopper.id == StoreEvent.shopper_id).where(
                Shopper.visitor_id == visitor.split(".")[0])
        return list(s.exec(query).all())


async def post_all(bodies: list[dict], after_each=None) -> list[httpx.Response]:
    from chatdash.api.routes import api

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://api.test") as client:
        async def one(body: dict) -> httpx.Response:
            r = await client.post("/api/track", json=body)
            if after_each is not None:
                await asyncio.to_thread(after_each, body, r)
            return r

        return await asyncio.gather(*(one(b) for b in bodies))


def test_every_answer_comes_after_its_events_are_committed(pg_api):
    """60 requests at once from 20 browsers: the moment each 200 arrives, its
    events are readable from another connection; all stored, once each."""
    browsers = [token() for _ in range(20)]
    bodies = [{"visitor": browsers[i % 20], "events": [view() for _ in range(10)]} for i in range(60)]
    missing_at_answer: list[str] = []

    def check(body: dict, r: httpx.Response) -> None:
        assert r.status_code == 200, r.text
        have = set(stored_ids(body["visitor"]))
        missing_at_answer.extend(e["id"] for e in body["events"] if e["id"] not in have)

    answers = asyncio.run(post_all(bodies, after_each=check))
    assert [r.json() for r in answers] == [{"accepted": 10, "duplicates": 0}] * 60
    assert missing_at_answer == []
    ids = stored_ids()
    assert len(ids) == len(set(ids)) == 600


def test_an_event_id_sent_in_two_requests_of_one_flush_is_stored_once(pg_api, monkeypatch):
    """A browser that re-sends before its first answer (both requests waiting
    in the same flush window), and two browsers of one customer sending the
    same id in one flush: one copy each, the other answered as a duplicate."""
    monkeypatch.setattr(ingest, "FLUSH_SECONDS", 0.3)  # both requests surely wait in one window
    browser = token()
    twice = view()
    phone, laptop = token(), token()
    with session_scope() as s:
        for t in (phone, laptop):
            identify_customer(s, t.split(".")[0], "cust-77")
    shared = view()
    bodies = [
        {"visitor": browser, "events": [twice, view()]},
        {"visitor": browser, "events": [twice, view()]},
        {"visitor": phone, "events": [shared]},
        {"visitor": laptop, "events": [shared, view()]},
    ]
    answers = [r.json() for r in asyncio.run(post_all(bodies))]
    assert sorted(a["duplicates"] for a in answers[:2]) == [0, 1]
    assert sum(a["accepted"] for a in answers[:2]) == 3
    assert sorted(a["duplicates"] for a in answers[2:]) == [0, 1]
    assert sum(a["accepted"] for a in answers[2:]) == 2
    ids = stored_ids()
    assert ids.count(twice["id"]) == 1
    assert ids.count(shared["id"]) == 1
    assert len(ids) == 5


def test_a_malformed_batch_is_refused_with_a_reason_and_the_requests_beside_it_are_stored(pg_api):
    browsers = [token() for _ in range(8)]
    good = [{"visitor": b, "events": [view(), view()]} for b in browsers]
    bad_browser = token()
    bad = {"visitor": bad_browser, "events": [view(), view(url="javascript:alert(1)")]}
    answers = asyncio.run(post_all([*good[:4], bad, *good[4:]]))
    refused = answers[4]
    assert refused.status_code == 422
    assert refused.json()["error"] == "1 of 2 events are invalid"
    [problem] = refused.json()["detail"]
    assert (problem["event"], problem["id"], problem["field"]) == (1, bad["events"][1]["id"], "url")
    assert "http" in problem["message"]
    assert [r.json() for r in answers[:4] + answers[5:]] == [{"accepted": 2, "duplicates": 0}] * 8
    assert len(stored_ids()) == 16
    assert stored_ids(bad_browser) == []  # a batch is all or nothing: the widget re-sends the good event
