"""The frame shared by every admin page: top bar with store name, menu,
notification icon and account menu."""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx

from chatdash import routes
from chatdash.pages.registry import page
from chatdash.settings import get_settings
from chatdash.state.auth import AuthState
from chatdash.state.notifications import NotificationState

LOGOUT_URL = f"{get_settings().api_url.rstrip('/')}/api/admin/logout"


def notification_bell() -> rx.Component:
    return rx.link(
        rx.box(
            rx.icon("bell", size=20),
            rx.cond(
                NotificationState.unseen_count > 0,
                rx.badge(
                    NotificationState.unseen_count,
                    color_scheme="red",
                    variant="solid",
                    radius="full",
                    position="absolute",
                    top="-8px",
                    right="-10px",
                    id="notification-count",
                ),
            ),
            position="relative",
            padding="6px",
        ),
        href=routes.CONVERSATIONS,
        color="inherit",
        aria_label="Notifications: conversations with unseen messages",
        id="notification-bell",
    )


def nav_menu() -> rx.Component:
    return rx.hstack(
        rx.menu.root(
            rx.menu.trigger(
                rx.button(rx.icon("message-circle", size=16), "Chat", rx.icon("chevron-down", size=14),
                          variant="ghost", id="menu-chat"),
            ),
            rx.menu.content(
                rx.menu.item(
                    rx.link("Conversations", href=routes.CONVERSATIONS, color="inherit", id="menu-conversations"),
                ),
            ),
        ),
        rx.link(
            rx.button(rx.icon("users", size=16), "Visitors", variant="ghost"),
            href=routes.VISITORS,
            id="menu-visitors",
        ),
        rx.link(
            rx.button(rx.icon("chart-column", size=16), "Insights", variant="ghost"),
            href=routes.INSIGHTS,
            id="menu-insights",
        ),
        rx.link(
            rx.button(rx.icon("settings", size=16), "Settings", variant="ghost"),
            href=routes.SETTINGS,
            id="menu-settings",
        ),
        spacing="2",
    )


def account_menu() -> rx.Component:
    return rx.menu.root(
        rx.menu.trigger(
            rx.button(rx.icon("circle-user", size=18), AuthState.admin_name, variant="soft",
                      id="account-menu"),
        ),
        rx.menu.content(
            rx.menu.item(AuthState.admin_email, disabled=True),
            rx.menu.separator(),
            # A plain link: only an HTTP answer can clear the HttpOnly session cookie.
            rx.menu.item(rx.el.a("Log out", href=LOGOUT_URL, custom_attrs={"reloadDocument": True}),
                         as_child=True, color="red", id="logout"),
        ),
    )


def top_bar() -> rx.Component:
    return rx.hstack(
        rx.hstack(
            rx.icon("messages-square", size=22, color=rx.color("accent", 9)),
            rx.heading(AuthState.store_name, size="4", id="store-name"),
            rx.text("chatdash", size="1", color_scheme="gray"),
            align="center",
            spacing="2",
        ),
        nav_menu(),
        rx.spacer(),
        notification_bell(),
        account_menu(),
        align="center",
        spacing="5",
        padding_x="1.25rem",
        height="56px",
        width="100%",
        border_bottom=f"1px solid {rx.color('gray', 5)}",
        background=rx.color("gray", 1),
    )


def admin_frame(content: rx.Component) -> rx.Component:
    return rx.cond(
        AuthState.is_logged_in,
        rx.vstack(
            rx.el.link(rel="stylesheet", href="/chat.css"),
            rx.script(src="/chat.js"),
            # Read by chat.js to update the tab title, and to chime on a shopper's
            # new message (data-chime grows) when this member chose the sound.
            rx.box(id="unseen-count-value", data_count=NotificationState.unseen_count,
                   data_chime=NotificationState.chime_seq,
                   data_sound=rx.cond(NotificationState.sound_on, "on", "off"), display="none"),
            top_bar(),
            rx.box(content, flex="1", width="100%", min_height="0", overflow="hidden"),
            spacing="0",
            height="100vh",
            width="100%",
        ),
        rx.center(rx.spinner(size="3"), height="100vh"),
    )


def admin_page(route: str, title: str, on_load: list | None = None) -> Callable:
    """Register an admin page: login required, shared frame, notification count loaded."""

    def decorator(render: Callable[[], rx.Component]) -> Callable[[], rx.Component]:
        @page(
            route=route,
            title=f"{title} · chatdash",
            on_load=[AuthState.check_login, NotificationState.refresh, *(on_load or [])],
        )
        def wrapped() -> rx.Component:
            return admin_frame(render())

        wrapped.__name__ = render.__name__
        return wrapped

    return decorator
