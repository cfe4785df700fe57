"""The presence and visitor endpoints refuse malformed input with a 4xx JSON reason."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from chatdash.db import get_engine, migrate
from chatdash.services import identity
from chatdash.settings import get_settings


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'p.db'}")
    get_settings.cache_clear()
    get_engine.cache_clear()
    migrate()
    from chatdash.api.routes import api

    with TestClient(api) as c:
        yield c
    get_settings.cache_clear()
    get_engine.cache_clear()


def token() -> str:
    return identity.issue_visitor_token(get_settings().secret_key)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        ("{not json", "application/json", 400, "not valid JSON"),
        ("[1, 2]", "application/json", 400, "JSON object"),
        ('{"visitor": "x.y", "state": "alive"}', "application/json", 401, "unknown visitor"),
        ("x" * 5000, "text/plain", 413, "larger than"),
        ("{}", "application/xml", 415, "content type"),
    ],
)
def test_presence_refuses_malformed_bodies(client, body, content_type, status, says):
    r = client.post("/api/presence", content=body, headers={"Content-Type": content_type})
    assert r.status_code == status
    assert says in r.json()["error"]


def test_presence_checks_every_field(client):
    t = token()
    for payload, says in [
        ({"visitor": t, "state": "sleeping"}, "state must be"),
        ({"visitor": t, "state": "alive", "url": 5}, "must be strings"),
        ({"visitor": t, "state": "alive", "url": "javascript:alert(1)"}, "http(s)"),
        ({"visitor": t, "state": "alive", "page": "no spaces allowed"}, "page-load id"),
    ]:
        r = client.post("/api/presence", json=payload)
        assert r.status_code == 400 and says in r.json()["error"]
    assert client.post("/api/presence", json={"visitor": t, "state": "alive",
                                               "url": "https://shop.test/a"}).json()["ok"] is True


def test_a_closed_pages_late_heartbeat_is_ignored(client):
    t, page = token(), "page0000abcd"
    client.post("/api/presence", json={"visitor": t, "state": "left", "page": page})
    r = client.post("/api/presence", json={"visitor": t, "state": "alive", "page": page,
                                            "url": "https://shop.test/a"})
    assert r.json().get("ignored") == "page already closed"


def test_visitor_keeps_a_genuine_token_and_replaces_a_forged_one(client):
    t = token()
    assert client.post("/api/visitor", json={"visitor": t}).json()["visitor"] == t
    forged = client.post("/api/visitor", json={"visitor": t[:-2] + "AA"}).json()["visitor"]
    assert forged != t and identity.verify_visitor_token(get_settings().secret_key, forged)
    assert client.post("/api/visitor", content="{bad", headers={"Content-Type": "application/json"}).status_code == 400


def test_identify_joins_the_browser_to_the_customer_only_with_the_stores_hmac(client):
    from sqlmodel import Session, select

    from chatdash.models import Shopper
    from chatdash.services.identity import customer_hmac

    t = token()
    visitor_id = identity.verify_visitor_token(get_settings().secret_key, t)
    secret = get_settings().store_secret
    for payload, status, says in [
        ({"visitor": "forged", "customer_id": "C-1", "hmac": customer_hmac(secret, "C-1")}, 401, "unknown visitor"),
        ({"visitor": t, "customer_id": "C-1", "hmac": customer_hmac(secret, "C-2")}, 403, "do not match"),
        ({"visitor": t, "customer_id": "C-1", "hmac": customer_hmac("guess", "C-1")}, 403, "do not match"),
        ({"visitor": t, "customer_id": 7, "hmac": "x"}, 403, "do not match"),
        ([1], 400, "JSON object"),
    ]:
        r = client.post("/api/identify", json=payload)
        assert (r.status_code, says in r.json()["error"]) == (status, True), r.text
    with Session(get_engine()) as s:
        assert s.exec(select(Shopper).where(Shopper.customer_id == "C-1")).first() is None
    r = client.post("/api/identify", json={"visitor": t, "customer_id": "C-1", "hmac": customer_hmac(secret, "C-1")})
    assert r.status_code == 200 and r.json()["ok"] is True
    with Session(get_engine()) as s:
        assert s.exec(select(Shopper.visitor_id).where(Shopper.customer_id == "C-1")).one() == visitor_id


def test_the_heartbeat_after_an_agent_writes_first_opens_the_chat_once(client):
    """The store page learns of an agent's opening message from its heartbeat's
    answer, once; a page's closing beacon never takes it."""
    import uuid

    from sqlmodel import Session, select

    from chatdash.models import Role, Shopper
    from chatdash.services import auth, proactive
    from chatdash.services.ratelimit import clear_limiters

    clear_limiters()
    with Session(get_engine()) as s:
        dana = auth.create_admin(s, "dana@store.test", "agent-password-1", "Dana", role=Role.AGENT)
        s.commit()
    t = token()
    visitor_id = identity.verify_visitor_token(get_settings().secret_key, t)
    beat = {"visitor": t, "state": "alive", "url": "https://shop.test/tents", "title": "Tents"}
    assert "chat" not in client.post("/api/presence", json=beat).json()
    with Session(get_engine()) as s:
        shopper_id = s.exec(select(Shopper.id).where(Shopper.visitor_id == visitor_id)).one()
    started = proactive.start_chat(dana.id, shopper_id, uuid.uuid4().hex, "Hi, can I help with the <b>tents</b>?")

    assert client.post("/api/presence", json={"visitor": t, "state": "left", "page": "page0000left"}).json() == {
        "ok": True, "next": 15}
    answer = client.post("/api/presence", json=beat).json()
    assert answer["chat"] == {"open": True, "message": started.message_id,
                              "text": "Hi, can I help with the <b>tents</b>?"}  # text: the page never renders HTML
    assert "chat" not in client.post("/api/presence", json=beat).json()
    clear_limiters()


def _on_site(visitor_token: str) -> bool:
    """On site as the admin sees it once the short grace after a closing page is over."""
    from datetime import timedelta

    from sqlmodel import Session, select

    from chatdash.models import Shopper
    from chatdash.services.conversations import LEAVE_GRACE, is_on_site, live_visit, utcnow

    visitor_id = identity.verify_visitor_token(get_settings().secret_key, visitor_token)
    window = get_settings().presence_window_seconds
    with Session(get_engine()) as s:
        shopper = s.exec(select(Shopper).where(Shopper.visitor_id == visitor_id)).one()
        now = utcnow() + LEAVE_GRACE + timedelta(seconds=1)
        return is_on_site(live_visit(s, shopper.id, now, window), now, window)


def test_the_last_pages_beacon_means_the_shopper_left(client):
    t = token()
    client.post("/api/presence", json={"visitor": t, "state": "alive", "page": "pageA0000001",
                                       "url": "https://shop.test/a"})
    assert _on_site(t)
    r = client.post("/api/presence", json={"visitor": t, "state": "left", "page": "pageA0000001"})
    assert "ignored" not in r.json()
    assert not _on_site(t)


def test_a_beacon_from_the_previous_page_arriving_after_the_next_pages_beat_leaves_the_shopper_on_site(client):
    """The shopper moves to the next page: its first heartbeat overtakes the old
    page's closing beacon. The shopper is on the site all along."""
    t = token()
    client.post("/api/presence", json={"visitor": t, "state": "alive", "page": "pageA0000002",
                                       "url": "https://shop.test/a"})
    client.post("/api/presence", json={"visitor": t, "state": "alive", "page": "pageB0000002",
                                       "url": "https://shop.test/b"})
    r = client.post("/api/presence", json={"visitor": t, "state": "left", "page": "pageA0000002"})
    assert r.json()["ignored"] == "another page of this visitor is open"
    assert _on_site(t)
    # The last open page closes: now the shopper has left.
    r = client.post("/api/presence", json={"visitor": t, "state": "left", "page": "pageB0000002"})
    assert "ignored" not in r.json()
    assert not _on_site(t)


@pytest.mark.parametrize("path", ["/api/presence", "/api/identify", "/api/visitor", "/api/store/orders",
                                  "/api/store/carts"])
def test_text_that_is_not_unicode_gets_a_400_with_the_reason_not_a_server_error(client, path):
    """A lone UTF-16 surrogate escape ("\\ud800") parses as JSON but cannot be
    stored or sent on; every route says so instead of failing with a 500."""
    body = ('{"visitor": "' + token() + '", "state": "alive", "url": "https://shop.test/a", '
            '"title": "\\ud800 sale", "customer_id": "C-\\udfff", "hmac": "x", "order_id": "o-\\ud800", '
            '"items": []}')
    headers = {"Content-Type": "text/plain", "Authorization": f"Bearer {get_settings().store_secret}"}
    r = client.post(path, content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert "not valid Unicode" in r.json()["error"]
    # The same body with real text is taken (or refused for another reason, never a 500).
    assert client.post(path, content=body.replace("\\ud800", "x").replace("\\udfff", "y"),
                       headers=headers).status_code < 500
