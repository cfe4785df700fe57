"""Admin session state. Every admin state extends AuthState and every admin
handler re-checks the session itself: any client can call any handler."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import time
from collections.abc import Callable
from typing import Any

import reflex as rx

from chatdash import routes
from chatdash.db import session_scope
from chatdash.services import auth
from chatdash.settings import get_settings
from chatdash.state.client import client_ip

SESSION_COOKIE = "chatdash_admin"
# A checked session is trusted this long before the database is asked again
# (every handler and every push checks; logout in this tab ends it at once).
ADMIN_RECHECK_SECONDS = 15.0


class AuthState(rx.State):
    # The raw session token lives in an HttpOnly-less cookie because Reflex
    # reads cookies in the browser; it is random and checked against the DB.
    session_token: str = rx.Cookie(
        "", name=SESSION_COOKIE, max_age=get_settings().admin_session_hours * 3600,
        same_site="strict",
    )
    admin_email: str = ""
    admin_name: str = ""
    login_error: str = ""
    login_busy: bool = False

    @rx.var
    def store_name(self) -> str:
        return get_settings().store_name

    @rx.var
    def is_logged_in(self) -> bool:
        return bool(self.admin_email)

    # The last successful check: which token, who, and when.
    _checked_token: str = ""
    _checked_admin: auth.AdminInfo | None = None
    _checked_at: float = 0.0

    def _cached_admin(self) -> tuple[bool, auth.AdminInfo | None]:
        """(known, admin): known is False when the database must be asked."""
        if not self.session_token:
            return True, None
        digest = hashlib.sha256(self.session_token.encode()).hexdigest()
        if digest == self._checked_token and time.monotonic() - self._checked_at < ADMIN_RECHECK_SECONDS:
            return True, self._checked_admin
        return False, None

    def _remember(self, admin: auth.AdminInfo | None) -> auth.AdminInfo | None:
        if admin is None:
            self._checked_token, self._checked_admin, self._checked_at = "", None, 0.0
            self.admin_email = ""
            self.admin_name = ""
        else:
            self._checked_token = hashlib.sha256(self.session_token.encode()).hexdigest()
            self._checked_admin, self._checked_at = admin, time.monotonic()
        return admin

    async def _require_admin_async(self) -> auth.AdminInfo | None:
        """The admin behind this browser's session cookie (checked in the
        database off the event loop, then trusted for ADMIN_RECHECK_SECONDS)."""
        known, admin = self._cached_admin()
        if not known:
            admin = await asyncio.to_thread(_lookup_admin, self.session_token)
        return self._remember(admin)

    @rx.event
    async def check_login(self):
        """on_load of every admin page: send strangers to the login page."""
        admin = await self._require_admin_async()
        if admin is None:
            return rx.redirect(routes.LOGIN)
        self.admin_email = admin.email
        self.admin_name = admin.name or admin.email

    @rx.event
    async def redirect_if_logged_in(self):
        if await self._require_admin_async() is not None:
            return rx.redirect(routes.CONVERSATIONS)

    @rx.event
    async def login(self, form_data: dict):
        form = form_data if isinstance(form_data, dict) else {}
        email = str(form.get("email", ""))[:320]
        password = str(form.get("password", ""))[: auth.MAX_PASSWORD + 1]
        if not email.strip() or not password:
            self.login_error = "Enter your email and password."
            return
        # Throttled per account and client IP; argon2 runs in its own threads.
        result = await auth.log_in_async(email, password, client_ip(self),
                                         get_settings().admin_session_hours)
        if result.admin is None:
            self.login_error = result.error
            return
        admin, token = result.admin, result.token
        self.session_token = token
        self.login_error = ""
        self.admin_email = admin.email
        self.admin_name = admin.name or admin.email
        return rx.redirect(routes.CONVERSATIONS)

    @rx.event
    def logout(self):
        if self.session_token:
            with session_scope() as session:
                auth.end_session(session, self.session_token)
        self.session_token = ""
        self._remember(None)
        return [rx.remove_cookie(SESSION_COOKIE), rx.redirect(routes.LOGIN)]


def _lookup_admin(token: str) -> auth.AdminInfo | None:
    with session_scope() as session:
        return auth.admin_for_token(session, token)


def admin_event(fn: Callable[..., Any]) -> Any:
    """An event handler only a logged-in admin may run: the session is checked
    before `fn` runs, and a stranger's call does nothing. `fn` may be sync or async."""

    @functools.wraps(fn)
    async def guarded(self: AuthState, *args: Any, **kwargs: Any) -> Any:
        if await self._require_admin_async() is None:
            return None
        result = fn(self, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    guarded.__admin_only__ = True
    return rx.event(guarded)
