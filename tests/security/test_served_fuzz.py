"""Fuzzing what the production build serves besides chatdash's own API routes
(test_http_fuzz.py covers those in process): Reflex's /ping, /_health, the
event socket's HTTP endpoint, upload and the pages. No 5xx, whatever arrives."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.browser

REFLEX_PATHS = ["/ping", "/_health", "/_event/", "/_event", "/_upload", "/login", "/admin/conversations",
                "/widget", "/store", "/widget.js", "/api/health", "/assets/x.js", "/%2e%2e/%2e%2e/etc/passwd"]


@pytest.fixture(scope="module")
def http(live_app):
    with httpx.Client(base_url=live_app.backend, timeout=30) as client:
        yield client


URL_CHARACTERS = st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="?#")


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.one_of(st.sampled_from(REFLEX_PATHS), st.text(URL_CHARACTERS, max_size=30).map("/".__add__)),
       method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]),
       query=st.dictionaries(st.sampled_from(["EIO", "transport", "sid", "token", "v", "x"]),
                             st.text(max_size=20), max_size=3),
       body=st.binary(max_size=200),
       content_type=st.sampled_from(["application/json", "text/plain", "multipart/form-data; boundary=x", ""]))
def test_no_request_makes_the_served_app_fail_with_5xx(http, path, method, query, body, content_type):
    r = http.request(method, path, params=query, content=body if method not in ("GET", "HEAD") else None,
                     headers={"Content-Type": content_type} if content_type else {})
    assert r.status_code < 500, (method, path, r.status_code, r.text[:300])
