"""The shopper's chat widget. A shopper reaches only their own conversation:
the server resolves it from a signed visitor token, never from an id the
client sends."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import reflex as rx

from chatdash import live
from chatdash.db import session_scope
from chatdash.models import Conversation, Sender, Shopper
from chatdash.services import conversations as convs
from chatdash.services import identity
from chatdash.services.ratelimit import limiter
from chatdash.settings import get_settings
from chatdash.state.views import ChatMessage

log = logging.getLogger("chatdash.widget")

MAX_RESEND = 50


def _send_limiter():
    return limiter("widget-send", 30, 60)


def _start_limiter():
    return limiter("widget-start", 5, 3600)


class WidgetState(rx.State):
    # The shopper's own signed visitor token. The embed passes it in the URL;
    # opened on its own, the page keeps it with chat.js (storage may be blocked
    # in a third-party iframe, so it is not a Reflex client-storage var).
    visitor_token: str = ""
    messages: list[ChatMessage] = []
    admin_seen_id: int = 0
    error: str = ""
    ready: bool = False
    admin_typing_seq: int = 0

    _visitor_id: str = ""
    _shopper_id: int = 0
    _conversation_id: int = 0

    @rx.var
    def store_name(self) -> str:
        return get_settings().store_name

    @rx.var
    def max_chars(self) -> int:
        return get_settings().message_max_chars

    # ----- loading -------------------------------------------------------
    @rx.event
    def load(self):
        candidate = str(self.router.url.query_parameters.get("v", ""))[:128]
        if identity.verify_visitor_token(get_settings().secret_key, candidate):
            return self._start(candidate)
        # No (valid) token from an embed: ask the page for the one it kept.
        return rx.call_script(
            "window.chatdashOutbox ? window.chatdashOutbox.storedVisitor() : ''",
            callback=WidgetState.adopt_visitor,
        )

    @rx.event
    def adopt_visitor(self, token: Any):
        settings = get_settings()
        candidate = token[:128] if isinstance(token, str) else ""
        if not identity.verify_visitor_token(settings.secret_key, candidate):
            candidate = identity.issue_visitor_token(settings.secret_key)
        return self._start(candidate)

    def _start(self, token: str):
        settings = get_settings()
        params = self.router.url.query_parameters
        visitor_id = identity.verify_visitor_token(settings.secret_key, token)
        self.visitor_token = token
        self._visitor_id = visitor_id
        with session_scope() as session:
            shopper = convs.get_or_create_shopper(session, visitor_id)
            customer_id = str(params.get("c", ""))[:128]
            if customer_id and identity.verify_customer(
                settings.store_secret, customer_id, str(params.get("h", ""))[:128]
            ):
                shopper = convs.identify_customer(
                    session, shopper, customer_id,
                    name=str(params.get("n", ""))[:200], email=str(params.get("e", ""))[:320],
                )
            self._shopper_id = shopper.id
            conv = convs.open_conversation_for(session, shopper.id)
            self._conversation_id = conv.id if conv else 0
        self.error = ""
        self._reload()
        if self._conversation_id:
            live.subscribe(live.conversation_topic(self._conversation_id),
                           self.router.session.client_token, WidgetState)
        self.ready = True
        # Messages typed earlier and not yet stored (offline, reload) go now.
        return rx.call_script(
            f"window.chatdashOutbox && window.chatdashOutbox.init({visitor_id!r}, {token!r})",
            callback=WidgetState.resend,
        )

    def _reload(self) -> None:
        if not self._conversation_id:
            self.messages = []
            self.admin_seen_id = 0
            return
        with session_scope() as session:
            conv = session.get(Conversation, self._conversation_id)
            views = convs.list_messages(session, self._conversation_id)
            changed = convs.mark_seen(session, conv, Sender.SHOPPER)
            self.admin_seen_id = conv.admin_seen_message_id
        self.messages = [ChatMessage.from_view(v) for v in views]
        if changed:
            live.publish(live.conversation_topic(self._conversation_id), "_on_conversation_changed",
                         exclude=self)

    # ----- sending -------------------------------------------------------
    def _store(self, item: Any) -> tuple[str, str | None]:
        """Store one outbox item; returns (client id, error or None)."""
        if not isinstance(item, dict):
            return "", "Malformed message."
        client_id = item.get("id")
        text = item.get("text")
        if not isinstance(client_id, str) or not isinstance(text, str):
            return "", "Malformed message."
        if not self._shopper_id:
            return client_id, "The chat is still connecting; try again in a moment."
        settings = get_settings()
        with session_scope() as session:
            conv = session.get(Conversation, self._conversation_id) if self._conversation_id else None
            if not _send_limiter().hit(self._visitor_id):
                return client_id, "You are sending messages too quickly. Wait a minute and try again."
            try:
                convs.clean_text(text, settings.message_max_chars)
                convs.check_client_id(client_id)
            except convs.ChatError as exc:
                return client_id, str(exc)
            if conv is None:
                if not _start_limiter().hit(self._visitor_id):
                    return client_id, "Too many new conversations. Try again later."
                conv, _created = convs.start_conversation(session, self._shopper_id)
            _msg, created_msg = convs.post_message(
                session, conv, Sender.SHOPPER, client_id, text, max_chars=settings.message_max_chars
            )
            first_message = created_msg and convs.shopper_message_count(session, conv.id) == 1
            shopper = session.get(Shopper, self._shopper_id)
            label = convs.shopper_label(shopper)
            conv_id = conv.id
        if conv_id != self._conversation_id:
            self._conversation_id = conv_id
            live.subscribe(live.conversation_topic(conv_id), self.router.session.client_token, WidgetState)
        if created_msg:
            live.publish(live.conversation_topic(conv_id), "_on_conversation_changed",
                         exclude=self)
            live.publish(live.INBOX, "_on_inbox_changed")
        if first_message:
            _email_new_conversation(conv_id, label, text)
        return client_id, None

    @rx.event
    def send(self, item: Any):
        if item is None:
            return None
        client_id, error = self._store(item)
        self._reload()
        if error:
            self.error = error
            return rx.call_script(f"window.chatdashOutbox.fail({client_id!r}, {error!r})")
        self.error = ""
        return rx.call_script(f"window.chatdashOutbox.ack({client_id!r})")

    @rx.event
    def resend(self, items: Any):
        if not isinstance(items, list):
            return None
        acks, fails = [], []
        for item in items[:MAX_RESEND]:
            client_id, error = self._store(item)
            (fails if error else acks).append(client_id)
        self._reload()
        if not acks and not fails:
            return None
        return rx.call_script(
            f"window.chatdashOutbox.ackMany({acks!r}, {fails!r})"
        )

    @rx.event
    def typing(self, _value: Any = None):
        if self._conversation_id:
            live.publish(live.conversation_topic(self._conversation_id), "_on_typing", "shopper",
                         exclude=self)

    @rx.event
    def dismiss_error(self):
        self.error = ""

    # ----- pushed from other clients (underscore: not callable as events) --
    async def _on_conversation_changed(self) -> None:
        live.subscribe(live.conversation_topic(self._conversation_id),
                       self.router.session.client_token, WidgetState)
        before = self.messages[-1].id if self.messages else 0
        self._reload()
        if self.messages and self.messages[-1].id != before and self.messages[-1].sender == Sender.ADMIN:
            self.admin_typing_seq = 0

    async def _on_typing(self, side: str) -> None:
        if side == "admin":
            self.admin_typing_seq += 1

    async def _on_shopper_activity(self) -> None:
        """The widget shows nothing of the shopper's own tracking."""


def _email_new_conversation(conversation_id: int, label: str, first_message: str) -> None:
    from chatdash.services import notify, store_settings

    settings = get_settings()
    with session_scope() as session:
        prefs = store_settings.get_email_notifications(session)
    if not prefs.enabled or not prefs.recipients:
        return
    message = notify.new_conversation_email(
        store_name=settings.store_name,
        shopper_label=label,
        first_message=first_message,
        conversation_url=f"{settings.public_url.rstrip('/')}/admin/conversations?c={conversation_id}",
        sender=settings.smtp_from,
        recipients=prefs.recipients,
    )
    task = asyncio.get_running_loop().create_task(
        notify.send_email_async(notify.SmtpConfig.from_settings(settings), message)
    )
    live._tasks.add(task)
    task.add_done_callback(live._done)
