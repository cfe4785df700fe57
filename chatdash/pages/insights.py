"""Insights page: what the products sent into chats earned — the funnel
(sent → clicked → added to cart → ordered) per source and per week, the
revenue attributed, and the products sent most."""

import reflex as rx

from chatdash import routes
from chatdash.components.frame import admin_page
from chatdash.services.attribution import WINDOW_DAYS
from chatdash.state.insights import FunnelRow
from chatdash.state.insights import InsightsState as S

BORDER = f"1px solid {rx.color('gray', 5)}"
# One colour per funnel step, grey to blue to green: the eye reads the drop-off.
STEP_COLOURS = (("Sent", "#64748b"), ("Clicked", "#38bdf8"), ("Added to cart", "#2563eb"), ("Ordered", "#16a34a"))
# Recharts sorts legend and tooltip items by name unless told not to: keep the funnel's order.
UNSORTED = {"itemSorter": rx.Var("null")}


def _card(*children: rx.Component, **props) -> rx.Component:
    return rx.box(*children, padding="16px 18px", border=BORDER, border_radius="10px",
                  background=rx.color("gray", 1), width="100%", **props)


def _stat(label: str, value, note, icon: str, stat_id: str) -> rx.Component:
    return _card(
        rx.hstack(
            rx.text(label, size="2", color_scheme="gray"),
            rx.spacer(),
            rx.icon(icon, size=16, color=rx.color("gray", 9)),
            width="100%",
            align="center",
        ),
        rx.text(value, size="7", weight="bold", id=stat_id, padding_top="4px"),
        rx.text(note, size="1", color_scheme="gray"),
    )


def _stats() -> rx.Component:
    return rx.grid(
        _stat("Products sent", S.sent, "one card per chat and product", "send", "stat-sent"),
        _stat("Clicked", S.clicked, S.clicked_rate + " of sent", "mouse-pointer-click", "stat-clicked"),
        _stat("Added to cart", S.carted, S.carted_rate + " of sent", "shopping-cart", "stat-carted"),
        _stat("Ordered", S.ordered, S.ordered_rate + " of sent", "package-check", "stat-ordered"),
        _stat("Revenue attributed", S.revenue, f"orders within {WINDOW_DAYS} days of the send",
              "badge-dollar-sign", "stat-revenue"),
        columns=rx.breakpoints(initial="2", md="5"),
        spacing="3",
        width="100%",
    )


def _bars() -> list[rx.Component]:
    return [rx.recharts.bar(data_key=step, fill=colour, radius=[3, 3, 0, 0], max_bar_size=28)
            for step, colour in STEP_COLOURS]


def _axes(key: str) -> list[rx.Component]:
    return [
        rx.recharts.cartesian_grid(stroke_dasharray="3 3", vertical=False),
        rx.recharts.x_axis(data_key=key, tick_line=False, tick={"fontSize": 12}),
        rx.recharts.y_axis(allow_decimals=False, tick_line=False, axis_line=False, tick={"fontSize": 12}, width=40),
        rx.recharts.graphing_tooltip(custom_attrs=UNSORTED),
        rx.recharts.legend(icon_type="circle", icon_size=8, custom_attrs=UNSORTED),
    ]


def _chart_card(title: str, subtitle: str, chart: rx.Component, card_id: str) -> rx.Component:
    return _card(
        rx.text(title, size="3", weight="bold"),
        rx.text(subtitle, size="1", color_scheme="gray", padding_bottom="10px"),
        chart,
        id=card_id,
    )


def _funnel_by_source() -> rx.Component:
    return _chart_card(
        "Funnel per source",
        "Where the card came from: the product search, the shopper's recommendations, or a related list.",
        rx.recharts.bar_chart(*_bars(), *_axes("source"), data=S.by_source_chart, width="100%",
                              height=280, bar_gap=2),
        "chart-by-source",
    )


def _funnel_by_week() -> rx.Component:
    return _chart_card(
        "Funnel per week",
        "Cards by the week they were first sent (weeks start on Monday, UTC).",
        rx.recharts.line_chart(
            # No drawing animation: the lines are there as soon as the numbers are.
            *[rx.recharts.line(data_key=step, stroke=colour, stroke_width=2, type_="monotone", dot=False,
                               is_animation_active=False)
              for step, colour in STEP_COLOURS],
            *_axes("week"),
            data=S.by_week_chart, width="100%", height=280,
        ),
        "chart-by-week",
    )


def _revenue_by_week() -> rx.Component:
    return _chart_card(
        "Revenue attributed per week",
        "Order lines of the products sent, by the week the card was sent.",
        rx.recharts.bar_chart(
            rx.recharts.bar(data_key="Revenue", fill="#16a34a", radius=[3, 3, 0, 0], max_bar_size=36),
            rx.recharts.cartesian_grid(stroke_dasharray="3 3", vertical=False),
            rx.recharts.x_axis(data_key="week", tick_line=False, tick={"fontSize": 12}),
            rx.recharts.y_axis(tick_line=False, axis_line=False, tick={"fontSize": 12}, width=56),
            rx.recharts.graphing_tooltip(),
            data=S.by_week_chart, width="100%", height=220,
        ),
        "chart-revenue",
    )


def _num(value, **props) -> rx.Component:
    return rx.table.cell(rx.text(value, size="2"), text_align="right", **props)


def _source_row(r: FunnelRow) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(rx.text(r.label, size="2", weight="medium")),
        _num(r.sent), _num(r.clicked), _num(r.carted), _num(r.ordered), _num(r.conversion),
        _num(r.revenue, class_name="source-revenue"),
        class_name="source-row",
        data_source=r.key,
    )


def _product_row(r: FunnelRow) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(rx.text(r.label, size="2", weight="medium", max_width="320px", overflow="hidden",
                                         text_overflow="ellipsis", white_space="nowrap")),
        _num(r.sent), _num(r.clicked), _num(r.ordered), _num(r.revenue),
        class_name="top-product",
    )


def _head(*names: str) -> rx.Component:
    return rx.table.header(rx.table.row(
        rx.table.column_header_cell(names[0]),
        *[rx.table.column_header_cell(n, text_align="right") for n in names[1:]],
    ))


def _sources_table() -> rx.Component:
    return _card(
        rx.text("Sources", size="3", weight="bold", padding_bottom="8px"),
        rx.table.root(
            _head("Source", "Sent", "Clicked", "Cart", "Ordered", "Conversion", "Revenue"),
            rx.table.body(rx.foreach(S.sources, _source_row)),
            width="100%",
            size="1",
            id="sources-table",
        ),
    )


def _top_products() -> rx.Component:
    return _card(
        rx.text("Top products sent", size="3", weight="bold", padding_bottom="8px"),
        rx.cond(
            S.top_products.length() > 0,
            rx.table.root(
                _head("Product", "Sent", "Clicked", "Ordered", "Revenue"),
                rx.table.body(rx.foreach(S.top_products, _product_row)),
                width="100%",
                size="1",
                id="top-products",
            ),
            rx.text("No products sent in this period.", size="2", color_scheme="gray", padding="1rem 0"),
        ),
    )


def _empty_note() -> rx.Component:
    return rx.cond(
        S.loaded & (S.sent == 0),
        rx.callout(
            "No product cards were sent in this period. Send one from a conversation (the search beside "
            "Reply, or a recommendation) and it is followed here: clicked, added to cart, ordered.",
            icon="info", size="1", width="100%", id="insights-empty",
        ),
    )


@admin_page(route=routes.INSIGHTS, title="Insights", on_load=[S.load])
def insights() -> rx.Component:
    return rx.box(
        rx.vstack(
            rx.hstack(
                rx.vstack(
                    rx.heading("Insights", size="6"),
                    rx.text("Products sent into chats, followed to the order: clicked in the chat, added to "
                            f"cart and ordered by the same shopper within {WINDOW_DAYS} days.",
                            size="2", color_scheme="gray"),
                    spacing="1",
                ),
                rx.spacer(),
                rx.cond(S.reading, rx.hstack(rx.spinner(size="2"), rx.text("Counting…", size="1", color_scheme="gray"),
                                             align="center", id="insights-reading")),
                rx.segmented_control.root(
                    rx.segmented_control.item("4 weeks", value="4"),
                    rx.segmented_control.item("12 weeks", value="12"),
                    rx.segmented_control.item("52 weeks", value="52"),
                    value=S.period,
                    on_change=S.set_period,
                    id="insights-period",
                ),
                align="center",
                width="100%",
                spacing="3",
            ),
            # For tests and scripts: the numbers below are this period's.
            rx.cond(S.loaded & ~S.reading, rx.box(id="insights-loaded", display="none")),
            _empty_note(),
            _stats(),
            rx.grid(_funnel_by_source(), _funnel_by_week(), columns=rx.breakpoints(initial="1", lg="2"),
                    spacing="3", width="100%"),
            rx.grid(_sources_table(), _revenue_by_week(), columns=rx.breakpoints(initial="1", lg="2"),
                    spacing="3", width="100%"),
            _top_products(),
            spacing="4",
            width="100%",
            max_width="1280px",
            margin_x="auto",
            padding="1.5rem",
        ),
        height="100%",
        overflow_y="auto",
        id="insights-page",
    )
