"""Admin session state. Every admin state extends AuthState and every admin
handler re-checks the session itself: any client can call any handler."""

from __future__ import annotations

import reflex as rx

from chatdash import routes
from chatdash.db import session_scope
from chatdash.services import auth
from chatdash.settings import get_settings

SESSION_COOKIE = "chatdash_admin"


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

    def _current_admin(self) -> auth.AdminInfo | None:
        """The admin behind this browser's session cookie, checked in the DB."""
        if not self.session_token:
            return None
        with session_scope() as session:
            return auth.admin_for_token(session, self.session_token)

    def _require_admin(self) -> auth.AdminInfo | None:
        admin = self._current_admin()
        if admin is None:
            self.admin_email = ""
            self.admin_name = ""
        return admin

    @rx.event
    def check_login(self):
        """on_load of every admin page: send strangers to the login page."""
        admin = self._require_admin()
        if admin is None:
            return rx.redirect(routes.LOGIN)
        self.admin_email = admin.email
        self.admin_name = admin.name or admin.email

    @rx.event
    def redirect_if_logged_in(self):
        admin = self._current_admin()
        if admin is not None:
            return rx.redirect(routes.CONVERSATIONS)

    @rx.event
    def login(self, form_data: dict):
        email = str(form_data.get("email", ""))[:320]
        password = str(form_data.get("password", ""))[: auth.MAX_PASSWORD + 1]
        if not email.strip() or not password:
            self.login_error = "Enter your email and password."
            return
        with session_scope() as session:
            admin = auth.authenticate(session, email, password)
            if admin is None:
                self.login_error = "Wrong email or password."
                return
            token = auth.start_session(session, admin.id, get_settings().admin_session_hours)
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
        self.admin_email = ""
        self.admin_name = ""
        return [rx.remove_cookie(SESSION_COOKIE), rx.redirect(routes.LOGIN)]
