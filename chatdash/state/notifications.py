"""The notification icon's count, shown in the top bar of every admin page."""

from __future__ import annotations

import reflex as rx

from chatdash import live
from chatdash.db import session_scope
from chatdash.services import notify
from chatdash.state.auth import AuthState


class NotificationState(AuthState):
    unseen_count: int = 0

    @rx.event
    def refresh(self):
        if self._require_admin() is None:
            return
        live.subscribe(live.INBOX, self.router.session.client_token, NotificationState)
        self._count()

    def _count(self) -> None:
        with session_scope() as session:
            self.unseen_count = notify.unseen_conversation_count(session)

    async def _on_inbox_changed(self) -> None:
        if self._require_admin() is None:
            return
        self._count()
