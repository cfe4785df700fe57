"""Conversation search (services/search.py) through the real indexes: FTS5
on a SQLite file, GIN/tsvector on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.engine import Engine

from chatdash.db import session_scope
from chatdash.models import Role, Shopper
from chatdash.services import auth, chat, search, workspace


def conversation(engine: Engine, first: str, *, name: str = "", email: str = "", customer_id: str = "") -> int:
    visitor = uuid.uuid4().hex
    customer = None
    if name or email or customer_id:
        customer = chat.Customer(customer_id or uuid.uuid4().hex, name=name, email=email)
    opened = chat.open_widget(visitor, customer, engine=engine)
    conv_id, _m, _c = chat.shopper_send(visitor, opened.shopper_id, 0, uuid.uuid4().hex, first, engine=engine)
    return conv_id


def found(engine: Engine, query: str) -> list[int]:
    return [r.id for r in search.search(query, engine=engine)]


def test_search_finds_by_message_text_name_email_and_customer_id(any_engine):
    kettle = conversation(any_engine, "Is the blue kettle back in stock?")
    refund = conversation(any_engine, "I would like a refund please", name="Margaret Hamilton",
                          email="maggie@apollo.test", customer_id="CUST-4711")
    other = conversation(any_engine, "Do you ship to Norway?")
    assert found(any_engine, "kettle") == [kettle]
    assert found(any_engine, "KETT") == [kettle]  # a prefix, any case
    assert found(any_engine, "blue stock") == [kettle]  # every word, in any order
    assert found(any_engine, "blue norway") == []
    assert found(any_engine, "hamilton") == [refund]
    assert found(any_engine, "maggie") == [refund]
    assert found(any_engine, "cust 4711") == [refund]
    assert found(any_engine, "norway") == [other]
    # Newest activity first; a later message is found too.
    chat.shopper_send(*_shopper_of(any_engine, kettle), uuid.uuid4().hex, "also a refund for the kettle",
                      engine=any_engine)
    assert found(any_engine, "refund") == [kettle, refund]


def _shopper_of(engine: Engine, conv_id: int) -> tuple[str, int, int]:
    from chatdash.models import Conversation

    with session_scope(engine) as s:
        conv = s.get(Conversation, conv_id)
        shopper = s.get(Shopper, conv.shopper_id)
        return shopper.visitor_id, shopper.id, conv.id


def test_search_sees_renamed_shoppers_notes_and_resolved_conversations(any_engine):
    conv_id = conversation(any_engine, "hello there")
    with session_scope(any_engine) as s:
        agent = auth.create_admin(s, f"a{uuid.uuid4().hex[:6]}@store.test", "agent-password-1", "A",
                                  role=Role.AGENT)
    workspace.post_note(agent.id, conv_id, uuid.uuid4().hex, "chargeback risk", engine=any_engine)
    workspace.set_status(agent.id, conv_id, "resolved", engine=any_engine)
    assert found(any_engine, "chargeback") == [conv_id]
    rows = search.search("hello", engine=any_engine)
    assert [(r.id, r.status) for r in rows] == [(conv_id, "resolved")]
    with session_scope(any_engine) as s:
        shopper = s.get(Shopper, _shopper_of(any_engine, conv_id)[1])
        shopper.name = "Grace Hopper"
        s.add(shopper)
    assert found(any_engine, "grace") == [conv_id]


@pytest.mark.parametrize("query", ['"', "*", "NEAR(a b)", "a OR", "x" * 10, "' OR 1=1 --", "kettle:*|"])
def test_search_syntax_from_the_user_is_only_ever_words(any_engine, query):
    """Quotes, operators and SQL are no syntax: a list of results or a clear
    refusal, never a database error."""
    conversation(any_engine, "some words here")
    try:
        assert isinstance(search.search(query, engine=any_engine), list)
    except chat.ChatError as exc:
        assert "Type a name" in str(exc)


def test_postgresql_answers_from_the_indexes(pg_engine):
    from sqlalchemy import text

    conversation(pg_engine, "index me")
    with pg_engine.connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))  # a tiny table: make the planner show its choice
        plan = "\n".join(conn.execute(text("EXPLAIN " + str(search._POSTGRES)), {"q": "index:*", "limit": 50})
                         .scalars())
    assert "ix_message_body_search" in plan and "ix_shopper_search" in plan


@pytest.mark.parametrize("bad", ["", "   ", "!!!", "x" * 201, None, 5, ["kettle"]])
def test_search_refuses_what_cannot_be_searched(engine, bad):
    with pytest.raises(chat.ChatError):
        search.search(bad, engine=engine)
