"""The demo store's pages: catalog, product page, cart and checkout, added to
the Reflex app by `add_pages` (not `@rx.page`: Reflex 0.10 applies decorated
pages twice and warns about each)."""

from __future__ import annotations

import reflex as rx

from demo_store import routes
from demo_store.cart import MAX_QUANTITY
from demo_store.components import loading, product_grid, product_image, stepper, store_frame
from demo_store.settings import get_settings
from demo_store.state import CartRow, CartState, CatalogState, CategoryChip, ProductState

STORE_NAME = get_settings().name


# --------------------------------------------------------------------------- catalog


def category_link(chip: CategoryChip) -> rx.Component:
    return rx.link(
        rx.hstack(
            rx.text(chip.name, size="2", weight=rx.cond(chip.active, "bold", "regular")),
            rx.spacer(),
            rx.text(chip.count, size="1", color_scheme="gray"),
            align="center",
            width="100%",
        ),
        href=chip.href,
        underline="none",
        color=rx.cond(chip.active, rx.color("accent", 11), rx.color("gray", 12)),
        background=rx.cond(chip.active, rx.color("accent", 3), "transparent"),
        _hover={"background": rx.color("gray", 3)},
        padding="6px 10px",
        border_radius="8px",
        width="100%",
        class_name="category-link",
        data_category=chip.name,
    )


def category_sidebar() -> rx.Component:
    return rx.box(
        rx.card(
            rx.vstack(
                rx.text("Categories", size="1", weight="bold", color_scheme="gray",
                        text_transform="uppercase", letter_spacing="0.06em", padding_x="10px"),
                rx.link(
                    rx.hstack(
                        rx.text("All products", size="2",
                                weight=rx.cond(CatalogState.category == "", "bold", "regular")),
                        rx.spacer(),
                        rx.text(CatalogState.all_count, size="1", color_scheme="gray"),
                        width="100%",
                    ),
                    href=CatalogState.all_href,
                    underline="none",
                    color=rx.cond(CatalogState.category == "", rx.color("accent", 11), rx.color("gray", 12)),
                    background=rx.cond(CatalogState.category == "", rx.color("accent", 3), "transparent"),
                    _hover={"background": rx.color("gray", 3)},
                    padding="6px 10px",
                    border_radius="8px",
                    width="100%",
                ),
                rx.foreach(CatalogState.categories, category_link),
                spacing="1",
                width="100%",
            ),
            size="2",
        ),
        width="240px",
        flex_shrink="0",
        position="sticky",
        top="84px",
        display=["none", "none", "block"],
        id="category-sidebar",
    )


def category_chip(chip: CategoryChip) -> rx.Component:
    return rx.link(
        rx.badge(chip.name, " · ", chip.count, size="2", radius="full",
                 variant=rx.cond(chip.active, "solid", "surface")),
        href=chip.href,
        underline="none",
        flex_shrink="0",
        class_name="category-chip",
    )


def category_chips() -> rx.Component:
    """Categories on small screens, where the sidebar is hidden."""
    return rx.hstack(
        rx.link(rx.badge("All", size="2", radius="full",
                         variant=rx.cond(CatalogState.category == "", "solid", "surface")),
                href=CatalogState.all_href, underline="none", flex_shrink="0"),
        rx.foreach(CatalogState.categories, category_chip),
        spacing="2",
        overflow_x="auto",
        width="100%",
        padding_bottom="4px",
        display=["flex", "flex", "none"],
    )


def pager() -> rx.Component:
    def page_button(label: str, icon: str, href: rx.Var, icon_first: bool, id_: str) -> rx.Component:
        parts = [rx.icon(icon, size=16), label] if icon_first else [label, rx.icon(icon, size=16)]
        return rx.cond(
            href != "",
            rx.link(rx.button(*parts, variant="soft"), href=href, id=id_),
            rx.button(*parts, variant="soft", disabled=True),
        )

    return rx.cond(
        CatalogState.pages > 1,
        rx.hstack(
            page_button("Previous", "chevron-left", CatalogState.prev_href, True, "page-prev"),
            rx.text("Page ", CatalogState.page, " of ", CatalogState.pages, size="2", color_scheme="gray",
                    id="page-info"),
            page_button("Next", "chevron-right", CatalogState.next_href, False, "page-next"),
            justify="center",
            align="center",
            spacing="4",
            width="100%",
            padding_top="8px",
        ),
    )


def catalog_results() -> rx.Component:
    return rx.vstack(
        category_chips(),
        rx.hstack(
            rx.heading(CatalogState.heading, size="6", id="catalog-heading"),
            rx.text(CatalogState.total, rx.cond(CatalogState.total == 1, " product", " products"),
                    size="2", color_scheme="gray", id="catalog-count"),
            align="baseline",
            spacing="3",
            wrap="wrap",
        ),
        rx.cond(
            CatalogState.total == 0,
            rx.callout(
                "No products match. Try another word, or browse the categories.",
                icon="search-x",
                color_scheme="gray",
                width="100%",
            ),
            product_grid(CatalogState.products),
        ),
        pager(),
        spacing="4",
        width="100%",
        min_width="0",
    )


def store_catalog() -> rx.Component:
    return store_frame(
        rx.cond(
            CatalogState.loaded,
            rx.hstack(category_sidebar(), catalog_results(), align="start", spacing="6", width="100%"),
            loading(),
        ),
        query=CatalogState.query,
    )


# --------------------------------------------------------------------------- product


def breadcrumbs() -> rx.Component:
    sep = rx.icon("chevron-right", size=14, color=rx.color("gray", 9))
    return rx.hstack(
        rx.link("Store", href=routes.STORE, size="2"),
        sep,
        rx.link(ProductState.category, href=ProductState.category_href, size="2", white_space="nowrap",
                id="product-category-link"),
        sep,
        rx.text(ProductState.name, size="2", color_scheme="gray", truncate=True),
        align="center",
        spacing="2",
        min_width="0",
        width="100%",
    )


def product_detail() -> rx.Component:
    return rx.vstack(
        breadcrumbs(),
        rx.grid(
            rx.box(
                product_image(ProductState.image, ProductState.name, aspect_ratio="1 / 1"),
                # The demo's SVG tiles bring their own rounded corners.
                border_radius="16px",
                overflow="hidden",
                id="product-image",
            ),
            rx.vstack(
                rx.link(rx.badge(ProductState.category, size="2", variant="soft"),
                        href=ProductState.category_href, underline="none"),
                rx.heading(ProductState.name, size=rx.breakpoints(initial="7", md="8"), id="product-name"),
                rx.text(ProductState.price, size="7", weight="bold", id="product-price"),
                rx.cond(
                    ProductState.in_stock,
                    rx.badge(rx.icon("check", size=14), "In stock", color_scheme="green", size="2",
                             id="stock-badge"),
                    rx.badge("Out of stock", color_scheme="gray", variant="solid", size="2",
                             id="stock-badge"),
                ),
                rx.text(ProductState.description, size="3", color=rx.color("gray", 11),
                        line_height="1.6", id="product-description"),
                rx.separator(size="4"),
                rx.cond(
                    ProductState.in_stock,
                    rx.hstack(
                        rx.text("Quantity", size="2", weight="medium"),
                        stepper(ProductState.quantity, ProductState.decrease, ProductState.increase,
                                can_decrease=ProductState.quantity > 1,
                                can_increase=ProductState.quantity < MAX_QUANTITY),
                        align="center",
                        spacing="4",
                    ),
                ),
                rx.button(
                    rx.icon("shopping-cart", size=18),
                    rx.cond(ProductState.in_stock, "Add to cart", "Out of stock"),
                    on_click=ProductState.add_to_cart,
                    disabled=~ProductState.in_stock,
                    size="4",
                    width="100%",
                    id="add-to-cart",
                ),
                rx.cond(
                    ProductState.added_message != "",
                    rx.callout.root(
                        rx.callout.icon(rx.icon("circle-check")),
                        rx.callout.text(
                            ProductState.added_message, " ",
                            rx.link("View cart →", href=routes.CART, weight="bold", id="view-cart"),
                        ),
                        color_scheme="green",
                        width="100%",
                        id="added-message",
                    ),
                ),
                rx.cond(
                    ProductState.error != "",
                    rx.callout(ProductState.error, icon="triangle-alert", color_scheme="red", width="100%",
                               id="product-error"),
                ),
                spacing="4",
                align="start",
                width="100%",
            ),
            columns=rx.breakpoints(initial="1", md="2"),
            spacing="7",
            width="100%",
        ),
        rx.cond(
            ProductState.related.length() > 0,
            rx.vstack(
                rx.heading("More in ", ProductState.category, size="5"),
                product_grid(ProductState.related, rx.breakpoints(initial="2", sm="3", lg="6")),
                spacing="3",
                width="100%",
                padding_top="16px",
                id="more-in-category",
            ),
        ),
        spacing="5",
        width="100%",
    )


def not_found(title: str, text: str, id_: str = "not-found", icon: str = "package-search") -> rx.Component:
    return rx.center(
        rx.card(
            rx.vstack(
                rx.icon(icon, size=40, color=rx.color("gray", 9)),
                rx.heading(title, size="5"),
                rx.text(text, color_scheme="gray", text_align="center"),
                rx.link(rx.button("Browse the store", size="3"), href=routes.STORE),
                align="center",
                spacing="3",
            ),
            size="4",
            max_width="440px",
        ),
        width="100%",
        padding_y="48px",
        id=id_,
    )


def store_product() -> rx.Component:
    return store_frame(
        rx.cond(
            ProductState.loaded,
            rx.cond(
                ProductState.found,
                product_detail(),
                not_found("We couldn't find that product",
                          "It may have been removed from the catalog, or the link is mistyped."),
            ),
            loading(),
        ),
    )


# --------------------------------------------------------------------------- cart


def cart_line(row: CartRow) -> rx.Component:
    return rx.hstack(
        rx.link(
            rx.box(product_image(row.image, row.name, aspect_ratio="1 / 1"), width="80px",
                   border_radius="10px", overflow="hidden"),
            href=row.href,
            flex_shrink="0",
        ),
        rx.vstack(
            rx.hstack(
                rx.link(row.name, href=row.href, weight="medium", size="3", color=rx.color("gray", 12),
                        class_name="cart-line-name"),
                rx.text(row.line_total, weight="bold", size="3", white_space="nowrap",
                        class_name="cart-line-total"),
                justify="between",
                align="start",
                spacing="3",
                width="100%",
            ),
            rx.hstack(
                rx.text(row.unit_price, " each", size="2", color_scheme="gray"),
                rx.cond(~row.in_stock, rx.badge("Out of stock", color_scheme="red", variant="soft")),
                align="center",
                spacing="2",
            ),
            rx.hstack(
                stepper(row.quantity, CartState.set_line_quantity(row.sku, row.quantity - 1),
                        CartState.set_line_quantity(row.sku, row.quantity + 1),
                        can_decrease=row.can_decrease, can_increase=row.can_increase, id_prefix="line-qty"),
                rx.button(rx.icon("trash-2", size=14), "Remove", on_click=CartState.remove_line(row.sku),
                          variant="ghost", color_scheme="red", size="1", class_name="cart-line-remove"),
                justify="between",
                align="center",
                width="100%",
                padding_top="4px",
            ),
            spacing="1",
            flex="1",
            min_width="0",
        ),
        align="start",
        spacing="4",
        width="100%",
        padding_y="14px",
        border_bottom=f"1px solid {rx.color('gray', 4)}",
        _first_child={"padding_top": "0"},
        _last_child={"border_bottom": "none", "padding_bottom": "0"},
        class_name="cart-line",
        data_sku=row.sku,
    )


def cart_summary() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Summary", size="4"),
            rx.hstack(rx.text("Items", color_scheme="gray"), rx.spacer(),
                      rx.text(CartState.cart_count, id="summary-count"), width="100%"),
            rx.hstack(rx.text("Shipping", color_scheme="gray"), rx.spacer(), rx.text("Free"), width="100%"),
            rx.separator(size="4"),
            rx.hstack(rx.text("Total", weight="bold", size="4"), rx.spacer(),
                      rx.text(CartState.cart_total, weight="bold", size="4", id="cart-total"), width="100%"),
            rx.button(
                rx.cond(CartState.placing, rx.spinner(size="2"), rx.icon("lock", size=16)),
                "Place order",
                on_click=CartState.start_order,
                disabled=CartState.placing | CartState.has_sold_out,
                size="4",
                width="100%",
                id="place-order",
            ),
            rx.cond(
                CartState.has_sold_out,
                rx.text("Remove the out-of-stock items to place your order.", size="1", color_scheme="red"),
                rx.text("Demo store: nothing is charged.", size="1", color_scheme="gray"),
            ),
            spacing="3",
            width="100%",
        ),
        size="3",
        position="sticky",
        top="84px",
    )


def order_confirmation() -> rx.Component:
    return rx.center(
        rx.card(
            rx.vstack(
                rx.center(rx.icon("check", size=32, color="white"), background=rx.color("green", 9),
                          border_radius="50%", width="64px", height="64px"),
                rx.heading("Thank you for your order!", size="6"),
                rx.text("Order number", size="2", color_scheme="gray"),
                rx.code(CartState.order_number, size="5", id="order-number"),
                rx.text("Total ", rx.text.strong(CartState.order_total, id="order-total"), size="3"),
                rx.link(rx.button("Continue shopping", size="3"), href=routes.STORE, padding_top="8px"),
                align="center",
                spacing="3",
            ),
            size="4",
            width="100%",
            max_width="480px",
        ),
        width="100%",
        padding_y="32px",
        id="order-confirmation",
    )


def cart_contents() -> rx.Component:
    return rx.vstack(
        rx.heading("Your cart", size="7"),
        rx.cond(
            CartState.error != "",
            rx.callout(CartState.error, icon="triangle-alert", color_scheme="red", width="100%",
                       id="cart-error"),
        ),
        rx.cond(
            CartState.rows.length() > 0,
            rx.grid(
                rx.card(rx.vstack(rx.foreach(CartState.rows, cart_line), spacing="0", width="100%"),
                        size="3", id="cart-lines"),
                cart_summary(),
                columns=rx.breakpoints(initial="1", md="3fr 1.2fr"),
                spacing="5",
                width="100%",
                align_items="start",
            ),
            not_found("Your cart is empty", "Find something you like and add it to your cart.",
                      id_="cart-empty", icon="shopping-cart"),
        ),
        spacing="4",
        width="100%",
    )


def store_cart() -> rx.Component:
    return store_frame(
        rx.cond(
            CartState.loaded,
            rx.cond(CartState.order_number != "", order_confirmation(), cart_contents()),
            loading(),
        ),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(store_catalog, route=routes.STORE, title=STORE_NAME, on_load=CatalogState.load)
    app.add_page(store_product, route=routes.PRODUCT, title=ProductState.tab_title, on_load=ProductState.load)
    app.add_page(store_cart, route=routes.CART, title=CartState.tab_title, on_load=CartState.load)
