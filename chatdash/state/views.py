"""Small view models sent to the browser (kept small: they travel on every change)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, tzinfo

from chatdash.events import ConversationSummary, MessageView
from chatdash.services.attribution import card_click_url
from chatdash.services.money import money  # the one price format (emails use it too)


def web_url(url: str) -> str:
    """The address if it is http(s), else "": only those ever become links."""
    return url if url.startswith(("https://", "http://")) else ""


def image_src(url: str) -> str:
    """The image address if it is http(s) or same-site, else ""."""
    return url if url.startswith(("https://", "http://", "/")) else ""


def clock(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%H:%M")


def when(ts: datetime, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    if ts.date() == now.date():
        return ts.strftime("%H:%M")
    return ts.strftime("%d %b")


def wake_text(until: datetime | None, tz: tzinfo, now: datetime | None = None) -> str:
    """When a snoozed conversation comes back, on the store's clock: "14:30",
    "tomorrow 09:00", "Fri 09:00" (this week) or "24 Dec 09:00"."""
    if until is None:
        return ""
    local, today = until.astimezone(tz), (now or datetime.now(UTC)).astimezone(tz).date()
    clock_text = local.strftime("%H:%M")
    days = (local.date() - today).days
    if days <= 0:
        return clock_text
    if days == 1:
        return f"tomorrow {clock_text}"
    if days < 7:
        return f"{local.strftime('%a')} {clock_text}"
    return f"{local.day} {local.strftime('%b')} {clock_text}"


@dataclasses.dataclass
class ChatMessage:
    id: int = 0
    sender: str = ""
    kind: str = "text"
    body: str = ""
    time: str = ""
    client_id: str = ""
    product_name: str = ""
    product_price: str = ""
    product_url: str = ""
    product_image: str = ""
    product_in_stock: bool = True
    # The widget's link for a card: records the shopper's click, then opens product_url.
    product_click_url: str = ""
    author: str = ""  # a private note's agent

    @classmethod
    def from_view(cls, m: MessageView) -> ChatMessage:
        p = m.product
        url = web_url(p.url) if p else ""
        return cls(
            author=m.author,
            id=m.id,
            sender=m.sender,
            kind=m.kind,
            body=m.body,
            time=clock(m.created_at),
            client_id=m.client_msg_id,
            product_name=p.name if p else "",
            product_price=money(p.price_cents, p.currency) if p else "",
            # Only the catalog's own http(s) addresses ever become links.
            product_url=url,
            product_image=image_src(p.image_url) if p else "",
            product_in_stock=p.in_stock if p else True,
            product_click_url=card_click_url(m.id) if url else "",
        )


def with_message(messages: list[ChatMessage], message: ChatMessage, limit: int) -> list[ChatMessage] | None:
    """The list with `message` added in id order, or None when it is already
    there (a push repeating what this tab sent itself)."""
    if any(m.id == message.id for m in messages[-50:]):
        return None
    if messages and messages[-1].id > message.id:
        return sorted([*messages, message], key=lambda m: m.id)[-limit:]
    return [*messages, message][-limit:]


@dataclasses.dataclass
class ConversationRow:
    id: int = 0
    shopper_id: int = 0
    label: str = ""
    preview: str = ""
    time: str = ""
    unread: int = 0
    on_site: bool = False
    # The agent workspace: status, the assignee (initials on the row), and
    # the last activity as a number, to keep rows in order as they come and go.
    status: str = "open"
    assignee_id: int = 0
    assignee_initials: str = ""
    stamp: float = 0.0
    wakes: str = ""  # a snoozed one: when it comes back ("tomorrow 09:00")

    @classmethod
    def from_summary(cls, s: ConversationSummary, team: dict[int, str] | None = None,
                     tz: tzinfo = UTC) -> ConversationRow:
        assignee = s.assignee_id or 0
        return cls(s.id, s.shopper_id, s.label, s.preview, when(s.last_message_at), s.unread, s.on_site,
                   s.status, assignee, (team or {}).get(assignee, "?") if assignee else "",
                   s.last_message_at.timestamp(), wake_text(s.snoozed_until, tz) if s.status == "snoozed" else "")


@dataclasses.dataclass
class ProductHit:
    """A product as any admin list shows it: search, recommendations, related,
    items viewed (reason: when) and most viewed (reason: how often)."""

    id: int = 0
    sku: str = ""
    name: str = ""
    category: str = ""
    price: str = ""
    image: str = ""
    url: str = ""
    in_stock: bool = True
    reason: str = ""

    @classmethod
    def of(cls, *, id: int, sku: str, name: str, url: str, price_cents: int | None = None, currency: str = "USD",
           image_url: str = "", category: str = "", in_stock: bool = True, reason: str = "") -> ProductHit:
        """From plain fields; only http(s) links and http(s) or same-site images pass."""
        return cls(
            id=id, sku=sku, name=name, category=category,
            price=money(price_cents, currency) if price_cents is not None else "",
            image=image_src(image_url), url=web_url(url), in_stock=in_stock, reason=reason,
        )

    @classmethod
    def from_product(cls, p, reason: str = "") -> ProductHit:
        """From a catalog Product."""
        return cls.of(id=p.id, sku=p.sku, name=p.name, url=p.url, price_cents=p.price_cents, currency=p.currency,
                      image_url=p.image_url, category=p.category, in_stock=p.in_stock, reason=reason)
