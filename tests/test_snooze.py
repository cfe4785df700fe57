"""Snooze until a time (services/workspace.py): the conversation leaves the
open lists for the Snoozed one, and comes back by itself when its time has
come (the leader's job, `wake_due`) or at once when the shopper writes; an
agent can wake it by hand. On a SQLite file and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from chatdash import events
from chatdash.db import session_scope
from chatdash.models import Conversation, Status, utcnow
from chatdash.services import workspace
from chatdash.services.conversations import ChatError
from chatdash.state.views import wake_text
from tests.test_workspace import agent, of, shopper_writes

BERLIN = ZoneInfo("Europe/Berlin")


def ids(page) -> list[int]:
    return [r.id for r in page.rows]


def test_presets_and_typed_times_are_on_the_stores_clock():
    now = datetime(2026, 12, 3, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    assert workspace.snooze_time("1h", now, BERLIN) == now + timedelta(hours=1)
    # Tomorrow 9:00 in Berlin (UTC+1 in December) is 08:00 UTC.
    assert workspace.snooze_time("tomorrow", now, BERLIN) == datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
    # Half an hour later it is already the 4th in Berlin: tomorrow is the 5th, though UTC still says the 3rd.
    late = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)
    assert workspace.snooze_time("tomorrow", late, BERLIN) == datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    # The datetime input's value is a time on the store's clock (summer: UTC+2).
    assert workspace.snooze_time("2027-07-01T09:30", now, BERLIN) == datetime(2027, 7, 1, 7, 30, tzinfo=UTC)
    assert workspace.snooze_time("2026-12-24T09:30:15", now, BERLIN) == datetime(2026, 12, 24, 8, 30, 15,
                                                                                 tzinfo=UTC)


@pytest.mark.parametrize(("choice", "message"), [
    ("2026-12-03T23:00", "in the future"),  # 22:00 UTC: already past
    ("2028-01-01T09:00", "at most a year"),
    ("2026-02-30T09:00", "does not exist"),
    ("next tuesday", "date and a time"),
    ("", "date and a time"),
    (3600, "when the conversation"),
    (None, "when the conversation"),
    ("2026-12-24T09:30" + "0" * 40, "when the conversation"),
])
def test_a_snooze_time_that_cannot_be_is_refused_with_a_reason(choice, message):
    now = datetime(2026, 12, 3, 22, 30, tzinfo=UTC)
    with pytest.raises(ChatError, match=message):
        workspace.snooze_time(choice, now, BERLIN)


def test_a_snoozed_conversation_leaves_the_open_lists_and_wakes_when_due(any_engine, heard):
    dana = agent(any_engine, "Dana")
    _v, _s, conv_id = shopper_writes(any_engine, "Call me back tomorrow")
    workspace.assign(dana.id, conv_id, dana.id, engine=any_engine)
    heard.clear()
    now = utcnow()
    until = workspace.snooze(dana.id, conv_id, "1h", now=now, engine=any_engine)
    assert until == now + timedelta(hours=1)

    filed = of(heard, events.ConversationFiled)[-1]
    assert (filed.change, filed.by_agent_id, filed.conversation.status) == ("snoozed", dana.id, "snoozed")
    assert filed.conversation.snoozed_until == until
    assert (filed.counts.snoozed, filed.counts.mine(dana.id)) == (1, 0)
    for name in ("open", "mine"):
        assert conv_id not in ids(workspace.inbox_page(name, dana.id, 50, engine=any_engine))
    snoozed = workspace.inbox_page("snoozed", dana.id, 50, engine=any_engine)
    assert ids(snoozed) == [conv_id] and snoozed.rows[0].snoozed_until == until
    assert workspace.matches("snoozed", dana.id, filed.conversation)
    assert not workspace.matches("open", dana.id, filed.conversation)

    heard.clear()
    assert workspace.wake_due(now=until - timedelta(seconds=1), engine=any_engine) == []
    assert heard == []  # nothing due: nothing written, nobody told
    assert workspace.wake_due(now=until, engine=any_engine) == [conv_id]
    woke = of(heard, events.ConversationFiled)
    assert [(e.change, e.by_agent_id, e.conversation.status) for e in woke] == [("woke", 0, "open")]
    assert woke[0].conversation.snoozed_until is None and woke[0].counts.snoozed == 0
    assert conv_id in ids(workspace.inbox_page("mine", dana.id, 50, engine=any_engine))  # still Dana's
    assert workspace.wake_due(now=until + timedelta(hours=1), engine=any_engine) == []


def test_the_shoppers_message_wakes_a_snoozed_conversation_at_once(any_engine, heard):
    dana = agent(any_engine, "Dana")
    visitor, _s, conv_id = shopper_writes(any_engine, "Is it in stock?")
    workspace.snooze(dana.id, conv_id, "tomorrow", engine=any_engine)
    heard.clear()
    _v, _s, again = shopper_writes(any_engine, "Actually, I need it today", visitor)
    assert again == conv_id  # the same conversation, not a new one
    assert [(e.change, e.conversation.status) for e in of(heard, events.ConversationFiled)] == [("woke", "open")]
    assert of(heard, events.MessagePosted)[0].conversation.status == "open"
    assert not of(heard, events.ConversationStarted)
    with session_scope(any_engine) as s:
        conv = s.get(Conversation, conv_id)
        assert (conv.status, conv.snoozed_until) == (Status.OPEN, None)
    assert conv_id in ids(workspace.inbox_page("open", dana.id, 50, engine=any_engine))


def test_an_agent_wakes_a_snoozed_conversation_by_hand(any_engine, heard):
    dana = agent(any_engine, "Dana")
    _v, _s, conv_id = shopper_writes(any_engine, "No rush")
    workspace.snooze(dana.id, conv_id, "1h", engine=any_engine)
    heard.clear()
    assert workspace.set_status(dana.id, conv_id, "open", engine=any_engine)
    assert [(e.change, e.by_agent_id) for e in of(heard, events.ConversationFiled)] == [("woke", dana.id)]
    assert workspace.filing(conv_id, engine=any_engine) == workspace.Filing("open", None, None)
    # Resolving a snoozed one forgets its alarm: it never wakes into the open lists.
    workspace.snooze(dana.id, conv_id, "1h", engine=any_engine)
    workspace.set_status(dana.id, conv_id, "resolved", engine=any_engine)
    assert workspace.filing(conv_id, engine=any_engine) == workspace.Filing("resolved", None, None)
    assert workspace.wake_due(now=utcnow() + timedelta(hours=2), engine=any_engine) == []


def test_snoozing_refuses_what_is_not_a_conversation(engine):
    dana = agent(engine, "Dana")
    for bad in (0, -1, 10**9, "1", True, None):
        with pytest.raises(ChatError, match="no longer exists"):
            workspace.snooze(dana.id, bad, "1h", engine=engine)
    _v, _s, conv_id = shopper_writes(engine, "hello")
    with pytest.raises(ChatError, match="in the future"):
        workspace.snooze(dana.id, conv_id, "2001-01-01T09:00", engine=engine)
    assert workspace.filing(conv_id, engine=engine).status == "open"


def test_wake_times_read_as_the_store_would_say_them():
    now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)  # a Thursday
    assert wake_text(datetime(2026, 12, 3, 14, 30, tzinfo=UTC), UTC, now) == "14:30"
    assert wake_text(datetime(2026, 12, 4, 8, 0, tzinfo=UTC), BERLIN, now) == "tomorrow 09:00"
    assert wake_text(datetime(2026, 12, 5, 9, 0, tzinfo=UTC), UTC, now) == "Sat 09:00"
    assert wake_text(datetime(2026, 12, 24, 9, 0, tzinfo=UTC), UTC, now) == "24 Dec 09:00"
    assert wake_text(None, UTC, now) == ""
