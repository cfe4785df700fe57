"""The admin's conversations page: the live list, the open chat and the shopper
panel. Every handler re-checks the admin session."""

from __future__ import annotations

import uuid
from typing import Any

import reflex as rx

from chatdash import live
from chatdash.db import session_scope
from chatdash.models import Conversation, Product, Sender, Shopper
from chatdash.services import catalog, insights, recommender
from chatdash.services import conversations as convs
from chatdash.services.devices import device_from_user_agent
from chatdash.settings import get_settings
from chatdash.state.auth import AuthState
from chatdash.state.panel import HistoryView, SessionView
from chatdash.state.views import ChatMessage, ConversationRow, ProductHit

MAX_QUERY = 100


class ConversationsState(AuthState):
    rows: list[ConversationRow] = []
    selected_id: int = 0
    messages: list[ChatMessage] = []
    shopper_seen_id: int = 0
    reply_error: str = ""
    shopper_typing_seq: int = 0
    # The selected shopper, as shown in the right-hand panel.
    shopper_label: str = ""
    shopper_email: str = ""
    shopper_customer_id: str = ""
    shopper_on_site: bool = False
    shopper_current_url: str = ""
    shopper_current_title: str = ""
    shopper_device: str = ""
    # The shopper panel: current session and history (services.insights).
    session_view: SessionView = SessionView()
    history_view: HistoryView = HistoryView()
    # Recommendations for the selected shopper and the "related" popup.
    recommendations: list[ProductHit] = []
    related_open: bool = False
    related_name: str = ""
    related_bought: list[ProductHit] = []
    related_order: list[ProductHit] = []
    related_viewed: list[ProductHit] = []
    # Product search (the magnifier beside Reply).
    search_open: bool = False
    search_query: str = ""
    search_results: list[ProductHit] = []

    @rx.var
    def max_chars(self) -> int:
        return get_settings().message_max_chars

    @rx.var
    def shopper_current_path(self) -> str:
        """The current page's path, shown under its title (titles repeat across a store)."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.shopper_current_url)
        return (parts.path + (f"?{parts.query}" if parts.query else ""))[:120]

    @rx.var
    def has_selection(self) -> bool:
        return self.selected_id > 0

    # ----- loading -------------------------------------------------------
    @rx.event
    def load(self):
        if self._require_admin() is None:
            return
        live.subscribe(live.INBOX, self.router.session.client_token, ConversationsState)
        self._reload_rows()
        wanted = str(self.router.url.query_parameters.get("c", ""))
        if wanted.isdigit():
            self._select(int(wanted))
        elif self.selected_id:
            self._select(self.selected_id)

    def _reload_rows(self) -> None:
        with session_scope() as session:
            summaries = convs.list_conversations(
                session, window_seconds=get_settings().presence_window_seconds
            )
        self.rows = [ConversationRow.from_summary(s) for s in summaries]

    def _select(self, conversation_id: int) -> None:
        token = self.router.session.client_token
        with session_scope() as session:
            conv = session.get(Conversation, conversation_id)
            if conv is None:
                self.reply_error = "That conversation no longer exists."
                return
        if self.selected_id and self.selected_id != conversation_id:
            live.unsubscribe(live.conversation_topic(self.selected_id), token, ConversationsState)
        self.selected_id = conversation_id
        self.shopper_typing_seq = 0
        self.reply_error = ""
        live.subscribe(live.conversation_topic(conversation_id), token, ConversationsState)
        self._reload_chat()
        self._reload_rows()

    def _reload_chat(self) -> None:
        """Messages and the whole shopper panel: on selecting a conversation."""
        self._reload_messages()
        self._reload_shopper(panel=True)

    def _reload_messages(self) -> None:
        """The messages and read marks: on every message either side sends."""
        if not self.selected_id:
            return
        with session_scope() as session:
            conv = session.get(Conversation, self.selected_id)
            if conv is None:
                self.selected_id = 0
                self.messages = []
                return
            views = convs.list_messages(session, conv.id)
            changed = convs.mark_seen(session, conv, Sender.ADMIN)
            self.shopper_seen_id = conv.shopper_seen_message_id
        new_messages = [ChatMessage.from_view(v) for v in views]
        if new_messages != self.messages:
            self.messages = new_messages
        if changed:
            topic = live.conversation_topic(self.selected_id)
            live.publish(topic, "_on_conversation_changed", exclude=self)
            live.publish(live.INBOX, "_on_inbox_changed", exclude=self)

    def _reload_shopper(self, panel: bool) -> None:
        """Who the shopper is and where they are; with `panel`, also the
        recommendations, current session and history (only when the shopper did
        something on the store, not on every message or presence change)."""
        if not self.selected_id:
            return
        with session_scope() as session:
            conv = session.get(Conversation, self.selected_id)
            if conv is None:
                return
            shopper = session.get(Shopper, conv.shopper_id)
            visit = convs.latest_visit(session, shopper.id)
            self.shopper_label = convs.shopper_label(shopper)
            self.shopper_email = shopper.email or ""
            self.shopper_customer_id = shopper.customer_id or ""
            self.shopper_on_site = convs.is_on_site(visit, convs.utcnow(), get_settings().presence_window_seconds)
            self.shopper_current_url = visit.current_url if visit else ""
            self.shopper_current_title = visit.current_title if visit else ""
            self.shopper_device = device_from_user_agent(visit.user_agent).label if visit else ""
            if not panel:
                return
            recs = recommender.recommend_for(session, shopper.id, n=6)
            rec_products = _products(session, [r.product_id for r in recs])
            summary = insights.current_session(session, shopper.id)
            history = insights.shopper_history(session, shopper.id, summary.visit_id if summary else None)
        # Each part is assigned only when it changed, so a page view re-sends the
        # session part of the panel and not the history.
        new_recs = [ProductHit.from_product(rec_products[r.product_id], _reason(r.reason))
                    for r in recs if r.product_id in rec_products]
        if new_recs != self.recommendations:
            self.recommendations = new_recs
        new_session, new_history = SessionView.build(summary), HistoryView.build(history)
        if new_session != self.session_view:
            self.session_view = new_session
        if new_history != self.history_view:
            self.history_view = new_history

    @rx.event
    def select(self, conversation_id: Any):
        if self._require_admin() is None:
            return
        if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
            return
        self._select(conversation_id)

    # ----- replying ------------------------------------------------------
    @rx.event
    def send_reply(self, form_data: Any):
        admin = self._require_admin()
        if admin is None or not self.selected_id:
            return
        text = form_data.get("reply", "") if isinstance(form_data, dict) else ""
        try:
            with session_scope() as session:
                conv = session.get(Conversation, self.selected_id)
                if conv is None:
                    raise convs.ChatError("That conversation no longer exists.")
                convs.post_message(
                    session, conv, Sender.ADMIN, uuid.uuid4().hex, str(text),
                    max_chars=get_settings().message_max_chars, admin_id=admin.id,
                )
        except convs.ChatError as exc:
            self.reply_error = str(exc)
            return
        self.reply_error = ""
        live.publish(live.conversation_topic(self.selected_id), "_on_conversation_changed",
                     exclude=self)
        live.publish(live.INBOX, "_on_inbox_changed", exclude=self)
        self._reload_messages()
        self._reload_rows()
        return rx.set_value("reply-input", "")

    # ----- products into the chat ---------------------------------------
    @rx.event
    def set_search_open(self, value: Any):
        if self._require_admin() is None:
            return
        self.search_open = bool(value)
        if not self.search_open:
            self.search_query = ""
            self.search_results = []

    @rx.event
    def search(self, query: Any):
        if self._require_admin() is None:
            return
        self.search_query = str(query)[:MAX_QUERY] if isinstance(query, str) else ""
        with session_scope() as session:
            products = catalog.search_products(session, self.search_query, limit=20)
            scores: dict[int, float] = {}
            conv = session.get(Conversation, self.selected_id) if self.selected_id else None
            model = recommender.get_store().get()
            if conv is not None and model is not None and products:
                scores = model.scores_for(session, conv.shopper_id, [p.id for p in products])
        # Relevance first; inside a relevance tier, what suits this shopper best.
        products.sort(key=lambda p: (catalog.match_tier(p, self.search_query), -scores.get(p.id, float("-inf"))))
        self.search_results = [ProductHit.from_product(p) for p in products]

    @rx.event
    def show_related(self, product_id: Any):
        if self._require_admin() is None:
            return
        if not isinstance(product_id, int) or isinstance(product_id, bool):
            return
        with session_scope() as session:
            product = session.get(Product, product_id)
            if product is None:
                return
            rel = recommender.related_for(session, product_id, n=5)
            ids = [i.product_id for i in (*rel.bought_also, *rel.same_order, *rel.viewed_together)]
            found = _products(session, ids)

            def rows(items) -> list[ProductHit]:
                return [ProductHit.from_product(found[i.product_id], f"{i.co_count}× together")
                        for i in items if i.product_id in found]

            self.related_name = product.name
            self.related_bought = rows(rel.bought_also)
            self.related_order = rows(rel.same_order)
            self.related_viewed = rows(rel.viewed_together)
        self.related_open = True

    @rx.event
    def set_related_open(self, value: Any):
        if self._require_admin() is None:
            return
        self.related_open = bool(value)

    @rx.event
    def send_product(self, product_id: Any):
        """Send the shopper a product card (from search, recommendations or related)."""
        admin = self._require_admin()
        if admin is None or not self.selected_id:
            return
        if not isinstance(product_id, int) or isinstance(product_id, bool):
            return
        try:
            with session_scope() as session:
                conv = session.get(Conversation, self.selected_id)
                if conv is None:
                    raise convs.ChatError("That conversation no longer exists.")
                convs.post_message(session, conv, Sender.ADMIN, uuid.uuid4().hex,
                                   product_id=product_id, admin_id=admin.id)
        except convs.ChatError as exc:
            self.reply_error = str(exc)
            return
        self.reply_error = ""
        self.related_open = False
        self.search_open = False
        self.search_query = ""
        self.search_results = []
        live.publish(live.conversation_topic(self.selected_id), "_on_conversation_changed", exclude=self)
        live.publish(live.INBOX, "_on_inbox_changed", exclude=self)
        self._reload_messages()
        self._reload_rows()

    @rx.event
    def typing(self, _value: Any = None):
        if self._require_admin() is None or not self.selected_id:
            return
        live.publish(live.conversation_topic(self.selected_id), "_on_typing", "admin",
                     exclude=self)

    # ----- pushed (underscore: not callable as events) -------------------
    async def _on_inbox_changed(self) -> None:
        if self._require_admin() is None:
            return
        self._reload_rows()
        # Inbox pushes carry presence and page changes; messages come by the
        # conversation's own topic.
        self._reload_shopper(panel=False)

    async def _on_conversation_changed(self) -> None:
        if self._require_admin() is None:
            return
        self._reload_messages()

    async def _on_shopper_activity(self) -> None:
        if self._require_admin() is None:
            return
        self._reload_shopper(panel=True)

    async def _on_typing(self, side: str) -> None:
        if side == "shopper":
            self.shopper_typing_seq += 1


def _products(session, ids: list[int]) -> dict[int, Product]:
    if not ids:
        return {}
    from sqlmodel import col, select

    return {p.id: p for p in session.exec(select(Product).where(col(Product.id).in_(ids))).all()}


def _reason(reason: str) -> str:
    return "personal" if reason == "personal" else reason
