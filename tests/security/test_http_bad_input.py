"""Input that used to answer 500: every bad body is a 4xx with a clear JSON reason."""

from __future__ import annotations

import uuid

import pytest

from tests.security.http_client import STORE, api_client, bearer, visitor_token

HUGE_INT = "9" * 5000  # over Python's 4,300-digit int-string limit


@pytest.fixture
def client(tmp_path):
    with api_client(tmp_path) as c:
        yield c


def event(**fields) -> dict:
    return {"id": uuid.uuid4().hex, "kind": "product_view", "at": "2025-05-01T10:00:00Z",
            "url": f"{STORE}/p/TENT-1", "title": "Summit Tent", "data": {"sku": "TENT-1"}, **fields}


# /api/visitor and /api/presence take at most 1 KB and 4 KB: 413 before parsing.
@pytest.mark.parametrize("path", ["/api/track", "/api/store/orders", "/api/store/carts"])
def test_a_number_with_too_many_digits_is_refused_with_400(client, path):
    body = '{"visitor": "x", "total": ' + HUGE_INT + "}"
    r = client.post(path, content=body, headers={**bearer(), "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "body is not valid JSON: a number has too many digits"


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_an_event_time_outside_utcs_range_is_refused_with_422_naming_the_field(client, at):
    r = client.post("/api/track", json={"visitor": visitor_token(), "events": [event(at=at)]})
    assert r.status_code == 422
    (problem,) = r.json()["detail"]
    assert (problem["event"], problem["field"]) == (0, "at")
    assert problem["message"] == "is out of range: in UTC it falls before year 1 or after year 9999"


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_an_order_time_outside_utcs_range_is_refused_with_422(client, at):
    order = {"order_id": "W-1", "customer_id": "c-1", "items": [{"sku": "TENT-1", "quantity": 1, "price": 1}],
             "total": 1, "currency": "USD", "ordered_at": at}
    r = client.post("/api/store/orders", json=order, headers=bearer())
    assert r.status_code == 422
    assert "ordered_at" in [d["field"] for d in r.json()["detail"]]
