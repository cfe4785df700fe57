"""Property-based fuzzing of every HTTP route the app serves (chatdash/api/routes.py):
whatever arrives, the answer is never a 5xx, and a refusal says why in JSON.

Bodies are random bytes, random JSON, numbers past Python's digit limit, and
near-valid payloads of each route with every field drawn from good and bad
values (times at the edges of the calendar with any UTC offset, huge and
negative amounts, wrong types). Bounded: ~150 examples per route."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from chatdash.api.routes import api
from chatdash.services.ratelimit import clear_limiters
from chatdash.settings import get_settings
from tests.security.http_client import STORE, api_client, visitor_token

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

CONTENT_TYPES = st.sampled_from(["application/json", "text/plain;charset=UTF-8", "", "application/xml",
                                 "multipart/form-data; boundary=x", "APPLICATION/JSON"])
ORIGINS = st.sampled_from([None, STORE, "https://evil.test", "null", ""])
AUTH = st.sampled_from(["right", "wrong", "none", "basic", "empty"])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False), st.text(max_size=30),
    st.sampled_from(["", "0", "-1", "1e999", "NaN", "Infinity", "1e-999999999", "12.345", "USD", "TENT-1"]),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)), max_leaves=20)

offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59))
times = st.one_of(
    st.none(), scalars,
    st.datetimes(min_value=datetime.min, max_value=datetime.max,
                 timezones=st.builds(timezone, offsets)).map(datetime.isoformat),
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2025-05-01T10:00:00Z",
                     "2025-13-01", "last tuesday"]),
)
urls = st.one_of(st.just(f"{STORE}/p/TENT-1"), st.text(max_size=40),
                 st.sampled_from(["javascript:alert(1)", "https://", "http://[::1", "https://a b/"]))
money = st.one_of(scalars, st.decimals(allow_nan=True, allow_infinity=True).map(str))
lines = st.lists(st.fixed_dictionaries({}, optional={"sku": st.one_of(st.just("TENT-1"), scalars),
                                                     "quantity": scalars, "price": money}), max_size=4)
event_ids = st.one_of(st.uuids().map(lambda u: u.hex), scalars)
events = st.fixed_dictionaries(
    {"id": event_ids, "kind": st.sampled_from(["page_view", "product_view", "cart", "order", "wishlist"])},
    optional={"at": times, "url": urls, "title": st.one_of(scalars, st.text(max_size=400)),
              "data": st.one_of(json_values, st.fixed_dictionaries({}, optional={
                  "sku": scalars, "referrer": urls, "items": lines, "total": money, "currency": scalars,
                  "order_id": scalars}))},
)
# "valid" is replaced by a token this server signed.
visitors = st.one_of(st.just("valid"), scalars)
payloads = {
    "/api/track": st.fixed_dictionaries({"visitor": visitors},
                                        optional={"events": st.one_of(scalars, st.lists(events, max_size=4))}),
    "/api/visitor": st.fixed_dictionaries({}, optional={"visitor": visitors}),
    "/api/presence": st.fixed_dictionaries({"visitor": visitors}, optional={
        "state": st.one_of(st.sampled_from(["alive", "left"]), scalars), "url": urls, "title": scalars,
        "page": st.one_of(st.just("page0000abcd"), scalars)}),
    "/api/identify": st.fixed_dictionaries({"visitor": visitors}, optional={
        "customer_id": scalars, "hmac": st.one_of(st.just("ab" * 32), scalars), "name": scalars,
        "email": scalars}),
    "/api/store/orders": st.fixed_dictionaries({}, optional={
        "order_id": scalars, "customer_id": scalars, "visitor": visitors, "items": st.one_of(lines, scalars),
        "total": money, "currency": scalars, "ordered_at": times}),
    "/api/store/carts": st.fixed_dictionaries({}, optional={
        "customer_id": scalars, "visitor": visitors, "items": st.one_of(lines, scalars), "currency": scalars,
        "at": times}),
}


def _signed(value):
    if value == "valid":
        return visitor_token()
    if isinstance(value, dict):
        return {k: _signed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_signed(v) for v in value]
    return value


# Every route the API app serves, so a new route is fuzzed from the day it is added.
ROUTES = sorted(route.path for route in api.routes if isinstance(route, Route))


def bodies(path: str):
    huge_number = st.integers(min_value=4290, max_value=4400).map(
        lambda n: b'{"visitor": "x", "total": ' + b"9" * n + b"}")
    near_valid = payloads.get(path, json_values)
    return st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        huge_number,
        near_valid.map(lambda v: json.dumps(_signed(v)).encode()),
    )


def headers(content_type: str, origin: str | None, auth: str) -> dict[str, str]:
    out = {"Content-Type": content_type}
    if origin is not None:
        out["Origin"] = origin
    out["Authorization"] = {"right": f"Bearer {get_settings().store_secret}", "wrong": "Bearer guess",
                            "none": "", "basic": "Basic YTpi", "empty": "Bearer "}[auth]
    return out


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with api_client(tmp_path_factory.mktemp("fuzz"), {"CHATDASH_ALLOWED_ORIGINS": STORE}) as c:
        yield c


def assert_answered(r, json_api: bool) -> None:
    """No 5xx; a JSON API route also says why it refused, in JSON."""
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if json_api and r.status_code >= 400 and r.status_code != 405:
        assert isinstance(r.json()["error"], str) and r.json()["error"]


def test_the_near_valid_payloads_name_real_routes():
    assert set(payloads) <= set(ROUTES)


@pytest.mark.parametrize("path", ROUTES)
def test_no_body_makes_a_route_fail_with_5xx(client, path):
    @FUZZ
    @given(body=bodies(path), content_type=CONTENT_TYPES, origin=ORIGINS, auth=AUTH)
    def check(body, content_type, origin, auth):
        clear_limiters()  # limits are tested elsewhere; here every example reaches the parser
        r = client.post(path, content=body, headers=headers(content_type, origin, auth))
        assert_answered(r, json_api=path in payloads)

    check()


@FUZZ
@given(path=st.sampled_from(ROUTES),
       method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
       query=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
       origin=ORIGINS)
def test_no_method_or_query_makes_a_route_fail_with_5xx(client, path, method, query, origin):
    clear_limiters()
    r = client.request(method, path, params=query, headers={} if origin is None else {"Origin": origin})
    assert r.status_code < 500, (r.status_code, r.text[:500])
