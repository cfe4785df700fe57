"""Settings → Recommendations: the model card and its Retrain button."""

from __future__ import annotations

import reflex as rx

from chatdash.state.recommendations import ITEM_ITEM, MODEL, POPULARITY, ParamRow, RecommendationsState

S = RecommendationsState


def _stat(label: str, value: rx.Var | rx.Component, id_: str, sub: rx.Var | str | None = None) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color_scheme="gray"),
        value if isinstance(value, rx.Component) else rx.text(value, size="3", weight="medium", id=id_),
        *([rx.text(sub, size="1", color_scheme="gray")] if sub is not None else []),
        spacing="0",
        min_width="0",
    )


def _bar(key: str, color: str) -> rx.Component:
    return rx.recharts.bar(data_key=key, fill=rx.color(color, 9), radius=[3, 3, 0, 0], is_animation_active=False,
                           bar_size=28)


def _chart(*bars: rx.Component) -> rx.Component:
    return rx.recharts.bar_chart(
        rx.recharts.cartesian_grid(stroke_dasharray="3 3", vertical=False),
        rx.recharts.x_axis(data_key="metric", tick_line=False, tick={"fontSize": 12}),
        rx.recharts.y_axis(width=40, tick_count=4, tick={"fontSize": 11}),
        rx.recharts.graphing_tooltip(),
        rx.recharts.legend(icon_type="square", icon_size=10, wrapper_style={"fontSize": 12}),
        *bars,
        data=S.chart,
        height=200,
        width="100%",
        bar_gap=4,
    )


def _holdout() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.text("Quality on held-out orders", size="2", weight="medium"),
            rx.cond(S.lift != "", rx.badge(S.lift, color_scheme="green", id="model-lift")),
            align="center",
            spacing="2",
        ),
        rx.cond(
            S.has_holdout,
            rx.vstack(
                rx.box(
                    rx.cond(S.has_item_item,
                            _chart(_bar(MODEL, "indigo"), _bar(ITEM_ITEM, "teal"), _bar(POPULARITY, "gray")),
                            _chart(_bar(MODEL, "indigo"), _bar(POPULARITY, "gray"))),
                    width="100%",
                    id="model-chart",
                ),
                rx.hstack(
                    rx.text("ndcg@10 ", rx.text.strong(S.model_ndcg, id="model-ndcg"), " vs ",
                            rx.text.span(S.popularity_ndcg, id="popularity-ndcg"), size="1"),
                    rx.text("precision@10 ", rx.text.strong(S.model_precision, id="model-precision"), " vs ",
                            rx.text.span(S.popularity_precision, id="popularity-precision"), size="1"),
                    spacing="4",
                    color_scheme="gray",
                ),
                spacing="2",
                width="100%",
            ),
        ),
        rx.text(S.holdout_note, size="1", color_scheme="gray", id="holdout-note"),
        spacing="2",
        width="100%",
    )


def _param(p: ParamRow) -> rx.Component:
    return rx.hstack(
        rx.text(p.name, size="1", color_scheme="gray", flex="1"),
        rx.code(p.value, size="1", variant="ghost"),
        width="100%",
        class_name="model-param",
    )


def _progress() -> rx.Component:
    return rx.fragment(
        rx.cond(
            S.run_status == "running",
            rx.vstack(
                rx.hstack(
                    rx.spinner(size="1"),
                    rx.text(S.run_step, size="2", id="train-step"),
                    rx.spacer(),
                    rx.text(S.run_percent, "%", size="2", weight="medium", id="train-percent"),
                    width="100%",
                    align="center",
                ),
                rx.progress(value=S.run_percent, max=100, width="100%"),
                rx.text(S.run_note, size="1", color_scheme="gray"),
                width="100%",
                spacing="2",
                id="train-progress",
            ),
        ),
        rx.cond(
            S.run_status == "failed",
            rx.callout(rx.vstack(rx.text(S.run_note, weight="medium"), rx.text(S.run_error, id="train-error-text"),
                                 spacing="1"),
                       icon="triangle-alert", color_scheme="red", width="100%", id="train-error"),
        ),
        rx.cond(
            S.run_status == "succeeded",
            rx.text(S.run_note, size="1", color_scheme="green", id="train-done"),
        ),
        rx.cond(S.notice != "",
                rx.callout(S.notice, icon="info", color_scheme="amber", width="100%", id="train-notice")),
    )


def recommendations_section() -> rx.Component:
    """The owner's model card: trained when, on how much, with what, how well, next retrain; Retrain."""
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading("Recommendations", size="4"),
                rx.spacer(),
                rx.button(rx.icon("refresh-cw", size=14), "Retrain", on_click=S.retrain,
                          disabled=S.run_status == "running", id="retrain", variant="soft"),
                width="100%",
                align="center",
            ),
            rx.text("The shopper panel's personal recommendations and related products come from this model. "
                    "Retrain tunes it on the store's own latest orders and puts it live for every agent.",
                    color_scheme="gray", size="2"),
            _progress(),
            rx.cond(
                S.has_model,
                rx.vstack(
                    rx.grid(
                        _stat("Trained", S.trained_at, "model-trained-at", "in " + S.trained_seconds),
                        _stat("Version", rx.code(S.version, size="1", variant="ghost", id="model-version",
                                                 margin_top="4px"), "model-version"),
                        _stat("Next retrain", S.next_retrain, "model-next-retrain"),
                        _stat("Shoppers", S.shoppers, "model-shoppers"),
                        _stat("Products", S.products, "model-products"),
                        _stat("Interactions", S.interactions, "model-interactions",
                              "views, cart adds, purchases"),
                        columns="3",
                        spacing="4",
                        width="100%",
                    ),
                    rx.divider(),
                    _holdout(),
                    rx.divider(),
                    rx.text("Chosen parameters", size="2", weight="medium"),
                    rx.grid(rx.foreach(S.params, _param), columns="2", spacing_x="5", spacing_y="1", width="100%",
                            id="model-params"),
                    spacing="3",
                    width="100%",
                ),
                rx.callout("No model trained yet: the panel shows the most ordered products. Retrain trains one "
                           "from the store's history.", icon="info", width="100%", id="model-none"),
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
        id="recommendations-section",
    )
