"""The conversations page: list (left), chat (middle), shopper (right)."""

import reflex as rx

from chatdash import routes
from chatdash.components.chat import length_counter, message_bubble, typing_indicator
from chatdash.components.frame import admin_page
from chatdash.components.products import product_search_dialog, recommendations_section, related_dialog
from chatdash.components.shopper_panel import presence_badge, shopper_panel
from chatdash.state.chat import ChatState
from chatdash.state.inbox import InboxState
from chatdash.state.shopper_panel import ShopperPanelState
from chatdash.state.views import ConversationRow

BORDER = f"1px solid {rx.color('gray', 5)}"


def _row(row: ConversationRow) -> rx.Component:
    selected = InboxState.selected_id == row.id
    return rx.box(
        rx.hstack(
            rx.text(row.label, weight="bold", size="2", trim="both", class_name="conv-label"),
            rx.spacer(),
            rx.text(row.time, size="1", color_scheme="gray"),
            align="center",
            width="100%",
        ),
        rx.hstack(
            rx.text(row.preview, size="1", color_scheme="gray", overflow="hidden",
                    text_overflow="ellipsis", white_space="nowrap", flex="1", class_name="conv-preview"),
            rx.cond(row.unread > 0, rx.badge(row.unread, color_scheme="red", variant="solid",
                                             radius="full", class_name="conv-unread")),
            width="100%",
            align="center",
        ),
        presence_badge(row.on_site),
        on_click=InboxState.select(row.id),
        cursor="pointer",
        padding="10px 14px",
        border_bottom=BORDER,
        background=rx.cond(selected, rx.color("accent", 3), "transparent"),
        border_left=rx.cond(selected, f"3px solid {rx.color('accent', 9)}", "3px solid transparent"),
        _hover={"background": rx.color("accent", 2)},
        class_name=rx.cond(selected, "conv-row conv-selected", "conv-row"),
        data_conversation_id=row.id,
        width="100%",
    )


def _list_panel() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.text("Conversations", weight="bold", size="3"),
            rx.badge(InboxState.open_total, variant="soft", id="conversation-total"),
            padding="12px 14px",
            border_bottom=BORDER,
            width="100%",
        ),
        rx.cond(
            InboxState.rows.length() == 0,
            rx.center(
                rx.vstack(
                    rx.icon("inbox", size=32, color=rx.color("gray", 8)),
                    rx.text("No conversations yet.", color_scheme="gray", size="2"),
                    rx.text("They appear here the moment a shopper writes.", color_scheme="gray", size="1"),
                    align="center",
                ),
                padding="2rem",
                width="100%",
            ),
            rx.box(
                rx.foreach(InboxState.rows, _row),
                rx.cond(
                    InboxState.rows.length() < InboxState.open_total,
                    rx.center(
                        rx.button("Show more", variant="soft", size="1", on_click=InboxState.show_more,
                                  id="conversation-list-more"),
                        padding="10px",
                    ),
                ),
                width="100%", overflow_y="auto", flex="1",
            ),
        ),
        width="320px",
        min_width="260px",
        height="100%",
        spacing="0",
        border_right=BORDER,
        id="conversation-list",
    )


def _chat_panel() -> rx.Component:
    return rx.vstack(
        rx.cond(
            ChatState.has_selection,
            rx.fragment(
                rx.hstack(
                    rx.text(ShopperPanelState.shopper_label, weight="bold", size="3", id="chat-title"),
                    presence_badge(ShopperPanelState.shopper_on_site),
                    padding="12px 16px",
                    border_bottom=BORDER,
                    width="100%",
                    align="center",
                ),
                rx.box(
                    rx.vstack(
                        rx.foreach(ChatState.messages, lambda m: message_bubble(m, "admin", ChatState.shopper_seen_id,
                                                                         in_widget=False)),
                        spacing="2",
                        width="100%",
                        id="message-list",
                    ),
                    typing_indicator(ChatState.shopper_typing_seq, "Shopper is typing…"),
                    id="message-scroller",
                    flex="1",
                    overflow_y="auto",
                    padding="16px",
                    width="100%",
                ),
                rx.hstack(
                    rx.form(
                        rx.vstack(
                            rx.cond(
                                ChatState.reply_error != "",
                                rx.callout(ChatState.reply_error, icon="triangle-alert", color_scheme="red", size="1",
                                           width="100%", id="reply-error"),
                            ),
                            rx.hstack(
                                rx.text_area(
                                    name="reply",
                                    id="reply-input",
                                    placeholder="Write a reply… (Enter sends, Shift+Enter for a new line)",
                                    max_length=ChatState.max_chars,
                                    rows="2",
                                    resize="none",
                                    width="100%",
                                    custom_attrs={"data-send-button": "reply-send", "data-counter": "reply-counter"},
                                    on_change=ChatState.typing.throttle(2500),
                                ),
                                rx.button("Reply", type="submit", id="reply-send", height="auto"),
                                # Made by chat.js on submit, cleared once stored: one message per reply.
                                rx.el.input(type="hidden", name="client_id", id="reply-client-id"),
                                width="100%",
                                align="stretch",
                            ),
                            length_counter("reply-counter"),
                            width="100%",
                            spacing="1",
                        ),
                        on_submit=ChatState.send_reply,
                        reset_on_submit=False,
                        flex="1",
                    ),
                    product_search_dialog(),
                    width="100%",
                    align="end",
                    padding="10px 16px",
                    border_top=BORDER,
                ),
            ),
            rx.center(
                rx.vstack(
                    rx.icon("message-square", size=36, color=rx.color("gray", 8)),
                    rx.text("Select a conversation to read and reply.", color_scheme="gray"),
                    align="center",
                ),
                height="100%",
                width="100%",
            ),
        ),
        flex="1",
        height="100%",
        spacing="0",
        min_width="0",
        id="chat-panel",
    )


@admin_page(route=routes.CONVERSATIONS, title="Conversations", on_load=[InboxState.load])
def conversations() -> rx.Component:
    return rx.hstack(
        _list_panel(),
        _chat_panel(),
        shopper_panel(recommendations_section()),
        related_dialog(),
        spacing="0",
        height="100%",
        width="100%",
    )
