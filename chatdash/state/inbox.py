"""The conversation list (left panel of the conversations page): read once on
load, then kept up to date row by row from domain events."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from chatdash import live
from chatdash.events import ConversationStarted, MessagePosted, MessagesSeen, PresenceChanged, ShopperMerged
from chatdash.services import chat
from chatdash.state.auth import AuthState, admin_event
from chatdash.state.views import ConversationRow

# The list shows this many conversations at first and grows by as many on
# "Show more". Kept short: every change re-sends the whole list to the tab.
INBOX_PAGE = 50
INBOX_MAX = 1000


class InboxState(AuthState):
    rows: list[ConversationRow] = []
    selected_id: int = 0
    # Open conversations in all (the list may show fewer).
    open_total: int = 0

    _limit: int = INBOX_PAGE

    @admin_event
    async def load(self):
        live.subscribe(self, live.INBOX)
        await self._read()
        wanted = str(self.router.url.query_parameters.get("c", ""))
        if wanted.isdigit():
            await self._open(int(wanted))
        elif self.selected_id:
            await self._open(self.selected_id)

    @admin_event
    async def show_more(self):
        self._limit = min(self._limit + INBOX_PAGE, INBOX_MAX)
        await self._read()

    async def _read(self) -> None:
        summaries, total = await asyncio.to_thread(chat.inbox_page, self._limit)
        self.rows = [ConversationRow.from_summary(s) for s in summaries]
        self.open_total = total

    @admin_event
    async def select(self, conversation_id: Any):
        if isinstance(conversation_id, int) and not isinstance(conversation_id, bool) and conversation_id > 0:
            await self._open(conversation_id)

    async def _open(self, conversation_id: int) -> None:
        from chatdash.state.chat import ChatState
        from chatdash.state.shopper_panel import ShopperPanelState

        chat_state = await self.get_state(ChatState)
        if not await chat_state._open(conversation_id):
            return
        self.selected_id = chat_state.conversation_id
        panel = await self.get_state(ShopperPanelState)
        await panel._open(conversation_id, chat_state._shopper_id)

    # ----- pushed --------------------------------------------------------
    @live.on(MessagePosted, topic=live.inbox_topic)
    def _on_message(self, event: MessagePosted) -> None:
        """The conversation moves to the top with its new preview."""
        row = ConversationRow.from_summary(event.conversation)
        # get_value: the plain list, not Reflex's change-tracking proxy (which
        # would wrap every row read here).
        rows = [r for r in self.get_value("rows") if r.id != row.id]
        self.rows = [row, *rows][:self._limit]

    @live.on(ConversationStarted, topic=live.inbox_topic)
    def _on_started(self, _event: ConversationStarted) -> None:
        self.open_total += 1

    @live.on(MessagesSeen, topic=live.inbox_topic)
    def _on_seen(self, event: MessagesSeen) -> None:
        self._update(lambda r: r.id == event.conversation_id, unread=event.unread)

    @live.on(PresenceChanged, topic=live.inbox_topic)
    def _on_presence(self, event: PresenceChanged) -> None:
        self._update(lambda r: r.shopper_id == event.shopper_id, on_site=event.on_site)

    @live.on(ShopperMerged, topic=live.inbox_topic)
    def _on_merged(self, event: ShopperMerged) -> None:
        """A visitor identified as a known customer: their conversation joined
        the customer's (one row, with the customer's name and presence)."""
        if event.closed_conversation_id:
            self.open_total = max(0, self.open_total - 1)
        rows = [r for r in self.get_value("rows") if r.id != event.closed_conversation_id]
        if event.conversation is not None:
            row = ConversationRow.from_summary(event.conversation)
            at = next((i for i, r in enumerate(rows) if r.id == row.id), None)
            if at is None:
                rows.insert(0, row)
            else:
                rows[at] = row
        self.rows = rows[:self._limit]

    def _update(self, match, **changes: Any) -> None:
        """Change fields of the matching rows; assign only when something changed
        (an assignment re-sends the list)."""
        changed = False
        rows = list(self.get_value("rows"))
        for i, row in enumerate(rows):
            if match(row) and any(getattr(row, k) != v for k, v in changes.items()):
                rows[i] = dataclasses.replace(row, **changes)
                changed = True
        if changed:
            self.rows = rows

