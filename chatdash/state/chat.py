"""The open conversation (middle panel): its messages, the reply box, product
cards, typing. Messages arrive one by one from domain events."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime
from typing import Any

import reflex as rx

from chatdash import live
from chatdash.events import (
    ConversationFiled,
    MessagePosted,
    MessagesSeen,
    NotePosted,
    ShopperActivity,
    Typing,
    ViewersChanged,
)
from chatdash.models import MessageKind, Sender, Status
from chatdash.services import attribution, chat, saved_replies, team, workspace
from chatdash.services.conversations import CLIENT_ID_RE
from chatdash.settings import get_settings
from chatdash.state.auth import AuthState, admin_event
from chatdash.state.views import ChatMessage, money, wake_text, with_message


@dataclasses.dataclass
class SavedReplyOption:
    """A saved reply as the reply box offers it, filled in for this shopper."""

    shortcut: str = ""
    body: str = ""


@dataclasses.dataclass
class TeamOption:
    id: str = ""  # the select's value: the agent id as text
    name: str = ""


def attribution_line(a: attribution.ConversationAttribution) -> str:
    """ "3 products sent · 1 clicked · 1 bought · $54.00" ("" while nothing was sent)."""
    if not a.sent:
        return ""
    sent = f"{a.sent} product{'s' if a.sent != 1 else ''} sent"
    return f"{sent} · {a.clicked} clicked · {a.ordered} bought · {money(a.revenue_cents, a.currency)}"


def _load_attribution(event: ShopperActivity) -> tuple[int, str]:
    """The line of the shopper's conversation after store activity (a click, a
    cart, an order): one small read per conversation on screen, shared by its tabs."""
    return event.conversation_id, attribution_line(attribution.conversation_attribution(event.conversation_id))


def _load_attribution_after_card(event: MessagePosted) -> tuple[int, str] | None:
    """A product card was sent: the line counts it (no read for text messages)."""
    if event.message.kind != MessageKind.PRODUCT:
        return None
    return event.conversation_id, attribution_line(attribution.conversation_attribution(event.conversation_id))


class ChatState(AuthState):
    conversation_id: int = 0
    messages: list[ChatMessage] = []
    shopper_seen_id: int = 0
    reply_error: str = ""
    shopper_typing_seq: int = 0
    _shopper_id: int = 0

    # The agent workspace: status, assignee, notes, who else is here.
    status: str = "open"
    assignee: str = "0"  # agent id as text ("0": nobody), the assign menu's value
    wakes_text: str = ""  # snoozed: when it comes back, on the store's clock
    team_options: list[TeamOption] = []
    note_mode: bool = False
    note_error: str = ""
    viewers_text: str = ""  # "Dana is viewing" (the other agents only)
    agent_typing_text: str = ""
    agent_typing_seq: int = 0
    workspace_error: str = ""
    saved_replies: list[SavedReplyOption] = []
    # Under the chat: what the products sent here earned (services/attribution.py).
    attribution_text: str = ""

    @rx.var
    def max_chars(self) -> int:
        return get_settings().message_max_chars

    @rx.var
    def has_selection(self) -> bool:
        return self.conversation_id > 0

    async def _open(self, conversation_id: int) -> bool:
        """Show one conversation (called by the inbox on select and load)."""
        opened = await asyncio.to_thread(chat.open_for_admin, conversation_id)
        if opened is None:
            self.reply_error = "That conversation no longer exists."
            return False
        conversation_id = opened.conversation_id  # a merged conversation opens where it goes on
        if self.conversation_id and self.conversation_id != conversation_id:
            live.unsubscribe(self, live.conversation_topic(self.conversation_id))
        live.subscribe(self, live.conversation_topic(conversation_id))
        self.conversation_id = conversation_id
        self._shopper_id = opened.shopper_id
        self.messages = [ChatMessage.from_view(m) for m in opened.messages]
        self.shopper_seen_id = opened.shopper_seen_id
        self.shopper_typing_seq = 0
        self.reply_error = ""
        await self._open_workspace(conversation_id)
        await self._show_attribution()
        return True

    async def _show_attribution(self) -> None:
        found = await asyncio.to_thread(attribution.conversation_attribution, self.conversation_id)
        self.attribution_text = attribution_line(found)

    # ----- replying ------------------------------------------------------
    @admin_event
    async def send_reply(self, form_data: Any):
        if not self.conversation_id:
            return None
        text = form_data.get("reply", "") if isinstance(form_data, dict) else ""
        # The reply box sends an id made in the browser (chat.js), kept until the
        # reply is stored: a double submit or a re-send after a drop is one message.
        client_id = form_data.get("client_id") if isinstance(form_data, dict) else None
        if not isinstance(client_id, str) or not CLIENT_ID_RE.fullmatch(client_id):
            client_id = uuid.uuid4().hex
        if await self._post(client_id, text=str(text)):
            return [rx.set_value("reply-input", ""), rx.set_value("reply-client-id", "")]
        return None

    async def _send_product(self, product_id: Any, source: Any) -> bool:
        """A product card into the open conversation; `source` says where the
        admin found it (a CardSource: search, recommended or a related list).
        Both come from the client, so they are checked here."""
        if not isinstance(product_id, int) or isinstance(product_id, bool) or not self.conversation_id:
            return False
        if not isinstance(source, str) or source not in chat.CARD_SOURCES:
            self.reply_error = "Unknown product source."
            return False
        if await self._post(uuid.uuid4().hex, product_id=product_id, source=source):
            await self._show_attribution()
            return True
        return False

    async def _post(self, client_id: str, text: str = "", product_id: int | None = None,
                    source: str | None = None) -> bool:
        admin = self._checked_admin
        try:
            message, _created = await asyncio.to_thread(
                chat.admin_send, admin.id, self.conversation_id, client_id, text, product_id=product_id,
                source=source)
        except chat.ChatError as exc:
            self.reply_error = str(exc)
            return False
        self.reply_error = ""
        self._append(ChatMessage.from_view(message))
        return True

    @admin_event
    async def typing(self, _value: Any = None):
        # The shopper and the other agents see it; throttled on the server.
        admin = self._checked_admin
        await workspace.agent_typing(admin.id, admin.name or admin.email, self.conversation_id)

    def _append(self, message: ChatMessage) -> None:
        # get_value: the plain list, not Reflex's change-tracking proxy.
        updated = with_message(self.get_value("messages"), message, chat.HISTORY_LIMIT)
        if updated is not None:
            self.messages = updated

    # ----- pushed --------------------------------------------------------
    @live.on(MessagePosted, topic=live.by_conversation)
    def _on_message(self, event: MessagePosted) -> None:
        if event.conversation_id != self.conversation_id:
            return
        self._append(ChatMessage.from_view(event.message))
        if event.message.sender == Sender.SHOPPER:
            self.shopper_typing_seq = 0
            self.shopper_seen_id = max(self.shopper_seen_id, event.message.id)
            # The admin has it on screen: it is seen (the shopper's widget shows it).
            live.background(chat.mark_seen, event.conversation_id, Sender.ADMIN, event.message.id)

    @live.on(MessagePosted, topic=live.by_conversation, load=_load_attribution_after_card)
    def _on_card_sent(self, _event: MessagePosted, line: tuple[int, str] | None) -> None:
        if line is not None and line[0] == self.conversation_id:
            self.attribution_text = line[1]

    @live.on(ShopperActivity, topic=live.by_conversation, load=_load_attribution)
    def _on_store_activity(self, _event: ShopperActivity, line: tuple[int, str]) -> None:
        """A click, cart or order of this shopper may have moved the line."""
        if line[0] == self.conversation_id and line[1] != self.attribution_text:
            self.attribution_text = line[1]

    @live.on(MessagesSeen, topic=live.by_conversation)
    def _on_seen(self, event: MessagesSeen) -> None:
        if event.side == Sender.SHOPPER and event.up_to_id > self.shopper_seen_id:
            self.shopper_seen_id = event.up_to_id

    @live.on(Typing, topic=live.by_conversation)
    def _on_typing(self, event: Typing) -> None:
        if event.side == Sender.SHOPPER and event.conversation_id == self.conversation_id:
            self.shopper_typing_seq += 1
        self._on_agent_typing(event)

    # ----- the agent workspace -------------------------------------------
    async def _open_workspace(self, conversation_id: int) -> None:
        """Status, assignee, the team to assign to, and who else is viewing."""
        me = self._checked_admin
        previous, self._viewing = self._viewing, conversation_id
        viewers = await asyncio.to_thread(workspace.view, me.id, conversation_id, previous)
        filing = await asyncio.to_thread(workspace.filing, conversation_id)
        members = await asyncio.to_thread(team.members)
        library = await asyncio.to_thread(saved_replies.for_shopper, self._shopper_id)
        self.saved_replies = [SavedReplyOption(r.shortcut, r.body) for r in library]
        self.team_options = [TeamOption(str(m.id), f"{m.name} (me)" if m.id == me.id else m.name)
                             for m in members if not m.pending]
        self._show_filing(filing.status if filing else Status.OPEN, filing.assignee_id if filing else None,
                          filing.snoozed_until if filing else None)
        self._show_viewers(viewers)
        self.agent_typing_seq, self.agent_typing_text = 0, ""
        self.note_error = self.workspace_error = ""

    _viewing: int = 0

    def _show_filing(self, status: str, assignee_id: int | None, snoozed_until: datetime | None = None) -> None:
        self.status = status
        self.assignee = str(assignee_id or 0)
        self.wakes_text = wake_text(snoozed_until, get_settings().store_tz) if status == Status.SNOOZED else ""

    def _show_viewers(self, viewers) -> None:
        me = self._checked_admin.id if self._checked_admin else 0
        others = [v.name for v in viewers if v.id != me]
        if not others:
            self.viewers_text = ""
        elif len(others) == 1:
            self.viewers_text = f"{others[0]} is viewing"
        else:
            self.viewers_text = f"{', '.join(others[:-1])} and {others[-1]} are viewing"

    @admin_event
    async def resolve(self):
        await self._file(workspace.set_status, Status.RESOLVED)

    @admin_event
    async def reopen(self):
        await self._file(workspace.set_status, Status.OPEN)

    @admin_event
    async def snooze(self, choice: Any):
        """From the snooze menu: "1h" or "tomorrow" (9:00 store time)."""
        await self._snooze(choice)

    @admin_event
    async def snooze_at(self, form_data: Any):
        """The snooze menu's own time: its datetime input, on the store's clock."""
        await self._snooze(form_data.get("until", "") if isinstance(form_data, dict) else None)

    async def _snooze(self, choice: Any) -> None:
        if not isinstance(choice, str) or not choice or len(choice) > 32:
            self.workspace_error = "Choose when the conversation should come back."
            return
        await self._file(workspace.snooze, choice)  # the use case checks the choice itself

    @admin_event
    async def unsnooze(self):
        await self._file(workspace.set_status, Status.OPEN)

    @admin_event
    async def assign(self, assignee: Any):
        """From the assign menu: an agent id as text, "0" for nobody."""
        if isinstance(assignee, str) and assignee.isdigit() and len(assignee) <= 12:
            assignee = int(assignee)
        if not isinstance(assignee, int) or isinstance(assignee, bool) or assignee < 0:
            self.workspace_error = "No such team member."
            return
        await self._file(workspace.assign, assignee)

    @admin_event
    async def assign_to_me(self):
        await self._file(workspace.assign, self._checked_admin.id)

    async def _file(self, use_case, value: Any) -> None:
        if not self.conversation_id:
            return
        try:
            await asyncio.to_thread(use_case, self._checked_admin.id, self.conversation_id, value)
        except workspace.ChatError as exc:
            self.workspace_error = str(exc)
            return
        self.workspace_error = ""
        # What this tab shows now; the push that follows changes nothing.
        filing = await asyncio.to_thread(workspace.filing, self.conversation_id)
        if filing is not None:
            self._show_filing(filing.status, filing.assignee_id, filing.snoozed_until)

    @admin_event
    def set_note_mode(self, value: Any):
        self.note_mode = bool(value)

    @admin_event
    async def send_note(self, form_data: Any):
        """A private note: the other agents see it, the shopper never does."""
        if not self.conversation_id:
            return None
        text = form_data.get("note", "") if isinstance(form_data, dict) else ""
        client_id = form_data.get("client_id") if isinstance(form_data, dict) else None
        if not isinstance(client_id, str) or not CLIENT_ID_RE.fullmatch(client_id):
            client_id = uuid.uuid4().hex
        try:
            note, _created = await asyncio.to_thread(
                workspace.post_note, self._checked_admin.id, self.conversation_id, client_id, text)
        except workspace.ChatError as exc:
            self.note_error = str(exc)
            return None
        self.note_error = ""
        self._append(ChatMessage.from_view(note))
        return rx.set_value("note-input", "")

    @admin_event
    async def still_viewing(self):
        """Every VIEWER_RENEW_SECONDS from the open page: keeps "… is viewing" true."""
        if self.conversation_id:
            viewers = await asyncio.to_thread(workspace.view, self._checked_admin.id, self.conversation_id)
            self._show_viewers(viewers)

    @live.on(ConversationFiled, topic=live.by_conversation)
    def _on_filed(self, event: ConversationFiled) -> None:
        if event.conversation_id == self.conversation_id:
            self._show_filing(event.conversation.status, event.conversation.assignee_id,
                              event.conversation.snoozed_until)

    @live.on(NotePosted, topic=live.by_conversation)
    def _on_note(self, event: NotePosted) -> None:
        if event.conversation_id == self.conversation_id:
            self._append(ChatMessage.from_view(event.note))

    @live.on(ViewersChanged, topic=live.by_conversation)
    def _on_viewers(self, event: ViewersChanged) -> None:
        if event.conversation_id == self.conversation_id:
            self._show_viewers(event.viewers)

    def _on_agent_typing(self, event: Typing) -> None:
        me = self._checked_admin.id if self._checked_admin else 0
        if event.side == Sender.ADMIN and event.agent_id != me and event.conversation_id == self.conversation_id:
            self.agent_typing_text = f"{event.agent_name} is typing…"
            self.agent_typing_seq += 1
