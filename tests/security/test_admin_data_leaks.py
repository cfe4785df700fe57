"""Admin-only data reaches a client only after the admin check."""

from __future__ import annotations

from sqlmodel import Session

from chatdash.db import make_engine
from chatdash.services import auth
from chatdash.state.settings_page import SettingsState
from tests.live_app import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.reflex_client import RawReflexClient

SMTP_FROM = "chat@demo-store.test"  # what conftest's live_app configures


def test_anonymous_client_does_not_receive_the_mail_server(live_app, smtp_server):
    for path in ("/widget", "/admin/settings", "/login"):
        client = RawReflexClient(live_app.backend)
        try:
            client.hydrate(path=path)
            client.call(SettingsState, "load", path=path)
            received = str(client.deltas)
            assert SMTP_FROM not in received
            assert f"127.0.0.1:{smtp_server.port}" not in received
        finally:
            client.close()


def test_the_admin_sees_the_mail_server_on_the_settings_page(live_app, smtp_server):
    engine = make_engine(live_app.db_url)
    with Session(engine) as s:
        admin = auth.authenticate(s, ADMIN_EMAIL, ADMIN_PASSWORD)
        token = auth.start_session(s, admin.id, hours=1)
        s.commit()
    client = RawReflexClient(live_app.backend, cookies={"chatdash_admin": token})
    try:
        client.hydrate(path="/admin/settings")
        summary = client.seen_values(SettingsState)["smtp_summary"]
        assert summary == f"127.0.0.1:{smtp_server.port}, from {SMTP_FROM}"
    finally:
        client.close()
        with Session(engine) as s:
            auth.end_session(s, token)
            s.commit()
        engine.dispose()
