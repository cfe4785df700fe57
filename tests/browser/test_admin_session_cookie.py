"""The admin session in a real Chromium: page scripts (the admin's own, the
demo store's, the widget's) cannot read it; login, reload and logout work."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.conftest import login

pytestmark = pytest.mark.browser


def _session_cookie(context) -> dict | None:
    return next((c for c in context.cookies() if c["name"] == "chatdash_admin"), None)


def test_page_scripts_cannot_read_the_admin_session(live_app, context):
    page = context.new_page()
    login(page, live_app)
    expect(page).to_have_url(re.compile(r"/admin/conversations/?$"))
    cookie = _session_cookie(context)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["value"] not in page.evaluate("document.cookie")
    assert "chatdash_admin" not in page.evaluate("document.cookie")

    # The store and the widget share the origin: their scripts cannot read it either.
    for path in ("/store", "/widget"):
        other = context.new_page()
        other.goto(f"{live_app.frontend}{path}")
        assert "chatdash_admin" not in other.evaluate("document.cookie")
        other.close()

    # A reload keeps the admin logged in; the socket still knows who it is.
    page.reload()
    expect(page).to_have_url(re.compile(r"/admin/conversations/?$"))
    expect(page.locator("#conversation-list")).to_be_visible()

    page.click("#account-menu")
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login/?$"))
    assert _session_cookie(context) is None
    page.goto(f"{live_app.frontend}/admin/settings")
    expect(page).to_have_url(re.compile(r"/login/?$"))


def test_the_login_page_says_when_to_try_again(live_app, context):
    from sqlmodel import Session

    from chatdash.db import make_engine
    from chatdash.services import auth

    email = f"locked-out-{uuid.uuid4().hex[:6]}@store.test"
    engine = make_engine(live_app.db_url)
    with Session(engine) as s:
        auth.create_admin(s, email, "the-right-password")
        s.commit()
    engine.dispose()
    page = context.new_page()
    for _ in range(5):
        login(page, live_app, email=email, password="a-wrong-password")
        expect(page.locator("#login-error")).to_have_text("Wrong email or password.")
    login(page, live_app, email=email, password="the-right-password")
    expect(page.locator("#login-error")).to_have_text("Too many attempts, try again in 5 minutes.")
    expect(page).to_have_url(re.compile(r"/login/?\?error=throttled"))
