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
