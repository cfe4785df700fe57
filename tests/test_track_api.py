"""The tracking HTTP API (/api/track and the store's server-to-server
endpoints), called over Starlette's TestClient against a real SQLite file."""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from chatdash import events
from chatdash.api import track as track_api
from chatdash.db import get_engine, migrate, session_scope
from chatdash.models import Cart, Order, OrderLine, Product, Shopper, StoreEvent
from chatdash.services import conversations as convs
from chatdash.services import identity
from chatdash.services.ratelimit import clear_limiters, limiter
from chatdash.settings import get_settings

with warnings.catch_warnings():
    # Starlette 1.x would like httpx2 for its TestClient; httpx works the same here.
    warnings.filterwarnings("ignore", message=".*httpx.*", category=Warning)
    from starlette.testclient import TestClient

STORE = "https://shop.test"


@pytest.fixture
def client(tmp_path: Path, monkeypatch) -> Iterator[TestClient]:
    """The API app on its own migrated SQLite file, fresh rate limits, and a
    record of the domain events its writes commit (what the live screens are told)."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'api.db'}")
    monkeypatch.delenv(track_api.ALLOWED_ORIGINS_ENV, raising=False)
    get_settings.cache_clear()
    get_engine.cache_clear()
    clear_limiters()
    migrate(get_engine())
    with session_scope() as s:
        s.add(Product(sku="TENT-1", name="Summit Tent", category="Camping", price_cents=19_900,
                      url=f"{STORE}/p/TENT-1"))
    recorded: list[events.DomainEvent] = []
    stop = events.listen(recorded.extend)
    from chatdash.api.routes import api

    with TestClient(api) as c:
        c.events = recorded
        yield c
    stop()
    get_engine().dispose()
    get_settings.cache_clear()
    get_engine.cache_clear()
    clear_limiters()


def visitor_token() -> str:
    return identity.issue_visitor_token(get_settings().secret_key)


def visitor_id(token: str) -> str:
    return token.split(".")[0]


def ev(kind: str = "product_view", **fields) -> dict:
    data = {"product_view": {"sku": "TENT-1"}, "page_view": {"referrer": ""},
            "cart": {"items": [{"sku": "TENT-1", "quantity": 2, "price": 199}], "total": 398, "currency": "USD"},
            "order": {"order_id": "W-1", "items": [{"sku": "TENT-1", "quantity": 1, "price": 199}],
                      "total": 199, "currency": "USD"}}[kind]
    return {"id": uuid.uuid4().hex, "kind": kind, "at": "2025-05-01T10:00:00Z", "url": f"{STORE}/p/TENT-1",
            "title": "Summit Tent", "data": data, **fields}


def events_of(token: str) -> list[StoreEvent]:
    with Session(get_engine()) as s:
        shopper = s.exec(select(Shopper).where(Shopper.visitor_id == visitor_id(token))).first()
        if shopper is None:
            return []
        return list(s.exec(select(StoreEvent).where(StoreEvent.shopper_id == shopper.id)).all())


def send(client: TestClient, token: str, events: list[dict], **kw):
    return client.post("/api/track", json={"visitor": token, "events": events}, **kw)


# --------------------------------------------------------------------------- valid batches


def test_a_valid_batch_is_accepted_and_stored(client):
    token = visitor_token()
    r = send(client, token, [ev("page_view", at=None), ev(), ev("cart"), ev("order")])
    assert r.status_code == 200
    assert r.json() == {"accepted": 4, "duplicates": 0}
    assert sorted(e.kind for e in events_of(token)) == ["cart", "order", "page_view", "product_view"]


def test_a_retried_batch_is_stored_once(client):
    token = visitor_token()
    batch = [ev(), ev(), ev("cart")]
    assert send(client, token, batch).json() == {"accepted": 3, "duplicates": 0}
    assert send(client, token, batch).json() == {"accepted": 0, "duplicates": 3}
    assert len(events_of(token)) == 3


def test_an_id_repeated_inside_a_batch_is_stored_once(client):
    token = visitor_token()
    one = ev()
    assert send(client, token, [one, one, ev()]).json() == {"accepted": 2, "duplicates": 1}


def test_a_beacon_body_sent_as_text_plain_is_accepted(client):
    token = visitor_token()
    body = json.dumps({"visitor": token, "events": [ev()]})
    r = client.post("/api/track", content=body.encode(), headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert r.status_code == 200
    assert r.json()["accepted"] == 1


def test_a_shoppers_activity_refreshes_the_screens_showing_their_conversation(client):
    token = visitor_token()
    send(client, token, [ev()])
    with session_scope() as s:
        shopper = convs.get_or_create_shopper(s, visitor_id(token))
    # Nobody is chatting with this shopper: only the Visitors page cares.
    assert events.ShopperActivity(shopper.id, 0) in client.events
    with session_scope() as s:
        conv, _ = convs.start_conversation(s, shopper.id)
    send(client, token, [ev("page_view", at=None, url=f"{STORE}/cart")])
    assert events.ShopperActivity(shopper.id, conv.id) in client.events
    # The inbox and the panel show the current page.
    moved = [e for e in client.events if isinstance(e, events.PresenceChanged) and e.shopper_id == shopper.id]
    assert moved and moved[-1].current_url == f"{STORE}/cart" and moved[-1].on_site


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(("body", "content_type", "status", "error"), [
    (b"{not json", "application/json", 400, "body is not valid JSON"),
    (b"\xff\xfe\x00", "application/json", 400, "body is not valid JSON"),
    (b"", "application/json", 400, "body is empty"),
    (b"[1, 2]", "application/json", 400, "body must be a JSON object"),
    (b'"text"', "text/plain", 400, "body must be a JSON object"),
    (b"[" * 10_000 + b"]" * 10_000, "application/json", 400, "body is nested too deeply"),
    (b"visitor=x", "application/x-www-form-urlencoded", 415, "content type"),
    (b"x" * (64 * 1024 + 1), "application/json", 413, "body is larger than 65,536 bytes"),
])
def test_a_body_that_is_not_a_json_object_is_refused_with_a_reason(client, body, content_type, status, error):
    r = client.post("/api/track", content=body, headers={"Content-Type": content_type})
    assert r.status_code == status
    assert r.json()["error"].startswith(error)


def test_an_oversize_body_without_a_length_is_cut_off_at_64_kb(client):
    chunks = iter([b'{"events": ["' + b"x" * 40_000, b"x" * 40_000 + b'"]}'])
    r = client.post("/api/track", content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize(("event", "field", "message"), [
    ({**ev(), "kind": "wishlist"}, "kind", "unknown event kind 'wishlist'"),
    ({k: v for k, v in ev().items() if k != "data"}, "data", "Field required"),
    (ev(data={"sku": 12}), "data.sku", "valid string"),
    (ev(url="javascript:alert(1)"), "url", "http"),
    (ev("page_view", url="data:text/html,hi"), "url", "http"),
    (ev("cart", data={"items": [{"sku": "TENT-1", "quantity": 1, "price": -5}]}), "data.items.0.price",
     "must not be negative"),
    (ev("cart", data={"items": [{"sku": "TENT-1", "quantity": "lots", "price": 5}]}), "data.items.0.quantity",
     "valid integer"),
    (ev(id="bad id!"), "id", "8 to 64 characters"),
    (ev(title=None), "title", "valid string"),
    (ev(data={"sku": "TENT-1", "pad": "x" * 9000}), "(event)", "at most 8,192"),
])
def test_a_malformed_event_is_refused_with_422_naming_the_event_and_field(client, event, field, message):
    token = visitor_token()
    r = send(client, token, [ev(), event])
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "1 of 2 events are invalid"
    (problem,) = body["detail"]
    assert (problem["event"], problem["field"]) == (1, field)
    assert message in problem["message"]
    assert events_of(token) == []  # all or nothing


def test_an_event_with_half_a_utf16_pair_is_refused_with_422_not_a_server_error(client):
    # JSON may escape a lone surrogate ("\\ud800"); Python decodes it, but no UTF-8 text holds it.
    token = visitor_token()
    body = json.dumps({"visitor": token, "events": [ev(), ev(title="Tent \ud800")]})
    r = client.post("/api/track", content=body.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    (problem,) = r.json()["detail"]
    assert (problem["event"], problem["field"]) == (1, "(event)")
    assert "not valid Unicode" in problem["message"]
    assert events_of(token) == []


@pytest.mark.parametrize(("events", "status"), [(None, 422), ("x", 422), ([], 422), ([ev()] * 51, 413)])
def test_events_must_be_a_list_of_1_to_50(client, events, status):
    r = client.post("/api/track", json={"visitor": visitor_token(), "events": events})
    assert r.status_code == status
    assert r.json()["detail"][0]["field"] == "events"


def test_the_api_answers_only_post(client):
    assert client.get("/api/track").status_code == 405


# --------------------------------------------------------------------------- who may send


@pytest.mark.parametrize("token", [
    None, "", 42, "not-a-token", "abcdefghijklmnopqrstuvwx.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    identity.issue_visitor_token("another-servers-secret"),
])
def test_an_unknown_or_forged_visitor_is_refused_with_401(client, token):
    r = client.post("/api/track", json={"visitor": token, "events": [ev()]})
    assert r.status_code == 401
    assert r.json()["error"].startswith("unknown visitor")


def test_a_visitor_sending_too_often_gets_429_with_retry_after(client):
    token = visitor_token()
    limit = track_api.VISITOR_LIMIT[0]
    for _ in range(limit):
        assert send(client, token, []).status_code == 422  # counted, and cheap: refused before storing
    r = send(client, token, [ev()])
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert "visitor" in r.json()["error"]
    # Another visitor is not held back.
    assert send(client, visitor_token(), [ev()]).status_code == 200


def test_an_address_sending_too_often_gets_429(client):
    ip_limiter = limiter("track-ip", *track_api.IP_LIMIT)
    for _ in range(track_api.IP_LIMIT[0]):
        ip_limiter.hit("testclient")  # the address TestClient requests come from
    r = send(client, visitor_token(), [ev()])
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1


def test_only_the_stores_origins_may_send(client, monkeypatch):
    monkeypatch.setenv(track_api.ALLOWED_ORIGINS_ENV, "https://shop.test, https://www.shop.test/")
    get_settings.cache_clear()
    token = visitor_token()
    assert send(client, token, [ev()], headers={"Origin": "https://www.shop.test"}).status_code == 200
    r = send(client, token, [ev()], headers={"Origin": "https://evil.test"})
    assert r.status_code == 403
    assert track_api.ALLOWED_ORIGINS_ENV in r.json()["error"]
    # No Origin header: not a browser acting for another site.
    assert send(client, token, [ev()]).status_code == 200


def test_any_origin_may_send_when_none_are_configured(client):
    assert send(client, visitor_token(), [ev()], headers={"Origin": "https://any.test"}).status_code == 200


# --------------------------------------------------------------------------- store backend


def order_body(order_id: str = "W-100", **fields) -> dict:
    return {"order_id": order_id, "customer_id": "cust-7",
            "items": [{"sku": "TENT-1", "quantity": 2, "price": 180}, {"sku": "UNKNOWN", "quantity": 1, "price": 3}],
            "total": 363.0, "currency": "USD", "ordered_at": "2025-05-02T09:30:00+02:00", **fields}


def bearer(secret: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret or get_settings().store_secret}"}


@pytest.mark.parametrize("path", ["/api/store/orders", "/api/store/carts"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer "}])
def test_the_store_api_refuses_a_missing_or_wrong_secret(client, path, headers):
    r = client.post(path, json=order_body(), headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    with Session(get_engine()) as s:
        assert s.exec(select(Order)).all() == []


def test_repeated_wrong_secrets_are_slowed_down(client):
    for _ in range(track_api.AUTH_FAILURE_LIMIT[0]):
        assert client.post("/api/store/orders", json=order_body(), headers=bearer("guess")).status_code == 401
    r = client.post("/api/store/orders", json=order_body(), headers=bearer("guess"))
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    # The store itself, from the same address, is not locked out (tests/security).
    assert client.post("/api/store/orders", json=order_body(), headers=bearer()).status_code == 201


def test_a_store_order_is_created_once(client):
    r = client.post("/api/store/orders", json=order_body(), headers=bearer())
    assert r.status_code == 201
    assert r.json() == {"order_id": "W-100", "created": True, "shopper_id": r.json()["shopper_id"],
                        "total": 363.0, "currency": "USD", "ignored_skus": ["UNKNOWN"]}
    again = client.post("/api/store/orders", json=order_body(total=1), headers=bearer())
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["total"] == 363.0
    with Session(get_engine()) as s:
        (order,) = s.exec(select(Order)).all()
        lines = s.exec(select(OrderLine).where(OrderLine.order_id == order.id)).all()
        shopper = s.get(Shopper, order.shopper_id)
    assert (order.external_id, order.total_cents, order.source) == ("W-100", 36_300, "api")
    assert order.ordered_at.hour == 7  # 09:30+02:00 in UTC
    assert [(line.quantity, line.unit_price_cents) for line in lines] == [(2, 18_000)]
    assert shopper.customer_id == "cust-7"


def test_a_store_order_for_a_visitor_refreshes_their_conversation(client):
    token = visitor_token()
    with session_scope() as s:
        shopper = convs.get_or_create_shopper(s, visitor_id(token))
        conv, _ = convs.start_conversation(s, shopper.id)
    r = client.post("/api/store/orders", json=order_body(customer_id=None, visitor=token), headers=bearer())
    assert r.status_code == 201
    assert r.json()["shopper_id"] == shopper.id
    assert events.ShopperActivity(shopper.id, conv.id) in client.events


def test_a_store_order_with_a_forged_visitor_is_refused(client):
    forged = identity.issue_visitor_token("another-servers-secret")
    r = client.post("/api/store/orders", json=order_body(customer_id=None, visitor=forged), headers=bearer())
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "visitor"


@pytest.mark.parametrize(("change", "field"), [
    ({"order_id": ""}, "order_id"),
    ({"items": []}, "items"),
    ({"total": -1}, "total"),
    ({"customer_id": None}, "(event)"),
    ({"ordered_at": "last tuesday"}, "ordered_at"),
    ({"items": [{"sku": "TENT-1", "quantity": 0, "price": 1}]}, "items.0.quantity"),
])
def test_a_malformed_store_order_is_refused_with_the_field(client, change, field):
    r = client.post("/api/store/orders", json=order_body(**change), headers=bearer())
    assert r.status_code == 422
    assert field in [d["field"] for d in r.json()["detail"]]


def test_a_store_order_body_that_is_not_an_object_is_refused(client):
    r = client.post("/api/store/orders", content=b"[]", headers={**bearer(), "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "body must be a JSON object"


def test_a_store_cart_replaces_the_shoppers_cart(client):
    body = {"customer_id": "cust-9", "items": [{"sku": "TENT-1", "quantity": 3, "price": 150.5}], "currency": "USD"}
    r = client.post("/api/store/carts", json=body, headers=bearer())
    assert r.status_code == 200
    assert r.json() == {"shopper_id": r.json()["shopper_id"], "lines": 1, "total": 451.5, "currency": "USD",
                        "ignored_skus": []}
    with Session(get_engine()) as s:
        cart = s.exec(select(Cart).join(Shopper, col(Shopper.id) == Cart.shopper_id)
                      .where(Shopper.customer_id == "cust-9")).one()
    assert cart.total_cents == 45_150
