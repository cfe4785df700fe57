"""Search the conversations by shopper name, email, customer id or message
text, through indexes: SQLite's FTS5 tables (`message_fts`, `shopper_fts`,
kept in step by triggers) or PostgreSQL's GIN indexes on
`to_tsvector('simple', …)` (both made by the 0005 migration).

Each word of the query matches as a prefix ("kett" finds "kettle"); every word
must match. Results are whole conversations, open or resolved, newest
activity first.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chatdash.db import session_scope
from chatdash.events import ConversationSummary
from chatdash.services import conversations as convs
from chatdash.services.conversations import ChatError
from chatdash.settings import get_settings

MAX_QUERY = 200
MAX_WORDS = 8
# A common word can match most messages: only the newest this many matches
# are looked at (the newest activity is what an agent looks for first).
NEWEST_MATCHES = 5000
WORD = re.compile(r"\w+", re.UNICODE)

# The expressions PostgreSQL's indexes cover; the query must spell them the
# same way. Separators become spaces first, so "CUST-4711" and
# "dana@store.test" are words apart, as FTS5 splits them.
SEPARATORS = "translate({}, '-_.@+/:#', '        ')"
SHOPPER_TEXT = SEPARATORS.format(
    "coalesce(s.name, '') || ' ' || coalesce(s.email, '') || ' ' || coalesce(s.customer_id, '')")
BODY_TEXT = SEPARATORS.format("body")

_SQLITE = text(f"""
    SELECT c.id FROM conversation c
    WHERE c.shopper_id IN (SELECT rowid FROM shopper_fts WHERE shopper_fts MATCH :q)
       OR c.id IN (SELECT m.conversation_id FROM message m
                   WHERE m.id IN (SELECT rowid FROM message_fts WHERE message_fts MATCH :q
                                  ORDER BY rowid DESC LIMIT {NEWEST_MATCHES}))
    ORDER BY c.last_message_at DESC LIMIT :limit
""")

# MATERIALIZED: each match is read through its GIN index, whatever the
# planner guesses for a generic plan (psycopg prepares a statement run often,
# and a generic plan may prefer walking the message table backwards).
_POSTGRES = text(f"""
    WITH message_hits AS MATERIALIZED (
        SELECT id, conversation_id FROM message
        WHERE to_tsvector('simple', {BODY_TEXT}) @@ to_tsquery('simple', :q)
    ), shopper_hits AS MATERIALIZED (
        SELECT s.id FROM shopper s WHERE to_tsvector('simple', {SHOPPER_TEXT}) @@ to_tsquery('simple', :q)
    ), hits AS (
        SELECT c.id FROM conversation c WHERE c.shopper_id IN (SELECT id FROM shopper_hits)
        UNION
        SELECT conversation_id FROM (SELECT conversation_id FROM message_hits
                                     ORDER BY id DESC LIMIT {NEWEST_MATCHES}) newest
    )
    SELECT c.id FROM conversation c JOIN hits ON hits.id = c.id
    ORDER BY c.last_message_at DESC LIMIT :limit
""")


def words(query: object) -> list[str]:
    """The words searched for (ChatError for a query that cannot be searched)."""
    if not isinstance(query, str):
        raise ChatError("Search for some text.")
    if len(query) > MAX_QUERY:
        raise ChatError(f"Searches can be at most {MAX_QUERY} characters.")
    found = [w.lower() for w in WORD.findall(query)]
    if not found:
        raise ChatError("Type a name, an email, a customer id or words from a message.")
    return found[:MAX_WORDS]


def matching_ids(session: Session, query: str, limit: int = 50) -> list[int]:
    terms = words(query)
    if session.get_bind().dialect.name == "sqlite":
        # Each word quoted (FTS5 syntax stays out of reach) and matched as a prefix.
        match = " ".join(f'"{w}"*' for w in terms)
        return list(session.execute(_SQLITE, {"q": match, "limit": limit}).scalars())
    match = " & ".join(f"{w}:*" for w in terms)
    return list(session.execute(_POSTGRES, {"q": match, "limit": limit}).scalars())


def search(query: str, limit: int = 50, *, engine: Engine | None = None) -> list[ConversationSummary]:
    """The inbox rows of the conversations matching `query`, newest first."""
    with session_scope(engine) as session:
        ids = matching_ids(session, query, limit)
        if not ids:
            return []
        rows = convs.list_conversations(session, window_seconds=get_settings().presence_window_seconds,
                                        ids=ids, limit=limit)
        return rows
