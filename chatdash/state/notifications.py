"""The notification icon's count, shown in the top bar of every admin page:
read once on load, then set from the count each event carries."""

from __future__ import annotations

import asyncio

from chatdash import live
from chatdash.events import MessagePosted, MessagesSeen
from chatdash.services import chat
from chatdash.state.auth import AuthState, admin_event


class NotificationState(AuthState):
    unseen_count: int = 0

    @admin_event
    async def refresh(self):
        live.subscribe(self, live.INBOX)
        self.unseen_count = await asyncio.to_thread(chat.unseen_count)

    @live.on(MessagePosted, topic=live.inbox_topic)
    def _on_message(self, event: MessagePosted) -> None:
        self.unseen_count = event.unseen_conversations

    @live.on(MessagesSeen, topic=live.inbox_topic)
    def _on_seen(self, event: MessagesSeen) -> None:
        self.unseen_count = event.unseen_conversations
