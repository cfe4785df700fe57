"""The Visitors page: everyone on the store now, read once on load, then kept
up to date visitor by visitor from presence and store-activity events."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any
from urllib.parse import urlsplit

import reflex as rx

from chatdash import live, routes
from chatdash.events import (
    ChatStartedByAgent,
    ConversationFiled,
    ConversationStarted,
    PresenceChanged,
    ShopperActivity,
)
from chatdash.services import proactive, visitors
from chatdash.settings import get_settings
from chatdash.state.auth import AuthState, admin_event
from chatdash.state.views import clock, money

# A page summarising hundreds of shoppers changes on every page view of any
# of them: its tabs take the news at most once a second.
VISITORS_WINDOW = 1.0


@dataclasses.dataclass
class VisitorView:
    shopper_id: int = 0
    label: str = ""
    identified: bool = False
    page_title: str = ""
    page_path: str = ""
    device: str = ""
    pages: int = 0
    cart: str = ""
    cart_cents: int = 0
    conversation_id: int = 0
    conversation_status: str = ""  # "open", "snoozed", "resolved"; "" with no conversation
    since: str = ""
    last_seen: float = 0.0

    @classmethod
    def from_row(cls, r: visitors.VisitorRow) -> VisitorView:
        parts = urlsplit(r.current_url)
        return cls(
            shopper_id=r.shopper_id,
            label=r.label,
            identified=r.identified,
            page_title=r.current_title or parts.path or r.current_url,
            page_path=(parts.path + (f"?{parts.query}" if parts.query else ""))[:120],
            device=r.device,
            pages=r.pages,
            cart=money(r.cart_cents, r.currency) if r.cart_cents else "",
            cart_cents=r.cart_cents,
            conversation_id=r.conversation_id,
            conversation_status=r.conversation_status,
            since=clock(r.started_at),
            last_seen=r.last_seen_at.timestamp(),
        )


def _load_visitor(event: Any) -> visitors.VisitorRow | None:
    return visitors.visitor(event.shopper_id)


# What a Visitors row shows of a conversation: that there is one, and its status.
_ROW_CHANGES = frozenset({"resolved", "reopened", "snoozed", "woke"})


def _row_changes(event: ConversationFiled) -> str | None:
    """Only the filings a row shows reach the Visitors pages (an assignment does not)."""
    return live.VISITORS if event.change in _ROW_CHANGES else None


def _load_filed_visitor(event: ConversationFiled) -> visitors.VisitorRow | None:
    return visitors.visitor(event.conversation.shopper_id)


def _load_chatting_visitor(event: ConversationStarted) -> visitors.VisitorRow | None:
    return visitors.visitor_with_conversation(event.conversation_id)


class VisitorsState(AuthState):
    visitors: list[VisitorView] = []
    sort_by: str = "recent"

    # "Start chat" ("Pop up chat" for a visitor with a conversation): the
    # composer for one visitor's opening message.
    composer_open: bool = False
    composer_shopper_id: int = 0
    composer_label: str = ""
    composer_has_conversation: bool = False  # the message goes into it (re-opened if need be)
    composer_error: str = ""
    # One id per opened composer: a double click or a re-sent form stores one message.
    _composer_client_id: str = ""

    @rx.var
    def composer_max_chars(self) -> int:
        return min(proactive.MAX_CHARS, get_settings().message_max_chars)

    @admin_event
    async def load(self):
        live.subscribe(self, live.VISITORS)
        await self._read()

    @admin_event
    async def set_sort(self, value: Any):
        if value not in visitors.SORTS:
            return
        self.sort_by = value
        self.visitors = self._sorted(self.get_value("visitors"))

    # ----- start a chat -------------------------------------------------
    @admin_event
    def open_composer(self, shopper_id: Any):
        """The row's "Start chat" / "Pop up chat": only a visitor this page lists (on the store now)."""
        if not isinstance(shopper_id, int) or isinstance(shopper_id, bool):
            return
        row = next((v for v in self.get_value("visitors") if v.shopper_id == shopper_id), None)
        if row is None:
            return
        self.composer_shopper_id = shopper_id
        self.composer_label = row.label
        self.composer_has_conversation = row.conversation_id > 0
        self.composer_error = ""
        self._composer_client_id = uuid.uuid4().hex
        self.composer_open = True

    @admin_event
    def set_composer_open(self, value: Any):
        """The dialog's own open/close (Esc, Cancel, a click outside): it only closes here."""
        if value is False:
            self.composer_open = False

    @admin_event
    async def start_chat(self, form_data: Any):
        """Send the opening message; the agent lands in the conversation."""
        if not self.composer_open or not self.composer_shopper_id:
            return None
        text = form_data.get("message") if isinstance(form_data, dict) else None
        if not isinstance(text, str):
            self.composer_error = "Write a message first."
            return None
        admin = self._checked_admin
        try:
            started = await asyncio.to_thread(proactive.start_chat, admin.id, self.composer_shopper_id,
                                              self._composer_client_id, text)
        except proactive.ChatError as exc:
            self.composer_error = str(exc)
            return None
        self.composer_open = False
        self.composer_error = ""
        return rx.redirect(f"{routes.CONVERSATIONS}?c={started.conversation_id}")

    async def _read(self) -> None:
        rows = await asyncio.to_thread(visitors.visitors_on_site, self.sort_by)
        self.visitors = [VisitorView.from_row(r) for r in rows]

    def _sorted(self, rows: list[VisitorView]) -> list[VisitorView]:
        if self.sort_by == "cart":
            return sorted(rows, key=lambda v: (-v.cart_cents, -v.last_seen, v.shopper_id))
        return sorted(rows, key=lambda v: (-v.last_seen, v.shopper_id))

    # ----- pushed --------------------------------------------------------
    @live.on(PresenceChanged, topic=live.visitors_topic, load=_load_visitor, window=VISITORS_WINDOW)
    def _on_presence(self, event: PresenceChanged, row: visitors.VisitorRow | None) -> None:
        self._replace(event.shopper_id, row if event.on_site else None)

    @live.on(ShopperActivity, topic=live.visitors_topic, load=_load_visitor, window=VISITORS_WINDOW)
    def _on_activity(self, event: ShopperActivity, row: visitors.VisitorRow | None) -> None:
        self._replace(event.shopper_id, row)

    @live.on(ChatStartedByAgent, topic=live.visitors_topic, load=_load_visitor, window=VISITORS_WINDOW)
    def _on_chat_started(self, event: ChatStartedByAgent, row: visitors.VisitorRow | None) -> None:
        """The visitor has a conversation now (their row links to it)."""
        self._replace(event.shopper_id, row)

    @live.on(ConversationStarted, topic=live.visitors_topic, load=_load_chatting_visitor, window=VISITORS_WINDOW)
    def _on_conversation_started(self, _event: ConversationStarted, row: visitors.VisitorRow | None) -> None:
        """The visitor wrote first: their row links to the conversation now."""
        if row is not None:
            self._replace(row.shopper_id, row)

    @live.on(ConversationFiled, topic=_row_changes, load=_load_filed_visitor, window=VISITORS_WINDOW)
    def _on_filed(self, event: ConversationFiled, row: visitors.VisitorRow | None) -> None:
        """Resolved, snoozed, woken or re-opened: the row's status follows."""
        self._replace(event.conversation.shopper_id, row)

    def _replace(self, shopper_id: int, row: visitors.VisitorRow | None) -> None:
        """The visitor's row as it is now: updated, added, or gone (left the store)."""
        listed = self.get_value("visitors")
        rows = [v for v in listed if v.shopper_id != shopper_id]
        if row is None and len(rows) == len(listed):
            return  # not listed, nor to be (e.g. a conversation of a shopper who is not here): nothing to push
        if row is not None:
            rows.append(VisitorView.from_row(row))
        self.visitors = self._sorted(rows)[:visitors.MAX_VISITORS]
