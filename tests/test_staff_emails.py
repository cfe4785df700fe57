"""Staff emails coalesced and claimed in the database (services/staff_emails.py):
however many workers hear the events, each recipient gets one email per window
listing every conversation (or message) of that window, none lost when a
worker dies after its commit, none sent twice. Emails go to a real SMTP server
on loopback; the concurrency cases run on the real PostgreSQL with two
engines (two workers' connection pools) and real processes. Time is passed in
(`now=`) to the function the leader's job calls, so no test waits a window."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chatdash.db import make_engine, migrate
from chatdash.models import StaffEmailItem, StaffEmailWindow, utcnow
from chatdash.services import agent_notifications, notify, staff_emails, workspace
from chatdash.settings import Settings
from tests.conftest import PG_URL
from tests.live_app import free_port
from tests.test_agent_notifications import member, plain, shopper_writes, store_emails
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
WINDOW = timedelta(minutes=5)


def settings_for(smtp_port: int, **kw) -> Settings:
    return Settings(smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_from="chat@store.test", store_name="Trail Shop",
                    public_url="https://chat.store.test", email_coalesce_minutes=WINDOW.total_seconds() / 60, **kw)


def to(smtp_server, address: str) -> list:
    """Every email (recipients, message) that went to `address` so far."""
    return [m for m in smtp_server.messages if address in m[0]]


def link(conv_id: int) -> str:
    return f"https://chat.store.test/admin/conversations?c={conv_id}"


def pending(engine: Engine) -> int:
    with Session(engine) as s:
        return len(s.exec(select(StaffEmailItem)).all())


@pytest.fixture
def pg_url() -> str:
    """A migrated schema of its own on the real PostgreSQL, as a URL every
    engine and process of the test opens (each one a worker)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    eng = make_engine(url)
    migrate(eng)
    eng.dispose()
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def two_workers(pg_url):
    """Two connection pools on the same PostgreSQL schema: two workers' engines."""
    one, other = make_engine(pg_url), make_engine(pg_url)
    yield one, other
    one.dispose()
    other.dispose()


# --------------------------------------------------------------------------- one box (SQLite) and PostgreSQL


def test_the_first_email_goes_at_once_and_the_windows_conversations_together_at_its_end(any_engine, smtp_server):
    owner = f"owner-{uuid.uuid4().hex[:6]}@store.test"
    store_emails(any_engine, True, [owner])
    settings = settings_for(smtp_server.port)
    start = utcnow()
    _v, first = shopper_writes(any_engine, "Do you ship to Norway?")
    assert notify.send_due(settings, now=start, engine=any_engine) == 1
    [(rcpts, msg)] = to(smtp_server, owner)
    assert rcpts == [owner]
    assert msg["Subject"].startswith("New conversation on Trail Shop: Visitor ")
    assert "Do you ship to Norway?" in plain(msg) and link(first) in plain(msg)

    later = [shopper_writes(any_engine, f"Question {i}: is the tent waterproof?")[1] for i in range(3)]
    for minutes in (0, 1, 4):  # inside the window: held, whoever asks
        assert notify.send_due(settings, now=start + timedelta(minutes=minutes, seconds=30), engine=any_engine) == 0
    assert len(to(smtp_server, owner)) == 1
    assert notify.send_due(settings, now=start + WINDOW, engine=any_engine) == 1
    [_first, (_rcpts, digest)] = to(smtp_server, owner)
    assert digest["Subject"] == "3 new conversations on Trail Shop"
    body = plain(digest)
    assert all(f"Question {i}: is the tent waterproof?" in body for i in range(3))
    assert all(link(c) in body for c in later) and link(first) not in body
    # Sent is done: nothing waits, nothing goes again.
    assert pending(any_engine) == 0
    assert notify.send_due(settings, now=start + 3 * WINDOW, engine=any_engine) == 0
    assert len(to(smtp_server, owner)) == 2


def test_with_the_store_emails_off_nothing_is_queued_or_sent(any_engine, smtp_server):
    store_emails(any_engine, False, ["nobody@store.test"])
    shopper_writes(any_engine, "Anyone there?")
    assert pending(any_engine) == 0
    assert notify.send_due(settings_for(smtp_server.port), engine=any_engine) == 0


def test_store_emails_switched_off_and_on_again_start_afresh(any_engine, smtp_server):
    """The window an email started before the owner switched the emails off
    does not hold the first conversation after they are back on; what was
    queued before the switch went off is never sent; windows run again after."""
    owner = f"owner-{uuid.uuid4().hex[:6]}@store.test"
    store_emails(any_engine, True, [owner])
    settings = settings_for(smtp_server.port)
    start = utcnow()
    shopper_writes(any_engine, "Before the switch")
    assert notify.send_due(settings, now=start, engine=any_engine) == 1  # its window runs to start + 5 min
    shopper_writes(any_engine, "Held in that window")
    store_emails(any_engine, False, [owner])
    assert pending(any_engine) == 0
    store_emails(any_engine, True, [owner])
    _v, conv = shopper_writes(any_engine, "After the switch")
    # Two minutes into the old window: it goes now.
    assert notify.send_due(settings, now=start + timedelta(minutes=2), engine=any_engine) == 1
    [_before, (_rcpts, msg)] = to(smtp_server, owner)
    body = plain(msg)
    assert "After the switch" in body and link(conv) in body and "Held in that window" not in body
    # From that email a window runs again.
    shopper_writes(any_engine, "Soon after")
    assert notify.send_due(settings, now=start + timedelta(minutes=3), engine=any_engine) == 0
    assert notify.send_due(settings, now=start + timedelta(minutes=2) + WINDOW, engine=any_engine) == 1
    assert len(to(smtp_server, owner)) == 3


def test_a_send_on_its_way_as_the_emails_go_off_and_on_holds_nothing_after(any_engine, smtp_server):
    owner = f"owner-{uuid.uuid4().hex[:6]}@store.test"
    store_emails(any_engine, True, [owner])
    settings = settings_for(smtp_server.port)
    start = utcnow()
    shopper_writes(any_engine, "On its way")
    on_its_way = staff_emails.claim(staff_emails.NEW, WINDOW.total_seconds(), now=start, engine=any_engine)
    assert on_its_way is not None  # a sender in the middle of its send
    store_emails(any_engine, False, [owner])
    store_emails(any_engine, True, [owner])
    shopper_writes(any_engine, "After the switch")
    assert notify.send_due(settings, now=start + timedelta(seconds=1), engine=any_engine) == 1
    staff_emails.finish(on_its_way, sent=True, now=start + timedelta(seconds=2), engine=any_engine)  # late
    shopper_writes(any_engine, "Later")
    assert notify.send_due(settings, now=start + timedelta(minutes=3), engine=any_engine) == 0  # one window
    assert notify.send_due(settings, now=start + timedelta(seconds=1) + WINDOW, engine=any_engine) == 1
    bodies = [plain(m) for _r, m in to(smtp_server, owner)]
    assert len(bodies) == 2 and "After the switch" in bodies[0] and "Later" in bodies[1]


def test_saving_the_settings_while_emails_are_on_keeps_the_window(any_engine, smtp_server):
    owner = f"owner-{uuid.uuid4().hex[:6]}@store.test"
    store_emails(any_engine, True, [owner])
    settings = settings_for(smtp_server.port)
    start = utcnow()
    shopper_writes(any_engine, "First")
    assert notify.send_due(settings, now=start, engine=any_engine) == 1
    store_emails(any_engine, True, [owner, "help@store.test"])  # a recipient added, the switch untouched
    shopper_writes(any_engine, "Second")
    assert notify.send_due(settings, now=start + timedelta(minutes=2), engine=any_engine) == 0
    assert notify.send_due(settings, now=start + WINDOW, engine=any_engine) == 1


def test_a_member_who_switches_their_emails_off_and_on_again_starts_afresh(any_engine, smtp_server):
    dana = member(any_engine, "Dana", notify_assigned_message=True)
    store_emails(any_engine, True, [])
    settings = settings_for(smtp_server.port)
    start = utcnow()
    visitor, conv = shopper_writes(any_engine, "Hello")
    workspace.assign(dana.id, conv, dana.id, engine=any_engine)
    shopper_writes(any_engine, "Is my order late?", visitor)
    assert notify.send_due(settings, now=start, engine=any_engine) == 1
    shopper_writes(any_engine, "Held in Dana's window", visitor)
    agent_notifications.set_choice(dana.id, "notify_assigned_message", False, engine=any_engine)
    agent_notifications.set_choice(dana.id, "notify_assigned_message", True, engine=any_engine)
    shopper_writes(any_engine, "Hello again?", visitor)
    assert notify.send_due(settings, now=start + timedelta(minutes=1), engine=any_engine) == 1
    [_first, (_rcpts, msg)] = to(smtp_server, dana.email)
    assert "Hello again?" in plain(msg) and "Held in Dana's window" not in plain(msg)


def test_a_mail_server_down_keeps_the_conversations_for_the_next_windows_email(any_engine, smtp_server, caplog):
    owner = f"owner-{uuid.uuid4().hex[:6]}@store.test"
    store_emails(any_engine, True, [owner])
    start = utcnow()
    _v, lost_first = shopper_writes(any_engine, "Sent while the mail server was down")
    down = settings_for(free_port())  # nothing listens there
    assert notify.send_due(down, now=start, engine=any_engine) == 0
    assert "giving up" in caplog.text
    assert pending(any_engine) == 1  # kept, and the window started: no retry every second
    up = settings_for(smtp_server.port)
    assert notify.send_due(up, now=start + timedelta(minutes=1), engine=any_engine) == 0
    _v, second = shopper_writes(any_engine, "And a second one")
    assert notify.send_due(up, now=start + WINDOW, engine=any_engine) == 1
    [(_rcpts, msg)] = to(smtp_server, owner)
    assert msg["Subject"] == "2 new conversations on Trail Shop"
    assert link(lost_first) in plain(msg) and link(second) in plain(msg)
    assert pending(any_engine) == 0


# --------------------------------------------------------------------------- two workers on one PostgreSQL


def race(workers: list[Engine], settings: Settings, now, per_worker: int = 4) -> int:
    """Every worker's threads run the sender at the same instant; how many emails went."""
    barrier = threading.Barrier(len(workers) * per_worker)
    sent: list[int] = []
    failed: list[BaseException] = []

    def run(engine: Engine) -> None:
        try:
            barrier.wait(10)
            sent.append(notify.send_due(settings, now=now, engine=engine))
        except BaseException as exc:  # noqa: BLE001 - shown by the assert below
            failed.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in workers for _ in range(per_worker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failed, failed
    return sum(sent)


def test_two_workers_send_each_recipient_one_email_per_window_with_both_workers_conversations(
        two_workers, smtp_server):
    one, other = two_workers
    tag = uuid.uuid4().hex[:6]
    owner = f"owner-{tag}@store.test"
    store_emails(one, True, [owner])
    dana = member(one, "Dana", notify_assigned_message=True)
    settings = settings_for(smtp_server.port)
    # Dana's conversations, assigned before the window starts (their first messages are no news to her).
    dana_convs = []
    for engine in (one, other):
        visitor, conv_id = shopper_writes(engine, f"Hello {tag}")
        workspace.assign(dana.id, conv_id, dana.id, engine=engine)
        dana_convs.append((engine, visitor, conv_id))
    start = utcnow()
    assert race([one, other], settings, start) == 1  # the new-conversation email of both, once
    [(_r, opening)] = to(smtp_server, owner)
    assert opening["Subject"] == "2 new conversations on Trail Shop"

    # In the window, through both workers: new conversations, and shoppers writing in Dana's.
    news = [shopper_writes(engine, f"new {tag} via {name} #{i}")[1]
            for i in range(3) for engine, name in ((one, "one"), (other, "other"))]
    for engine, visitor, _conv in dana_convs:
        shopper_writes(engine, f"to Dana {tag} via {'one' if engine is one else 'other'}", visitor)
    mid = start + timedelta(minutes=2)
    # Dana's first email goes at once (her window had not started); the new ones wait.
    assert race([one, other], settings, mid) == 1
    [(rcpts, to_dana)] = to(smtp_server, dana.email)
    assert rcpts == [dana.email]
    assert to_dana["Subject"] == "2 new messages in your conversations on Trail Shop"
    assert f"to Dana {tag} via one" in plain(to_dana) and f"to Dana {tag} via other" in plain(to_dana)
    assert len(to(smtp_server, owner)) == 1

    assert race([one, other], settings, start + WINDOW) == 1
    [_opening, (_r, digest)] = to(smtp_server, owner)
    assert digest["Subject"] == "6 new conversations on Trail Shop"
    body = plain(digest)
    assert all(link(c) in body for c in news)
    assert body.count("/admin/conversations?c=") == 6
    # Nothing else is due, for anyone, ever again.
    assert race([one, other], settings, start + 10 * WINDOW) == 0
    assert len(to(smtp_server, owner)) == 2 and len(to(smtp_server, dana.email)) == 1
    assert pending(one) == 0


def test_two_listening_workers_send_the_first_email_of_a_window_once(two_workers, smtp_server):
    """The at-once path: both workers hear the events and both try to send."""
    one, other = two_workers
    owner = f"owner-{uuid.uuid4().hex[:6]}@store.test"
    store_emails(one, True, [owner])
    settings = settings_for(smtp_server.port)
    stops = [notify.email_new_conversations(lambda: settings, engine) for engine in (one, other)]
    try:
        _v, conv_id = shopper_writes(other, "Do you have the boots in 44?")
        _r, msg = smtp_server.wait_for(lambda m: owner in m[0])
        assert link(conv_id) in plain(msg)
        # Both workers' tries are done once the mailer thread (first in, first out) runs an empty task.
        notify._mailer.submit(lambda: None).result(30)
        assert window_of(one, staff_emails.NEW).claim is None and pending(one) == 0
    finally:
        for stop in stops:
            stop()
    assert len(to(smtp_server, owner)) == 1


def window_of(engine: Engine, channel: str) -> StaffEmailWindow | None:
    with Session(engine) as s:
        return s.get(StaffEmailWindow, channel) or StaffEmailWindow(channel=channel)


# --------------------------------------------------------------------------- a worker that dies


CHILD = """
import os, signal, sys, uuid
from chatdash.db import make_engine
from chatdash.services import chat, notify
from chatdash.settings import Settings

url, smtp_port, text, mode = sys.argv[1:5]
engine = make_engine(url)
settings = Settings(smtp_host="127.0.0.1", smtp_port=int(smtp_port), smtp_from="chat@store.test",
                    store_name="Trail Shop", public_url="https://chat.store.test", email_coalesce_minutes=5)
if mode == "send":
    notify.email_new_conversations(lambda: settings, engine)
visitor = uuid.uuid4().hex
opened = chat.open_widget(visitor, engine=engine)
conv_id, _m, _c = chat.shopper_send(visitor, opened.shopper_id, opened.conversation_id, uuid.uuid4().hex, text,
                                    engine=engine)
print(conv_id, flush=True)
if mode == "commit":
    os._exit(0)  # gone right after the commit: no email from here
signal.pause()  # until killed, mid-send
"""


def child(url: str, smtp_port: int, text_: str, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, url, str(smtp_port), text_, mode], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def test_a_worker_gone_right_after_its_commit_leaves_the_email_to_the_next_sender(pg_url, smtp_server):
    engine = make_engine(pg_url)
    try:
        owner = f"owner-{uuid.uuid4().hex[:6]}@store.test"
        store_emails(engine, True, [owner])
        proc = child(pg_url, smtp_server.port, "Written just before the worker died", "commit")
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        conv_id = int(out.split()[0])
        assert to(smtp_server, owner) == [] and pending(engine) == 1
        settings = settings_for(smtp_server.port)
        assert notify.send_due(settings, engine=engine) == 1
        assert notify.send_due(settings, now=utcnow() + 3 * WINDOW, engine=engine) == 0
        [(_r, msg)] = to(smtp_server, owner)
        assert link(conv_id) in plain(msg) and "Written just before the worker died" in plain(msg)
    finally:
        engine.dispose()


def test_a_worker_killed_mid_send_is_replaced_after_its_lease_and_the_email_goes_once(pg_url, smtp_server):
    engine = make_engine(pg_url)
    # A mail server that takes the connection and never answers: the sender hangs in it.
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(8)
    try:
        owner = f"owner-{uuid.uuid4().hex[:6]}@store.test"
        store_emails(engine, True, [owner])
        proc = child(pg_url, stuck.getsockname()[1], "Sent while the worker was killed", "send")
        conv_id = int(proc.stdout.readline())
        wait_until(lambda: window_of(engine, staff_emails.NEW).claim is not None, timeout=30,
                   what="the dying worker claimed the new-conversation channel")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        settings = settings_for(smtp_server.port)
        assert notify.send_due(settings, engine=engine) == 0  # its lease still runs: nobody sends twice
        assert pending(engine) == 1
        after_lease = utcnow() + timedelta(seconds=staff_emails.LEASE_SECONDS + 1)
        assert notify.send_due(settings, now=after_lease, engine=engine) == 1
        assert notify.send_due(settings, now=after_lease + 3 * WINDOW, engine=engine) == 0
        [(_r, msg)] = to(smtp_server, owner)
        assert link(conv_id) in plain(msg)
        assert pending(engine) == 0
    finally:
        stuck.close()
        engine.dispose()


def test_claims_hold_the_channel_for_one_sender(any_engine):
    """The claim itself: a second sender gets nothing while the first holds the channel."""
    store_emails(any_engine, True, ["owner@store.test"])
    shopper_writes(any_engine, "hello")
    first = staff_emails.claim(staff_emails.NEW, WINDOW.total_seconds(), engine=any_engine)
    assert first is not None and [i.text for i in first.items] == ["hello"]
    assert staff_emails.claim(staff_emails.NEW, WINDOW.total_seconds(), engine=any_engine) is None
    staff_emails.finish(first, sent=True, engine=any_engine)
    shopper_writes(any_engine, "again")
    assert staff_emails.claim(staff_emails.NEW, WINDOW.total_seconds(), engine=any_engine) is None  # window runs
    later = staff_emails.claim(staff_emails.NEW, WINDOW.total_seconds(), now=utcnow() + WINDOW, engine=any_engine)
    assert later is not None and [i.text for i in later.items] == ["again"]
