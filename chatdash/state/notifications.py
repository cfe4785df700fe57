"""The notification icon's count, shown in the top bar of every admin page:
read once on load, then set from the count each event carries; and the
chime on a shopper's new message, when this member chose the sound."""

from __future__ import annotations

import asyncio

from chatdash import live
from chatdash.events import MessagePosted, MessagesSeen
from chatdash.models import Sender
from chatdash.services import agent_notifications, chat
from chatdash.state.auth import AuthState, admin_event


class NotificationState(AuthState):
    unseen_count: int = 0
    # This member's choice (Settings → My notifications), and a number that
    # grows with each shopper message: assets/chat.js chimes when it grows.
    sound_on: bool = True
    chime_seq: int = 0

    @admin_event
    async def refresh(self):
        live.subscribe(self, live.INBOX)
        self.unseen_count = await asyncio.to_thread(chat.unseen_count)
        mine = await asyncio.to_thread(agent_notifications.choices, self._checked_admin.id)
        self.sound_on = mine.sound if mine is not None else True

    @live.on(MessagePosted, topic=live.inbox_topic)
    def _on_message(self, event: MessagePosted) -> None:
        self.unseen_count = event.unseen_conversations
        if event.message.sender == Sender.SHOPPER and self.sound_on:
            self.chime_seq += 1

    @live.on(MessagesSeen, topic=live.inbox_topic)
    def _on_seen(self, event: MessagesSeen) -> None:
        self.unseen_count = event.unseen_conversations
