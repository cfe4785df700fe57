"""Two workers on the real PostgreSQL and Redis, as README's "Scale out" runs
them: the shopper's socket on one, the admin's on the other, and the chat
works both ways, live."""

from __future__ import annotations

import uuid

import psutil
import pytest
from sqlmodel import Session

from chatdash.db import make_engine
from chatdash.services import auth
from chatdash.state.chat import ChatState
from chatdash.state.inbox import InboxState
from chatdash.state.widget import WidgetState
from tests.live_app import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.reflex_client import RawReflexClient
from tests.scale.cluster import start_cluster

CONVERSATIONS = "/admin/conversations"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = start_cluster(tmp_path_factory.mktemp("cluster"), workers=2)
    yield c
    c.stop()


def values(delta: dict, state: type) -> dict:
    return {k.removesuffix("_rx_state_"): v for k, v in delta.get(state.get_full_name(), {}).items()}


def wait_for(client: RawReflexClient, state: type, test, since: int = 0) -> dict:
    delta = client.wait_for(lambda d: bool(values(d, state)) and test(values(d, state)), since=since)
    return values(delta, state)


def admin_client(cluster, url: str) -> RawReflexClient:
    engine = make_engine(cluster.db_url)
    with Session(engine) as s:
        admin = auth.authenticate(s, ADMIN_EMAIL, ADMIN_PASSWORD)
        token = auth.start_session(s, admin.id, hours=1)
        s.commit()
    engine.dispose()
    client = RawReflexClient(url, cookies={"chatdash_admin": token})
    client.hydrate(path=CONVERSATIONS)
    return client


def shopper_client(url: str) -> RawReflexClient:
    client = RawReflexClient(url)
    client.hydrate(path="/widget")
    client.call(WidgetState, "adopt_visitor", {"token": ""}, path="/widget")
    return client


def bodies(v: dict) -> list[str]:
    return [m["body"] for m in v.get("messages", [])]


def test_a_shopper_on_one_worker_and_an_admin_on_the_other_chat_live(cluster):
    one, other = cluster.workers
    admin = admin_client(cluster, other.url)
    shopper = shopper_client(one.url)
    try:
        question = f"Does the tent fit four? {uuid.uuid4().hex[:6]}"
        shopper.call(WidgetState, "send", {"item": {"id": uuid.uuid4().hex, "text": question}}, path="/widget")
        # Pushed into the admin's inbox by the other worker, without a reload.
        inbox = wait_for(admin, InboxState, lambda v: any(r["preview"] == question for r in v.get("rows", [])))
        conv_id = next(r["id"] for r in inbox["rows"] if r["preview"] == question)
        admin.call(InboxState, "select", {"conversation_id": conv_id}, path=CONVERSATIONS)
        wait_for(admin, ChatState, lambda v: bodies(v)[-1:] == [question])

        mark = len(admin.deltas)
        follow_up = f"And is it waterproof? {uuid.uuid4().hex[:6]}"
        shopper.call(WidgetState, "send", {"item": {"id": uuid.uuid4().hex, "text": follow_up}}, path="/widget")
        chat = wait_for(admin, ChatState, lambda v: follow_up in bodies(v), since=mark)
        assert bodies(chat) == [question, follow_up]  # once each, in order

        answer = f"Yes, and it sleeps four {uuid.uuid4().hex[:6]}"
        admin.call(
            ChatState, "send_reply", {"form_data": {"reply": answer, "client_id": uuid.uuid4().hex}}, path=CONVERSATIONS
        )
        widget = wait_for(shopper, WidgetState, lambda v: answer in bodies(v))
        assert bodies(widget) == [question, follow_up, answer]
        # The admin reading the conversation reaches the other worker's widget as a seen mark.
        wait_for(shopper, WidgetState, lambda v: v.get("admin_seen_id", 0) > 0)

        # Typing crosses too (an event that stores nothing).
        mark = len(admin.deltas)
        shopper.call(WidgetState, "typing", {"_value": "a"}, path="/widget")
        wait_for(admin, ChatState, lambda v: v.get("shopper_typing_seq", 0) > 0, since=mark)
    finally:
        shopper.close()
        admin.close()


def test_one_of_the_workers_holds_the_leader_lock_for_the_periodic_jobs(cluster):
    holder = cluster.redis().get("chatdash:leader")
    assert holder is not None
    pid = int(holder.decode().split(":")[1])
    trees = [
        {w.process.pid, *(p.pid for p in psutil.Process(w.process.pid).children(recursive=True))}
        for w in cluster.workers
    ]
    assert sum(pid in tree for tree in trees) == 1


def test_the_leaders_snooze_alarm_wakes_a_conversation_on_the_other_workers_screens(cluster):
    """Only the leader runs the snooze alarm: an admin whose socket is on the
    worker that does not lead sees the conversation come back by itself."""
    from datetime import timedelta

    from chatdash.models import Conversation, utcnow

    pid = int(cluster.redis().get("chatdash:leader").decode().split(":")[1])

    def tree(w) -> set[int]:
        return {w.process.pid, *(p.pid for p in psutil.Process(w.process.pid).children(recursive=True))}

    follower = next(w for w in cluster.workers if pid not in tree(w))
    admin = admin_client(cluster, follower.url)
    shopper = shopper_client(follower.url)
    try:
        question = f"Call me back later {uuid.uuid4().hex[:6]}"
        shopper.call(WidgetState, "send", {"item": {"id": uuid.uuid4().hex, "text": question}}, path="/widget")
        inbox = wait_for(admin, InboxState, lambda v: any(r["preview"] == question for r in v.get("rows", [])))
        conv_id = next(r["id"] for r in inbox["rows"] if r["preview"] == question)
        admin.call(InboxState, "select", {"conversation_id": conv_id}, path=CONVERSATIONS)
        wait_for(admin, ChatState, lambda v: bodies(v)[-1:] == [question])

        until = (utcnow() + timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%S")  # the store's clock: UTC
        admin.call(ChatState, "snooze_at", {"form_data": {"until": until}}, path=CONVERSATIONS)
        wait_for(admin, ChatState, lambda v: v.get("status") == "snoozed")
        mark = len(admin.deltas)
        woke = wait_for(admin, InboxState, lambda v: v.get("snoozed_total") == 0 and any(
            r["id"] == conv_id for r in v.get("rows", [])), since=mark)
        assert next(r for r in woke["rows"] if r["id"] == conv_id)["status"] == "open"
        wait_for(admin, ChatState, lambda v: v.get("status") == "open", since=mark)
        engine = make_engine(cluster.db_url)
        with Session(engine) as s:
            assert s.get(Conversation, conv_id).status == "open"
        engine.dispose()
    finally:
        shopper.close()
        admin.close()


def acked(client: RawReflexClient, item_id: str) -> bool:
    """The widget was told this message is stored (chatdashOutbox.ack)."""
    return any(f"chatdashOutbox.ack({item_id!r})" in str(e) for e in client.events)


def test_a_worker_killed_mid_chat_loses_no_acknowledged_message_and_shows_none_twice(cluster, tmp_path):
    """kill -9 the shopper's worker while messages stream in: every message the
    widget was told is stored is in the database once and on the admin's
    screen (served by the other worker) once, in order."""
    import threading
    import time

    from sqlmodel import select

    from chatdash.models import Message

    victim = cluster.start_worker()  # a third worker, to kill
    cluster.wait_up(victim)
    survivor = cluster.workers[1]
    admin = admin_client(cluster, survivor.url)
    shopper = shopper_client(victim.url)
    busy = [shopper_client(victim.url) for _ in range(4)]  # load on the same worker
    tag = uuid.uuid4().hex[:6]
    first_id, first = uuid.uuid4().hex, f"load {tag} 000"
    shopper.call(WidgetState, "send", {"item": {"id": first_id, "text": first}}, path="/widget")
    inbox = wait_for(admin, InboxState, lambda v: any(r["preview"] == first for r in v.get("rows", [])))
    conv_id = next(r["id"] for r in inbox["rows"] if r["preview"] == first)
    admin.call(InboxState, "select", {"conversation_id": conv_id}, path=CONVERSATIONS)
    wait_for(admin, ChatState, lambda v: bodies(v) == [first])

    sent: list[tuple[str, str]] = [(first_id, first)]
    stop = threading.Event()

    def stream(client: RawReflexClient, prefix: str, out: list) -> None:
        n = 1
        while not stop.is_set():
            item_id, text = uuid.uuid4().hex, f"{prefix} {tag} {n:03d}"
            out.append((item_id, text))
            try:
                client.call(WidgetState, "send", {"item": {"id": item_id, "text": text}}, path="/widget", timeout=10)
            except (ConnectionError, TimeoutError):
                return  # the worker is gone
            n += 1

    others: list[list] = [[] for _ in busy]
    threads = [threading.Thread(target=stream, args=(shopper, "load", sent))]
    threads += [threading.Thread(target=stream, args=(c, f"busy{i}", others[i])) for i, c in enumerate(busy)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while sum(acked(shopper, i) for i, _ in sent) < 15:
        assert time.monotonic() < deadline, "the shopper's messages were not acknowledged"
        time.sleep(0.05)
    victim.kill()  # SIGKILL, mid-stream
    stop.set()
    for t in threads:
        t.join(30)

    confirmed = [text for item_id, text in sent if acked(shopper, item_id)]
    assert len(confirmed) >= 15
    # On the admin's screen, from the surviving worker: each once, in order.
    chat = wait_for(admin, ChatState, lambda v: set(confirmed) <= set(bodies(v)))
    shown = [b for b in bodies(chat) if b in confirmed]
    assert shown == confirmed
    # The shopper's widget reconnects to the surviving worker and chats on.
    token = shopper.seen_values(WidgetState)["visitor_token"]
    again = RawReflexClient(survivor.url)
    again.hydrate(path="/widget")
    again.call(WidgetState, "adopt_visitor", {"token": token}, path="/widget")
    after = f"back again {tag}"
    again.call(WidgetState, "send", {"item": {"id": uuid.uuid4().hex, "text": after}}, path="/widget")
    chat = wait_for(admin, ChatState, lambda v: after in bodies(v))
    assert [b for b in bodies(chat) if b in confirmed] == confirmed
    again.close()
    # In the database: each acknowledged message once, for every shopper of the killed worker.
    engine = make_engine(cluster.db_url)
    with Session(engine) as s:
        stored = [m.body for m in s.exec(select(Message).where(Message.body.contains(tag))).all()]
    engine.dispose()
    every_acked = confirmed + [t for c, out in zip(busy, others, strict=True) for i, t in out if acked(c, i)]
    assert all(stored.count(text) == 1 for text in every_acked)
    assert len(stored) == len(set(stored))
    admin.close()
