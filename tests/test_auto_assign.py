"""Auto-assign (services/auto_assign.py): with the owner's switch on, a new
conversation — and one the shopper brings back with nobody on it — goes to
the next team member online, round robin, announced like a manual
assignment. On a SQLite file and on PostgreSQL; the race of conversations
started at once on PostgreSQL, with real threads."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from chatdash import events
from chatdash.db import session_scope
from chatdash.models import AdminUser, utcnow
from chatdash.services import auth, auto_assign, store_settings, workspace
from chatdash.settings import get_settings
from tests.test_workspace import agent, of, shopper_writes


def switch(engine: Engine, on: bool) -> None:
    with session_scope(engine) as s:
        store_settings.save_auto_assign(s, on)


def online(engine: Engine, *members: auth.AdminInfo) -> None:
    for m in members:
        auto_assign.still_online(m.id, engine=engine)


def assignee(engine: Engine, conv_id: int) -> int | None:
    return workspace.filing(conv_id, engine=engine).assignee_id


def test_off_by_default_a_new_conversation_waits_unassigned(engine, heard):
    dana = agent(engine, "Dana")
    online(engine, dana)
    with session_scope(engine) as s:
        assert store_settings.get_auto_assign(s) is False
    _v, _s, conv_id = shopper_writes(engine, "Hello?")
    assert assignee(engine, conv_id) is None
    assert not of(heard, events.ConversationFiled)


def test_new_conversations_go_round_robin_to_the_members_online(any_engine, heard):
    ann, ben, cat = agent(any_engine, "Ann Apple"), agent(any_engine, "Ben Bell"), agent(any_engine, "Cat Cole")
    online(any_engine, ann, cat)  # Ben has no conversations page open
    switch(any_engine, True)
    got = [assignee(any_engine, shopper_writes(any_engine, f"question {i}")[2]) for i in range(4)]
    assert got == [ann.id, cat.id, ann.id, cat.id]

    # Each one was announced as an assignment (by nobody: the system), with the counts.
    filed = of(heard, events.ConversationFiled)
    assert [(e.change, e.by_agent_id, e.conversation.assignee_id) for e in filed] == [
        ("assigned", 0, ann.id), ("assigned", 0, cat.id), ("assigned", 0, ann.id), ("assigned", 0, cat.id)]
    assert (filed[-1].counts.mine(ann.id), filed[-1].counts.mine(cat.id), filed[-1].counts.unassigned) == (2, 2, 0)
    # After the shopper's message and the start: the lists see it new, then assigned.
    kinds = [type(e) for e in heard[-3:]]
    assert kinds == [events.MessagePosted, events.ConversationStarted, events.ConversationFiled]

    online(any_engine, ben)  # Ben opens his page: his turn comes after Ann's, in team order
    got = [assignee(any_engine, shopper_writes(any_engine, f"later {i}")[2]) for i in range(3)]
    assert got == [ann.id, ben.id, cat.id]
    assert auto_assign.online_names(engine=any_engine) == ["Ann Apple", "Ben Bell", "Cat Cole"]


def test_only_members_seen_lately_are_online_and_logging_out_ends_it(any_engine):
    ann, ben = agent(any_engine, "Ann Apple"), agent(any_engine, "Ben Bell")
    online(any_engine, ann, ben)
    switch(any_engine, True)
    # Ben's page stopped renewing (a closed tab) longer ago than the online window.
    stale = utcnow() - timedelta(seconds=get_settings().agent_online_seconds + 1)
    with session_scope(any_engine) as s:
        s.execute(update(AdminUser).where(col(AdminUser.id) == ben.id).values(online_at=stale))
    assert auto_assign.online_names(engine=any_engine) == ["Ann Apple"]
    assert {assignee(any_engine, shopper_writes(any_engine, f"q{i}")[2]) for i in range(2)} == {ann.id}

    # Ann logs out: nobody is online, and a new conversation waits unassigned.
    with session_scope(any_engine) as s:
        token = auth.start_session(s, ann.id, hours=1)
    with session_scope(any_engine) as s:
        auth.end_session(s, token)
    assert auto_assign.online_names(engine=any_engine) == []
    assert assignee(any_engine, shopper_writes(any_engine, "anyone there?")[2]) is None


def test_a_conversation_the_shopper_brings_back_is_assigned_only_when_nobody_has_it(any_engine, heard):
    ann, ben = agent(any_engine, "Ann Apple"), agent(any_engine, "Ben Bell")
    kept_visitor, _s, kept = shopper_writes(any_engine, "first")  # before the switch: unassigned
    loose_visitor, _s, loose = shopper_writes(any_engine, "second")
    sleepy_visitor, _s, sleepy = shopper_writes(any_engine, "third")
    clock_visitor, _s, by_clock = shopper_writes(any_engine, "fourth")
    workspace.assign(ann.id, kept, ben.id, engine=any_engine)
    for conv_id in (kept, loose):
        workspace.set_status(ann.id, conv_id, "resolved", engine=any_engine)
    workspace.snooze(ann.id, sleepy, "1h", engine=any_engine)
    workspace.snooze(ann.id, by_clock, "1h", engine=any_engine)
    online(any_engine, ann)
    switch(any_engine, True)

    shopper_writes(any_engine, "back again", kept_visitor)  # re-opens, still Ben's
    assert assignee(any_engine, kept) == ben.id
    shopper_writes(any_engine, "back again", loose_visitor)  # re-opens with nobody on it
    assert assignee(any_engine, loose) == ann.id
    shopper_writes(any_engine, "wake up", sleepy_visitor)  # woken by the shopper, nobody on it
    assert assignee(any_engine, sleepy) == ann.id
    # Woken by the clock: nobody new wrote, it goes back where it was (unassigned).
    workspace.wake_due(now=utcnow() + timedelta(hours=2), engine=any_engine)
    assert workspace.filing(by_clock, engine=any_engine) == workspace.Filing("open", None, None)
    # An open, unassigned conversation that gets another message is left as it is.
    _v, _s, open_one = shopper_writes(any_engine, "fifth", clock_visitor)
    assert open_one == by_clock and assignee(any_engine, by_clock) is None


def test_nobody_online_leaves_a_new_conversation_unassigned(engine):
    agent(engine, "Ann Apple")  # on the team, but no page open
    switch(engine, True)
    assert assignee(engine, shopper_writes(engine, "hi")[2]) is None


def test_conversations_started_at_once_never_go_to_the_same_member_by_race(pg_engine):
    """Twelve shoppers write their first message at the same moment, each in a
    thread of its own with its own PostgreSQL connection: three members online
    get four each. (Without the cursor's row lock, picks read the same cursor
    and pile onto one member.)"""
    members = [agent(pg_engine, name) for name in ("Ann Apple", "Ben Bell", "Cat Cole")]
    online(pg_engine, *members)
    switch(pg_engine, True)
    from chatdash.services import chat

    shoppers = 12
    visitors = [uuid.uuid4().hex for _ in range(shoppers)]
    opened = [chat.open_widget(v, engine=pg_engine) for v in visitors]
    start = threading.Barrier(shoppers)
    conv_ids: list[int] = []
    failures: list[BaseException] = []

    def write(visitor: str, shopper_id: int) -> None:
        try:
            start.wait(timeout=30)
            conv_id, _m, _c = chat.shopper_send(visitor, shopper_id, 0, uuid.uuid4().hex, "hello, anyone?",
                                                engine=pg_engine)
            conv_ids.append(conv_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(v, o.shopper_id)) for v, o in zip(visitors, opened, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures
    got = [assignee(pg_engine, c) for c in conv_ids]
    assert len(set(conv_ids)) == shoppers
    assert sorted(got.count(m.id) for m in members) == [4, 4, 4], got
