"""Saved replies: the team's library of canned answers. An agent types `/`
and a few letters of a shortcut in the reply box and picks one; variables in
braces are filled in for the open conversation's shopper."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from chatdash.db import session_scope, write_scope
from chatdash.models import SavedReply, Shopper
from chatdash.services.conversations import ChatError, clean_text

SHORTCUT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_REPLIES = 200
MAX_CHARS = 4000
# The variables a saved reply may use, and what each becomes without a value.
VARIABLES = {"first_name": "there", "name": "there"}
_VARIABLE = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Saved:
    id: int
    shortcut: str
    body: str


def check_shortcut(shortcut: object) -> str:
    value = shortcut.strip().lstrip("/").lower() if isinstance(shortcut, str) else ""
    if not SHORTCUT_RE.fullmatch(value):
        raise ChatError("Shortcuts are 1-40 letters, digits, - or _ (like refund-policy).")
    return value


def check_body(body: object) -> str:
    text = clean_text(body, MAX_CHARS) if isinstance(body, str) else clean_text("", MAX_CHARS)
    unknown = sorted(set(_VARIABLE.findall(text)) - set(VARIABLES))
    if unknown:
        raise ChatError(f"Unknown variable {{{unknown[0]}}}: use {{first_name}} or {{name}}.")
    return text


def library(*, engine: Engine | None = None) -> list[Saved]:
    with session_scope(engine) as session:
        rows = session.exec(select(SavedReply).order_by(col(SavedReply.shortcut)).limit(MAX_REPLIES)).all()
        return [Saved(r.id, r.shortcut, r.body) for r in rows]


def add(shortcut: object, body: object, *, engine: Engine | None = None) -> Saved:
    shortcut, body = check_shortcut(shortcut), check_body(body)
    try:
        with write_scope(engine) as session:
            if len(session.exec(select(SavedReply.id).limit(MAX_REPLIES)).all()) >= MAX_REPLIES:
                raise ChatError(f"The library holds at most {MAX_REPLIES} saved replies.")
            reply = SavedReply(shortcut=shortcut, body=body)
            session.add(reply)
            session.flush()
            return Saved(reply.id, reply.shortcut, reply.body)
    except IntegrityError as exc:
        raise ChatError(f"There is already a saved reply /{shortcut}.") from exc


def remove(reply_id: object, *, engine: Engine | None = None) -> None:
    if not isinstance(reply_id, int) or isinstance(reply_id, bool):
        raise ChatError("No such saved reply.")
    with write_scope(engine) as session:
        reply = session.get(SavedReply, reply_id)
        if reply is None:
            raise ChatError("No such saved reply.")
        session.delete(reply)


def fill(body: str, shopper_name: str | None) -> str:
    """The reply with its variables filled in for one shopper."""
    name = (shopper_name or "").strip()
    values = {"first_name": name.split()[0] if name else "", "name": name}

    def value(match: re.Match) -> str:
        key = match.group(1)
        return values.get(key) or VARIABLES.get(key, match.group(0))

    return _VARIABLE.sub(value, body)


def for_shopper(shopper_id: int, *, engine: Engine | None = None) -> list[Saved]:
    """The library as the reply box offers it to one conversation: filled in."""
    with session_scope(engine) as session:
        shopper = session.get(Shopper, shopper_id)
        name = shopper.name if shopper else None
    return [Saved(s.id, s.shortcut, fill(s.body, name)) for s in library(engine=engine)]
