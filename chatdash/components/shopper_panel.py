"""The shopper panel: who the shopper is, what they are doing now (current
session) and what they did before (history)."""

from __future__ import annotations

import reflex as rx

from chatdash.state.chat import ChatState
from chatdash.state.panel import CartRow, OrderRow, PageRow
from chatdash.state.shopper_panel import ShopperPanelState as S
from chatdash.state.views import ProductHit

BORDER = f"1px solid {rx.color('gray', 5)}"


def presence_badge(on_site: rx.Var, variant: str = "soft") -> rx.Component:
    """The "on site" / "left the site" badge; the "surface" variant stays readable on a coloured row."""
    return rx.cond(
        on_site,
        rx.badge(rx.box(width="6px", height="6px", border_radius="50%", background=rx.color("green", 9)),
                 "on site", color_scheme="green", variant=variant, class_name="presence-on"),
        rx.badge("left the site", color_scheme="gray", variant=variant, class_name="presence-left"),
    )


def section(title: str, *children: rx.Component, **props) -> rx.Component:
    return rx.vstack(
        rx.text(title, size="1", weight="bold", color_scheme="gray", text_transform="uppercase",
                letter_spacing="0.04em"),
        *children,
        spacing="2",
        width="100%",
        padding="14px 16px",
        border_bottom=BORDER,
        **props,
    )


def fact(label: str, value: rx.Component, **props) -> rx.Component:
    return rx.hstack(
        rx.text(label, size="1", color_scheme="gray", min_width="96px"),
        value,
        width="100%",
        align="start",
        **props,
    )


def _page(p: PageRow) -> rx.Component:
    # min_width 0 lets the link shrink below its text, so a long title or path
    # ends in an ellipsis inside the panel (the full text is its tooltip).
    return rx.hstack(
        rx.text(p.time, size="1", color_scheme="gray", min_width="40px", flex_shrink="0"),
        rx.link(p.title, href=p.url, is_external=True, size="1", overflow="hidden", text_overflow="ellipsis",
                white_space="nowrap", display="block", flex="1", min_width="0", title=p.title,
                class_name="session-page-title"),
        width="100%",
        min_width="0",
        class_name="session-page",
    )


def _item(i: ProductHit) -> rx.Component:
    return rx.hstack(
        rx.link(i.name, href=i.url, is_external=True, size="1", flex="1", overflow="hidden",
                text_overflow="ellipsis", white_space="nowrap"),
        rx.text(i.price, size="1", color_scheme="gray"),
        width="100%",
        class_name="session-item",
        data_sku=i.sku,
    )


def _cart_line(c: CartRow) -> rx.Component:
    return rx.hstack(
        rx.text(c.quantity, "×", size="1", color_scheme="gray", min_width="28px"),
        rx.text(c.name, size="1", flex="1", overflow="hidden", text_overflow="ellipsis", white_space="nowrap"),
        rx.text(c.price, size="1"),
        width="100%",
        class_name="cart-line",
        data_sku=c.sku,
    )


def _order(o: OrderRow) -> rx.Component:
    return rx.hstack(
        rx.text(o.date, size="1", color_scheme="gray", min_width="84px"),
        rx.text(o.item_count, " items", size="1", flex="1"),
        rx.text(o.total, size="1", weight="medium"),
        width="100%",
        class_name="history-order",
    )


def _viewed(v: ProductHit) -> rx.Component:
    return rx.hstack(
        rx.link(v.name, href=v.url, is_external=True, size="1", flex="1", overflow="hidden",
                text_overflow="ellipsis", white_space="nowrap"),
        rx.badge(v.reason, variant="soft", size="1"),
        width="100%",
        class_name="history-viewed",
    )


def _who() -> rx.Component:
    return section(
        "Shopper",
        rx.hstack(rx.text(S.shopper_label, weight="bold", size="3", id="shopper-name"),
                  presence_badge(S.shopper_on_site), align="center"),
        rx.cond(S.shopper_email != "", fact("Email", rx.text(S.shopper_email, size="1", id="shopper-email"))),
        rx.cond(S.shopper_customer_id != "", fact("Customer id", rx.code(S.shopper_customer_id, size="1"))),
    )


def _current_session() -> rx.Component:
    v = S.session_view
    return section(
        "Current session",
        rx.cond(
            v.present,
            rx.vstack(
                fact("Device", rx.text(v.device, size="1"), id="shopper-device"),
                fact("Started", rx.text(v.started, size="1")),
                fact(
                    "Current page",
                    rx.cond(
                        S.shopper_current_url != "",
                        rx.vstack(
                            rx.link(rx.cond(S.shopper_current_title != "", S.shopper_current_title,
                                            S.shopper_current_path),
                                    href=S.shopper_current_url, is_external=True, size="1",
                                    overflow_wrap="anywhere"),
                            rx.text(S.shopper_current_path, size="1", color_scheme="gray", word_break="break-all"),
                            spacing="0",
                            min_width="0",
                        ),
                        rx.text("—", size="1"),
                    ),
                    id="shopper-current-page",
                ),
                fact("Pages viewed", rx.text(v.pages_count, size="1", id="pages-count")),
                rx.vstack(rx.foreach(v.pages, _page), spacing="1", width="100%", id="session-pages"),
                rx.text("Items viewed", size="1", color_scheme="gray", padding_top="6px"),
                rx.cond(
                    v.viewed.length() > 0,
                    rx.vstack(rx.foreach(v.viewed, _item), spacing="1", width="100%", id="session-items"),
                    rx.text("No products viewed yet.", size="1", color_scheme="gray"),
                ),
                rx.hstack(
                    rx.text("Cart", size="1", color_scheme="gray"),
                    rx.spacer(),
                    rx.text(v.cart_total, size="2", weight="bold", id="cart-total"),
                    width="100%",
                    padding_top="6px",
                ),
                rx.cond(
                    v.cart.length() > 0,
                    rx.vstack(rx.foreach(v.cart, _cart_line), spacing="1", width="100%", id="cart-lines"),
                    rx.text("The cart is empty.", size="1", color_scheme="gray"),
                ),
                spacing="1",
                width="100%",
            ),
            rx.text("No visit recorded for this shopper yet.", size="1", color_scheme="gray"),
        ),
        id="current-session",
    )


def _history() -> rx.Component:
    h = S.history_view
    return section(
        "History",
        rx.cond(
            h.returning,
            rx.vstack(
                fact("First seen", rx.text(h.first_seen, size="1")),
                fact("Earlier visits", rx.text(h.previous_visits, size="1", id="previous-visits")),
                fact("Orders", rx.text(h.orders_count, " · ", h.total_spent, " spent", size="1",
                                       id="orders-summary")),
                rx.cond(h.orders.length() > 0,
                        rx.vstack(rx.foreach(h.orders, _order), spacing="1", width="100%", id="history-orders")),
                rx.cond(
                    h.most_viewed.length() > 0,
                    rx.vstack(
                        rx.text("Most viewed before", size="1", color_scheme="gray", padding_top="6px"),
                        rx.foreach(h.most_viewed, _viewed),
                        spacing="1",
                        width="100%",
                        id="history-viewed",
                    ),
                ),
                spacing="1",
                width="100%",
            ),
            rx.text("First visit: no earlier visits, orders or product views.", size="1", color_scheme="gray",
                    id="history-empty"),
        ),
        id="shopper-history",
    )


def shopper_panel(*extra_sections: rx.Component) -> rx.Component:
    return rx.box(
        rx.cond(
            ChatState.has_selection,
            rx.vstack(_who(), *extra_sections, _current_session(), _history(), spacing="0", width="100%"),
            rx.center(rx.text("No shopper selected.", color_scheme="gray", size="2"), padding="2rem", width="100%"),
        ),
        width=rx.breakpoints(initial="300px", lg="360px"),
        min_width="280px",
        flex_shrink="0",
        height="100%",
        border_left=BORDER,
        overflow_y="auto",
        overflow_x="hidden",
        id="shopper-panel",
    )
