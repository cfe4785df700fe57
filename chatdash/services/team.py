"""The store's team: staff accounts (owner and agents), invites, removal and
password resets. Use cases open their own transaction; nothing here knows
Reflex or HTTP.

An invite (and a reset) is a one-time link: a random token whose SHA-256 is
stored (`AdminInvite`); following it lets that person set a password, once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chatdash.db import session_scope, write_scope
from chatdash.models import AdminInvite, AdminSession, AdminUser, Conversation, Role, utcnow
from chatdash.services import auth
from chatdash.services.auth import AuthError

INVITE_DAYS = 7
MAX_TEAM = 200


@dataclass(frozen=True)
class Member:
    id: int
    email: str
    name: str
    role: str
    initials: str
    pending: bool  # invited, no password set yet


def initials(name: str, email: str) -> str:
    """Up to two letters for the inbox's assignee badge: "Dana Scully" → "DS"."""
    words = [w for w in (name or "").replace(".", " ").split() if w[:1].isalnum()]
    if len(words) >= 2:
        return (words[0][0] + words[-1][0]).upper()
    if words:
        return words[0][:2].upper()
    return (email or "?")[:2].upper()


def _member(a: AdminUser) -> Member:
    return Member(a.id, a.email, a.name or a.email, a.role, initials(a.name, a.email), not a.password_hash)


def members(*, engine: Engine | None = None) -> list[Member]:
    """Everyone on the team: owners first, then by name."""
    with session_scope(engine) as session:
        rows = session.exec(select(AdminUser).limit(MAX_TEAM)).all()
        return sorted((_member(a) for a in rows), key=lambda m: (m.role != Role.OWNER, m.name.lower()))


def _new_link(session: Session, admin_id: int) -> str:
    """A fresh one-time token for `admin_id` (earlier unused ones stop working)."""
    session.exec(delete(AdminInvite).where(AdminInvite.admin_id == admin_id))
    token = secrets.token_urlsafe(32)
    session.add(AdminInvite(token_hash=auth.token_hash(token), admin_id=admin_id,
                            expires_at=utcnow() + timedelta(days=INVITE_DAYS)))
    return token


def invite(email: str, name: str, *, engine: Engine | None = None) -> tuple[Member, str]:
    """Add an agent who sets their own password through the returned token."""
    name = (name or "").strip()
    if len(name) > 200:
        raise AuthError("Names can have at most 200 characters.")
    with write_scope(engine) as session:
        if len(session.exec(select(AdminUser.id).limit(MAX_TEAM)).all()) >= MAX_TEAM:
            raise AuthError(f"A team can have at most {MAX_TEAM} members.")
        created = auth.create_admin(session, email, None, name, role=Role.AGENT)
        token = _new_link(session, created.id)
        return _member(session.get(AdminUser, created.id)), token


def reset_link(owner_id: int, admin_id: int, *, engine: Engine | None = None) -> tuple[Member, str]:
    """A one-time link for a member to set a new password; their old password
    and sessions stop working now."""
    with write_scope(engine) as session:
        admin = _other_member(session, owner_id, admin_id)
        admin.password_hash = ""
        session.add(admin)
        session.exec(delete(AdminSession).where(AdminSession.admin_id == admin.id))
        token = _new_link(session, admin.id)
        return _member(admin), token


def remove(owner_id: int, admin_id: int, *, engine: Engine | None = None) -> Member:
    """Take a member off the team: their sessions end, their conversations
    become unassigned (each screen is told), their messages stay."""
    from chatdash.services import workspace

    with write_scope(engine) as session:
        admin = _other_member(session, owner_id, admin_id)
        gone = _member(admin)
        assigned = session.exec(select(Conversation.id).where(Conversation.assignee_id == admin.id)).all()
        session.execute(update(Conversation).where(col(Conversation.assignee_id) == admin.id)
                        .values(assignee_id=None))
        session.delete(admin)
        session.flush()
        for conversation_id in assigned:
            workspace.record_filed(session, conversation_id, "unassigned", owner_id)
        return gone


def _other_member(session: Session, owner_id: int, admin_id: int) -> AdminUser:
    if not isinstance(admin_id, int) or isinstance(admin_id, bool):
        raise AuthError("No such team member.")
    if admin_id == owner_id:
        raise AuthError("You cannot do that to your own account.")
    admin = session.get(AdminUser, admin_id)
    if admin is None:
        raise AuthError("No such team member.")
    if admin.role == Role.OWNER:
        owners = session.exec(select(func.count()).select_from(AdminUser).where(AdminUser.role == Role.OWNER)).one()
        if owners <= 1:
            raise AuthError("The store needs an owner.")
    return admin


@dataclass(frozen=True)
class PendingLink:
    email: str
    name: str


def _invite_for(session: Session, token: str) -> tuple[AdminInvite, AdminUser] | None:
    if not isinstance(token, str) or not 20 <= len(token) <= 128:
        return None
    row = session.exec(
        select(AdminInvite, AdminUser).join(AdminUser, col(AdminUser.id) == AdminInvite.admin_id)
        .where(AdminInvite.token_hash == auth.token_hash(token))
    ).first()
    if row is None or row[0].expires_at < utcnow():
        return None
    return row


def check_link(token: str, *, engine: Engine | None = None) -> PendingLink | None:
    """Whom an invite or reset link is for (None: unknown, used or expired)."""
    with session_scope(engine) as session:
        row = _invite_for(session, token)
        return PendingLink(row[1].email, row[1].name) if row else None


def accept(token: str, password: str, name: str = "", *, session_hours: int = 12,
           engine: Engine | None = None) -> tuple[auth.AdminInfo, str]:
    """Set the password through a one-time link (used up here) and start a
    session. Returns the member and the raw session token for the browser."""
    auth.validate_password(password)
    name = (name or "").strip()
    if len(name) > 200:
        raise AuthError("Names can have at most 200 characters.")
    with write_scope(engine) as session:
        row = _invite_for(session, token)
        if row is None:
            raise AuthError("This link has expired or was already used. Ask the store's owner for a new one.")
        link, admin = row
        admin.password_hash = auth.hash_password(password)
        if name:
            admin.name = name
        admin.last_login_at = utcnow()
        session.add(admin)
        session.delete(link)
        raw = auth.start_session(session, admin.id, session_hours)
        session.flush()
        return auth.info(admin), raw
