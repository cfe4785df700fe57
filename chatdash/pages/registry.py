"""The app's pages, registered once.

Reflex 0.10 applies `@rx.page` pages to the app twice (when the app is set up
and again when it compiles), logging "Page ... is being redefined with the same
component" for every page, in every worker. Pages here use `page(...)` instead,
with the same arguments, and `chatdash.chatdash` adds them all with one
`app.add_page` each (`add_pages`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import reflex as rx

_PAGES: list[tuple[Callable[[], rx.Component], dict[str, Any]]] = []


def page(**kwargs: Any) -> Callable[[Callable[[], rx.Component]], Callable[[], rx.Component]]:
    """`@rx.page(...)`'s arguments: the page is added by `add_pages`."""

    def decorator(render: Callable[[], rx.Component]) -> Callable[[], rx.Component]:
        _PAGES.append((render, kwargs))
        return render

    return decorator


def add_pages(app: rx.App) -> None:
    for render, kwargs in _PAGES:
        app.add_page(render, **kwargs)
