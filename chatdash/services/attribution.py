"""Attribution: what the product cards sent into chats earn.

A *card* is one product sent into one conversation: sent twice, it is still
one card, named by its first send (its source and its week). Each card is
followed through four steps, each counted once:

- **sent**: an admin sent it (from search, the shopper's recommendations, or
  one of the three related lists: `CardSource`);
- **clicked**: the shopper opened it in the widget. The widget's card links
  through `/api/card/<message>/<signature>` (`card_click_url`), which stores
  the first click in `Message.clicked_at` and goes on to the product page;
- **added to cart**: a cart event of the same shopper whose cart holds the
  product, from the first send until `WINDOW` after the last send;
- **ordered**: an order of the same shopper with the product, in the same
  window; the order line (quantity × price) is the card's revenue. An order
  line counts for one card only (the first sent), so revenue is never
  counted twice. An order counts as added to cart too (its lines were in a
  cart, whether or not the store reported that cart from the browser).

The same shopper is the conversation's, following `Shopper.merged_into_id`: a
visitor who later identified as a known customer is that customer (their
events and orders moved there with the merge, services/customers.py).

The joins and the window are SQL; pandas only groups the per-card rows.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import String, and_, case, exists, func, literal, literal_column, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chatdash import events
from chatdash.db import session_scope, write_scope
from chatdash.models import (
    CardSource,
    Conversation,
    EventKind,
    Message,
    MessageKind,
    Order,
    OrderLine,
    Product,
    Shopper,
    StoreEvent,
    utcnow,
)
from chatdash.settings import get_settings

WINDOW_DAYS = 7
WINDOW = timedelta(days=WINDOW_DAYS)

SOURCE_LABELS: dict[str, str] = {
    CardSource.SEARCH: "Search",
    CardSource.RECOMMENDED: "Recommended",
    CardSource.BOUGHT_ALSO: "Bought also",
    CardSource.SAME_ORDER: "Same order",
    CardSource.VIEWED_TOGETHER: "Viewed together",
}
OTHER = "other"  # cards sent before sources were recorded
SOURCE_LABELS_ALL = {**SOURCE_LABELS, OTHER: "Other"}

# The periods the Insights page offers (weeks back from now).
PERIODS = (4, 12, 52)
TOP_PRODUCTS = 10


# --------------------------------------------------------------------------- the card's link


def _signature(message_id: int) -> str:
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"card:{message_id}".encode(), hashlib.sha256).hexdigest()[:32]


def card_click_url(message_id: int) -> str:
    """Where the widget's card links: chatdash records the click, then sends
    the shopper on to the product page. Signed, so no one can count clicks
    for cards they were not sent."""
    return f"{get_settings().api_url.rstrip('/')}/api/card/{message_id}/{_signature(message_id)}"


def verify_click(message_id: object, signature: object) -> int | None:
    """The message id if the signature is the one `card_click_url` made, else None."""
    if not isinstance(message_id, str) or not message_id.isdigit() or len(message_id) > 12:
        return None
    if not isinstance(signature, str) or len(signature) != 32:
        return None
    mid = int(message_id)
    return mid if hmac.compare_digest(_signature(mid), signature) else None


def record_click(message_id: int, *, engine: Engine | None = None) -> str | None:
    """Use case: the shopper opened a product card. The first click is stored
    and `ShopperActivity` recorded (the admin's attribution line follows);
    returns the product page to go to, None when there is no such card."""
    with write_scope(engine) as session:
        row = session.execute(
            select(Message.conversation_id, Message.clicked_at, Product.url, Conversation.shopper_id)
            .join(Product, Product.id == Message.product_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.id == message_id, Message.kind == MessageKind.PRODUCT)
        ).first()
        if row is None or not row.url.startswith(("https://", "http://")):
            return None
        if row.clicked_at is None:
            table = Message.__table__
            # Only the first click counts; a racing second one updates nothing.
            done = session.execute(update(table).where(table.c.id == message_id, table.c.clicked_at.is_(None))
                                   .values(clicked_at=utcnow()))
            if done.rowcount:
                events.record(session, events.ShopperActivity(row.shopper_id, row.conversation_id))
        return row.url


# --------------------------------------------------------------------------- per card, in SQL


def _plus_window(column, dialect: str):
    """`column` + WINDOW, as the database compares times."""
    if dialect == "sqlite":
        # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff": the same shape compares as text.
        return func.strftime("%Y-%m-%d %H:%M:%f", column, f"+{WINDOW_DAYS} days")
    return column + WINDOW


LIKE_ESCAPE = "!"


def _week_of(column, dialect: str):
    """The Monday (UTC) of the week of `column`, as an ISO date string."""
    if dialect == "sqlite":
        # Back six days, then on to the next Monday (the same day when it is one).
        return func.date(column, "-6 days", "weekday 1")
    return func.to_char(func.date_trunc("week", func.timezone("UTC", column)), "YYYY-MM-DD")


def _like_sku(sku_column):
    """LIKE pattern matching `"sku":"<sku>"` in an event's JSON payload (as
    tracking stores it: compact separators), with LIKE's wildcards escaped."""
    escaped = func.replace(func.replace(func.replace(sku_column, "!", "!!"), "%", "!%"), "_", "!_", type_=String)
    return literal('%"sku":"', String) + escaped + literal('"%', String)


def _cards(conversation_id: int | None, since: datetime | None):
    """One row per (conversation, product) sent: first and last send, first click."""
    m = Message.__table__
    # Only an admin's send makes a product card (chat.admin_send). The literal is
    # the partial index's own condition, so SQLite sees the index applies.
    where = [m.c.kind == literal_column("'product'"), m.c.product_id.is_not(None)]
    if conversation_id is not None:
        where.append(m.c.conversation_id == conversation_id)
    if since is not None:
        where.append(m.c.created_at >= since)
    return (
        select(m.c.conversation_id, m.c.product_id, func.min(m.c.id).label("first_id"),
               func.min(m.c.created_at).label("sent_at"), func.max(m.c.created_at).label("last_sent_at"),
               func.min(m.c.clicked_at).label("clicked_at"))
        .where(*where)
        .group_by(m.c.conversation_id, m.c.product_id)
        .cte("cards")
    )


def _shopper_of(cards):
    """The card's shopper, following a merge into a known customer."""
    shopper = Shopper.__table__.alias("card_shopper")
    conv = Conversation.__table__.alias("card_conversation")
    return conv, shopper, func.coalesce(shopper.c.merged_into_id, shopper.c.id)


CARD_COLUMNS = ["conversation_id", "product_id", "first_id", "week", "source", "clicked", "carted"]
MATCH_COLUMNS = ["conversation_id", "product_id", "first_id", "line_id", "amount", "currency"]


def card_outcomes(session: Session, *, conversation_id: int | None = None,
                  since: datetime | None = None) -> pd.DataFrame:
    """One row per card: conversation_id, product_id, week (the Monday of its
    first send, ISO date), source, and the steps it reached (clicked, carted,
    ordered: bools) with its revenue in cents. Cards first sent before `since`
    are left out. Plain ints and strings come back: no time is parsed in Python."""
    dialect = session.get_bind().dialect.name
    cards = _cards(conversation_id, since)
    conv, shopper, shopper_id = _shopper_of(cards)
    deadline = _plus_window(cards.c.last_sent_at, dialect)
    first = Message.__table__.alias("first_send")
    e = StoreEvent.__table__
    p = Product.__table__
    carted = exists().where(
        e.c.shopper_id == shopper_id, e.c.kind == EventKind.CART,
        e.c.occurred_at >= cards.c.sent_at, e.c.occurred_at <= deadline,
        e.c.payload.like(_like_sku(p.c.sku), escape=LIKE_ESCAPE),
    )
    clicked = and_(cards.c.clicked_at.is_not(None), cards.c.clicked_at <= deadline)
    card_rows = session.execute(
        select(cards.c.conversation_id, cards.c.product_id, cards.c.first_id,
               _week_of(cards.c.sent_at, dialect).label("week"),
               func.coalesce(first.c.card_source, OTHER).label("source"),
               case((clicked, 1), else_=0).label("clicked"), case((carted, 1), else_=0).label("carted"))
        .select_from(cards)
        .join(first, first.c.id == cards.c.first_id)
        .join(conv, conv.c.id == cards.c.conversation_id)
        .join(shopper, shopper.c.id == conv.c.shopper_id)
        .join(p, p.c.id == cards.c.product_id)
    ).all()
    o = Order.__table__
    ol = OrderLine.__table__
    match_rows = session.execute(
        select(cards.c.conversation_id, cards.c.product_id, cards.c.first_id, ol.c.id.label("line_id"),
               (ol.c.quantity * ol.c.unit_price_cents).label("amount"), o.c.currency)
        .select_from(cards)
        .join(conv, conv.c.id == cards.c.conversation_id)
        .join(shopper, shopper.c.id == conv.c.shopper_id)
        .join(o, and_(o.c.shopper_id == shopper_id, o.c.ordered_at >= cards.c.sent_at, o.c.ordered_at <= deadline))
        .join(ol, and_(ol.c.order_id == o.c.id, ol.c.product_id == cards.c.product_id))
    ).all()
    # Plain tuples: pandas reads 90k SQLAlchemy rows twenty times slower than tuples.
    return _outcomes(pd.DataFrame(list(map(tuple, card_rows)), columns=CARD_COLUMNS),
                     pd.DataFrame(list(map(tuple, match_rows)), columns=MATCH_COLUMNS))


def _outcomes(cards: pd.DataFrame, matches: pd.DataFrame) -> pd.DataFrame:
    """Cards with ordered / revenue from their order lines, each line counted once."""
    cards = cards.astype({"clicked": bool, "carted": bool})
    if matches.empty:
        cards["ordered"] = False
        cards["revenue_cents"] = 0
        cards["currency"] = ""
        return cards
    # An order line two cards reach (the same product sent in two of the
    # shopper's conversations) counts for the first sent.
    lines = matches.sort_values("first_id").drop_duplicates("line_id")
    per_card = lines.groupby(["conversation_id", "product_id"]).agg(
        revenue_cents=("amount", "sum"), currency=("currency", "first"))
    out = cards.merge(per_card, left_on=["conversation_id", "product_id"], right_index=True, how="left")
    out["ordered"] = out["revenue_cents"].notna()
    out["revenue_cents"] = out["revenue_cents"].fillna(0).astype("int64")
    out["currency"] = out["currency"].fillna("")
    out["carted"] = out["carted"] | out["ordered"]
    return out


# --------------------------------------------------------------------------- what the screens show


@dataclass(frozen=True)
class Funnel:
    """Cards that reached each step, and the revenue of those ordered."""

    key: str
    label: str
    sent: int = 0
    clicked: int = 0
    carted: int = 0
    ordered: int = 0
    revenue_cents: int = 0


def _funnel(key: str, label: str, cards: pd.DataFrame) -> Funnel:
    return Funnel(key, label, len(cards), int(cards["clicked"].sum()), int(cards["carted"].sum()),
                  int(cards["ordered"].sum()), int(cards["revenue_cents"].sum()))


def _grouped(cards: pd.DataFrame, by: str) -> pd.DataFrame:
    return cards.groupby(by).agg(sent=("product_id", "size"), clicked=("clicked", "sum"), carted=("carted", "sum"),
                                 ordered=("ordered", "sum"), revenue_cents=("revenue_cents", "sum"))


def _currency(cards: pd.DataFrame) -> str:
    found = cards.loc[cards["currency"] != "", "currency"] if "currency" in cards else pd.Series(dtype=str)
    return str(found.mode().iloc[0]) if not found.empty else "USD"


@dataclass(frozen=True)
class ConversationAttribution:
    """The line under a chat: "3 products sent · 1 bought · $54.00"."""

    sent: int
    clicked: int
    carted: int
    ordered: int
    revenue_cents: int
    currency: str


def conversation_attribution(conversation_id: int, *, engine: Engine | None = None) -> ConversationAttribution:
    with session_scope(engine) as session:
        cards = card_outcomes(session, conversation_id=conversation_id)
    f = _funnel("", "", cards)
    return ConversationAttribution(f.sent, f.clicked, f.carted, f.ordered, f.revenue_cents, _currency(cards))


@dataclass(frozen=True)
class InsightsReport:
    weeks: int
    since: datetime
    total: Funnel
    by_source: list[Funnel]  # every source, in CardSource order (Other last, when any)
    by_week: list[Funnel]  # every week of the period, oldest first; key: the Monday (ISO date)
    top_products: list[Funnel]  # most sent first; key: product id, label: its name
    currency: str


def insights(weeks: int = 12, *, now: datetime | None = None, engine: Engine | None = None) -> InsightsReport:
    """The Insights page: cards first sent in the last `weeks` weeks (counted
    from the Monday `weeks - 1` weeks before this one), their funnel in all,
    per source, per week, and the products sent most."""
    if weeks not in PERIODS:
        raise ValueError(f"weeks must be one of {PERIODS}")
    now = now or utcnow()
    this_monday = pd.Timestamp(now).tz_convert("UTC").normalize() - pd.Timedelta(days=now.weekday())
    first_monday = this_monday - pd.Timedelta(weeks=weeks - 1)
    since = first_monday.to_pydatetime()
    with session_scope(engine) as session:
        cards = card_outcomes(session, since=since)
        top = _grouped(cards, "product_id").sort_values(["sent", "revenue_cents"], ascending=False).head(TOP_PRODUCTS)
        names = dict(session.execute(select(Product.id, Product.name)
                                     .where(Product.id.in_([int(i) for i in top.index]))).all()) if len(top) else {}

    by_source_rows = _grouped(cards, "source")
    sources = [*SOURCE_LABELS, *([OTHER] if OTHER in by_source_rows.index else [])]
    by_source = [_row(s, SOURCE_LABELS_ALL[s], by_source_rows, s) for s in sources]

    mondays = pd.date_range(first_monday, this_monday, freq="7D")
    weekly = _grouped(cards, "week")
    by_week = [_row(m.date().isoformat(), m.strftime("%d %b"), weekly, m.date().isoformat()) for m in mondays]

    top_products = [_row(str(pid), names.get(int(pid), f"Product {pid}"), top, pid) for pid in top.index]
    return InsightsReport(weeks, since, _funnel("all", "All sources", cards), by_source, by_week, top_products,
                          _currency(cards))


def _row(key: str, label: str, grouped: pd.DataFrame, index) -> Funnel:
    if index not in grouped.index:
        return Funnel(key, label)
    r = grouped.loc[index]
    return Funnel(key, label, int(r["sent"]), int(r["clicked"]), int(r["carted"]), int(r["ordered"]),
                  int(r["revenue_cents"]))
