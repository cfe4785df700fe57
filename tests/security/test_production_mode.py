"""The app as it runs in production: errors reach users as a generic message
with an id (the detail is logged under it), and no client's state is
written to disk."""

from __future__ import annotations

import json
import re

from chatdash.state.widget import WidgetState
from tests.reflex_client import RawReflexClient
from tests.waiting import wait_until


def _wait_for_log(live_app, pattern: str, timeout: float = 30.0) -> str:
    def logged() -> str | None:
        text = live_app.log_path.read_text(errors="replace")
        return text if re.search(pattern, text) else None

    return wait_until(logged, timeout=timeout, what=f"{pattern!r} logged", every=0.2)


def test_a_failing_handler_shows_a_generic_error_with_an_id(live_app):
    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path="/widget")
        # A call no page makes: an argument the handler does not take.
        client.call(WidgetState, "dismiss_error", {"no_such_argument": "x" * 40}, path="/widget")
        event = client.wait_for_event(lambda e: "error id" in json.dumps(e))
    finally:
        client.close()
    shown = json.dumps(client.events)
    error_id = re.search(r"error id ([0-9a-f]{8})", json.dumps(event)).group(1)
    assert "Something went wrong." in shown
    for detail in ("TypeError", "no_such_argument", "Traceback", "dismiss_error"):
        assert detail not in shown
    # The operator finds the detail in the log under the id the user was shown.
    log = _wait_for_log(live_app, rf"error {error_id}[\s\S]*no_such_argument")
    assert "Traceback" in log.split(f"error {error_id}", 1)[1]


def test_no_client_state_with_the_admin_session_is_stored_in_files(live_app):
    from pathlib import Path

    from sqlmodel import Session

    from chatdash.db import make_engine
    from chatdash.services import auth
    from chatdash.state.settings_page import SettingsState
    from tests.live_app import ADMIN_EMAIL, ADMIN_PASSWORD

    engine = make_engine(live_app.db_url)
    with Session(engine) as s:
        token = auth.start_session(s, auth.authenticate(s, ADMIN_EMAIL, ADMIN_PASSWORD).id, hours=1)
        s.commit()
    states = Path(live_app.env["REFLEX_STATES_WORKDIR"])
    client = RawReflexClient(live_app.backend, cookies={"chatdash_admin": token})
    try:
        client.hydrate(path="/admin/settings")
        assert client.seen_values(SettingsState).get("smtp_summary")  # the admin is in
        client.call(SettingsState, "set_email_enabled", {"value": False}, path="/admin/settings")
        # Client states live in memory (rxconfig.py: Redis when REDIS_URL is set,
        # never Reflex's disk manager, which pickles states into files): so no
        # file is written, and none can hold the token.
        import rxconfig

        assert "REDIS_URL" not in live_app.env
        assert rxconfig.config.state_manager_mode == "memory"
        for path in states.glob("**/*") if states.exists() else []:
            if path.is_file():
                assert token.encode() not in path.read_bytes(), f"{path} holds the session token"
                assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    finally:
        client.close()
        with Session(engine) as s:
            auth.end_session(s, token)
            s.commit()
        engine.dispose()
