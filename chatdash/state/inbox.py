"""The conversation list (left panel of the conversations page): read once on
load, then kept up to date row by row from domain events."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import reflex as rx

from chatdash import live
from chatdash.events import (
    ConversationFiled,
    ConversationStarted,
    ConversationSummary,
    InboxCounts,
    MessagePosted,
    MessagesSeen,
    PresenceChanged,
    ShopperEmailChanged,
    ShopperMerged,
)
from chatdash.services import auto_assign, search, team, workspace
from chatdash.settings import get_settings
from chatdash.state.auth import AuthState, admin_event
from chatdash.state.views import ConversationRow

# The list shows this many conversations at first and grows by as many on
# "Show more". Kept short: every change re-sends the whole list to the tab.
INBOX_PAGE = 50
INBOX_MAX = 1000
SEARCH_RESULTS = 50


class InboxState(AuthState):
    rows: list[ConversationRow] = []
    selected_id: int = 0
    # Open conversations in all (the list may show fewer).
    open_total: int = 0
    # The list's filter (see workspace.INBOX_FILTERS) and the other filters' counts.
    filter: str = "open"
    mine_total: int = 0
    unassigned_total: int = 0
    resolved_total: int = 0
    snoozed_total: int = 0

    # A search (by name, email, customer id or message text) replaces the
    # filter's rows while it has text.
    query: str = ""
    search_error: str = ""

    _limit: int = INBOX_PAGE
    _me: int = 0
    _team: dict[int, str] = {}  # agent id → initials

    @rx.var
    def shown_total(self) -> int:
        """How many conversations the current filter holds (for "Show more")."""
        if self.query.strip():
            return 0  # search results come in one page
        return {"mine": self.mine_total, "unassigned": self.unassigned_total, "snoozed": self.snoozed_total,
                "resolved": self.resolved_total}.get(self.filter, self.open_total)

    @rx.var
    def store_timezone(self) -> str:
        """The store's clock, for the snooze menu's own time."""
        return get_settings().store_timezone

    @rx.var
    def online_every_ms(self) -> int:
        """How often this page tells the server its agent is still here (auto-assign)."""
        return round(auto_assign.renew_every_seconds() * 1000)

    @admin_event
    async def load(self):
        live.subscribe(self, live.INBOX)
        await asyncio.to_thread(auto_assign.still_online, self._checked_admin.id)
        await self._read_team()
        self.query = self.search_error = ""  # a (re)loaded page starts from its filter
        await self._read()
        wanted = str(self.router.url.query_parameters.get("c", ""))
        if wanted.isdigit():
            await self._open(int(wanted))
        elif self.selected_id:
            await self._open(self.selected_id)

    @admin_event
    async def still_here(self):
        """Every `online_every_ms` from the open page: this agent is online
        (auto-assign gives new conversations only to those who are)."""
        await asyncio.to_thread(auto_assign.still_online, self._checked_admin.id)

    @admin_event
    async def show_more(self):
        self._limit = min(self._limit + INBOX_PAGE, INBOX_MAX)
        await self._read()

    @admin_event
    async def set_filter(self, name: Any):
        if name not in workspace.INBOX_FILTERS:
            return
        self.filter = name
        self._limit = INBOX_PAGE
        self.query = self.search_error = ""
        await self._read()

    @admin_event
    async def search(self, value: Any):
        """The search box (debounced on the page): results replace the list
        while it has text; emptied, the filter's list comes back."""
        raw = value if isinstance(value, str) else ""
        if len(raw) > search.MAX_QUERY:
            self.search_error = f"Searches can be at most {search.MAX_QUERY} characters."
            return
        self.query = raw  # as typed: the box shows it back
        query = raw.strip()
        if not query:
            self.search_error = ""
            await self._read()
            return
        try:
            found = await asyncio.to_thread(search.search, query, SEARCH_RESULTS)
        except search.ChatError as exc:
            self.search_error, self.rows = str(exc), []
            return
        self.search_error = ""
        self.rows = [self._row(s) for s in found]

    async def _read(self) -> None:
        self._me = self._checked_admin.id
        page = await asyncio.to_thread(workspace.inbox_page, self.filter, self._me, self._limit)
        self.rows = [self._row(s) for s in page.rows]
        self._counts(page.counts)

    async def _read_team(self) -> None:
        self._team = await asyncio.to_thread(_initials)

    def _row(self, summary: ConversationSummary) -> ConversationRow:
        return ConversationRow.from_summary(summary, self._team, get_settings().store_tz)

    def _counts(self, counts: InboxCounts) -> None:
        self.open_total = counts.open
        self.unassigned_total = counts.unassigned
        self.resolved_total = counts.resolved
        self.snoozed_total = counts.snoozed
        self.mine_total = counts.mine(self._me)

    def _shows(self, summary: ConversationSummary) -> bool:
        return workspace.matches(self.filter, self._me, summary)

    def _refresh_result(self, summary: ConversationSummary) -> None:
        """While searching, a result's row is brought up to date where it is;
        the results themselves change only with the query."""
        row = self._row(summary)
        self._update(lambda r: r.id == row.id, **{f.name: getattr(row, f.name)
                                                  for f in dataclasses.fields(row) if f.name != "id"})

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
        """The conversation moves to the top with its new preview (or leaves
        a list it no longer belongs in)."""
        if self.query.strip():
            self._refresh_result(event.conversation)
            return
        row = self._row(event.conversation)
        # get_value: the plain list, not Reflex's change-tracking proxy (which
        # would wrap every row read here).
        rows = [r for r in self.get_value("rows") if r.id != row.id]
        if self._shows(event.conversation):
            self.rows = [row, *rows][:self._limit]
        elif len(rows) != len(self.get_value("rows")):
            self.rows = rows

    @live.on(ConversationStarted, topic=live.inbox_topic)
    def _on_started(self, _event: ConversationStarted) -> None:
        self.open_total += 1
        self.unassigned_total += 1  # a new conversation has nobody yet

    @live.on(ConversationFiled, topic=live.inbox_topic, load=lambda _event: _initials())
    def _on_filed(self, event: ConversationFiled, initials: dict[int, str]) -> None:
        """Resolved, re-opened, assigned: the row takes its place in this
        list (by its last activity) or leaves it, and the counts follow."""
        self._team = initials
        self._counts(event.counts)
        if self.query.strip():
            self._refresh_result(event.conversation)
            return
        row = self._row(event.conversation)
        rows = [r for r in self.get_value("rows") if r.id != row.id]
        if self._shows(event.conversation):
            at = next((i for i, r in enumerate(rows) if r.stamp < row.stamp), len(rows))
            if at < self._limit:
                rows.insert(at, row)
            rows = rows[:self._limit]
        self.rows = rows

    @live.on(MessagesSeen, topic=live.inbox_topic)
    def _on_seen(self, event: MessagesSeen) -> None:
        self._update(lambda r: r.id == event.conversation_id, unread=event.unread)

    @live.on(PresenceChanged, topic=live.inbox_topic)
    def _on_presence(self, event: PresenceChanged) -> None:
        self._update(lambda r: r.shopper_id == event.shopper_id, on_site=event.on_site)

    @live.on(ShopperEmailChanged, topic=live.inbox_topic)
    def _on_email(self, event: ShopperEmailChanged) -> None:
        """A shopper known by nothing else is now known by their email."""
        self._update(lambda r: r.shopper_id == event.shopper_id, label=event.label)

    @live.on(ShopperMerged, topic=live.inbox_topic)
    def _on_merged(self, event: ShopperMerged) -> None:
        """A visitor identified as a known customer: their conversation joined
        the customer's (one row, with the customer's name and presence)."""
        if event.closed_conversation_id:
            self.open_total = max(0, self.open_total - 1)
        rows = [r for r in self.get_value("rows") if r.id != event.closed_conversation_id]
        if event.conversation is not None:
            row = self._row(event.conversation)
            at = next((i for i, r in enumerate(rows) if r.id == row.id), None)
            if at is not None:
                rows[at] = row
            elif self._shows(event.conversation):
                rows.insert(0, row)
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


def _initials() -> dict[int, str]:
    """Each team member's initials, for the rows' assignee badges."""
    return {m.id: m.initials for m in team.members()}
