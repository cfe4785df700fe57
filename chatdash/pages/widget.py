"""The shopper's chat page: opened in the embed's iframe, or on its own."""

import reflex as rx

from chatdash import routes
from chatdash.components.chat import length_counter, message_bubble, typing_indicator
from chatdash.pages.registry import page
from chatdash.state.widget import WidgetState, outbox_call


def _header() -> rx.Component:
    return rx.hstack(
        rx.center(rx.icon("messages-square", size=20), width="36px", height="36px",
                  border_radius="50%", background="rgba(255,255,255,0.2)"),
        rx.vstack(
            rx.text(WidgetState.store_name, weight="bold", size="3"),
            rx.text("We usually reply within a few minutes", size="1", opacity="0.85"),
            spacing="0",
        ),
        rx.spacer(),
        # Shown inside the store's iframe only (chat.css): on a phone the panel
        # fills the screen and this is the way back to the store.
        rx.el.button(
            rx.icon("x", size=22),
            id="widget-close",
            aria_label="Close chat",
            title="Close chat",
            style={"background": "rgba(255,255,255,0.18)", "border": "none", "color": "white", "width": "36px",
                   "height": "36px", "border-radius": "50%", "align-items": "center", "justify-content": "center",
                   "cursor": "pointer"},
        ),
        align="center",
        padding="12px 16px",
        background=rx.color("accent", 9),
        color="white",
        width="100%",
    )


def _messages() -> rx.Component:
    return rx.box(
        rx.cond(
            WidgetState.messages.length() == 0,
            rx.center(
                rx.vstack(
                    rx.text("Hi there!", size="4", weight="bold"),
                    rx.text("Questions about a product, your order or delivery? Ask us here.",
                            size="2", color_scheme="gray", text_align="center"),
                    align="center",
                ),
                padding="2rem 1rem",
                id="widget-empty",
            ),
        ),
        rx.vstack(
            rx.foreach(
                WidgetState.messages,
                lambda m: message_bubble(m, "shopper", WidgetState.admin_seen_id, in_widget=True),
            ),
            spacing="2",
            width="100%",
            id="message-list",
        ),
        rx.box(id="outbox", width="100%"),
        typing_indicator(WidgetState.admin_typing_seq, "The store is typing…"),
        id="message-scroller",
        flex="1",
        overflow_y="auto",
        padding="12px",
        width="100%",
        background=rx.color("gray", 1),
    )


def _email_ask() -> rx.Component:
    """Offline follow-up: nobody answered in time, so ask where replies may also go."""
    return rx.cond(
        WidgetState.email_ask,
        rx.form(
            rx.vstack(
                rx.hstack(
                    rx.icon("mail", size=16, color=rx.color("accent", 10)),
                    rx.text("Nobody is free to answer right now", weight="bold", size="2"),
                    rx.spacer(),
                    rx.icon_button(rx.icon("x", size=14), type="button", variant="ghost", size="1",
                                   color_scheme="gray", on_click=WidgetState.dismiss_email_ask,
                                   id="email-ask-dismiss", aria_label="No thanks", title="No thanks"),
                    align="center",
                    width="100%",
                ),
                rx.text("Leave your email and our reply will also go there, in case you have left by then.",
                        size="1", color_scheme="gray"),
                rx.hstack(
                    rx.input(name="email", placeholder="you@example.com", max_length=320, id="email-ask-input",
                             flex="1", size="2", custom_attrs={"inputMode": "email", "autoComplete": "email"}),
                    rx.button("Email me", type="submit", id="email-ask-save", size="2"),
                    width="100%",
                ),
                rx.cond(WidgetState.email_error != "",
                        rx.text(WidgetState.email_error, color_scheme="red", size="1", id="email-ask-error")),
                spacing="2",
                width="100%",
            ),
            on_submit=WidgetState.give_email,
            reset_on_submit=False,
            id="email-ask",
            width="100%",
            padding="10px 12px",
            background=rx.color("accent", 2),
            border_top=f"1px solid {rx.color('accent', 5)}",
        ),
        rx.cond(
            WidgetState.followup_email != "",
            rx.hstack(
                rx.icon("mail-check", size=14, color=rx.color("green", 10)),
                rx.text("Replies will also go to ", rx.text.strong(WidgetState.followup_email), size="1",
                        color_scheme="gray"),
                id="email-followup-note",
                align="center",
                width="100%",
                padding="6px 12px",
                border_top=f"1px solid {rx.color('gray', 4)}",
            ),
        ),
    )


def _composer() -> rx.Component:
    return rx.vstack(
        rx.cond(
            WidgetState.error != "",
            rx.callout(WidgetState.error, icon="triangle-alert", color_scheme="red", size="1",
                       width="100%", id="widget-error"),
        ),
        rx.text("", id="widget-local-error", color="red", size="1", display="none"),
        rx.hstack(
            rx.text_area(
                id="widget-input",
                placeholder="Write a message…",
                max_length=WidgetState.max_chars,
                rows="2",
                resize="none",
                width="100%",
                custom_attrs={"data-send-button": "widget-send", "data-counter": "widget-counter"},
                on_change=WidgetState.typing.throttle(2500),
                auto_focus=True,
            ),
            rx.button(
                rx.icon("send", size=16),
                id="widget-send",
                aria_label="Send",
                # chat.js has already put the message in the outbox (and on
                # screen) when this runs: this sends what is pending.
                on_click=rx.call_script(outbox_call("pending()"), callback=WidgetState.resend),
                height="100%",
            ),
            width="100%",
            align="stretch",
        ),
        length_counter("widget-counter"),
        padding="10px 12px",
        width="100%",
        border_top=f"1px solid {rx.color('gray', 5)}",
        spacing="1",
    )


@page(route=routes.WIDGET, title="Chat", on_load=WidgetState.load)
def widget() -> rx.Component:
    return rx.fragment(
        rx.el.link(rel="stylesheet", href="/chat.css"),
        rx.script(src="/chat.js"),
        # Clicked by chat.js when the embed opens a collapsed chat.
        rx.el.button(id="widget-shown", on_click=WidgetState.shown, style={"display": "none"}, tab_index=-1),
        rx.vstack(
            _header(),
            _messages(),
            _email_ask(),
            _composer(),
            spacing="0",
            height="100vh",
            width="100%",
            id="chat-widget",
            data_ready=WidgetState.ready,
        ),
    )
