"""The shopper's chat widget. A shopper reaches only their own conversation:
the server resolves it from a signed visitor token, never from an id the
client sends."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import reflex as rx

from chatdash import live
from chatdash.events import ChatStartedByAgent, EmailAskDue, MessagePosted, MessagesSeen, ShopperEmailChanged, Typing
from chatdash.models import Sender
from chatdash.services import chat, followup, identity
from chatdash.settings import get_settings
from chatdash.state.client import client_of
from chatdash.state.views import ChatMessage, with_message

MAX_RESEND = 50
# Not an error: the item stays in the shopper's outbox and goes with the next flush.
NOT_YET = "not yet"
LINK_EXPIRED = "This link has expired. Write to us here and we will answer."


def outbox_call(expression: str) -> str:
    """JavaScript calling `window.chatdashOutbox.<expression>` once chat.js has
    loaded: on a fast (re)load the page's first events can run before it has."""
    return ("new Promise((ok) => { const go = () => window.chatdashOutbox ? ok(window.chatdashOutbox."
            f"{expression}) : setTimeout(go, 20); go(); }})")


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
    # Offline follow-up: nobody answered in time, so the widget asks for an
    # email (email_ask); once given, where replies also go (followup_email).
    email_ask: bool = False
    followup_email: str = ""
    email_error: str = ""

    _visitor_id: str = ""
    _shopper_id: int = 0
    _conversation_id: int = 0
    # Loaded collapsed by the embed (a page after the one the chat was open
    # on): nothing is on the shopper's screen, so nothing is marked seen.
    _collapsed: bool = False
    _link_expired: bool = False

    @rx.var
    def store_name(self) -> str:
        return get_settings().store_name

    @rx.var
    def max_chars(self) -> int:
        return get_settings().message_max_chars

    # ----- loading -------------------------------------------------------
    @rx.event
    async def load(self):
        params = self.router.url.query_parameters
        if params.get("r"):
            return await self._resume(str(params.get("r", ""))[:128])
        candidate = str(params.get("v", ""))[:128]
        if identity.verify_visitor_token(get_settings().secret_key, candidate):
            return await self._start(candidate)
        # No (valid) token from an embed: ask the page for the one it kept.
        return rx.call_script(outbox_call("storedVisitor()"), callback=WidgetState.adopt_visitor)

    @rx.event
    async def adopt_visitor(self, token: Any):
        settings = get_settings()
        candidate = token[:128] if isinstance(token, str) else ""
        if not identity.verify_visitor_token(settings.secret_key, candidate):
            candidate = identity.issue_visitor_token(settings.secret_key)
        return await self._start(candidate)

    async def _resume(self, link_token: str):
        """Opened from a follow-up email's link: this browser speaks for the
        shopper the link was sent to, in the same conversation."""
        visitor_id = await asyncio.to_thread(followup.resume, link_token)
        if visitor_id is None:
            # Unknown, expired or revoked: this browser chats as itself, told why.
            self._link_expired = True
            return rx.call_script(outbox_call("storedVisitor()"), callback=WidgetState.adopt_visitor)
        started = await self._start(identity.visitor_token_for(get_settings().secret_key, visitor_id))
        # The link's token leaves the address bar (and any copy of it); this
        # browser keeps the visitor token (chat.js), so a reload stays here.
        if started is None:
            return None
        return [started, rx.call_script("history.replaceState(null, '', location.pathname)")]

    async def _start(self, token: str):
        settings = get_settings()
        params = self.router.url.query_parameters
        visitor_id = identity.verify_visitor_token(settings.secret_key, token)
        customer = None
        customer_id = str(params.get("c", ""))[:128]
        # The name and email count only when the store's HMAC covers them too.
        verified = customer_id and identity.verify_customer_identity(
            settings.store_secret, customer_id, str(params.get("h", ""))[:128],
            name=str(params.get("n", ""))[:1001], email=str(params.get("e", ""))[:1001])
        if verified:
            customer = chat.Customer(customer_id, name=verified.name[:200], email=verified.email[:320])
        try:
            self._collapsed = params.get("collapsed") == "1"
            opened = await asyncio.to_thread(chat.open_widget, visitor_id, customer, client=client_of(self),
                                             seen=not self._collapsed)
        except chat.ChatError as exc:  # over the new-visitor limits: nothing stored
            self.error = str(exc)
            return None
        self.visitor_token = token
        self._visitor_id = visitor_id
        self._shopper_id = opened.shopper_id
        self.messages = [ChatMessage.from_view(m) for m in opened.messages]
        self.admin_seen_id = opened.admin_seen_id
        self._show_followup(opened.followup)
        self.error = LINK_EXPIRED if self._link_expired else ""
        self._link_expired = False
        self._follow(opened.conversation_id)
        # An agent may start a chat with this shopper while the widget is open
        # (with no conversation yet to follow): it arrives by the shopper's topic.
        live.subscribe(self, live.shopper_topic(opened.shopper_id))
        self.ready = True
        # Messages typed earlier and not yet stored (offline, reload) go now.
        return rx.call_script(outbox_call(f"init({visitor_id!r}, {token!r})"), callback=WidgetState.resend)

    def _follow(self, conversation_id: int) -> None:
        if conversation_id and conversation_id != self._conversation_id:
            self._conversation_id = conversation_id
            live.subscribe(self, live.conversation_topic(conversation_id))

    # ----- sending -------------------------------------------------------
    async def _store(self, item: Any) -> tuple[str, str | None]:
        """Store one outbox item; returns (client id, error, NOT_YET or None)."""
        if not isinstance(item, dict):
            return "", "Malformed message."
        client_id = item.get("id")
        if not isinstance(client_id, str):
            return "", "Malformed message."
        if not self._shopper_id:
            # A flush queued while the socket was down can arrive before this
            # tab's load: the load's own flush sends it.
            return client_id, NOT_YET
        try:
            conversation_id, message, _created = await asyncio.to_thread(
                chat.shopper_send, self._visitor_id, self._shopper_id, self._conversation_id,
                client_id, item.get("text"), client=client_of(self), origin=self.router.session.client_token)
        except chat.ChatError as exc:
            return client_id, str(exc)
        if conversation_id != self._conversation_id:
            self._follow(conversation_id)
            # An answer stored before this tab subscribed would be missed otherwise.
            last = self.messages[-1].id if self.messages else 0
            for missed in await asyncio.to_thread(chat.messages_after, conversation_id, last):
                self._append(ChatMessage.from_view(missed))
        self._append(ChatMessage.from_view(message))
        return client_id, None

    @rx.event
    async def send(self, item: Any):
        if item is None:
            return None
        client_id, error = await self._store(item)
        if error == NOT_YET:
            return None
        if error:
            self.error = error
            return rx.call_script(f"window.chatdashOutbox.fail({client_id!r}, {error!r})")
        self.error = ""
        return rx.call_script(f"window.chatdashOutbox.ack({client_id!r})")

    @rx.event
    async def resend(self, items: Any):
        """Everything in the shopper's outbox: on each Send and each (re)load."""
        if not isinstance(items, list):
            return None
        acks: list[str] = []
        refused: dict[str, str] = {}
        for item in items[:MAX_RESEND]:
            client_id, error = await self._store(item)
            if error is None:
                acks.append(client_id)
            elif error != NOT_YET:
                refused[client_id] = error
                self.error = error
        if not acks and not refused:
            return None
        if acks and not refused:
            self.error = ""
        return rx.call_script(f"window.chatdashOutbox.settle({json.dumps(acks)}, {json.dumps(refused)})")

    @rx.event
    async def typing(self, _value: Any = None):
        await chat.typing(self._conversation_id, Sender.SHOPPER)

    @rx.event
    async def shown(self):
        """The embed opened the collapsed chat: what it shows is now seen."""
        self._collapsed = False
        last_admin = max((m.id for m in self.messages if m.sender == Sender.ADMIN), default=0)
        if self._conversation_id and last_admin:
            await asyncio.to_thread(chat.mark_seen, self._conversation_id, Sender.SHOPPER, last_admin)

    @rx.event
    def dismiss_error(self):
        self.error = ""

    # ----- offline follow-up ------------------------------------------------
    @rx.event
    async def give_email(self, form_data: Any):
        """The email question's form: {"email": "..."} (checked by the use case)."""
        email = form_data.get("email") if isinstance(form_data, dict) else None
        if not self._visitor_id or not self._conversation_id:
            return
        try:
            shown = await asyncio.to_thread(followup.give_email, self._visitor_id, email)
        except followup.FollowupError as exc:
            self.email_error = str(exc)
            return
        self.email_error = ""
        self._show_followup(shown)

    @rx.event
    async def dismiss_email_ask(self):
        if not self.email_ask or not self._visitor_id or not self._conversation_id:
            return
        self._show_followup(await asyncio.to_thread(followup.dismiss_ask, self._visitor_id))
        self.email_error = ""

    def _show_followup(self, shown: followup.WidgetFollowup) -> None:
        self.email_ask = shown.ask
        self.followup_email = shown.email

    def _append(self, message: ChatMessage) -> None:
        # get_value: the plain list, not Reflex's change-tracking proxy.
        updated = with_message(self.get_value("messages"), message, chat.HISTORY_LIMIT)
        if updated is not None:
            self.messages = updated

    # ----- pushed (underscore: not callable as events) -------------------
    # echo=False: the tab that sent a message shows it already (`_store`), so
    # it is not pushed back there: half the pushes a chatting store makes.
    @live.on(MessagePosted, topic=live.by_conversation, echo=False)
    def _on_message(self, event: MessagePosted) -> None:
        if event.conversation_id != self._conversation_id:
            return
        self._append(ChatMessage.from_view(event.message))
        if event.message.sender == Sender.ADMIN:
            self.admin_typing_seq = 0
            self.admin_seen_id = max(self.admin_seen_id, event.message.id)
            # On screen in the open widget: the shopper has seen it.
            if not self._collapsed:
                live.background(chat.mark_seen, event.conversation_id, Sender.SHOPPER, event.message.id)

    @live.on(ChatStartedByAgent, topic=live.by_shopper)
    def _on_agent_started(self, event: ChatStartedByAgent) -> None:
        """An agent wrote first: the widget follows that conversation and shows
        the message (a conversation it already followed got it as MessagePosted too)."""
        if event.shopper_id != self._shopper_id:
            return
        self._follow(event.conversation_id)
        if event.conversation_id != self._conversation_id:
            return
        self._append(ChatMessage.from_view(event.message))
        self.admin_seen_id = max(self.admin_seen_id, event.message.id)
        if not self._collapsed:
            live.background(chat.mark_seen, event.conversation_id, Sender.SHOPPER, event.message.id)

    @live.on(MessagesSeen, topic=live.by_conversation)
    def _on_seen(self, event: MessagesSeen) -> None:
        if event.side == Sender.ADMIN and event.up_to_id > self.admin_seen_id:
            self.admin_seen_id = event.up_to_id

    @live.on(Typing, topic=live.by_conversation)
    def _on_typing(self, event: Typing) -> None:
        if event.side == Sender.ADMIN and event.conversation_id == self._conversation_id:
            self.admin_typing_seq += 1

    @live.on(EmailAskDue, topic=live.by_conversation)
    def _on_email_ask(self, event: EmailAskDue) -> None:
        # Pushed only when the shopper has no email (the use case checked it).
        if event.conversation_id == self._conversation_id and not self.followup_email:
            self.email_ask = True

    @live.on(ShopperEmailChanged, topic=live.by_conversation)
    def _on_email_changed(self, event: ShopperEmailChanged) -> None:
        """Another tab of this shopper gave an email, or they unsubscribed."""
        if event.conversation_id == self._conversation_id:
            self.email_ask = False
            self.followup_email = "" if event.unsubscribed else event.email
