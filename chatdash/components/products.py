"""Product pieces of the admin's conversation page: the search dialog and the
product rows used by search, recommendations and related lists."""

from __future__ import annotations

import reflex as rx

from chatdash.models import CardSource
from chatdash.state.product_search import ProductSearchState
from chatdash.state.shopper_panel import ShopperPanelState as Panel
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
        on_click=ProductSearchState.send_product(p.id),
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
                value=ProductSearchState.search_query,
                on_change=ProductSearchState.search.debounce(250),
                max_length=100,
                id="product-search-input",
                auto_focus=True,
                margin_y="12px",
            ),
            rx.scroll_area(
                rx.cond(
                    ProductSearchState.search_results.length() > 0,
                    rx.vstack(rx.foreach(ProductSearchState.search_results, _search_result), spacing="0", width="100%"),
                    rx.cond(
                        ProductSearchState.search_query != "",
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
        open=ProductSearchState.search_open,
        on_open_change=ProductSearchState.set_search_open,
    )


def _rec_row(p: ProductHit) -> rx.Component:
    return product_row(
        p,
        rx.tooltip(rx.icon_button(rx.icon("send", size=14), size="1", variant="soft",
                                  on_click=Panel.send_product(p.id, CardSource.RECOMMENDED.value),
                                  class_name="rec-send",
                                  aria_label="Send to chat"), content="Send to chat"),
        rx.tooltip(rx.icon_button(rx.icon("git-fork", size=14), size="1", variant="soft", color_scheme="gray",
                                  on_click=Panel.show_related(p.id), class_name="rec-related",
                                  aria_label="Related products"), content="Related products"),
    )


def recommendations_section() -> rx.Component:
    return rx.vstack(
        rx.text("Recommendations", size="1", weight="bold", color_scheme="gray", text_transform="uppercase",
                letter_spacing="0.04em"),
        rx.cond(
            Panel.recommendations.length() > 0,
            rx.vstack(rx.foreach(Panel.recommendations, _rec_row), spacing="0", width="100%", id="recommendations"),
            rx.text("No recommendations yet.", size="1", color_scheme="gray"),
        ),
        spacing="2",
        width="100%",
        padding="14px 16px",
        border_bottom=f"1px solid {rx.color('gray', 5)}",
    )


def _related_row(p: ProductHit, source: CardSource) -> rx.Component:
    return product_row(
        p,
        rx.button("Send", size="1", variant="soft", on_click=Panel.send_product(p.id, source.value),
                  class_name="related-send"),
    )


def _related_list(title: str, items, list_id: str, source: CardSource) -> rx.Component:
    return rx.vstack(
        rx.text(title, size="2", weight="bold"),
        rx.cond(
            items.length() > 0,
            rx.vstack(rx.foreach(items, lambda p: _related_row(p, source)), spacing="0", width="100%"),
            rx.text("Not enough data for this product yet.", size="1", color_scheme="gray",
                    class_name="related-empty"),
        ),
        spacing="1",
        width="100%",
        id=list_id,
    )


def related_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Related to ", Panel.related_name),
            rx.dialog.description("Send any of these to the shopper.", size="2", color_scheme="gray"),
            rx.scroll_area(
                rx.vstack(
                    _related_list("People who bought this also bought", Panel.related_bought, "related-bought",
                                  CardSource.BOUGHT_ALSO),
                    _related_list("Frequently bought in the same order", Panel.related_order, "related-order",
                                  CardSource.SAME_ORDER),
                    _related_list("Frequently viewed together", Panel.related_viewed, "related-viewed",
                                  CardSource.VIEWED_TOGETHER),
                    spacing="4",
                    width="100%",
                    padding_top="12px",
                ),
                max_height="480px",
                type="auto",
            ),
            max_width="560px",
            id="related-dialog",
        ),
        open=Panel.related_open,
        on_open_change=Panel.set_related_open,
    )
