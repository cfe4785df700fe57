"""Shopper routes that write accept only the store's origins, and answer store
pages without credentials, the way widget.js calls them."""

from __future__ import annotations

import json

import pytest

from chatdash.services.identity import customer_hmac
from chatdash.settings import get_settings
from tests.security.http_client import STORE, api_client, visitor_token

STORES = {"CHATDASH_ALLOWED_ORIGINS": f"{STORE}, https://www.shop.test"}


def widget_post(client, path: str, body: dict, origin: str):
    """What widget.js sends: a text/plain JSON body, no credentials."""
    return client.post(path, content=json.dumps(body),
                       headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": origin})


def bodies() -> dict[str, dict]:
    token = visitor_token()
    return {
        "/api/visitor": {"visitor": ""},
        "/api/presence": {"visitor": token, "state": "alive", "url": f"{STORE}/", "title": "Home"},
        "/api/identify": {"visitor": token, "customer_id": "CUST-1",
                          "hmac": customer_hmac(get_settings().store_secret, "CUST-1")},
        "/api/track": {"visitor": token, "events": [{"id": "e0000001", "kind": "page_view", "url": f"{STORE}/",
                                                     "title": "Home", "data": {"referrer": ""}}]},
    }


@pytest.mark.parametrize("path", ["/api/visitor", "/api/presence", "/api/identify", "/api/track"])
def test_a_page_of_another_site_is_refused_with_403(tmp_path, path):
    with api_client(tmp_path, STORES) as client:
        r = widget_post(client, path, bodies()[path], "https://evil.test")
    assert r.status_code == 403
    assert r.json()["error"] == "requests from this origin are refused; add it to CHATDASH_ALLOWED_ORIGINS"


@pytest.mark.parametrize("path", ["/api/visitor", "/api/presence", "/api/identify", "/api/track"])
@pytest.mark.parametrize("env", [STORES, {}])
def test_the_stores_page_is_answered_readably_without_credentials(tmp_path, path, env):
    with api_client(tmp_path, env) as client:
        r = widget_post(client, path, bodies()[path], "https://www.shop.test")
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in r.headers


def test_a_refusal_is_readable_by_the_stores_page_too(tmp_path):
    # widget.js reads 401/422 answers to re-identify or drop bad events.
    with api_client(tmp_path) as client:
        r = widget_post(client, "/api/presence", {"visitor": "forged", "state": "alive"}, STORE)
    assert r.status_code == 401
    assert r.headers["Access-Control-Allow-Origin"] == "*"
