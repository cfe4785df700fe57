"""Shared fixtures: real SQLite files, the real PostgreSQL server, a real app
server and a real Chromium."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Settings are read from the environment; tests must never touch data/ of a dev tree.
os.environ.setdefault("CHATDASH_SECRET_KEY", "test-secret-key")
os.environ.setdefault("CHATDASH_STORE_SECRET", "test-store-secret")
# Offline follow-up emails coalesce agents' replies for this long: the same in
# the tests and in the live app they start (both read the environment).
os.environ.setdefault("CHATDASH_FOLLOWUP_COALESCE_MINUTES", str(15 / 60))  # 15 seconds

from sqlalchemy import text
from sqlalchemy.engine import Engine

from chatdash.db import make_engine, migrate

# How long the live app holds new-conversation emails to send them together.
EMAIL_COALESCE_SECONDS = 10.0
PG_URL = os.environ.get("CHATDASH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database in a temporary file."""
    eng = make_engine(f"sqlite:///{tmp_path / 'chatdash.db'}")
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    """A migrated schema of its own on the machine's PostgreSQL server."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = make_engine(PG_URL)
    from sqlalchemy import event

    @event.listens_for(eng, "connect")
    def _search_path(dbapi_conn, _rec) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f'SET search_path TO "{schema}"')
        cur.close()
        dbapi_conn.commit()

    migrate(eng)
    yield eng
    eng.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request) -> Engine:
    """The same test on a SQLite file (`engine`) and on the real PostgreSQL (`pg_engine`)."""
    return request.getfixturevalue("engine" if request.param == "sqlite" else "pg_engine")


@pytest.fixture
def heard():
    """The domain events committed during the test, in order (chatdash.events)."""
    from chatdash import events

    got: list = []
    stop = events.listen(got.extend)
    yield got
    stop()


class _Inbox:
    """aiosmtpd handler keeping every delivered message."""

    def __init__(self) -> None:
        self.messages: list = []
        self._arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        import email
        from email import policy

        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        with self._arrived:
            self.messages.append((list(envelope.rcpt_tos), msg))
            self._arrived.notify_all()
        return "250 OK"

    def wait_for(self, predicate, timeout: float = 30.0):
        """The first message (recipients, email) that passes `predicate`, once it
        has arrived; fails if none does within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not (found := [m for m in self.messages if predicate(m)]):
                left = deadline - time.monotonic()
                assert left > 0, f"no such email within {timeout} s; got {len(self.messages)}"
                self._arrived.wait(left)
        return found[0]


@pytest.fixture(scope="session")
def smtp_server():
    """A real SMTP server on loopback that the app sends its emails to."""
    from aiosmtpd.controller import Controller

    from tests.live_app import free_port

    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


@pytest.fixture(scope="session")
def live_app(tmp_path_factory, smtp_server):
    """The real app, started once per test session."""
    from tests.live_app import start_live_app

    app = start_live_app(
        tmp_path_factory.mktemp("live"),
        {"CHATDASH_SMTP_HOST": "127.0.0.1", "CHATDASH_SMTP_PORT": str(smtp_server.port),
         "CHATDASH_SMTP_FROM": "chat@demo-store.test",
         # Every test comes from 127.0.0.1: the per-IP limits on new visitors
         # and conversations would stop the suite (tests/security test them
         # per socket live, per IP on the services); emails coalesce for 10 s.
         "CHATDASH_NEW_VISITORS_PER_IP": "100000", "CHATDASH_NEW_CONVERSATIONS_PER_IP": "100000",
         "CHATDASH_EMAIL_COALESCE_MINUTES": str(EMAIL_COALESCE_SECONDS / 60),
         # Settings → Recommendations' Retrain tunes for a few seconds, not two minutes.
         "CHATDASH_RETRAIN_BUDGET_SECONDS": "4",
         # Agents whose pages closed in an earlier test stop counting as online
         # (auto-assign) within seconds rather than a minute and a half.
         "CHATDASH_AGENT_ONLINE_SECONDS": "15"},
    )
    # Off unless a test turns it on: the widget's email question would otherwise
    # come up in other tests' conversations left unanswered for two minutes.
    from sqlmodel import Session

    from chatdash.services import store_settings

    eng = make_engine(app.db_url)
    with Session(eng) as s:
        store_settings.save_offline_followup(s, store_settings.OfflineFollowup(0))
        s.commit()
    eng.dispose()
    yield app
    app.stop()


@pytest.fixture
def live_db(live_app) -> Iterator[Engine]:
    """An engine on the live app's database, for what a test sets up or checks there."""
    eng = make_engine(live_app.db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def live_staff_emails(live_app):
    """The live app's staff emails as a test that counts them needs them: no
    coalescing window running, nothing waiting; the store's emails off again
    afterwards. The app serves the whole session and keeps each channel's
    window in its database (StaffEmailWindow): an email an earlier test caused
    would hold this test's first one until its window ended, and send it
    together with the next one."""
    from sqlalchemy import delete
    from sqlmodel import Session, col, select

    from chatdash.models import StaffEmailItem, StaffEmailWindow
    from chatdash.services import store_settings
    from tests.waiting import wait_until

    eng = make_engine(live_app.db_url)

    def sending() -> list[str]:
        with Session(eng) as s:
            return list(s.exec(select(StaffEmailWindow.channel).where(col(StaffEmailWindow.claim).is_not(None))))

    def forget() -> None:
        # An email on its way finishes first: it must not land in the next test's count.
        wait_until(lambda: not sending(), timeout=60, what=lambda: f"the app finished sending {sending()}")
        with Session(eng) as s:
            s.exec(delete(StaffEmailItem))
            s.exec(delete(StaffEmailWindow))
            s.commit()

    forget()
    try:
        yield
    finally:
        with Session(eng) as s:
            store_settings.save_email_notifications(s, store_settings.EmailNotifications())
            s.commit()
        forget()
        eng.dispose()


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module. Not session-wide: Playwright's sync API keeps
    an event loop running in this thread, which later asyncio tests would trip on."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                  "--disable-gpu", "--no-first-run", "--disable-sync"],
        )
        yield b
        b.close()


@pytest.fixture
def context(browser, request):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.set_default_timeout(15_000)
    yield ctx
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        out = Path(__file__).parent.parent / "test-artifacts"
        out.mkdir(exist_ok=True)
        for i, page in enumerate(ctx.pages):
            page.screenshot(path=str(out / f"{request.node.name}-{i}.png"))
    ctx.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


def login(page, live_app, email: str | None = None, password: str | None = None) -> None:
    from tests.live_app import ADMIN_EMAIL, ADMIN_PASSWORD

    page.goto(f"{live_app.frontend}/login")
    page.fill("#login-email", email or ADMIN_EMAIL)
    page.fill("#login-password", password or ADMIN_PASSWORD)
    page.click("#login-submit")
