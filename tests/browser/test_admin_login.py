"""Admin login in a real Chromium against the running app."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import login

pytestmark = pytest.mark.browser


def test_admin_logs_in_and_reaches_conversations_page(live_app, context):
    page = context.new_page()
    page.goto(f"{live_app.frontend}/admin/conversations")
    expect(page).to_have_url(re.compile(r"/login/?$"))  # strangers are sent to log in
    login(page, live_app)
    expect(page).to_have_url(re.compile(r"/admin/conversations/?$"))
    expect(page.locator("#store-name")).to_have_text("Demo Store")
    expect(page.locator("#notification-bell")).to_be_visible()
    expect(page.locator("#conversation-list")).to_be_visible()
    expect(page.locator("#chat-panel")).to_be_visible()
    expect(page.locator("#shopper-panel")).to_be_visible()

    # The shared frame's menu reaches the settings page and back.
    page.click("#menu-settings")
    expect(page).to_have_url(re.compile(r"/admin/settings/?$"))
    expect(page.get_by_role("heading", name="Email notifications")).to_be_visible()
    page.click("#menu-chat")
    page.click("#menu-conversations")
    expect(page).to_have_url(re.compile(r"/admin/conversations/?$"))


def test_wrong_password_is_refused(live_app, context):
    page = context.new_page()
    login(page, live_app, password="not-the-password")
    expect(page.locator("#login-error")).to_have_text("Wrong email or password.")
    expect(page).to_have_url(re.compile(r"/login/?\?error=wrong$"))
    page.goto(f"{live_app.frontend}/admin/settings")
    expect(page).to_have_url(re.compile(r"/login/?$"))


def test_log_out_ends_the_session(live_app, context):
    page = context.new_page()
    login(page, live_app)
    expect(page).to_have_url(re.compile(r"/admin/conversations/?$"))
    page.click("#account-menu")
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login/?$"))
    page.goto(f"{live_app.frontend}/admin/conversations")
    expect(page).to_have_url(re.compile(r"/login/?$"))
