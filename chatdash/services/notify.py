"""Notifications: email to the store's staff on new conversations (a listener
on `ConversationStarted`) and to an assignee on their conversations' shopper
messages (`MessagePosted`), as each member chose (services/
agent_notifications.py); the in-app bell counts come with the events.

Email is sent with smtplib in a worker thread (`send_email_async`), retried on
temporary failures and never raises: a mail server being down must not break
the chat.

New-conversation emails are coalesced: the first goes out at once, and what
starts within `email_coalesce_minutes` of an email is listed in one email at
the end of that time — a flood of conversations cannot flood the staff's
inboxes (each worker process coalesces on its own).
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import smtplib
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from chatdash import events

log = logging.getLogger("chatdash.notify")

SUBJECT_LABEL_CHARS = 80
SUBJECT_STORE_CHARS = 100
EMAIL_MESSAGE_CHARS = 4000


# --- email -------------------------------------------------------------------


@dataclass
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)  # never in logs or tracebacks
    starttls: bool
    sender: str

    @classmethod
    def from_settings(cls, settings: Any) -> SmtpConfig:
        """From a `chatdash.settings.Settings` (its ``smtp_*`` fields)."""
        return cls(
            host=settings.smtp_host,
            port=int(settings.smtp_port),
            username=settings.smtp_username or None,
            password=settings.smtp_password or None,
            starttls=bool(settings.smtp_starttls),
            sender=settings.smtp_from,
        )


def _one_line(text: str, limit: int) -> str:
    """Header-safe: no CR/LF or other control characters, collapsed whitespace, bounded."""
    text = re.sub(r"[\x00-\x1f\x7f\s]+", " ", text or "").strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def new_conversation_email(
    store_name: str,
    shopper_label: str,
    first_message: str,
    conversation_url: str,
    sender: str,
    recipients: list[str],
) -> EmailMessage:
    """The staff notification for a new conversation: plain text plus an HTML alternative.

    Everything the shopper controls (label, message) is escaped in the HTML part
    and stripped of line breaks in the subject.
    """
    recipients = [r.strip() for r in recipients if r and r.strip()]
    if not recipients:
        raise ValueError("A notification email needs at least one recipient.")
    store = _one_line(store_name, SUBJECT_STORE_CHARS) or "your store"
    label = _one_line(shopper_label, SUBJECT_LABEL_CHARS) or "A shopper"
    text = (first_message or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > EMAIL_MESSAGE_CHARS:
        text = text[:EMAIL_MESSAGE_CHARS].rstrip() + "…"

    msg = EmailMessage()
    msg["Subject"] = f"New conversation on {store}: {label}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(usegmt=True)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "chatdash.local"
    msg["Message-ID"] = make_msgid(domain=domain)
    # RFC 3834: keeps out-of-office replies away from the sender address.
    msg["Auto-Submitted"] = "auto-generated"

    quoted = "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))
    msg.set_content(
        f"{label} started a conversation on {store}:\n\n"
        f"{quoted}\n\n"
        f"Reply: {conversation_url}\n"
    )

    url = conversation_url.strip()
    if url.lower().startswith(("https://", "http://")):
        link = f'<a href="{html.escape(url, quote=True)}">Open the conversation</a>'
    else:
        link = html.escape(url)
    msg.add_alternative(
        "<!doctype html>\n"
        '<html><body style="font-family: system-ui, sans-serif; color: #111">\n'
        f"<p><strong>{html.escape(label)}</strong> started a conversation on "
        f"{html.escape(store)}:</p>\n"
        '<blockquote style="white-space: pre-wrap; border-left: 3px solid #ccc; '
        f'margin: 0 0 1em; padding: .25em 1em">{html.escape(text)}</blockquote>\n'
        f"<p>{link}</p>\n"
        "</body></html>\n",
        subtype="html",
    )
    return msg


@dataclass(frozen=True)
class NewConversation:
    """One line of a digest: who, what they wrote first, where to answer."""

    shopper_label: str
    first_message: str
    conversation_url: str


DIGEST_MESSAGE_CHARS = 500


def new_conversations_email(
    store_name: str,
    conversations: list[NewConversation],
    sender: str,
    recipients: list[str],
) -> EmailMessage:
    """One email for the conversations that started since the last one: the
    single-conversation email for one, else a list (escaped like that one)."""
    if len(conversations) == 1:
        c = conversations[0]
        return new_conversation_email(store_name, c.shopper_label, c.first_message,
                                      c.conversation_url, sender, recipients)
    if not conversations:
        raise ValueError("A digest needs at least one conversation.")
    first = conversations[0]
    msg = new_conversation_email(store_name, first.shopper_label, first.first_message,
                                 first.conversation_url, sender, recipients)
    store = _one_line(store_name, SUBJECT_STORE_CHARS) or "your store"
    del msg["Subject"]
    msg["Subject"] = f"{len(conversations)} new conversations on {store}"
    _set_list_body(msg, f"{len(conversations)} conversations started on", store, conversations)
    return msg


def _set_list_body(msg: EmailMessage, heading: str, store: str, items: list[NewConversation]) -> None:
    """The email's text and HTML bodies: `heading` and the store's name, then one
    line per conversation (shopper, message, link), every value escaped."""
    plain, rows = [], []
    for c in items:
        label = _one_line(c.shopper_label, SUBJECT_LABEL_CHARS) or "A shopper"
        text = _one_line(c.first_message, DIGEST_MESSAGE_CHARS)
        url = c.conversation_url.strip()
        plain.append(f"* {label}: {text}\n  Reply: {url}")
        link = (f'<a href="{html.escape(url, quote=True)}">open</a>'
                if url.lower().startswith(("https://", "http://")) else html.escape(url))
        rows.append(f"<li><strong>{html.escape(label)}</strong>: {html.escape(text)} ({link})</li>")
    msg.get_body(("plain",)).set_content(f"{heading} {store}:\n\n" + "\n\n".join(plain) + "\n")
    msg.get_body(("html",)).set_content(
        "<!doctype html>\n"
        '<html><body style="font-family: system-ui, sans-serif; color: #111">\n'
        f"<p>{html.escape(heading)} {html.escape(store)}:</p>\n"
        f"<ul>{''.join(rows)}</ul>\n</body></html>\n",
        subtype="html",
    )


def _deliver(config: SmtpConfig, message: EmailMessage, timeout: float) -> dict:
    smtp = smtplib.SMTP(config.host, config.port, timeout=timeout)
    try:
        if config.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if config.username:
            smtp.login(config.username, config.password or "")
        return smtp.send_message(message)
    finally:
        # The message is handed over at this point: a failing QUIT must not cause a resend.
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def _is_permanent(exc: BaseException) -> bool:
    """5xx replies and unsupported features will fail the same way on retry."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(500 <= code < 600 for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return 500 <= exc.smtp_code < 600
    return isinstance(exc, smtplib.SMTPNotSupportedError)


def send_email(
    config: SmtpConfig,
    message: EmailMessage,
    attempts: int = 3,
    backoff_seconds: float = 1.0,
    timeout: float = 10,
) -> bool:
    """Send ``message``; True once the server accepted it. Never raises.

    Connection errors and temporary (4xx) SMTP replies are retried up to
    ``attempts`` times in all, sleeping ``backoff_seconds`` × 1, 2, 4… in between;
    permanent (5xx) replies are not retried. Every failure is logged.
    """
    attempts = max(1, int(attempts))
    where = f"{config.host}:{config.port}"
    subject = message.get("Subject", "")
    for attempt in range(1, attempts + 1):
        try:
            refused = _deliver(config, message, timeout)
        except (OSError, smtplib.SMTPException) as exc:
            permanent = _is_permanent(exc)
            log.warning(
                "email %r via %s: attempt %d/%d failed%s: %s: %s",
                subject, where, attempt, attempts, " permanently" if permanent else "",
                type(exc).__name__, exc,
            )
            if permanent:
                return False
        except Exception:
            # Anything else (e.g. a malformed message) is a bug, but the chat goes on.
            log.exception("email %r via %s: unexpected error, not retrying", subject, where)
            return False
        else:
            if refused:
                log.warning("email %r via %s: some recipients refused: %s", subject, where, refused)
            return True
        if attempt < attempts:
            time.sleep(max(0.0, backoff_seconds) * 2 ** (attempt - 1))
    log.error("email %r via %s: giving up after %d attempts", subject, where, attempts)
    return False


async def send_email_async(config: SmtpConfig, message: EmailMessage, **kw: Any) -> bool:
    """`send_email` in a worker thread, so the event loop (the chat) never waits on SMTP."""
    return await asyncio.to_thread(send_email, config, message, **kw)


# --- the listener --------------------------------------------------------------

# One sender thread: emails go out in order and SMTP never holds up a writer.
_mailer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatdash-mail")


def email_new_conversations(settings_fn: Any, engine: Any = None) -> Any:
    """Listen for `ConversationStarted` and email the recipients chosen in
    Settings, coalesced (see the module's docstring); and for a shopper's
    `MessagePosted` in an assigned conversation, email the assignee if they
    chose so (coalesced per member the same way). Who gets what:
    services/agent_notifications.py. `settings_fn()` gives the current
    `chatdash.settings.Settings`. Returns the function that stops listening."""
    digest = _Digest(settings_fn, lambda settings, batch: _email(settings, batch, engine))
    assigned: dict[int, _Digest] = {}
    assigned_lock = threading.Lock()  # listeners run in whichever thread committed

    def assignee_digest(agent_id: int) -> _Digest:
        with assigned_lock:
            if agent_id not in assigned:
                assigned[agent_id] = _Digest(
                    settings_fn, lambda settings, batch: _email_assignee(settings, agent_id, batch, engine))
            return assigned[agent_id]

    def on_events(batch: list[events.DomainEvent]) -> None:
        for event in batch:
            if isinstance(event, events.ConversationStarted):
                _mailer.submit(digest.add, event)
            elif (isinstance(event, events.MessagePosted) and event.message.sender == "shopper"
                  and event.conversation.assignee_id):
                _mailer.submit(assignee_digest(event.conversation.assignee_id).add, event)

    unlisten = events.listen(on_events)

    def stop() -> None:
        unlisten()
        digest.cancel()
        for each in list(assigned.values()):
            each.cancel()

    return stop


class _Digest:
    """Events waiting for the next email; runs in the mailer thread.
    `send(settings, batch)` emails a batch, False when nothing went (emails off)."""

    def __init__(self, settings_fn: Any, send: Any) -> None:
        self._settings_fn = settings_fn
        self._send = send
        self._lock = threading.Lock()
        self._pending: list[events.DomainEvent] = []
        self._last_sent = float("-inf")
        self._timer: threading.Timer | None = None

    def add(self, event: events.DomainEvent) -> None:
        with self._lock:
            self._pending.append(event)
            if self._timer is not None:
                return  # listed in the email already due
            wait = self._last_sent + self._settings_fn().email_coalesce_minutes * 60 - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, lambda: _mailer.submit(self.flush))
                self._timer.daemon = True
                self._timer.start()
                return
        self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending, self._timer = self._pending, [], None
        if batch and self._send(self._settings_fn(), batch):
            with self._lock:
                self._last_sent = time.monotonic()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


def _email(settings: Any, batch: list[events.ConversationStarted], engine: Any = None) -> bool:
    """Email these new conversations to the recipients; False when emails are off."""
    from chatdash.db import session_scope
    from chatdash.services import agent_notifications

    with session_scope(engine) as session:
        recipients = agent_notifications.new_conversation_recipients(session)
    if not recipients:
        return False
    base = settings.public_url.rstrip("/")
    message = new_conversations_email(
        store_name=settings.store_name,
        conversations=[NewConversation(e.shopper_label, e.first_message,
                                       f"{base}/admin/conversations?c={e.conversation_id}") for e in batch],
        sender=settings.smtp_from,
        recipients=recipients,
    )
    send_email(SmtpConfig.from_settings(settings), message)
    return True


# A member with the conversation open within this long sees its messages: no email.
VIEWING_SECONDS = 60


def _email_assignee(settings: Any, agent_id: int, batch: list[events.MessagePosted], engine: Any = None) -> bool:
    """Email a member the shoppers' messages in conversations assigned to them
    (still theirs, not open on their screen); False when they get none."""
    from datetime import timedelta

    from sqlmodel import select

    from chatdash.db import session_scope
    from chatdash.models import Conversation, ConversationViewer, utcnow
    from chatdash.services import agent_notifications

    with session_scope(engine) as session:
        recipient = agent_notifications.assigned_message_recipient(session, agent_id)
        if recipient is None:
            return False
        ids = {e.conversation_id for e in batch}
        still_theirs = set(session.exec(select(Conversation.id).where(
            Conversation.id.in_(ids), Conversation.assignee_id == agent_id)).all())
        watching = set(session.exec(select(ConversationViewer.conversation_id).where(
            ConversationViewer.admin_id == agent_id, ConversationViewer.conversation_id.in_(ids),
            ConversationViewer.seen_at >= utcnow() - timedelta(seconds=VIEWING_SECONDS))).all())
    items = [e for e in batch if e.conversation_id in still_theirs - watching]
    if not items:
        return False
    base = settings.public_url.rstrip("/")
    message = assigned_messages_email(
        settings.store_name,
        [NewConversation(e.conversation.label, e.message.body, f"{base}/admin/conversations?c={e.conversation_id}")
         for e in items],
        settings.smtp_from, recipient)
    send_email(SmtpConfig.from_settings(settings), message)
    return True


def assigned_messages_email(store_name: str, items: list[NewConversation], sender: str,
                            recipient: str) -> EmailMessage:
    """A member's email about shoppers' messages in their conversations: the
    digest's layout (escaped the same way), its own subject and wording."""
    msg = new_conversations_email(store_name, items, sender, [recipient])
    store = _one_line(store_name, SUBJECT_STORE_CHARS) or "your store"
    label = _one_line(items[0].shopper_label, SUBJECT_LABEL_CHARS) or "A shopper"
    del msg["Subject"]
    msg["Subject"] = (f"{label} wrote in your conversation on {store}" if len(items) == 1
                      else f"{len(items)} new messages in your conversations on {store}")
    _set_list_body(msg, "New messages in conversations assigned to you on", store, items)
    return msg
