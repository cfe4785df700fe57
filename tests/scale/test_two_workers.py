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
from tests.waiting import wait_until

CONVERSATIONS = "/admin/conversations"
SETTINGS = "/admin/settings"


# Staff emails coalesce this long in the cluster: long enough that two
# conversations started right after an email surely fall in its window.
EMAIL_WINDOW_SECONDS = 15.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, smtp_server):
    c = start_cluster(tmp_path_factory.mktemp("cluster"), workers=2, extra_env={
        "CHATDASH_SMTP_HOST": "127.0.0.1", "CHATDASH_SMTP_PORT": str(smtp_server.port),
        "CHATDASH_SMTP_FROM": "chat@demo-store.test",
        "CHATDASH_EMAIL_COALESCE_MINUTES": str(EMAIL_WINDOW_SECONDS / 60)})
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


def test_retrain_pressed_on_both_workers_trains_once_and_both_cards_follow_it(cluster):
    """Two owners press Retrain at once, each on another worker: one training
    runs (the database's claim), the other owner is told it is running, and both
    cards follow its progress (pushed across workers) to the same new version."""
    import threading

    from sqlmodel import select

    from chatdash.models import RunStatus, TrainingRun
    from chatdash.state.recommendations import RecommendationsState

    engine = make_engine(cluster.db_url)
    with Session(engine) as s:
        runs_before = len(s.exec(select(TrainingRun)).all())
    clients = [admin_client(cluster, w.url) for w in cluster.workers]
    try:
        for c in clients:
            c.call(RecommendationsState, "load", path=SETTINGS)
        marks = [len(c.deltas) for c in clients]
        together = threading.Barrier(len(clients))

        def press(c: RawReflexClient) -> None:
            together.wait(10)
            c.call(RecommendationsState, "retrain", path=SETTINGS)

        threads = [threading.Thread(target=press, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        done = [wait_for(c, RecommendationsState, lambda v: v.get("run_status") == RunStatus.SUCCEEDED, since=m)
                for c, m in zip(clients, marks, strict=True)]
        with Session(engine) as s:
            new = s.exec(select(TrainingRun).order_by(TrainingRun.id)).all()[runs_before:]
        assert [(r.status, r.trigger) for r in new] == [(RunStatus.SUCCEEDED, "manual")]  # trained once
        for c, m, last in zip(clients, marks, done, strict=True):
            shown = [values(d, RecommendationsState) for d in c.deltas[m:]]
            percents = [v["run_percent"] for v in shown if "run_percent" in v]
            assert any(0 < p < 100 for p in percents), percents  # progress reached both workers' screens
            assert f"version {new[0].version} is live" in last["run_note"]
            assert any(v.get("version") == new[0].version for v in shown)  # the card turned to it
        notices = [v.get("notice", "") for c, m in zip(clients, marks, strict=True)
                   for v in (values(d, RecommendationsState) for d in c.deltas[m:])]
        assert any("already running" in n for n in notices), notices
    finally:
        for c in clients:
            c.close()
        engine.dispose()


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


def test_new_conversations_through_both_workers_arrive_in_one_email(cluster, smtp_server):
    """Each worker hears only its own shoppers' conversations; the staff still
    get one email per window listing both (the window is held in the database)."""
    from chatdash.services import store_settings

    def start_conversation(url: str, text: str) -> None:
        client = shopper_client(url)
        try:
            client.call(WidgetState, "send", {"item": {"id": uuid.uuid4().hex, "text": text}}, path="/widget")
        finally:
            client.close()

    def plain(msg) -> str:
        return msg.get_body(("plain",)).get_content()

    one, other = cluster.workers
    tag = uuid.uuid4().hex[:6]
    owner = f"owner-{tag}@demo-store.test"
    engine = make_engine(cluster.db_url)
    with Session(engine) as s:
        store_settings.save_email_notifications(s, store_settings.EmailNotifications(True, [owner]))
        s.commit()
    try:
        opener = f"opening the window {tag}"
        start_conversation(one.url, opener)
        smtp_server.wait_for(lambda m: owner in m[0] and opener in plain(m[1]))
        # Inside the window that email opened: one conversation through each worker.
        via_one, via_other = f"via the first worker {tag}", f"via the second worker {tag}"
        start_conversation(one.url, via_one)
        start_conversation(other.url, via_other)
        _r, digest = smtp_server.wait_for(lambda m: owner in m[0] and via_other in plain(m[1]),
                                          timeout=EMAIL_WINDOW_SECONDS + 30)
        assert digest["Subject"].startswith("2 new conversations on")
        assert via_one in plain(digest)
        assert [opener in plain(m) for r, m in smtp_server.messages if owner in r] == [True, False]
    finally:
        with Session(engine) as s:
            store_settings.save_email_notifications(s, store_settings.EmailNotifications())
            s.commit()
        engine.dispose()


def acked(client: RawReflexClient, item_id: str) -> bool:
    """The widget was told this message is stored (chatdashOutbox.ack)."""
    return any(f"chatdashOutbox.ack({item_id!r})" in str(e) for e in client.events)


def test_a_worker_killed_mid_chat_loses_no_acknowledged_message_and_shows_none_twice(cluster, tmp_path):
    """kill -9 the shopper's worker while messages stream in: every message the
    widget was told is stored is in the database once and on the admin's
    screen (served by the other worker) once, in order."""
    import threading

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
    wait_until(lambda: sum(acked(shopper, i) for i, _ in sent) >= 15, timeout=60,
               what="15 of the shopper's messages acknowledged")
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


def test_a_worker_process_killed_behind_one_port_is_replaced_and_the_port_serves_on(cluster):
    """`./dev serve` with two worker processes on one port (chatdash.serve): kill -9
    one process and granian starts another in its place instead of stopping the
    server (Reflex alone stops every worker then); a shopper and an admin chat
    through the same port afterwards."""
    import signal

    server = cluster.start_worker(processes=2)
    cluster.wait_up(server)
    supervisor = psutil.Process(server.process.pid)

    def workers() -> set[int]:
        return {p.pid for p in supervisor.children() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE}

    def started() -> set[int] | None:
        now = workers()
        return now if len(now) >= 2 else None

    before = wait_until(started, timeout=60, what="two worker processes started")
    victim = min(before)
    psutil.Process(victim).send_signal(signal.SIGKILL)

    def replaced() -> set[int] | None:
        assert server.alive(), f"the server stopped with its worker:\n{server.log_path.read_text()[-3000:]}"
        now = workers()
        return now if len(now) == 2 and victim not in now else None

    after = wait_until(replaced, timeout=60, what=f"a worker in place of {victim}")
    assert after - before, "a new worker process took the dead one's place"
    cluster.wait_up(server)

    admin = admin_client(cluster, server.url)
    shopper = shopper_client(server.url)
    text = f"after the kill {uuid.uuid4().hex[:8]}"
    shopper.call(WidgetState, "send", {"item": {"id": uuid.uuid4().hex, "text": text}}, path="/widget")
    wait_for(admin, InboxState, lambda v: any(r["preview"] == text for r in v.get("rows", [])))
    assert server.alive()
    shopper.close()
    admin.close()
