"""Per-IP limits count the real client: wrong store secrets never lock out the
right one, and X-Forwarded-For is believed only from a configured proxy."""

from __future__ import annotations

import pytest

from chatdash.api import track as track_api
from chatdash.services.client_ip import client_ip, parse_trusted_proxies
from chatdash.settings import Settings
from tests.security.http_client import api_client, bearer

PROXY = ("10.0.0.5", 40000)
WRONG = track_api.AUTH_FAILURE_LIMIT[0]


def cart() -> dict:
    return {"customer_id": "cust-1", "items": [{"sku": "TENT-1", "quantity": 1, "price": 199}], "currency": "USD"}


def guess(client, **headers):
    return client.post("/api/store/carts", json=cart(), headers={**bearer("guess"), **headers})


def test_the_right_store_secret_still_works_after_many_wrong_ones_from_the_same_address(tmp_path):
    with api_client(tmp_path) as client:
        for _ in range(WRONG):
            assert guess(client).status_code == 401
        locked = guess(client)
        assert locked.status_code == 429
        assert locked.json()["error"].startswith("too many failed authentications")
        assert int(locked.headers["Retry-After"]) >= 1
        r = client.post("/api/store/carts", json=cart(), headers=bearer())
        assert r.status_code == 200
        assert r.json()["lines"] == 1


def test_behind_a_trusted_proxy_one_clients_wrong_secrets_do_not_lock_out_another(tmp_path):
    with api_client(tmp_path, {"CHATDASH_TRUSTED_PROXIES": "10.0.0.0/24"}, peer=PROXY) as client:
        for _ in range(WRONG):
            assert guess(client, **{"X-Forwarded-For": "198.51.100.7"}).status_code == 401
        assert guess(client, **{"X-Forwarded-For": "198.51.100.7"}).status_code == 429
        # Another client behind the same proxy is counted on its own.
        assert guess(client, **{"X-Forwarded-For": "198.51.100.8"}).status_code == 401


def test_forwarded_for_from_an_untrusted_peer_is_ignored(tmp_path):
    with api_client(tmp_path, {"CHATDASH_TRUSTED_PROXIES": "10.0.0.0/24"}, peer=("203.0.113.9", 1)) as client:
        for i in range(WRONG):
            # A new made-up address each time must not reset the count.
            assert guess(client, **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code == 401
        assert guess(client, **{"X-Forwarded-For": "198.51.100.250"}).status_code == 429


def test_the_visitor_endpoints_ip_limit_counts_the_forwarded_client(tmp_path):
    with api_client(tmp_path, {"CHATDASH_TRUSTED_PROXIES": "10.0.0.5"}, peer=PROXY) as client:
        for _ in range(60):
            assert client.post("/api/visitor", json={}, headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 200
        assert client.post("/api/visitor", json={},
                           headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 429
        assert client.post("/api/visitor", json={},
                           headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 200


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("203.0.113.9", None, "203.0.113.9"),
    ("203.0.113.9", "198.51.100.1", "203.0.113.9"),          # not a proxy: header ignored
    ("10.0.0.5", None, "10.0.0.5"),
    ("10.0.0.5", "198.51.100.1", "198.51.100.1"),
    ("10.0.0.5", "1.2.3.4, 198.51.100.1", "198.51.100.1"),   # the left part is the client's to forge
    ("10.0.0.5", "198.51.100.1, 10.0.0.6", "198.51.100.1"),  # through two of our proxies
    ("10.0.0.5", "10.0.0.7, 10.0.0.6", "10.0.0.7"),          # all proxies: the farthest
    ("10.0.0.5", "198.51.100.1, junk", "10.0.0.5"),          # garbage from the proxy's side
    ("::ffff:10.0.0.5", "2001:db8::1", "2001:db8::1"),       # IPv4 peer on a dual-stack socket
    (None, "198.51.100.1", "?"),
])
def test_client_ip_believes_forwarded_for_only_from_trusted_proxies(peer, forwarded, expected):
    assert client_ip(peer, forwarded, "10.0.0.0/24") == expected


def test_a_bad_trusted_proxy_setting_stops_the_start_with_its_name():
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        Settings(trusted_proxies="10.0.0.1, 10.0.0.300")
    assert len(parse_trusted_proxies("10.0.0.1, 192.168.0.0/16, ::1")) == 3
