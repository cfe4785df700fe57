"""The conversations page: list, chat and shopper panels."""

import reflex as rx

from chatdash import routes
from chatdash.components.frame import admin_page


def _panel(title: str, body: rx.Component, **props) -> rx.Component:
    return rx.vstack(
        rx.text(title, weight="bold", size="2", color_scheme="gray", padding="0.75rem 1rem"),
        rx.box(body, flex="1", width="100%", overflow_y="auto"),
        spacing="0",
        height="100%",
        border_right=f"1px solid {rx.color('gray', 5)}",
        **props,
    )


@admin_page(route=routes.CONVERSATIONS, title="Conversations")
def conversations() -> rx.Component:
    return rx.hstack(
        _panel(
            "Conversations",
            rx.center(rx.text("No conversations yet.", color_scheme="gray"), padding="2rem"),
            width="320px",
            id="conversation-list",
        ),
        _panel(
            "Chat",
            rx.center(rx.text("Select a conversation.", color_scheme="gray"), height="100%"),
            flex="1",
            id="chat-panel",
        ),
        _panel(
            "Shopper",
            rx.center(rx.text("No shopper selected.", color_scheme="gray"), padding="2rem"),
            width="340px",
            id="shopper-panel",
        ),
        spacing="0",
        height="100%",
        width="100%",
    )
