"""Settings → Saved replies: the team's library (any agent may add or remove)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from chatdash.services import saved_replies
from chatdash.services.conversations import ChatError
from chatdash.state.auth import AuthState, admin_event


@dataclasses.dataclass
class SavedReplyRow:
    id: int = 0
    shortcut: str = ""
    body: str = ""


class SavedRepliesState(AuthState):
    replies: list[SavedReplyRow] = []
    new_shortcut: str = ""
    new_body: str = ""
    saved_error: str = ""

    @admin_event
    async def load(self):
        await self._read()
        self.saved_error = ""

    async def _read(self) -> None:
        found = await asyncio.to_thread(saved_replies.library)
        self.replies = [SavedReplyRow(r.id, r.shortcut, r.body) for r in found]

    @admin_event
    def set_new_shortcut(self, value: Any):
        self.new_shortcut = str(value)[:41]

    @admin_event
    def set_new_body(self, value: Any):
        self.new_body = str(value)[: saved_replies.MAX_CHARS + 1]

    @admin_event
    async def add(self):
        try:
            await asyncio.to_thread(saved_replies.add, self.new_shortcut, self.new_body)
        except ChatError as exc:
            self.saved_error = str(exc)
            return
        self.saved_error = self.new_shortcut = self.new_body = ""
        await self._read()

    @admin_event
    async def remove(self, reply_id: Any):
        try:
            await asyncio.to_thread(saved_replies.remove, reply_id)
        except ChatError as exc:
            self.saved_error = str(exc)
            return
        await self._read()
