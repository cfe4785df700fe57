"""Admin accounts and sessions. Passwords are hashed with argon2; session tokens
are random and only their SHA-256 is stored.

Logins are throttled per account and per client IP (`LoginThrottle`), and the
argon2 work of a login runs in a small thread pool of its own (`log_in_async`):
an event loop that waits on argon2 waits for everyone, and the pool's size
bounds the memory argon2 takes (64 MiB per hash) however many logins arrive.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chatdash.models import AdminSession, AdminUser, Role, utcnow
from chatdash.services.ratelimit import RateLimiter

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
    role: str = Role.AGENT

    def may(self, role: str) -> bool:
        """An owner may do what an agent does; an agent only that."""
        return self.role == Role.OWNER or self.role == role


def info(admin: AdminUser) -> AdminInfo:
    return AdminInfo(admin.id, admin.email, admin.name, admin.role)


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


def create_admin(session: Session, email: str, password: str | None, name: str = "",
                 role: str = Role.OWNER) -> AdminInfo:
    """A staff account. Without a password (an invited agent) nobody can log
    in as it until a password is set."""
    email = normalise_email(email)
    if password is not None:
        validate_password(password)
    if role not in tuple(Role):
        raise AuthError("Unknown role.")
    if session.exec(select(AdminUser).where(AdminUser.email == email)).first():
        raise AuthError(f"An account with email {email} already exists.")
    admin = AdminUser(email=email, name=name.strip()[:200], role=role,
                      password_hash=hash_password(password) if password is not None else "")
    session.add(admin)
    session.flush()
    return info(admin)


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
    return info(admin)


def token_hash(token: str) -> str:
    """What the database keeps of a session token (and all the app's states ever see)."""
    return hashlib.sha256(token.encode()).hexdigest()


_token_hash = token_hash
_HASH_RE = re.compile(r"[0-9a-f]{64}")
# A session's last use is written at most this often.
TOUCH_SECONDS = 60


def start_session(session: Session, admin_id: int, hours: int) -> str:
    """Create a session and return its raw token (shown to the browser only)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        AdminSession(
            token_hash=_token_hash(token),
            admin_id=admin_id,
            expires_at=now + timedelta(hours=hours),
            last_seen_at=now,
        )
    )
    return token


def admin_for_token(session: Session, token: str, idle_hours: float | None = None) -> AdminInfo | None:
    if not token or len(token) > 128:
        return None
    return admin_for_token_hash(session, _token_hash(token), idle_hours)


def admin_for_token_hash(session: Session, digest: str, idle_hours: float | None = None) -> AdminInfo | None:
    """The admin of a live session, by its token's hash. A session unused for
    `idle_hours` ends here; a used one has its last use recorded."""
    if not isinstance(digest, str) or not _HASH_RE.fullmatch(digest):
        return None
    row = session.exec(
        select(AdminSession, AdminUser)
        .join(AdminUser, AdminUser.id == AdminSession.admin_id)
        .where(AdminSession.token_hash == digest)
    ).first()
    if row is None:
        return None
    admin_session, admin = row
    now = utcnow()
    if admin_session.expires_at < now:
        return None
    last_seen = admin_session.last_seen_at or admin_session.created_at
    if idle_hours is not None and last_seen < now - timedelta(hours=idle_hours):
        session.delete(admin_session)
        return None
    if last_seen < now - timedelta(seconds=TOUCH_SECONDS):
        admin_session.last_seen_at = now
    return info(admin)


def end_session(session: Session, token: str) -> None:
    if token:
        end_session_hash(session, _token_hash(token))


def end_session_hash(session: Session, digest: str) -> None:
    """Log out: the session ends, and its admin is offline from now (no more
    auto-assigned conversations until a conversations page of theirs is open)."""
    if digest:
        admin_id = session.exec(select(AdminSession.admin_id).where(AdminSession.token_hash == digest)).first()
        session.exec(delete(AdminSession).where(AdminSession.token_hash == digest))
        if admin_id is not None:
            session.exec(update(AdminUser).where(col(AdminUser.id) == admin_id).values(online_at=None))


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
        create_admin(session, email or "admin@example.com", password, name="Admin", role=Role.OWNER)
        session.commit()
        return (normalise_email(email or "admin@example.com"), generated)


# --- login: throttled, argon2 off the event loop ---------------------------------

# Each tier multiplies the allowed failures by 2 and the window by 12: after
# n failures in the window the wait is up to one window, after 2n in 12
# windows up to an hour (at 5 min), after 4n in a day up to a day.
_TIERS = ((1, 1), (2, 12), (4, 288))


class LoginThrottle:
    """Failed logins per account and per client IP, in growing tiers of
    sliding windows (shared between workers through Redis when given)."""

    def __init__(self, per_account: int, per_ip: int, window_seconds: float,
                 redis_url: str | None = None, clock: Callable[[], float] | None = None) -> None:
        extra = {"clock": clock} if clock is not None else {}

        def tiers(kind: str, limit: int) -> list[RateLimiter]:
            return [RateLimiter(limit * n, window_seconds * w, redis_url=redis_url,
                                prefix=f"rl:login-{kind}-{i}", **extra)
                    for i, (n, w) in enumerate(_TIERS)]

        self._account = tiers("account", per_account)
        self._ip = tiers("ip", per_ip)

    def _keys(self, email: str, ip: str) -> list[tuple[RateLimiter, str]]:
        account = (email or "").strip().lower()[:320]
        return [(lim, account) for lim in self._account] + [(lim, ip or "?") for lim in self._ip]

    def wait_seconds(self, email: str, ip: str) -> float:
        """How long until this account may try again from this IP (0: now)."""
        return max(lim.retry_after(key) for lim, key in self._keys(email, ip))

    def failed(self, email: str, ip: str) -> None:
        for lim, key in self._keys(email, ip):
            lim.hit(key)

    def succeeded(self, email: str) -> None:
        """A right password clears the account's failures (not the IP's: one
        known account must not reset the count for guessing others)."""
        for lim, key in self._keys(email, "")[: len(self._account)]:
            lim.reset(key)


def too_many_attempts(wait_seconds: float) -> str:
    minutes = max(1, math.ceil(wait_seconds / 60))
    return f"Too many attempts, try again in {minutes} minute{'s' if minutes != 1 else ''}."


_throttle: LoginThrottle | None = None


def login_throttle() -> LoginThrottle:
    """The process-wide throttle, from settings (Redis-backed when REDIS_URL is set)."""
    global _throttle
    if _throttle is None:
        from chatdash.settings import get_settings

        s = get_settings()
        _throttle = LoginThrottle(s.login_failures_per_account, s.login_failures_per_ip,
                                  s.login_window_minutes * 60, redis_url=s.redis_url)
    return _throttle


@dataclass(frozen=True)
class LoginResult:
    admin: AdminInfo | None
    token: str = ""  # the raw session token, for the browser only
    error: str = ""


def log_in(email: str, password: str, client_ip: str, session_hours: int, *,
           engine: Engine | None = None, throttle: LoginThrottle | None = None) -> LoginResult:
    """Check a login (throttled) and start a session. Runs argon2: call it off the event loop."""
    from chatdash.db import session_scope

    throttle = throttle or login_throttle()
    if (wait := throttle.wait_seconds(email, client_ip)) > 0:
        return LoginResult(None, error=too_many_attempts(wait))
    with session_scope(engine) as session:
        admin = authenticate(session, email, password)
        if admin is None:
            throttle.failed(email, client_ip)
            return LoginResult(None, error="Wrong email or password.")
        token = start_session(session, admin.id, session_hours)
    throttle.succeeded(email)
    return LoginResult(admin, token)


# Two at a time: argon2 takes 64 MiB and a core per hash; more logins queue.
_password_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="chatdash-argon2")


async def log_in_async(email: str, password: str, client_ip: str, session_hours: int, **kw) -> LoginResult:
    """`log_in` in the password pool: the event loop serves everyone else meanwhile."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        _password_pool, lambda: log_in(email, password, client_ip, session_hours, **kw))
