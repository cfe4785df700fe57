"""The open conversation (middle panel): its messages, the reply box, product
cards, typing. Messages arrive one by one from domain events."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import reflex as rx

from chatdash import live
from chatdash.events import MessagePosted, MessagesSeen, Typing
from chatdash.models import Sender
from chatdash.services import chat
from chatdash.services.conversations import CLIENT_ID_RE
from chatdash.settings import get_settings
from chatdash.state.auth import AuthState, admin_event
from chatdash.state.views import ChatMessage, with_message


class ChatState(AuthState):
    conversation_id: int = 0
    messages: list[ChatMessage] = []
    shopper_seen_id: int = 0
    reply_error: str = ""
    shopper_typing_seq: int = 0
    _shopper_id: int = 0

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
        if self.conversation_id and self.conversation_id != conversation_id:
            live.unsubscribe(self, live.conversation_topic(self.conversation_id))
        live.subscribe(self, live.conversation_topic(conversation_id))
        self.conversation_id = conversation_id
        self._shopper_id = opened.shopper_id
        self.messages = [ChatMessage.from_view(m) for m in opened.messages]
        self.shopper_seen_id = opened.shopper_seen_id
        self.shopper_typing_seq = 0
        self.reply_error = ""
        return True

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

    async def _send_product(self, product_id: Any) -> bool:
        """A product card into the open conversation (search, recommendations,
        related); `product_id` comes from the client, so it is checked here."""
        if not isinstance(product_id, int) or isinstance(product_id, bool) or not self.conversation_id:
            return False
        return await self._post(uuid.uuid4().hex, product_id=product_id)

    async def _post(self, client_id: str, text: str = "", product_id: int | None = None) -> bool:
        admin = self._checked_admin
        try:
            message, _created = await asyncio.to_thread(
                chat.admin_send, admin.id, self.conversation_id, client_id, text, product_id=product_id)
        except chat.ChatError as exc:
            self.reply_error = str(exc)
            return False
        self.reply_error = ""
        self._append(ChatMessage.from_view(message))
        return True

    @admin_event
    def typing(self, _value: Any = None):
        chat.typing(self.conversation_id, Sender.ADMIN)

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

    @live.on(MessagesSeen, topic=live.by_conversation)
    def _on_seen(self, event: MessagesSeen) -> None:
        if event.side == Sender.SHOPPER and event.up_to_id > self.shopper_seen_id:
            self.shopper_seen_id = event.up_to_id

    @live.on(Typing, topic=live.by_conversation)
    def _on_typing(self, event: Typing) -> None:
        if event.side == Sender.SHOPPER and event.conversation_id == self.conversation_id:
            self.shopper_typing_seq += 1
