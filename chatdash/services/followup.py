"""Offline follow-up: when nobody answers a shopper in time, their widget asks
for an email address; an agent's replies to a shopper who has left the site
then go there too, one email per conversation per window, with a link back
to the same conversation and an unsubscribe link.

The database holds every step, so any worker may run any of them:

- `post_message` keeps `awaiting_reply_since` (the shopper's first message
  since the last agent reply). `ask_due` (a periodic job) claims each open
  conversation whose clock passed the store's setting by setting
  `email_asked_at` where it is still NULL, and records `EmailAskDue`: the
  widget asks, live, and on every later load.
- An agent's reply sets `followup_due_at` (where NULL) to the end of the
  coalescing window (`schedule_reply_email`, inside the reply's
  transaction). `claim_due_emails` (a periodic job) takes a due conversation
  by setting it back to NULL where it is still due — one UPDATE, so of two
  workers exactly one wins — and builds one email of every reply the shopper
  has neither seen nor been sent; `mark_sent` records the newest it held. A
  failed send leaves that mark, so its replies go with the next email.
- The email's link to the conversation is a random token (only its hash
  stored, expiring after `LINK_DAYS`, revoked when the address changes);
  the unsubscribe link carries an HMAC-signed shopper id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import delete, exists, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chatdash import events, routes
from chatdash.db import session_scope, write_scope
from chatdash.models import (
    Conversation,
    FollowupLink,
    Message,
    Product,
    Sender,
    Shopper,
    Status,
    utcnow,
)
from chatdash.services import auth, notify, store_settings
from chatdash.services import conversations as convs
from chatdash.services.auth import EMAIL_RE
from chatdash.services.money import money
from chatdash.services.ratelimit import limiter
from chatdash.settings import get_settings

log = logging.getLogger("chatdash.followup")

LINK_DAYS = 7
ASK_SWEEP_LIMIT = 200
EMAIL_BATCH = 50
REPLIES_PER_EMAIL = 20
MAX_EMAIL_INPUT = 400
UNSUBSCRIBE_PATH = "/api/followup/unsubscribe"
_LINK_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{40,64}")
_UNSUB_RE = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{32})")


class FollowupError(ValueError):
    """A shopper's input that cannot be accepted; the text is for the shopper."""


@dataclass(frozen=True)
class WidgetFollowup:
    """What the widget shows: the email question, or where replies also go."""

    ask: bool = False
    email: str = ""


def widget_view(conv: Conversation | None, shopper: Shopper) -> WidgetFollowup:
    if conv is None or conv.email_asked_at is None:
        return WidgetFollowup()
    if shopper.email:
        return WidgetFollowup(False, "" if shopper.followup_unsubscribed_at else shopper.email)
    return WidgetFollowup(conv.email_ask_dismissed_at is None, "")


# --------------------------------------------------------------------------- asking for an email


def ask_due(*, now: datetime | None = None, engine: Engine | None = None) -> list[int]:
    """Claim the open conversations nobody has answered for the store's
    `ask_after_seconds` whose shopper has no email, and record `EmailAskDue`
    for each (once: whoever sets `email_asked_at` first). Returns their ids."""
    now = now or utcnow()
    with session_scope(engine) as session:
        seconds = store_settings.get_offline_followup(session).ask_after_seconds
        if seconds <= 0:
            return []
        due = session.exec(
            select(Conversation.id)
            .join(Shopper, col(Shopper.id) == Conversation.shopper_id)
            .where(Conversation.status == Status.OPEN,
                   col(Conversation.awaiting_reply_since).is_not(None),
                   col(Conversation.awaiting_reply_since) <= now - timedelta(seconds=seconds),
                   col(Conversation.email_asked_at).is_(None),
                   col(Shopper.email).is_(None))
            .limit(ASK_SWEEP_LIMIT)
        ).all()
    if not due:
        return []
    table = Conversation.__table__
    claimed = []
    with write_scope(engine) as session:
        for conversation_id in due:
            took = session.execute(
                update(table).where(table.c.id == conversation_id, table.c.email_asked_at.is_(None))
                .values(email_asked_at=now)
            ).rowcount
            if took == 1:
                claimed.append(conversation_id)
                events.record(session, events.EmailAskDue(conversation_id))
    return claimed


def clean_email(value: object) -> str:
    """A shopper's email address as typed, checked; FollowupError says what is wrong."""
    if not isinstance(value, str) or len(value) > MAX_EMAIL_INPUT:
        raise FollowupError("Enter an email address, such as you@example.com.")
    address = value.strip().lower()
    if not address:
        raise FollowupError("Enter an email address, such as you@example.com.")
    domain = address.rpartition("@")[2]
    if (len(address) > 320 or not EMAIL_RE.match(address) or "." not in domain.strip(".")
            or any(ch in address for ch in "<>,;\"'()[]\\")):
        raise FollowupError(f"“{value.strip()[:80]}” is not an email address. Check it and try again.")
    return address


def _email_limiter():
    return limiter("followup-email", 10, 3600)


def give_email(visitor_id: str, email: object, *, engine: Engine | None = None) -> WidgetFollowup:
    """The shopper's email for replies, from their own widget (the shopper is
    the visitor's; never one named by the client). Links sent to an earlier
    address stop working; an unsubscribed shopper who gives one is back on."""
    address = clean_email(email)
    if not _email_limiter().hit(visitor_id):
        raise FollowupError("Too many changes. Try again later.")
    now = utcnow()
    with write_scope(engine) as session:
        shopper = convs.get_or_create_shopper(session, visitor_id)
        conv = convs.open_conversation_for(session, shopper.id)
        if conv is None:
            raise FollowupError("Write us a message first.")
        if shopper.email != address:
            session.execute(delete(FollowupLink).where(col(FollowupLink.shopper_id) == shopper.id))
        shopper.email = address
        shopper.followup_unsubscribed_at = None
        session.add(shopper)
        if conv.email_asked_at is None:
            conv.email_asked_at = now
            session.add(conv)
        session.flush()
        events.record(session, events.ShopperEmailChanged(shopper.id, conv.id, address,
                                                          convs.shopper_label(shopper)))
        return widget_view(conv, shopper)


def dismiss_ask(visitor_id: str, *, engine: Engine | None = None) -> WidgetFollowup:
    """The shopper said no thanks: the question is not asked again in this conversation."""
    with write_scope(engine) as session:
        shopper = convs.get_or_create_shopper(session, visitor_id)
        conv = convs.open_conversation_for(session, shopper.id)
        if conv is None:
            return WidgetFollowup()
        if conv.email_ask_dismissed_at is None:
            conv.email_ask_dismissed_at = utcnow()
            session.add(conv)
        return widget_view(conv, shopper)


# --------------------------------------------------------------------------- replies by email


def window_seconds() -> float:
    return max(1.0, get_settings().followup_coalesce_minutes * 60)


def schedule_reply_email(session: Session, conversation_id: int, *, now: datetime | None = None) -> None:
    """An agent replied: if the shopper has an email and has not unsubscribed,
    the conversation's next follow-up email is due at the end of the window
    (a window already open keeps its end: the reply goes with it)."""
    table, shopper = Conversation.__table__, Shopper.__table__
    due = (now or utcnow()) + timedelta(seconds=window_seconds())
    session.execute(
        update(table)
        .where(table.c.id == conversation_id, table.c.followup_due_at.is_(None),
               exists().where(shopper.c.id == table.c.shopper_id, shopper.c.email.is_not(None),
                              shopper.c.followup_unsubscribed_at.is_(None)))
        .values(followup_due_at=due)
    )


@dataclass(frozen=True)
class ReplyLine:
    """One agent reply as the email shows it: text, or a product card as a link."""

    text: str
    product_name: str = ""
    product_price: str = ""
    product_url: str = ""


@dataclass(frozen=True)
class FollowupEmail:
    conversation_id: int
    to: str
    replies: tuple[ReplyLine, ...]
    up_to_id: int
    conversation_url: str
    unsubscribe_url: str


def claim_due_emails(*, now: datetime | None = None, engine: Engine | None = None) -> list[FollowupEmail]:
    """Take every conversation whose follow-up email is due (each one by one
    worker only) and return the emails to send: replies the shopper has not
    seen, to a shopper not on the site. A shopper still on the site is looked
    at again one window later (they may leave without reading)."""
    now = now or utcnow()
    with session_scope(engine) as session:
        due = session.exec(
            select(Conversation.id).where(col(Conversation.followup_due_at).is_not(None),
                                          col(Conversation.followup_due_at) <= now)
            .order_by(col(Conversation.followup_due_at)).limit(EMAIL_BATCH)
        ).all()
    if not due:
        return []
    table = Conversation.__table__
    found = []
    with write_scope(engine) as session:
        for conversation_id in due:
            took = session.execute(
                update(table).where(table.c.id == conversation_id, table.c.followup_due_at <= now)
                .values(followup_due_at=None)
            ).rowcount
            if took == 1:
                email = _compose(session, conversation_id, now)
                if email is not None:
                    found.append(email)
    return found


def _compose(session: Session, conversation_id: int, now: datetime) -> FollowupEmail | None:
    settings = get_settings()
    conv = session.get(Conversation, conversation_id)
    shopper = session.get(Shopper, conv.shopper_id) if conv else None
    if conv is None or shopper is None or conv.status not in (Status.OPEN, Status.RESOLVED):
        return None
    if not shopper.email or shopper.followup_unsubscribed_at is not None:
        return None
    after = max(conv.followup_sent_message_id, conv.shopper_seen_message_id)
    rows = session.exec(
        select(Message, Product).join(Product, col(Product.id) == Message.product_id, isouter=True)
        .where(Message.conversation_id == conv.id, Message.sender == Sender.ADMIN, Message.id > after)
        .order_by(col(Message.id)).limit(REPLIES_PER_EMAIL + 1)
    ).all()
    if not rows:
        return None
    window = settings.presence_window_seconds
    if convs.is_on_site(convs.live_visit(session, shopper.id, now, window), now, window):
        _due_again(session, conv.id, now)  # still here: they may leave without reading
        return None
    if len(rows) > REPLIES_PER_EMAIL:
        rows = rows[:REPLIES_PER_EMAIL]
        _due_again(session, conv.id, now)  # the rest go in the next window's email
    token = secrets.token_urlsafe(32)
    session.add(FollowupLink(token_hash=auth.token_hash(token), shopper_id=shopper.id, conversation_id=conv.id,
                             created_at=now, expires_at=now + timedelta(days=LINK_DAYS)))
    return FollowupEmail(
        conversation_id=conv.id, to=shopper.email,
        replies=tuple(_line(m, p) for m, p in rows), up_to_id=rows[-1][0].id,
        conversation_url=f"{settings.public_url.rstrip('/')}{routes.WIDGET}?{urlencode({'r': token})}",
        unsubscribe_url=unsubscribe_url(shopper.id),
    )


def _due_again(session: Session, conversation_id: int, now: datetime) -> None:
    table = Conversation.__table__
    session.execute(update(table).where(table.c.id == conversation_id, table.c.followup_due_at.is_(None))
                    .values(followup_due_at=now + timedelta(seconds=window_seconds())))


def _line(m: Message, p: Product | None) -> ReplyLine:
    if p is not None and p.url.startswith(("https://", "http://")):
        return ReplyLine(p.name, p.name, money(p.price_cents, p.currency), p.url)
    return ReplyLine(m.body)


def mark_sent(conversation_id: int, up_to_id: int, *, now: datetime | None = None,
              engine: Engine | None = None) -> None:
    """The email holding replies up to `up_to_id` was accepted by the mail server."""
    with write_scope(engine) as session:
        conv = session.get(Conversation, conversation_id)
        if conv is not None:
            conv.followup_sent_message_id = max(conv.followup_sent_message_id, up_to_id)
            conv.followup_sent_at = now or utcnow()
            session.add(conv)


def reply_email(store_name: str, sender: str, email: FollowupEmail) -> EmailMessage:
    """The shopper's email: the replies (product cards as links with name and
    price), from the store's name, with the way back and the way out. Every
    text is escaped in the HTML part; links are only http(s)."""
    store = notify._one_line(store_name, notify.SUBJECT_STORE_CHARS) or "the store"
    msg = EmailMessage()
    count = len(email.replies)
    msg["Subject"] = f"{store} replied to your message" if count == 1 else f"{store}: {count} new replies"
    msg["From"] = formataddr((store, parseaddr(sender)[1] or sender))
    msg["To"] = email.to
    msg["Date"] = formatdate(usegmt=True)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "chatdash.local"
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    # RFC 2369 / 8058: mail programs show their own unsubscribe button.
    msg["List-Unsubscribe"] = f"<{email.unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"

    plain = []
    for line in email.replies:
        if line.product_url:
            plain.append(f"* {line.product_name} — {line.product_price}\n  {line.product_url}")
        else:
            plain.append(_cut(line.text))
    msg.set_content(
        f"{store} answered your message:\n\n" + "\n\n".join(plain) + "\n\n"
        f"Continue the conversation: {email.conversation_url}\n\n"
        f"You get this email because you left your address in {store}'s chat.\n"
        f"No more emails: {email.unsubscribe_url}\n"
    )
    blocks = []
    for line in email.replies:
        if line.product_url:
            blocks.append(
                '<p style="border: 1px solid #ddd; border-radius: 8px; padding: .6em 1em">'
                f'<a href="{html.escape(line.product_url, quote=True)}" class="product-link">'
                f"<strong>{html.escape(line.product_name)}</strong></a><br>{html.escape(line.product_price)}</p>")
        else:
            blocks.append(f'<p style="white-space: pre-wrap">{html.escape(_cut(line.text))}</p>')
    msg.add_alternative(
        "<!doctype html>\n"
        '<html><body style="font-family: system-ui, sans-serif; color: #111">\n'
        f"<p>{html.escape(store)} answered your message:</p>\n"
        + "\n".join(blocks) +
        f'\n<p><a href="{html.escape(email.conversation_url, quote=True)}">Continue the conversation</a></p>\n'
        f'<p style="color: #666; font-size: 12px">You get this email because you left your address in '
        f"{html.escape(store)}'s chat. "
        f'<a href="{html.escape(email.unsubscribe_url, quote=True)}">Unsubscribe</a></p>\n'
        "</body></html>\n",
        subtype="html",
    )
    return msg


def _cut(text: str) -> str:
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    return text if len(text) <= notify.EMAIL_MESSAGE_CHARS else text[:notify.EMAIL_MESSAGE_CHARS].rstrip() + "…"


async def send_due_emails(settings_fn: Any = get_settings, *, now: datetime | None = None,
                          engine: Engine | None = None) -> int:
    """One round of the follow-up mailer: claim what is due, send each email
    from a worker thread (the event loop never waits on SMTP), record it.
    A failure is logged and loses nothing: the chat has every reply, and the
    next email to this shopper includes what this one held."""
    import asyncio

    emails = await asyncio.to_thread(claim_due_emails, now=now, engine=engine)
    if not emails:
        return 0
    settings = settings_fn()
    config = notify.SmtpConfig.from_settings(settings)
    sent = 0
    for email in emails:
        ok = await notify.send_email_async(config, reply_email(settings.store_name, settings.smtp_from, email))
        if ok:
            await asyncio.to_thread(mark_sent, email.conversation_id, email.up_to_id, now=now, engine=engine)
            sent += 1
        else:
            log.error("follow-up email for conversation %d was not sent (mail server %s:%s, see the warning "
                      "above); its replies stay in the chat and go with the shopper's next email",
                      email.conversation_id, config.host, config.port)
    return sent


# --------------------------------------------------------------------------- links


def resume(token: object, *, engine: Engine | None = None) -> str | None:
    """The visitor id whose conversation a follow-up email's link opens, or
    None when the link is unknown, expired or revoked. Never raises."""
    if not isinstance(token, str) or not _LINK_TOKEN_RE.fullmatch(token):
        return None
    with session_scope(engine) as session:
        link = session.exec(select(FollowupLink).where(FollowupLink.token_hash == auth.token_hash(token))).first()
        if link is None or link.expires_at <= utcnow():
            return None
        shopper = session.get(Shopper, link.shopper_id)
        if shopper is not None and shopper.merged_into_id is not None:
            shopper = session.get(Shopper, shopper.merged_into_id)
        return shopper.visitor_id if shopper is not None else None


def _unsubscribe_sig(shopper_id: int) -> str:
    key = get_settings().secret_key.encode()
    digest = hmac.new(key, f"followup-unsubscribe:{shopper_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")[:32]


def unsubscribe_token(shopper_id: int) -> str:
    return f"{shopper_id}.{_unsubscribe_sig(shopper_id)}"


def unsubscribe_url(shopper_id: int) -> str:
    base = get_settings().api_url.rstrip("/")
    return f"{base}{UNSUBSCRIBE_PATH}?{urlencode({'t': unsubscribe_token(shopper_id)})}"


def check_unsubscribe_token(token: object) -> int | None:
    """The shopper id an unsubscribe token was signed for, else None. Never raises."""
    if not isinstance(token, str) or len(token) > 64:
        return None
    match = _UNSUB_RE.fullmatch(token)
    if match is None:
        return None
    shopper_id = int(match.group(1))
    return shopper_id if hmac.compare_digest(_unsubscribe_sig(shopper_id), match.group(2)) else None


def unsubscribe(token: object, *, engine: Engine | None = None) -> bool:
    """Stop follow-up emails to the shopper the token names (and any waiting
    to go). False when the token is not one we signed."""
    shopper_id = check_unsubscribe_token(token)
    if shopper_id is None:
        return False
    with write_scope(engine) as session:
        shopper = session.get(Shopper, shopper_id)
        if shopper is None:
            return False
        if shopper.followup_unsubscribed_at is None:
            shopper.followup_unsubscribed_at = utcnow()
            session.add(shopper)
        table = Conversation.__table__
        session.execute(update(table).where(table.c.shopper_id == shopper_id).values(followup_due_at=None))
        conv = convs.open_conversation_for(session, shopper_id)
        session.flush()
        events.record(session, events.ShopperEmailChanged(shopper_id, conv.id if conv else 0, shopper.email or "",
                                                          convs.shopper_label(shopper), unsubscribed=True))
    return True
