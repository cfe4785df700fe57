"""The invite page: an invited agent (or one whose password was reset) sets a
password through the one-time link and lands in the conversations."""

import reflex as rx

from chatdash import routes
from chatdash.pages.registry import page
from chatdash.state.auth import AuthState
from chatdash.state.team import InviteState


@page(route=routes.INVITE, title="Join the team · chatdash", on_load=InviteState.load)
def invite() -> rx.Component:
    return rx.center(
        rx.card(
            rx.vstack(
                rx.hstack(
                    rx.icon("messages-square", size=28, color=rx.color("accent", 9)),
                    rx.heading("chatdash", size="6"),
                    align="center",
                ),
                rx.cond(
                    InviteState.invite_valid,
                    # A plain form post, like the login's: the answer sets the HttpOnly session cookie.
                    rx.el.form(
                        rx.vstack(
                            rx.text("Set your password for ", AuthState.store_name, color_scheme="gray"),
                            rx.text(InviteState.invite_email, weight="bold", id="invite-for"),
                            rx.el.input(type="hidden", name="token", value=InviteState.invite_token),
                            rx.text("Your name", size="2", weight="medium"),
                            rx.input(name="name", default_value=InviteState.invite_name, max_length=200,
                                     width="100%", id="invite-name-input"),
                            rx.text("Password", size="2", weight="medium"),
                            rx.input(name="password", type="password", max_length=256, width="100%",
                                     id="invite-password", auto_focus=True),
                            rx.text("Password again", size="2", weight="medium"),
                            rx.input(name="password2", type="password", max_length=256, width="100%",
                                     id="invite-password2"),
                            rx.cond(InviteState.invite_error != "",
                                    rx.callout(InviteState.invite_error, icon="triangle-alert", color_scheme="red",
                                               width="100%", id="invite-error")),
                            rx.button("Set password and log in", type="submit", width="100%", size="3",
                                      id="invite-submit"),
                            spacing="3",
                            width="100%",
                        ),
                        action=InviteState.invite_action,
                        method="post",
                        id="invite-form",
                        width="100%",
                    ),
                    rx.callout(InviteState.invite_error, icon="triangle-alert", color_scheme="red", width="100%",
                               id="invite-error"),
                ),
                spacing="3",
                width="100%",
            ),
            width="400px",
            size="4",
        ),
        height="100vh",
        background=rx.color("gray", 2),
    )
