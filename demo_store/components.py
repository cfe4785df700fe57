"""Pieces of the demo store's pages: the frame (header, footer, chatdash embed
tag), product tiles and the quantity stepper."""

from __future__ import annotations

import reflex as rx

from demo_store import routes
from demo_store.settings import get_settings
from demo_store.state import ProductTile, StoreState, find_chatdash

LINE_CLAMP_2 = {
    "display": "-webkit-box",
    "-webkit-line-clamp": "2",
    "-webkit-box-orient": "vertical",
    "overflow": "hidden",
}


def store_embed() -> rx.Component:
    """The one tag a store adds to its pages to get chatdash, exactly as a real store would."""
    return rx.script(src=f"{get_settings().api_base}/widget.js", custom_attrs={"data-chatdash": "1"})


def cart_button() -> rx.Component:
    return rx.link(
        rx.button(
            rx.icon("shopping-cart", size=18),
            rx.text("Cart", display=["none", "inline"]),
            rx.badge(StoreState.cart_count, variant="solid", radius="full", id="cart-count"),
            rx.cond(
                StoreState.cart_count > 0,
                rx.text(StoreState.cart_total, size="2", id="cart-total-header",
                        display=["none", "none", "inline"]),
            ),
            variant="soft",
            size="3",
        ),
        href=routes.CART,
        id="cart-link",
        aria_label="Cart",
    )


def search_box(query: rx.Var | str = "") -> rx.Component:
    return rx.form(
        rx.input(
            rx.input.slot(rx.icon("search", size=16)),
            name="q",
            placeholder="Search products",
            default_value=query,
            # A new query (after navigating) re-mounts the uncontrolled input.
            key=query,
            max_length=100,
            type="search",
            size="3",
            width="100%",
            id="store-search",
        ),
        on_submit=StoreState.search,
        reset_on_submit=False,
        flex="0 1 440px",
        min_width="0",
    )


def store_header(query: rx.Var | str = "") -> rx.Component:
    return rx.box(
        rx.container(
            rx.hstack(
                rx.box(
                    rx.link(
                        rx.hstack(
                            rx.center(rx.icon("store", size=20, color="white"),
                                      background=rx.color("accent", 9), border_radius="10px",
                                      width="36px", height="36px", flex_shrink="0"),
                            rx.heading(StoreState.store_name, size="5", id="store-title",
                                       display=["none", "block"], white_space="nowrap"),
                            align="center",
                            spacing="2",
                        ),
                        href=routes.STORE,
                        underline="none",
                        color="inherit",
                    ),
                    flex="1",
                ),
                search_box(query),
                rx.hstack(cart_button(), flex="1", justify="end"),
                align="center",
                spacing="4",
                width="100%",
            ),
            size="4",
            padding_y="12px",
        ),
        position="sticky",
        top="0",
        z_index="10",
        background=rx.color("gray", 1),
        border_bottom=f"1px solid {rx.color('gray', 5)}",
        width="100%",
    )


def store_footer() -> rx.Component:
    return rx.container(
        rx.separator(size="4"),
        rx.text(
            StoreState.store_name,
            " is a demo shop served by chatdash so you can try the shopper's side of the chat. "
            "Orders are recorded but nothing is charged or shipped.",
            size="1",
            color_scheme="gray",
            padding_y="20px",
        ),
        size="4",
    )


def store_frame(*content: rx.Component, query: rx.Var | str = "") -> rx.Component:
    """Every store page: header, content, footer and the chatdash embed tag."""
    return rx.box(
        store_header(query),
        rx.container(rx.vstack(*content, spacing="5", width="100%"), size="4", padding_y="24px",
                     min_height="calc(100vh - 160px)"),
        store_footer(),
        store_embed(),
        background=rx.color("gray", 2),
        min_height="100vh",
        # Learns the chat's visitor token, which names this shopper in the
        # store's server-to-server reports to chatdash.
        on_mount=find_chatdash(),
    )


def product_image(src: rx.Var, alt: rx.Var, **props) -> rx.Component:
    return rx.cond(
        src != "",
        rx.image(src=src, alt=alt, width="100%", object_fit="cover", loading="lazy",
                 display="block", **props),
        rx.center(rx.icon("image", size=32, color=rx.color("gray", 8)), width="100%",
                  background=rx.color("gray", 4), **props),
    )


def product_tile(p: ProductTile) -> rx.Component:
    return rx.link(
        rx.card(
            rx.inset(
                rx.box(
                    product_image(p.image, p.name, aspect_ratio="1 / 1",
                                  opacity=rx.cond(p.in_stock, "1", "0.55")),
                    rx.cond(
                        ~p.in_stock,
                        rx.badge("Out of stock", color_scheme="gray", variant="solid", size="2",
                                 position="absolute", top="10px", left="10px", class_name="oos-badge"),
                    ),
                    position="relative",
                ),
                side="top",
                pb="current",
            ),
            rx.vstack(
                rx.text(p.name, size="2", weight="medium", style=LINE_CLAMP_2, min_height="2.6em"),
                rx.text(p.price, size="3", weight="bold", class_name="tile-price"),
                spacing="1",
            ),
            height="100%",
            transition="box-shadow 0.15s ease, transform 0.15s ease",
            _hover={"box_shadow": "0 8px 24px rgba(0,0,0,0.10)", "transform": "translateY(-2px)"},
        ),
        href=p.href,
        # Keyed by product, so a new page gets new <img> elements instead of
        # showing the old (lazy, not yet reloaded) images under new names.
        key=p.sku,
        underline="none",
        color="inherit",
        class_name="product-tile",
        data_sku=p.sku,
    )


def product_grid(products: rx.Var, columns: rx.Breakpoints | str | None = None) -> rx.Component:
    return rx.grid(
        rx.foreach(products, product_tile),
        columns=columns or rx.breakpoints(initial="2", sm="3", lg="4"),
        spacing="4",
        width="100%",
    )


def stepper(value: rx.Var, on_decrease, on_increase, *, can_decrease: rx.Var | bool = True,
            can_increase: rx.Var | bool = True, id_prefix: str = "qty") -> rx.Component:
    """A − value + control."""
    return rx.hstack(
        rx.icon_button(rx.icon("minus", size=14), on_click=on_decrease, variant="soft", size="2",
                       disabled=~can_decrease if isinstance(can_decrease, rx.Var) else not can_decrease,
                       aria_label="One less", class_name=f"{id_prefix}-minus"),
        rx.text(value, weight="bold", size="3", min_width="2.2em", text_align="center",
                class_name=f"{id_prefix}-value"),
        rx.icon_button(rx.icon("plus", size=14), on_click=on_increase, variant="soft", size="2",
                       disabled=~can_increase if isinstance(can_increase, rx.Var) else not can_increase,
                       aria_label="One more", class_name=f"{id_prefix}-plus"),
        align="center",
        spacing="2",
    )


def loading() -> rx.Component:
    return rx.center(rx.spinner(size="3"), width="100%", padding="80px")
