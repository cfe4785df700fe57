"""The shopper panel (right side of the conversations page): who the shopper
is, where they are, recommendations, current session, history, and the
related-products popup. Presence flips one flag; store activity re-reads the
panel once, off the event loop, for every screen showing that shopper."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import reflex as rx

from chatdash import live
from chatdash.events import PresenceChanged, ShopperActivity, ShopperEmailChanged, ShopperMerged
from chatdash.models import CardSource
from chatdash.services import product_picks
from chatdash.services.shopper_context import ShopperContext, shopper_context
from chatdash.state.auth import AuthState, admin_event
from chatdash.state.panel import HistoryView, SessionView
from chatdash.state.views import ProductHit


def _load_context(event: ShopperActivity) -> ShopperContext | None:
    return shopper_context(event.shopper_id)


def _load_merged(event: ShopperMerged) -> ShopperContext | None:
    return shopper_context(event.into_shopper_id)


class ShopperPanelState(AuthState):
    shopper_id: int = 0
    shopper_label: str = ""
    shopper_email: str = ""
    shopper_customer_id: str = ""
    shopper_on_site: bool = False
    shopper_current_url: str = ""
    shopper_current_title: str = ""
    shopper_device: str = ""
    session_view: SessionView = SessionView()
    history_view: HistoryView = HistoryView()
    recommendations: list[ProductHit] = []
    # The "related" popup.
    related_open: bool = False
    related_name: str = ""
    related_bought: list[ProductHit] = []
    related_order: list[ProductHit] = []
    related_viewed: list[ProductHit] = []

    @rx.var
    def shopper_current_path(self) -> str:
        """The current page's path, shown under its title (titles repeat across a store)."""
        parts = urlsplit(self.shopper_current_url)
        return (parts.path + (f"?{parts.query}" if parts.query else ""))[:120]

    async def _open(self, conversation_id: int, shopper_id: int) -> None:
        """Show the shopper of the conversation just selected."""
        if self.shopper_id and self.shopper_id != shopper_id:
            live.unsubscribe(self, live.shopper_topic(self.shopper_id))
        live.subscribe(self, live.shopper_topic(shopper_id))
        self.shopper_id = shopper_id
        context = await asyncio.to_thread(shopper_context, shopper_id)
        if context is not None:
            self._show(context)

    def _show(self, c: ShopperContext) -> None:
        """Assign each part only when it changed: a page view re-sends the
        session part of the panel, not the history."""
        self._set(
            shopper_label=c.label, shopper_email=c.email, shopper_customer_id=c.customer_id,
            shopper_on_site=c.presence.on_site, shopper_current_url=c.presence.current_url,
            shopper_current_title=c.presence.current_title, shopper_device=c.presence.device,
            recommendations=[ProductHit.from_product(p, reason) for p, reason in c.recommendations],
            session_view=SessionView.build(c.session),
            history_view=HistoryView.build(c.history),
        )

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            if getattr(self, name) != value:
                setattr(self, name, value)

    # ----- related products ---------------------------------------------
    @admin_event
    async def show_related(self, product_id: Any):
        if not isinstance(product_id, int) or isinstance(product_id, bool):
            return
        found = await asyncio.to_thread(product_picks.related, product_id)
        if found is None:
            return

        def hits(rows) -> list[ProductHit]:
            return [ProductHit.from_product(p, f"{n}× together") for p, n in rows]

        self.related_name = found.product.name
        self.related_bought = hits(found.bought_also)
        self.related_order = hits(found.same_order)
        self.related_viewed = hits(found.viewed_together)
        self.related_open = True

    @admin_event
    def set_related_open(self, value: Any):
        self.related_open = bool(value)

    @admin_event
    async def send_product(self, product_id: Any, source: Any = CardSource.RECOMMENDED):
        """Send a recommended or related product's card into the chat; `source`
        names the list it came from (recommended, bought_also, same_order,
        viewed_together), for attribution."""
        from chatdash.state.chat import ChatState

        chat_state = await self.get_state(ChatState)
        if await chat_state._send_product(product_id, source):
            self.related_open = False

    # ----- pushed --------------------------------------------------------
    @live.on(PresenceChanged, topic=live.by_shopper)
    def _on_presence(self, event: PresenceChanged) -> None:
        if event.shopper_id != self.shopper_id:
            return
        changes: dict[str, Any] = {"shopper_on_site": event.on_site}
        if event.current_url:
            changes.update(shopper_current_url=event.current_url, shopper_current_title=event.current_title,
                           shopper_device=event.device)
        self._set(**changes)

    @live.on(ShopperActivity, topic=live.by_shopper, load=_load_context)
    def _on_activity(self, event: ShopperActivity, context: ShopperContext | None) -> None:
        if context is not None and event.shopper_id == self.shopper_id:
            self._show(context)

    @live.on(ShopperMerged, topic=live.by_shopper, load=_load_merged)
    def _on_merged(self, event: ShopperMerged, context: ShopperContext | None) -> None:
        """The visitor shown identified as a known customer: show (and follow) the customer."""
        if event.shopper_id != self.shopper_id:
            return
        live.unsubscribe(self, live.shopper_topic(event.shopper_id))
        live.subscribe(self, live.shopper_topic(event.into_shopper_id))
        self.shopper_id = event.into_shopper_id
        if context is not None:
            self._show(context)

    @live.on(ShopperEmailChanged, topic=live.by_shopper)
    def _on_email(self, event: ShopperEmailChanged) -> None:
        """The shopper left an email in the chat (offline follow-up)."""
        if event.shopper_id == self.shopper_id:
            self._set(shopper_email=event.email, shopper_label=event.label)
