"""The admin session: an HttpOnly cookie set by an HTTP answer, which the
event socket sees only as a hash, and which ends after a spell of idleness."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session, select

from chatdash.db import make_engine
from chatdash.models import AdminSession, utcnow
from chatdash.services import auth
from chatdash.state.settings_page import SettingsState
from tests.live_app import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.reflex_client import RawReflexClient


@pytest.fixture
def live_engine(live_app):
    eng = make_engine(live_app.db_url)
    yield eng
    eng.dispose()


def _session(live_engine, idle: timedelta = timedelta(0)) -> str:
    with Session(live_engine) as s:
        token = auth.start_session(s, auth.authenticate(s, ADMIN_EMAIL, ADMIN_PASSWORD).id, hours=48)
        s.flush()
        row = s.exec(select(AdminSession).where(AdminSession.token_hash == auth.token_hash(token))).one()
        row.last_seen_at = utcnow() - idle
        s.commit()
    return token


def _settings_seen(live_app, cookies: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> tuple[str, str]:
    """(the mail server summary the settings page got, every delta as text)."""
    client = RawReflexClient(live_app.backend, cookies=cookies, headers=headers)
    try:
        client.hydrate(path="/admin/settings")
        return client.seen_values(SettingsState).get("smtp_summary", ""), str(client.deltas)
    finally:
        client.close()


def test_login_sets_an_httponly_same_site_strict_cookie(live_app):
    with httpx.Client() as http:
        answer = http.post(f"{live_app.backend}/api/admin/session", follow_redirects=False,
                           data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
                           headers={"Origin": live_app.frontend})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{live_app.frontend}/admin/conversations"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("chatdash_admin=")
    attributes = {a.strip().split("=")[0].lower(): a for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes.keys()
    assert attributes["samesite"].strip().lower() == "samesite=strict"


def test_a_login_posted_from_another_site_is_refused(live_app):
    with httpx.Client() as http:
        answer = http.post(f"{live_app.backend}/api/admin/session", follow_redirects=False,
                           data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
                           headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_the_socket_sees_the_session_but_never_its_token(live_app, live_engine):
    token = _session(live_engine)
    summary, received = _settings_seen(live_app, cookies={"chatdash_admin": token, "other": "kept"})
    assert summary  # the admin is in
    assert token not in received


def test_a_client_cannot_name_a_session_by_its_hash(live_app, live_engine):
    """The hash the socket sees comes from the cookie only, never from the client."""
    token = _session(live_engine)
    summary, _ = _settings_seen(live_app, headers={"X-Chatdash-Admin-Session": auth.token_hash(token)})
    assert summary == ""


def test_an_idle_session_ends(live_app, live_engine):
    idle = _session(live_engine, idle=timedelta(hours=12, minutes=5))
    recent = _session(live_engine, idle=timedelta(hours=11))
    assert _settings_seen(live_app, cookies={"chatdash_admin": idle})[0] == ""
    assert _settings_seen(live_app, cookies={"chatdash_admin": recent})[0]
    with Session(live_engine) as s:
        assert s.exec(select(AdminSession).where(AdminSession.token_hash == auth.token_hash(idle))).first() is None
        used = s.exec(select(AdminSession).where(AdminSession.token_hash == auth.token_hash(recent))).one()
    assert utcnow() - used.last_seen_at < timedelta(minutes=5)  # its use was recorded


def test_logout_ends_the_session_and_clears_the_cookie(live_app, live_engine):
    token = _session(live_engine)
    with httpx.Client(cookies={"chatdash_admin": token}) as http:
        answer = http.get(f"{live_app.backend}/api/admin/logout", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"{live_app.frontend}/login"
    assert 'chatdash_admin=""' in answer.headers["set-cookie"] or "chatdash_admin=;" in answer.headers["set-cookie"]
    assert _settings_seen(live_app, cookies={"chatdash_admin": token})[0] == ""


def test_idle_sessions_end_in_the_service(engine):
    with Session(engine) as s:
        admin = auth.create_admin(s, f"a{uuid.uuid4().hex[:6]}@store.test", "password1")
        token = auth.start_session(s, admin.id, hours=48)
        s.commit()
    with Session(engine) as s:
        assert auth.admin_for_token(s, token, idle_hours=12) is not None
        row = s.exec(select(AdminSession)).one()
        row.last_seen_at = utcnow() - timedelta(hours=13)
        s.commit()
    with Session(engine) as s:
        assert auth.admin_for_token(s, token, idle_hours=12) is None
        s.commit()
        assert s.exec(select(AdminSession)).first() is None



def _open_event_socket(live_app, token: str, origin: str) -> str:
    """Open the event socket's websocket as a page of `origin` would (the browser
    sets Origin and sends the cookie); the first frame the server sends."""
    import websocket

    url = live_app.backend.replace("http://", "ws://") + "/_event/?EIO=4&transport=websocket"
    ws = websocket.create_connection(url, origin=origin, cookie=f"chatdash_admin={token}", timeout=10)
    try:
        return ws.recv()
    finally:
        ws.close()


def test_the_event_socket_refuses_a_page_of_another_site(live_app, live_engine):
    """A page on another site cannot open the event socket with the admin's
    cookie: Reflex checks Origin against cors_allowed_origins. The app's own
    pages can, with the same cookie."""
    import websocket

    token = _session(live_engine)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        _open_event_socket(live_app, token, "https://evil.example")
    assert refused.value.status_code in (400, 403)
    assert _open_event_socket(live_app, token, live_app.frontend).startswith("0{")  # engine.io's open packet
