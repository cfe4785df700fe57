"""Product pieces of the admin's conversation page: the search dialog and the
product rows used by search, recommendations and related lists."""

from __future__ import annotations

import reflex as rx

from chatdash.state.conversations import ConversationsState as S
from chatdash.state.views import ProductHit


def product_row(p: ProductHit, *actions: rx.Component) -> rx.Component:
    return rx.hstack(
        rx.image(src=p.image, width="44px", height="44px", border_radius="6px", object_fit="cover", alt=p.name),
        rx.vstack(
            rx.text(p.name, size="2", weight="medium", class_name="product-name"),
            rx.hstack(
                rx.text(p.price, size="1", color_scheme="gray"),
                rx.cond(p.in_stock, rx.badge("in stock", color_scheme="green", size="1"),
                        rx.badge("out of stock", color_scheme="gray", size="1")),
                rx.cond(p.reason != "", rx.text(p.reason, size="1", color_scheme="gray")),
                spacing="2",
                align="center",
            ),
            spacing="0",
            flex="1",
            min_width="0",
        ),
        *actions,
        align="center",
        width="100%",
        padding_y="6px",
        class_name="product-row",
        data_sku=p.sku,
    )


def _search_result(p: ProductHit) -> rx.Component:
    return rx.box(
        product_row(p, rx.button("Send", size="1", variant="soft", class_name="send-product")),
        on_click=S.send_product(p.id),
        cursor="pointer",
        padding_x="8px",
        border_radius="6px",
        _hover={"background": rx.color("accent", 3)},
        class_name="search-result",
    )


def product_search_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.trigger(
            rx.icon_button(rx.icon("search", size=16), variant="soft",
                           id="product-search-button", aria_label="Search products to send",
                           title="Send a product"),
        ),
        rx.dialog.content(
            rx.dialog.title("Send a product"),
            rx.dialog.description("Search by name, sku or category; click a product to send its card.",
                                  size="2", color_scheme="gray"),
            rx.input(
                placeholder="e.g. trail shoe, RUN-00042, yoga",
                value=S.search_query,
                on_change=S.search.debounce(250),
                max_length=100,
                id="product-search-input",
                auto_focus=True,
                margin_y="12px",
            ),
            rx.scroll_area(
                rx.cond(
                    S.search_results.length() > 0,
                    rx.vstack(rx.foreach(S.search_results, _search_result), spacing="0", width="100%"),
                    rx.cond(
                        S.search_query != "",
                        rx.text("No products match.", color_scheme="gray", size="2", padding="1rem"),
                        rx.text("Start typing to search the catalog.", color_scheme="gray", size="2",
                                padding="1rem"),
                    ),
                ),
                max_height="420px",
                type="auto",
            ),
            max_width="560px",
        ),
        open=S.search_open,
        on_open_change=S.set_search_open,
    )
