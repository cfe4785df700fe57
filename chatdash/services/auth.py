"""Admin accounts and sessions. Passwords are hashed with argon2; session tokens
are random and only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chatdash.models import AdminSession, AdminUser, utcnow

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a wrong email costs as much
# time as a wrong password and does not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("chatdash-dummy-password")

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256


class AuthError(ValueError):
    """A request about admin accounts that cannot be honoured; the message is for the user."""


@dataclass(frozen=True)
class AdminInfo:
    id: int
    email: str
    name: str


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not EMAIL_RE.match(email):
        raise AuthError("Enter a valid email address.")
    return email


def validate_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise AuthError(f"Passwords need at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise AuthError(f"Passwords can have at most {MAX_PASSWORD} characters.")


def create_admin(session: Session, email: str, password: str, name: str = "") -> AdminInfo:
    email = normalise_email(email)
    validate_password(password)
    if session.exec(select(AdminUser).where(AdminUser.email == email)).first():
        raise AuthError(f"An admin with email {email} already exists.")
    admin = AdminUser(email=email, name=name.strip()[:200], password_hash=hash_password(password))
    session.add(admin)
    session.flush()
    return AdminInfo(admin.id, admin.email, admin.name)


def set_password(session: Session, email: str, password: str) -> None:
    validate_password(password)
    admin = session.exec(select(AdminUser).where(AdminUser.email == normalise_email(email))).first()
    if admin is None:
        raise AuthError(f"No admin with email {email}.")
    admin.password_hash = hash_password(password)
    # A new password ends every existing session of that admin.
    session.exec(delete(AdminSession).where(AdminSession.admin_id == admin.id))


def authenticate(session: Session, email: str, password: str) -> AdminInfo | None:
    if not email or not password or len(password) > MAX_PASSWORD or len(email) > 320:
        return None
    admin = session.exec(
        select(AdminUser).where(AdminUser.email == email.strip().lower())
    ).first()
    if admin is None:
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(admin.password_hash, password):
        return None
    admin.last_login_at = utcnow()
    return AdminInfo(admin.id, admin.email, admin.name)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, admin_id: int, hours: int) -> str:
    """Create a session and return its raw token (shown to the browser only)."""
    token = secrets.token_urlsafe(32)
    session.add(
        AdminSession(
            token_hash=_token_hash(token),
            admin_id=admin_id,
            expires_at=utcnow() + timedelta(hours=hours),
        )
    )
    return token


def admin_for_token(session: Session, token: str) -> AdminInfo | None:
    if not token or len(token) > 128:
        return None
    row = session.exec(
        select(AdminSession, AdminUser)
        .join(AdminUser, AdminUser.id == AdminSession.admin_id)
        .where(AdminSession.token_hash == _token_hash(token))
    ).first()
    if row is None:
        return None
    admin_session, admin = row
    if admin_session.expires_at < utcnow():
        return None
    return AdminInfo(admin.id, admin.email, admin.name)


def end_session(session: Session, token: str) -> None:
    if token:
        session.exec(delete(AdminSession).where(AdminSession.token_hash == _token_hash(token)))


def count_admins(session: Session) -> int:
    return len(session.exec(select(AdminUser.id)).all())


def ensure_first_admin(
    engine: Engine, email: str | None, password: str | None
) -> tuple[str, str | None] | None:
    """Create the first admin when there is none.

    Returns (email, password) when an admin was created — password is None when
    it came from the environment (the operator knows it) — or None when admins exist.
    """
    with Session(engine) as session:
        if count_admins(session):
            return None
        generated = None
        if not password:
            generated = password = secrets.token_urlsafe(12)
        create_admin(session, email or "admin@example.com", password, name="Admin")
        session.commit()
        return (normalise_email(email or "admin@example.com"), generated)
