"""Admin event handlers check the session themselves: a raw websocket client
that never logged in gets nothing from them and changes nothing."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from chatdash.db import make_engine
from chatdash.services import auth, store_settings
from chatdash.state.auth import AuthState
from chatdash.state.notifications import NotificationState
from chatdash.state.settings_page import SettingsState
from tests.live_app import ADMIN_EMAIL
from tests.reflex_client import RawReflexClient


@pytest.fixture
def live_engine(live_app):
    eng = make_engine(live_app.db_url)
    yield eng
    eng.dispose()


def _session_cookie(token: str) -> dict[str, str]:
    return {f"{AuthState.get_full_name()}.session_token": token}


def _try_to_enable_emails(client: RawReflexClient) -> None:
    client.call(SettingsState, "set_email_enabled", {"value": True}, path="/admin/settings")
    client.call(SettingsState, "set_recipients_text", {"value": "attacker@evil.test"},
                path="/admin/settings")
    client.call(SettingsState, "save", path="/admin/settings")


def _email_settings(engine):
    with Session(engine) as s:
        return store_settings.get_email_notifications(s)


def test_admin_handlers_refuse_a_client_without_a_session(live_app, live_engine):
    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path="/admin/settings")
        _try_to_enable_emails(client)
        assert _email_settings(live_engine).recipients == []
        assert "attacker@evil.test" not in str(client.deltas)
        client.call(NotificationState, "refresh", path="/admin/conversations")
        assert "unseen_count" not in str(client.seen_values(NotificationState))
    finally:
        client.close()


def test_forged_session_cookie_is_refused(live_app, live_engine):
    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(_session_cookie("forged-token-value"), path="/admin/settings")
        _try_to_enable_emails(client)
        assert _email_settings(live_engine).recipients == []
    finally:
        client.close()


def test_the_same_calls_work_with_a_real_admin_session(live_app, live_engine):
    """Proves the refusals above come from the session check, not a broken call."""
    with Session(live_engine) as s:
        admin = auth.authenticate(s, ADMIN_EMAIL, "chatdash-test-pw")
        token = auth.start_session(s, admin.id, hours=1)
        s.commit()
    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(_session_cookie(token), path="/admin/settings")
        _try_to_enable_emails(client)
        saved = _email_settings(live_engine)
        assert saved.enabled and saved.recipients == ["attacker@evil.test"]
    finally:
        client.close()
        with Session(live_engine) as s:
            store_settings.save_email_notifications(s, store_settings.EmailNotifications())
            auth.end_session(s, token)
            s.commit()
