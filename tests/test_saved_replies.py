"""Saved replies (services/saved_replies.py): the team's library and its
variables, filled in for one shopper."""

from __future__ import annotations

import uuid

import pytest

from chatdash.db import session_scope
from chatdash.models import Shopper
from chatdash.services import saved_replies
from chatdash.services.conversations import ChatError


def shopper(engine, name: str | None) -> int:
    with session_scope(engine) as s:
        row = Shopper(visitor_id=uuid.uuid4().hex, name=name)
        s.add(row)
        s.flush()
        return row.id


def test_a_saved_reply_is_filled_in_for_each_shopper(engine):
    saved_replies.add("/Shipping", "Hi {first_name}, we ship in 2 days.", engine=engine)
    saved_replies.add("refund", "Refunds take 5 days, {name}.", engine=engine)
    ada = shopper(engine, "Ada Lovelace")
    nobody = shopper(engine, None)
    assert [(r.shortcut, r.body) for r in saved_replies.for_shopper(ada, engine=engine)] == [
        ("refund", "Refunds take 5 days, Ada Lovelace."), ("shipping", "Hi Ada, we ship in 2 days.")]
    assert [r.body for r in saved_replies.for_shopper(nobody, engine=engine)] == [
        "Refunds take 5 days, there.", "Hi there, we ship in 2 days."]


def test_the_library_refuses_bad_shortcuts_bodies_and_duplicates(engine):
    saved_replies.add("hello", "Hello!", engine=engine)
    with pytest.raises(ChatError, match="already a saved reply /hello"):
        saved_replies.add("HELLO", "Again", engine=engine)
    for bad in ("", "/", "has space", "x" * 41, "ünï", None, 7):
        with pytest.raises(ChatError, match="Shortcuts are"):
            saved_replies.add(bad, "body", engine=engine)
    with pytest.raises(ChatError, match="Write a message first"):
        saved_replies.add("empty", "   ", engine=engine)
    with pytest.raises(ChatError, match="at most 4,000"):
        saved_replies.add("long", "x" * 4001, engine=engine)
    with pytest.raises(ChatError, match=r"Unknown variable \{order\}"):
        saved_replies.add("vars", "Your {order} is late", engine=engine)
    assert [r.shortcut for r in saved_replies.library(engine=engine)] == ["hello"]
    reply = saved_replies.library(engine=engine)[0]
    saved_replies.remove(reply.id, engine=engine)
    assert saved_replies.library(engine=engine) == []
    with pytest.raises(ChatError, match="No such saved reply"):
        saved_replies.remove(reply.id, engine=engine)
