"""Visitors page: everyone on the store right now, live."""

import reflex as rx

from chatdash import routes
from chatdash.components.chat import length_counter
from chatdash.components.frame import admin_page
from chatdash.state.visitors import VisitorsState, VisitorView

BORDER = f"1px solid {rx.color('gray', 4)}"


def _visitor(v: VisitorView) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.hstack(
                rx.text(v.label, weight="medium", size="2"),
                rx.cond(v.identified, rx.badge("customer", color_scheme="green", variant="soft", size="1")),
                align="center",
                spacing="2",
            ),
            rx.text(v.device, size="1", color_scheme="gray"),
        ),
        rx.table.cell(
            rx.text(v.page_title, size="2", max_width="320px", overflow="hidden",
                    text_overflow="ellipsis", white_space="nowrap"),
            rx.text(v.page_path, size="1", color_scheme="gray", max_width="320px", overflow="hidden",
                    text_overflow="ellipsis", white_space="nowrap"),
        ),
        rx.table.cell(rx.text(v.pages, size="2"), text_align="right"),
        rx.table.cell(rx.text(rx.cond(v.cart != "", v.cart, "—"), size="2", weight="medium"), text_align="right",
                      class_name="visitor-cart"),
        rx.table.cell(rx.text(v.since, size="2", color_scheme="gray")),
        rx.table.cell(
            rx.hstack(
                rx.cond(
                    v.conversation_id > 0,
                    # With a conversation, the message goes into it and pops the chat open on their page.
                    rx.tooltip(
                        rx.button(rx.icon("message-square-share", size=14), "Pop up chat", size="1",
                                  variant="solid", on_click=VisitorsState.open_composer(v.shopper_id),
                                  class_name="visitor-start-chat"),
                        content="Write in their conversation: the chat opens on their screen",
                    ),
                    rx.button(rx.icon("send", size=14), "Start chat", size="1", variant="solid",
                              on_click=VisitorsState.open_composer(v.shopper_id), class_name="visitor-start-chat"),
                ),
                rx.cond(
                    v.conversation_id > 0,
                    rx.link(rx.button(rx.icon("message-circle", size=14), "Open chat", size="1", variant="soft"),
                            href=routes.CONVERSATIONS + "?c=" + v.conversation_id.to_string(),
                            class_name="visitor-open-chat"),
                ),
                rx.cond(
                    (v.conversation_id > 0) & (v.conversation_status != "open"),
                    rx.badge(v.conversation_status, color_scheme=rx.cond(v.conversation_status == "snoozed",
                                                                         "amber", "gray"),
                             variant="soft", size="1", class_name="visitor-chat-status"),
                ),
                spacing="2",
                align="center",
            ),
        ),
        id="visitor-" + v.shopper_id.to_string(),
        class_name="visitor-row",
    )


def _composer() -> rx.Component:
    """Start chat / Pop up chat: the opening message, which opens the chat on the visitor's screen."""
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(rx.cond(VisitorsState.composer_has_conversation, "Pop up the chat for ",
                                    "Start a chat with ") + VisitorsState.composer_label),
            rx.dialog.description(
                rx.cond(
                    VisitorsState.composer_has_conversation,
                    "They are on the store now. Your message goes into their conversation (re-opening it if it "
                    "was snoozed or resolved) and opens the chat on their screen (within a heartbeat, about "
                    "15 seconds); their answer comes to you in Conversations.",
                    "They are on the store now. Your message opens the chat on their screen "
                    "(within a heartbeat, about 15 seconds), and their answer comes to you in Conversations.",
                ),
                size="2", color_scheme="gray", margin_bottom="12px",
            ),
            rx.form(
                rx.vstack(
                    rx.cond(
                        VisitorsState.composer_error != "",
                        rx.callout(VisitorsState.composer_error, icon="triangle-alert", color_scheme="red",
                                   size="1", width="100%", id="composer-error"),
                    ),
                    rx.text_area(
                        name="message",
                        id="composer-input",
                        placeholder="Hi! Can I help you find anything? (Enter sends)",
                        max_length=VisitorsState.composer_max_chars,
                        rows="3",
                        resize="vertical",
                        width="100%",
                        auto_focus=True,
                        custom_attrs={"data-send-button": "composer-send", "data-counter": "composer-counter"},
                    ),
                    length_counter("composer-counter"),
                    rx.hstack(
                        rx.dialog.close(rx.button("Cancel", variant="soft", color_scheme="gray", type="button")),
                        rx.button(rx.icon("send", size=14), "Send", type="submit", id="composer-send"),
                        justify="end",
                        width="100%",
                        spacing="2",
                    ),
                    spacing="2",
                    width="100%",
                ),
                on_submit=VisitorsState.start_chat,
                reset_on_submit=False,
            ),
            max_width="480px",
            id="start-chat-dialog",
        ),
        open=VisitorsState.composer_open,
        on_open_change=VisitorsState.set_composer_open,
    )


@admin_page(route=routes.VISITORS, title="Visitors", on_load=[VisitorsState.load])
def visitors() -> rx.Component:
    return rx.box(
        rx.vstack(
            rx.hstack(
                rx.heading("Visitors", size="6"),
                rx.badge(VisitorsState.visitors.length().to_string() + " on the store now", size="2",
                         variant="soft", id="visitor-count"),
                rx.spacer(),
                rx.text("Sort by", size="2", color_scheme="gray"),
                rx.segmented_control.root(
                    rx.segmented_control.item("Most recent", value="recent"),
                    rx.segmented_control.item("Cart value", value="cart"),
                    value=VisitorsState.sort_by,
                    on_change=VisitorsState.set_sort,
                    id="visitor-sort",
                ),
                align="center",
                width="100%",
                spacing="3",
            ),
            rx.cond(
                VisitorsState.visitors.length() == 0,
                rx.center(
                    rx.vstack(
                        rx.icon("users", size=32, color=rx.color("gray", 8)),
                        rx.text("Nobody is on the store right now.", color_scheme="gray", size="2"),
                        rx.text("Shoppers appear here the moment they open a page with the widget.",
                                color_scheme="gray", size="1"),
                        align="center",
                    ),
                    padding="3rem",
                    width="100%",
                    id="visitors-empty",
                ),
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell("Visitor"),
                            rx.table.column_header_cell("Current page"),
                            rx.table.column_header_cell("Pages", text_align="right"),
                            rx.table.column_header_cell("Cart", text_align="right"),
                            rx.table.column_header_cell("Since"),
                            rx.table.column_header_cell("Chat"),
                        ),
                    ),
                    rx.table.body(rx.foreach(VisitorsState.visitors, _visitor)),
                    width="100%",
                    variant="surface",
                    id="visitor-table",
                ),
            ),
            _composer(),
            spacing="4",
            width="100%",
            max_width="1200px",
            margin_x="auto",
            padding="1.5rem",
        ),
        height="100%",
        overflow_y="auto",
    )
