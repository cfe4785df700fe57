"""Notifications: email to the store's staff on new conversations and to an
assignee on their conversations' shopper messages, as each member chose
(services/agent_notifications.py); the in-app bell counts come with the events.

Email is sent with smtplib in a worker thread (`send_email_async`), retried on
temporary failures and never raises: a mail server being down must not break
the chat.

Staff emails are coalesced: the first goes out at once, and what comes within
`email_coalesce_minutes` of an email is listed in one email at the end of
that time — a flood of conversations cannot flood the staff's inboxes. The
coalescing lives in the database (services/staff_emails.py), so however many
workers there are, each channel (the new-conversation recipients, each
assignee) gets one email per window listing what reached every worker.
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
from chatdash.services import staff_emails

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


# --- the staff emails ------------------------------------------------------------

# One sender thread per process for the emails its own writes call for: they go
# out in order and SMTP never holds up a writer.
_mailer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatdash-mail")


def email_new_conversations(settings_fn: Any, engine: Any = None) -> Any:
    """Send the staff emails this worker's writes call for, at once when their
    channel's window is over: a `ConversationStarted` (the new-conversation
    email to the recipients chosen in Settings) and a shopper's `MessagePosted`
    in an assigned conversation or an auto-assignment's `ConversationFiled`
    (the assignee's email, if they chose it; who gets what:
    services/agent_notifications.py). What the writes queued waits
    in the database (services/staff_emails.py); what must wait for the end of
    a window goes with `send_held_emails`, the leader's job. `settings_fn()`
    gives the current `chatdash.settings.Settings`. Returns the function that
    stops listening."""
    waiting: set[str] = set()  # channels already on their way to the mailer
    waiting_lock = threading.Lock()  # listeners run in whichever thread committed

    def send(channel: str) -> None:
        with waiting_lock:
            waiting.discard(channel)
        try:
            send_due(settings_fn(), channel=channel, engine=engine)
        except Exception:
            log.exception("staff email for %s failed; the leader's job sends it", channel)

    def on_events(batch: list[events.DomainEvent]) -> None:
        for event in batch:
            if isinstance(event, events.ConversationStarted):
                channel = staff_emails.NEW
            elif (isinstance(event, events.MessagePosted) and event.message.sender == "shopper"
                  and event.conversation.assignee_id):
                channel = staff_emails.assigned(event.conversation.assignee_id)
            elif (isinstance(event, events.ConversationFiled) and event.change == "assigned"
                  and event.by_agent_id == 0 and event.conversation.assignee_id):
                # Auto-assign, after the shopper's message was announced with
                # nobody on it: that message may wait for its new assignee.
                channel = staff_emails.assigned(event.conversation.assignee_id)
            else:
                continue
            with waiting_lock:
                if channel in waiting:
                    continue
                waiting.add(channel)
            _mailer.submit(send, channel)

    return events.listen(on_events)


def send_due(settings: Any, *, channel: str | None = None, now: Any = None, engine: Any = None) -> int:
    """Send every staff email that is due (or only `channel`'s): each channel
    claimed in the database, so whichever workers run this at the same time,
    one email goes per channel per window. Returns how many went."""
    window = settings.email_coalesce_minutes * 60
    sent = 0
    for each in staff_emails.due_channels(window, channel=channel, now=now, engine=engine):
        claimed = staff_emails.claim(each, window, now=now, engine=engine)
        if claimed is None:
            continue  # another worker has it, or took it first
        agent_id = staff_emails.assignee_of(each)
        try:
            if agent_id is None:
                ok = _email(settings, list(claimed.items), engine)
            else:
                ok = _email_assignee(settings, agent_id, list(claimed.items), engine)
        except Exception:
            # (The database away, a bug): like a failed send, its items wait a window.
            log.exception("staff email for %s failed; trying again in one window", each)
            ok = False
        staff_emails.finish(claimed, sent=ok, now=now, engine=engine)
        sent += bool(ok)
    return sent


async def send_held_emails(settings_fn: Any, *, now: Any = None, engine: Any = None) -> int:
    """One round of the leader's job: the staff emails whose window ended
    (what came in after an email, from any worker) and any a dead worker
    left, sent from a worker thread (the event loop never waits on SMTP)."""
    return await asyncio.to_thread(send_due, settings_fn(), now=now, engine=engine)


def _link(settings: Any, conversation_id: int) -> str:
    return f"{settings.public_url.rstrip('/')}/admin/conversations?c={conversation_id}"


def _email(settings: Any, items: list[staff_emails.Item], engine: Any = None) -> bool | None:
    """Email these new conversations to the recipients: whether the mail
    server took it, None when emails are off (or nobody is to get them)."""
    from chatdash.db import session_scope
    from chatdash.services import agent_notifications

    with session_scope(engine) as session:
        recipients = agent_notifications.new_conversation_recipients(session)
    if not recipients:
        return None
    message = new_conversations_email(
        store_name=settings.store_name,
        conversations=[NewConversation(i.shopper_label, i.text, _link(settings, i.conversation_id)) for i in items],
        sender=settings.smtp_from,
        recipients=recipients,
    )
    return send_email(SmtpConfig.from_settings(settings), message)


# A member with the conversation open within this long sees its messages: no email.
VIEWING_SECONDS = 60


def _email_assignee(settings: Any, agent_id: int, items: list[staff_emails.Item],
                    engine: Any = None) -> bool | None:
    """Email a member the shoppers' messages in conversations assigned to them
    (still theirs, not open on their screen): whether the mail server took
    it, None when they get none."""
    from datetime import timedelta

    from sqlmodel import select

    from chatdash.db import session_scope
    from chatdash.models import Conversation, ConversationViewer, utcnow
    from chatdash.services import agent_notifications

    with session_scope(engine) as session:
        recipient = agent_notifications.assigned_message_recipient(session, agent_id)
        if recipient is None:
            return None
        ids = {i.conversation_id for i in items}
        still_theirs = set(session.exec(select(Conversation.id).where(
            Conversation.id.in_(ids), Conversation.assignee_id == agent_id)).all())
        watching = set(session.exec(select(ConversationViewer.conversation_id).where(
            ConversationViewer.admin_id == agent_id, ConversationViewer.conversation_id.in_(ids),
            ConversationViewer.seen_at >= utcnow() - timedelta(seconds=VIEWING_SECONDS))).all())
    items = [i for i in items if i.conversation_id in still_theirs - watching]
    if not items:
        return None
    message = assigned_messages_email(
        settings.store_name,
        [NewConversation(i.shopper_label, i.text, _link(settings, i.conversation_id)) for i in items],
        settings.smtp_from, recipient)
    return send_email(SmtpConfig.from_settings(settings), message)


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
