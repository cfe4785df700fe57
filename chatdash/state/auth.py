"""Admin session state. Every admin state extends AuthState and every admin
handler re-checks the session itself: any client can call any handler."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable
from typing import Any

import reflex as rx

from chatdash import routes
from chatdash.api.admin_session import SESSION_HEADER, login_error
from chatdash.db import session_scope
from chatdash.models import Role
from chatdash.services import auth
from chatdash.settings import get_settings

# A checked session is trusted this long before the database is asked again
# (every handler and every push checks; logout in this tab ends it at once).
ADMIN_RECHECK_SECONDS = 15.0


class AuthState(rx.State):
    # The session cookie is HttpOnly, set and cleared by /api/admin/session
    # (chatdash/api/admin_session.py); this state only ever sees the token's
    # hash, which the socket's handshake carries (AdminSessionHeader).
    admin_email: str = ""
    admin_name: str = ""
    admin_role: str = ""
    login_error: str = ""

    @rx.var
    def is_owner(self) -> bool:
        return self.admin_role == Role.OWNER

    @rx.var
    def store_name(self) -> str:
        return get_settings().store_name

    @rx.var
    def is_logged_in(self) -> bool:
        return bool(self.admin_email)

    @rx.var
    def login_action(self) -> str:
        return f"{get_settings().api_url.rstrip('/')}/api/admin/session"

    # The last successful check: which session (hash), who, and when.
    _checked_token: str = ""
    _checked_admin: auth.AdminInfo | None = None
    _checked_at: float = 0.0
    # Set by logout: this tab's socket still carries the ended session's hash.
    _logged_out: str = ""

    def _session_hash(self) -> str:
        digest = self.router.headers.raw_headers.get(SESSION_HEADER, "")
        return "" if digest == self._logged_out else digest

    def _cached_admin(self) -> tuple[bool, auth.AdminInfo | None]:
        """(known, admin): known is False when the database must be asked."""
        digest = self._session_hash()
        if not digest:
            return True, None
        if digest == self._checked_token and time.monotonic() - self._checked_at < ADMIN_RECHECK_SECONDS:
            return True, self._checked_admin
        return False, None

    def _remember(self, admin: auth.AdminInfo | None) -> auth.AdminInfo | None:
        if admin is None:
            self._checked_token, self._checked_admin, self._checked_at = "", None, 0.0
            self.admin_email = ""
            self.admin_name = ""
            self.admin_role = ""
        else:
            self._checked_token = self._session_hash()
            self._checked_admin, self._checked_at = admin, time.monotonic()
        return admin

    async def _require_admin_async(self) -> auth.AdminInfo | None:
        """The admin behind this browser's session cookie (checked in the
        database off the event loop, then trusted for ADMIN_RECHECK_SECONDS)."""
        known, admin = self._cached_admin()
        if not known:
            admin = await asyncio.to_thread(_lookup_admin, self._session_hash())
        return self._remember(admin)

    @rx.event
    async def check_login(self):
        """on_load of every admin page: send strangers to the login page."""
        admin = await self._require_admin_async()
        if admin is None:
            return rx.redirect(routes.LOGIN)
        self.admin_email = admin.email
        self.admin_name = admin.name or admin.email
        self.admin_role = admin.role

    @rx.event
    async def redirect_if_logged_in(self):
        """on_load of the login page: the reason a login was refused, if any."""
        params = self.router.url.query_parameters
        self.login_error = login_error(str(params.get("error", ""))[:20], str(params.get("minutes", ""))[:6])
        if await self._require_admin_async() is not None:
            return rx.redirect(routes.CONVERSATIONS)

    @rx.event
    async def logout(self):
        digest = self._session_hash()
        if digest:
            await asyncio.to_thread(_end_session, digest)
        self._logged_out = digest
        self._remember(None)
        # The page's "Log out" link goes to /api/admin/logout, which also
        # clears the HttpOnly cookie; this handler ends the session alone.
        return rx.redirect(routes.LOGIN)


def _lookup_admin(digest: str) -> auth.AdminInfo | None:
    with session_scope() as session:
        return auth.admin_for_token_hash(session, digest, get_settings().admin_idle_hours)


def _end_session(digest: str) -> None:
    with session_scope() as session:
        auth.end_session_hash(session, digest)


def admin_event(fn: Callable[..., Any] | None = None, *, role: str = Role.AGENT) -> Any:
    """An event handler only a logged-in staff member with `role` may run (an
    owner may run everything): the session and the role are checked before
    `fn` runs, and anyone else's call does nothing. `fn` may be sync or async.
    `@admin_event` is for agents; `@admin_event(role=Role.OWNER)` for owners."""
    if fn is None:
        return functools.partial(admin_event, role=role)

    @functools.wraps(fn)
    async def guarded(self: AuthState, *args: Any, **kwargs: Any) -> Any:
        admin = await self._require_admin_async()
        if admin is None or not admin.may(role):
            return None
        result = fn(self, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    guarded.__admin_only__ = True
    guarded.__role__ = str(role)
    return rx.event(guarded)
