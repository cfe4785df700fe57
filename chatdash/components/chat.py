"""Chat pieces shared by the shopper's widget and the admin's chat panel:
message bubbles and the product card."""

from __future__ import annotations

import reflex as rx
from reflex.components.core.banner import has_connection_errors

from chatdash.state.views import ChatMessage


def product_card(msg: ChatMessage, open_in_top: bool) -> rx.Component:
    """A product sent into the chat. In the widget the link opens in the store's
    own window (the top page), not inside the chat iframe, and goes through
    chatdash's click link, which counts the shopper's click (attribution); the
    admin's copy links straight to the product."""
    # A plain <a>: the router's link would keep a same-origin URL inside the iframe.
    return rx.el.a(
        rx.hstack(
            rx.image(src=msg.product_image, width="64px", height="64px", border_radius="8px",
                     object_fit="cover", alt=msg.product_name),
            rx.vstack(
                rx.text(msg.product_name, weight="bold", size="2"),
                rx.text(msg.product_price, size="2"),
                rx.cond(~msg.product_in_stock, rx.badge("Out of stock", color_scheme="gray")),
                rx.text("View product →", size="1", color=rx.color("accent", 11)),
                spacing="1",
                align="start",
            ),
            spacing="3",
            align="center",
        ),
        href=msg.product_click_url if open_in_top else msg.product_url,
        target="_top" if open_in_top else "_blank",
        rel="noopener",
        class_name="product-card",
        style={"text-decoration": "none", "color": rx.color("gray", 12), "padding": "8px", "border-radius": "10px",
               "background": "white", "border": f"1px solid {rx.color('gray', 5)}", "display": "block"},
    )


def message_bubble(msg: ChatMessage, own_sender: str, seen_up_to: rx.Var, in_widget: bool) -> rx.Component:
    mine = msg.sender == own_sender
    return rx.box(
        rx.box(
            rx.cond(
                msg.kind == "product",
                product_card(msg, open_in_top=in_widget),
                # Text children are rendered as text by React: never as HTML.
                rx.text(msg.body, white_space="pre-wrap", word_break="break-word", size="2", class_name="msg-body"),
            ),
            rx.hstack(
                rx.text(msg.time, size="1", opacity="0.7"),
                rx.cond(
                    mine,
                    rx.cond(
                        msg.id <= seen_up_to,
                        rx.text("✓✓ Seen", size="1", opacity="0.8", class_name="msg-seen"),
                        rx.text("✓ Sent", size="1", opacity="0.7", class_name="msg-sent"),
                    ),
                ),
                spacing="2",
                justify="end",
            ),
            background=rx.cond(mine, rx.color("accent", 9), rx.color("gray", 3)),
            color=rx.cond(mine, "white", rx.color("gray", 12)),
            padding="8px 12px",
            border_radius="14px",
            max_width="80%",
        ),
        display="flex",
        justify_content=rx.cond(mine, "flex-end", "flex-start"),
        width="100%",
        class_name=rx.cond(mine, "msg msg-own", "msg msg-other"),
        data_sender=msg.sender,
        data_client_id=msg.client_id,
    )


def typing_indicator(seq: rx.Var, text: str) -> rx.Component:
    """Shown for a few seconds after each typing signal (CSS fades it out), so
    no timer is needed on the server."""
    return rx.cond(
        seq > 0,
        rx.text(text, key=seq, class_name="typing-indicator", size="1", color_scheme="gray",
                padding_x="4px"),
    )


def length_counter(counter_id: str) -> rx.Component:
    """Filled by chat.js for the text box whose `data-counter` names it: the
    count near the limit, and a clear word when the limit cut the text."""
    return rx.text("", id=counter_id, size="1", color_scheme="gray", display="none", class_name="length-counter",
                   aria_live="polite")


@rx.memo
def connection_notice() -> rx.Component:
    """What every page shows while its event socket is down, in place of
    Reflex's default toast (which tells shoppers a websocket URL and an error
    message meant for developers). chat.js reads `data-connection` to know the
    socket is down and retries it sooner."""
    return rx.cond(
        has_connection_errors,
        rx.el.div(
            "Reconnecting…",
            id="connection-notice",
            role="status",
            custom_attrs={"data-connection": "lost"},
            class_name="connection-notice",
            # Inline: store pages do not load chat.css.
            style={"position": "fixed", "top": "8px", "left": "50%", "transform": "translateX(-50%)",
                   "z-index": "2147483001", "padding": "4px 12px", "border-radius": "999px",
                   "background": "rgba(32, 32, 32, 0.82)", "color": "white", "font-size": "12px",
                   "font-family": "system-ui, sans-serif", "pointer-events": "none"},
        ),
    )
