"""The admin login page."""

import reflex as rx

from chatdash import routes
from chatdash.pages.registry import page
from chatdash.state.auth import AuthState

# Reflex's forms always cancel the browser's own submit (and eval-based
# call_script is refused by the admin pages' CSP): this listener, run before
# React's, keeps the login (and invite) form's submit away from React so the browser posts it.
NATIVE_LOGIN_POST = """
document.addEventListener("submit", function (e) {
  if (e.target && (e.target.id === "login-form" || e.target.id === "invite-form")) e.stopPropagation();
}, true);
"""


def native_login_post() -> rx.Component:
    """A head script for every page (the login page is reached without a reload)."""
    return rx.script(NATIVE_LOGIN_POST)


@page(route=routes.LOGIN, title="Log in · chatdash", on_load=AuthState.redirect_if_logged_in)
def login() -> rx.Component:
    return rx.center(
        rx.card(
            # A plain form post: the answer sets the HttpOnly session cookie
            # (chatdash/api/admin_session.py), which page scripts cannot read.
            rx.el.form(
                rx.vstack(
                    rx.hstack(
                        rx.icon("messages-square", size=28, color=rx.color("accent", 9)),
                        rx.heading("chatdash", size="6"),
                        align="center",
                    ),
                    rx.text("Log in to ", AuthState.store_name, color_scheme="gray"),
                    rx.text("Email", size="2", weight="medium"),
                    rx.input(name="email", type="email", placeholder="you@store.com",
                             max_length=320, width="100%", id="login-email", auto_focus=True),
                    rx.text("Password", size="2", weight="medium"),
                    rx.input(name="password", type="password", max_length=256, width="100%",
                             id="login-password"),
                    rx.cond(
                        AuthState.login_error != "",
                        rx.callout(AuthState.login_error, icon="triangle-alert", color_scheme="red",
                                   width="100%", id="login-error"),
                    ),
                    rx.button("Log in", type="submit", width="100%", size="3", id="login-submit"),
                    spacing="3",
                    width="100%",
                ),
                action=AuthState.login_action,
                method="post",
                id="login-form",
            ),
            width="380px",
            size="4",
        ),
        height="100vh",
        background=rx.color("gray", 2),
    )


@page(route=routes.ADMIN, on_load=AuthState.check_login)
def admin_home() -> rx.Component:
    return rx.center(rx.spinner(), rx.script(f"window.location.replace('{routes.CONVERSATIONS}')"), height="100vh")
