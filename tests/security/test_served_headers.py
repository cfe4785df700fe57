"""Headers of what the production build really serves (one port: pages, API,
event socket): framing, CSP and referrer rules, and CORS that never lets
another site read a response with the user's credentials."""

from __future__ import annotations

import http.server
import threading
from functools import partial

import httpx
import pytest

pytestmark = pytest.mark.browser

EVIL = "https://evil.test"
STORE = "https://shop.test"


def get(live_app, path: str, **kw) -> httpx.Response:
    return httpx.get(f"{live_app.backend}{path}", timeout=30, follow_redirects=True, **kw)


@pytest.mark.parametrize("path", ["/login", "/admin/conversations", "/admin/settings", "/api/health", "/widget.js"])
def test_admin_pages_and_the_api_may_not_be_framed(live_app, path):
    r = get(live_app, path)
    assert r.status_code == 200
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert "object-src 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Referrer-Policy"] == "same-origin"
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_the_widget_page_may_be_framed_by_store_pages(live_app):
    r = get(live_app, "/widget")
    assert r.status_code == 200
    assert "frame-ancestors 'self' *" in r.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in r.headers
    assert r.headers["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize("path", ["/login", "/api/health", "/widget.js", "/_health"])
def test_another_sites_origin_is_never_echoed_with_credentials(live_app, path):
    r = get(live_app, path, headers={"Origin": EVIL})
    assert r.headers.get("Access-Control-Allow-Origin") != EVIL


@pytest.mark.parametrize("path", ["/api/visitor", "/api/track", "/login"])
def test_a_preflight_from_another_site_is_not_allowed(live_app, path):
    r = httpx.options(f"{live_app.backend}{path}", timeout=30, headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert r.headers.get("Access-Control-Allow-Origin") != EVIL
    assert r.status_code == 400


def test_a_store_page_reads_its_visitor_token_without_credentials(live_app):
    # What widget.js sends: text/plain (no preflight), no cookies.
    r = httpx.post(f"{live_app.backend}/api/visitor", content='{"visitor": ""}', timeout=30,
                   headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": STORE})
    assert r.status_code == 200
    assert r.json()["visitor"]
    assert r.headers["Access-Control-Allow-Origin"] == "*"


FRAMING_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>framer</title></head><body>
<iframe id="admin" src="{app}/login"></iframe><iframe id="widget" src="{app}/widget"></iframe>
</body></html>"""


@pytest.fixture(scope="module")
def framing_site(live_app, tmp_path_factory):
    """A page of another origin that tries to frame the admin login and the widget."""
    root = tmp_path_factory.mktemp("framer")
    (root / "index.html").write_text(FRAMING_PAGE.format(app=live_app.frontend))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(http.server.SimpleHTTPRequestHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_browser_refuses_to_frame_the_admin_but_frames_the_widget(context, framing_site):
    from playwright.sync_api import expect

    page = context.new_page()
    with page.expect_event("requestfailed", timeout=30_000,
                           predicate=lambda r: "/login" in r.url) as refused:
        page.goto(framing_site)
    assert refused.value.failure == "net::ERR_BLOCKED_BY_RESPONSE"
    # The widget page renders inside the other site's frame.
    expect(page.frame_locator("#widget").locator("#chat-widget")).to_be_attached(timeout=30_000)
