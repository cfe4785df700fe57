"""Store events: validate what a store reports about a shopper and store it once.

The browser's batches (``POST /api/track``) and the store's server-to-server
calls (``POST /api/store/orders``, ``/api/store/carts``) all end here.
No Reflex imports; the HTTP layer verifies visitor tokens and secrets.

Decisions (documented for stores in docs/tracking.md):

- A batch is all or nothing. One malformed event refuses the batch, with a
  reason per event (index, id, field); the widget drops only those events and
  re-sends the rest.
- Every event carries a client-made id; a (shopper, id) pair is stored once,
  so a retried batch, or an id repeated inside one batch, counts as a duplicate.
- Money arrives in currency units (19.99) and is stored in the event payload
  as given (normalised); carts and orders in tables are integer cents.
- The browser is not trusted with money: a browser cart is priced from the
  catalog, and a browser order is an event only. Carts and orders sent
  server-to-server (authenticated by the store secret) are taken as given.
- Unknown skus are not refused (a catalog is often behind the store): a product
  view keeps ``product_id`` empty, and cart or order lines of products not in
  the catalog (or priced in another currency) stay in the event payload but get
  no CartLine/OrderLine. The caller is told which skus were left out.
"""

from __future__ import annotations

import json
import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from chatdash.models import (
    Cart,
    CartLine,
    EventKind,
    Order,
    OrderLine,
    Product,
    Shopper,
    StoreEvent,
    Visit,
    utcnow,
)
from chatdash.services import presence
from chatdash.services.conversations import (
    get_or_create_shopper,
    identify_customer,
    latest_visit,
    open_conversation_for,
)

MAX_URL_CHARS = 2000
MAX_TITLE_CHARS = 300
MAX_SKU_CHARS = 64
MAX_ORDER_ID_CHARS = 128
MAX_CUSTOMER_ID_CHARS = 128
MAX_QUANTITY = 999
MAX_PRICE = Decimal(1_000_000_000)
MAX_LINES = 100
MAX_EVENT_BYTES = 8 * 1024
MAX_BATCH_EVENTS = 50
MAX_BATCH_BYTES = 64 * 1024
MAX_DETAIL = 50
# A client clock may run a little fast; later than this is clamped to now.
FUTURE_SKEW = timedelta(minutes=5)
API_ORDER_SOURCE = "api"

EVENT_ID_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_ACTION_RE = re.compile(r"[a-z_]{0,32}")
_CENT = Decimal("0.01")


class TrackingError(ValueError):
    """Input that cannot be stored. ``detail`` says what is wrong, field by field;
    ``too_large`` marks size limits (HTTP 413) as opposed to malformed input."""

    def __init__(self, message: str, detail: list[dict[str, Any]] | None = None, *, too_large: bool = False):
        super().__init__(message)
        self.message = message
        self.detail = detail or []
        self.too_large = too_large


# --------------------------------------------------------------------------- field types


def _no_controls(value: str) -> str:
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _http_url(value: str) -> str:
    """An absolute http(s) address; refuses javascript:, data:, relative URLs."""
    if value == "":
        return value
    if value != value.strip() or any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must be an http(s) address without spaces or control characters")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise ValueError("must be an http(s) address") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http:// or https:// address")
    return value


def _referrer(value: str) -> str:
    # Browsers report app referrers too (android-app://...): they are no reason
    # to lose a page view, but only http(s) addresses are kept.
    try:
        return _http_url(value)
    except ValueError:
        return ""


def _title(value: str) -> str:
    return " ".join("".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in value).split())


def _money(value: Any) -> Decimal:
    """A non-negative amount with at most two decimals (numbers or numeric strings)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError("must be a number")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError("must be a number") from exc
    if not amount.is_finite():
        raise ValueError("must be a finite number")
    if amount < 0:
        raise ValueError("must not be negative")
    if amount > MAX_PRICE:
        raise ValueError(f"must be at most {MAX_PRICE:,}")
    if amount != amount.quantize(_CENT):
        raise ValueError("must have at most two decimals")
    return amount.quantize(_CENT)


def _time(value: Any) -> datetime | None:
    """An ISO 8601 time string; a time without zone is UTC."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("must be an ISO 8601 time string, e.g. 2025-01-31T12:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError("must be an ISO 8601 time string, e.g. 2025-01-31T12:00:00Z") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _currency(value: str) -> str:
    value = value.strip().upper()
    if not _CURRENCY_RE.fullmatch(value):
        raise ValueError("must be a three-letter ISO 4217 currency code such as USD")
    return value


def _action(value: str) -> str:
    if not _ACTION_RE.fullmatch(value):
        raise ValueError("must be a short lower-case word such as add, remove or update")
    return value


def _event_id(value: str) -> str:
    if not EVENT_ID_RE.fullmatch(value):
        raise ValueError("must be 8 to 64 characters of A-Z, a-z, 0-9, _ and -")
    return value


Url = Annotated[str, StringConstraints(max_length=MAX_URL_CHARS), AfterValidator(_http_url)]
Referrer = Annotated[str, StringConstraints(max_length=MAX_URL_CHARS), AfterValidator(_referrer)]
Title = Annotated[str, StringConstraints(max_length=MAX_TITLE_CHARS), AfterValidator(_title)]
Sku = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_SKU_CHARS, strip_whitespace=True),
    AfterValidator(_no_controls),
]
Money = Annotated[Decimal, BeforeValidator(_money)]
Quantity = Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY)]
Currency = Annotated[str, StringConstraints(max_length=8), AfterValidator(_currency)]
Time = Annotated[datetime | None, BeforeValidator(_time)]
EventId = Annotated[str, AfterValidator(_event_id)]
OrderId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ORDER_ID_CHARS, strip_whitespace=True),
    AfterValidator(_no_controls),
]
CustomerId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_CUSTOMER_ID_CHARS), AfterValidator(_no_controls),
]
Action = Annotated[str, AfterValidator(_action)]


# --------------------------------------------------------------------------- schema


class _Model(BaseModel):
    # Fields a store adds beyond the schema are dropped, not refused.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Line(_Model):
    sku: Sku
    quantity: Quantity
    price: Money

    def as_json(self) -> dict[str, Any]:
        return {"sku": self.sku, "quantity": self.quantity, "price": float(self.price)}


class PageViewData(_Model):
    """Optional: overrides the envelope's url/title (the page the script runs on)."""

    url: Url = ""
    title: Title = ""
    referrer: Referrer = ""


class ProductViewData(_Model):
    sku: Sku
    price: Money | None = None
    currency: Currency | None = None


class CartData(_Model):
    items: Annotated[list[Line], Field(max_length=MAX_LINES)]
    total: Money | None = None
    currency: Currency = "USD"
    action: Action = ""
    sku: Sku | None = None


class OrderData(_Model):
    order_id: OrderId
    items: Annotated[list[Line], Field(min_length=1, max_length=MAX_LINES)]
    total: Money
    currency: Currency = "USD"


class _EventBase(_Model):
    id: EventId
    at: Time = None
    url: Url = ""
    title: Title = ""
    referrer: Referrer = ""


class PageViewEvent(_EventBase):
    kind: Literal["page_view"]
    data: PageViewData = PageViewData()

    @model_validator(mode="after")
    def _needs_url(self) -> PageViewEvent:
        if not (self.data.url or self.url):
            raise ValueError("a page_view needs the page's url")
        return self

    @property
    def page_url(self) -> str:
        return self.data.url or self.url

    @property
    def page_title(self) -> str:
        return self.data.title or self.title

    @property
    def page_referrer(self) -> str:
        return self.data.referrer or self.referrer


class ProductViewEvent(_EventBase):
    kind: Literal["product_view"]
    data: ProductViewData


class CartEvent(_EventBase):
    kind: Literal["cart"]
    data: CartData


class OrderEvent(_EventBase):
    kind: Literal["order"]
    data: OrderData


Event = Annotated[PageViewEvent | ProductViewEvent | CartEvent | OrderEvent, Field(discriminator="kind")]
_EVENT = TypeAdapter(Event)
KINDS = tuple(k.value for k in EventKind)


class _ServerShopper(_Model):
    """Who a server-to-server call is about: a store customer id and/or the
    visitor token the widget holds (``chatdash.visitor()``)."""

    customer_id: CustomerId | None = None
    visitor: Annotated[str, StringConstraints(max_length=128)] | None = None
    name: Annotated[str, StringConstraints(max_length=200), AfterValidator(_title)] | None = None
    email: Annotated[str, StringConstraints(max_length=320), AfterValidator(_no_controls)] | None = None

    @model_validator(mode="after")
    def _someone(self) -> _ServerShopper:
        if not self.customer_id and not self.visitor:
            raise ValueError("give customer_id or visitor (or both)")
        return self


class ServerOrder(_ServerShopper):
    order_id: OrderId
    items: Annotated[list[Line], Field(min_length=1, max_length=MAX_LINES)]
    total: Money
    currency: Currency = "USD"
    ordered_at: Time = None


class ServerCart(_ServerShopper):
    items: Annotated[list[Line], Field(max_length=MAX_LINES)]
    total: Money | None = None
    currency: Currency = "USD"
    at: Time = None


# --------------------------------------------------------------------------- parsing


def _detail(exc: ValidationError, index: int | None = None, event_id: Any = None) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        if index is not None and loc and loc[0] in KINDS:
            loc = loc[1:]  # the discriminated union's tag
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "union_tag_invalid":
            loc = ["kind"]
            message = f"unknown event kind {err['ctx']['tag']!r}; expected one of {', '.join(KINDS)}"
        elif err["type"] == "union_tag_not_found":
            loc = ["kind"]
            message = f"is required: one of {', '.join(KINDS)}"
        item: dict[str, Any] = {"field": ".".join(str(p) for p in loc) or "(event)", "message": message}
        if index is not None:
            item = {"event": index, "id": event_id if isinstance(event_id, str) else None, **item}
        out.append(item)
    return out


def parse_events(raw: Any) -> list[PageViewEvent | ProductViewEvent | CartEvent | OrderEvent]:
    """Validate a batch of events (the ``events`` list of a /api/track body)."""
    if not isinstance(raw, list):
        raise TrackingError("events must be a list", [{"field": "events", "message": "must be a list of events"}])
    if not raw:
        raise TrackingError("events is empty", [{"field": "events", "message": "must hold at least one event"}])
    if len(raw) > MAX_BATCH_EVENTS:
        raise TrackingError(
            f"too many events: {len(raw)} (at most {MAX_BATCH_EVENTS} per batch)",
            [{"field": "events", "message": f"at most {MAX_BATCH_EVENTS} events per batch"}],
            too_large=True,
        )
    events, detail = [], []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            detail.append({"event": i, "id": None, "field": "(event)", "message": "must be a JSON object"})
            continue
        size = len(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_EVENT_BYTES:
            detail.append({"event": i, "id": item.get("id") if isinstance(item.get("id"), str) else None,
                           "field": "(event)",
                           "message": f"is {size:,} bytes; one event may be at most {MAX_EVENT_BYTES:,}"})
            continue
        try:
            events.append(_EVENT.validate_python(item))
        except ValidationError as exc:
            detail.extend(_detail(exc, i, item.get("id")))
    if detail:
        bad = len({d["event"] for d in detail})
        raise TrackingError(f"{bad} of {len(raw)} events are invalid", detail[:MAX_DETAIL])
    return events


def _parse(model: type[_Model], raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise TrackingError("body must be a JSON object", [{"field": "(body)", "message": "must be a JSON object"}])
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        detail = _detail(exc)
        raise TrackingError(f"{model.__name__} is invalid", detail[:MAX_DETAIL]) from None


def parse_order(raw: Any) -> ServerOrder:
    return _parse(ServerOrder, raw)


def parse_cart(raw: Any) -> ServerCart:
    return _parse(ServerCart, raw)


# --------------------------------------------------------------------------- helpers


def _cents(amount: Decimal) -> int:
    return int(amount * 100)


def clamp_time(at: datetime | None, now: datetime) -> datetime:
    """The reported time, or now when missing or later than the allowed clock skew."""
    if at is None or at > now + FUTURE_SKEW:
        return now
    return at


@dataclass(frozen=True)
class _CatalogItem:
    id: int
    price_cents: int
    currency: str


def _catalog(session: Session, skus: set[str]) -> dict[str, _CatalogItem]:
    """The catalog's products among these skus, in one query."""
    if not skus:
        return {}
    rows = session.exec(
        select(Product.sku, Product.id, Product.price_cents, Product.currency)
        .where(col(Product.sku).in_(sorted(skus)))
    ).all()
    return {sku: _CatalogItem(pid, price, currency) for sku, pid, price, currency in rows}


def _product_id(catalog: dict[str, _CatalogItem], sku: str) -> int | None:
    item = catalog.get(sku)
    return item.id if item else None


def _payload(event: PageViewEvent | ProductViewEvent | CartEvent | OrderEvent) -> dict[str, Any]:
    if isinstance(event, PageViewEvent):
        return {}
    data = event.data
    if isinstance(data, ProductViewData):
        out: dict[str, Any] = {"sku": data.sku}
        if data.price is not None:
            out["price"] = float(data.price)
        if data.currency:
            out["currency"] = data.currency
        return out
    if isinstance(data, CartData):
        out = {}
        if data.action:
            out["action"] = data.action
        if data.sku:
            out["sku"] = data.sku
        total = data.total if data.total is not None else sum((li.price * li.quantity for li in data.items),
                                                              Decimal(0))
        return {**out, "items": [li.as_json() for li in data.items], "total": float(total),
                "currency": data.currency}
    return {"order_id": data.order_id, "items": [li.as_json() for li in data.items],
            "total": float(data.total), "currency": data.currency}


def _insert_events(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert event rows; returns the event ids actually inserted. A concurrent
    request storing the same ids wins the race and its rows count as duplicates."""
    if not rows:
        return set()
    table = StoreEvent.__table__
    try:
        with session.begin_nested():
            session.execute(insert(table), rows)
        return {r["event_id"] for r in rows}
    except IntegrityError:
        inserted = set()
        for row in rows:
            try:
                with session.begin_nested():
                    session.execute(insert(table), [row])
                inserted.add(row["event_id"])
            except IntegrityError:
                pass
        return inserted


@dataclass(frozen=True)
class CartResult:
    applied: bool
    lines: int
    total_cents: int
    currency: str
    ignored_skus: list[str]


def _merge_lines(
    session: Session, items: Sequence[Line], currency: str, *, trust_prices: bool,
    catalog: dict[str, _CatalogItem] | None = None,
) -> tuple[dict[int, tuple[int, int]], list[str]]:
    """product id -> (quantity, unit price in cents), duplicates merged; and the
    skus left out (not in the catalog, or priced in another currency)."""
    products = catalog if catalog is not None else _catalog(session, {li.sku for li in items})
    merged: dict[int, tuple[int, int]] = {}
    ignored: list[str] = []
    for li in items:
        product = products.get(li.sku)
        if product is None or (not trust_prices and product.currency != currency):
            if li.sku not in ignored:
                ignored.append(li.sku)
            continue
        price = _cents(li.price) if trust_prices else product.price_cents
        have = merged.get(product.id, (0, price))[0]
        merged[product.id] = (min(MAX_QUANTITY, have + li.quantity), price)
    return merged, ignored


def replace_cart(
    session: Session, shopper_id: int, items: Sequence[Line], currency: str, at: datetime,
    *, trusted: bool, now: datetime | None = None, catalog: dict[str, _CatalogItem] | None = None,
) -> CartResult:
    """Make the shopper's cart hold exactly these items; ``Cart.total_cents`` is
    always the sum of its lines. ``trusted`` (the store's backend) takes the
    given prices and always applies; otherwise (a browser) lines are priced from
    the catalog and a change older than the stored cart (a late retry) is ignored."""
    now = now or utcnow()
    cart = session.exec(select(Cart).where(Cart.shopper_id == shopper_id).with_for_update()).first()
    if cart is None:
        try:
            with session.begin_nested():
                cart = Cart(shopper_id=shopper_id, currency=currency, updated_at=min(at, now))
                session.add(cart)
                session.flush()
        except IntegrityError:  # created concurrently
            cart = session.exec(select(Cart).where(Cart.shopper_id == shopper_id).with_for_update()).one()
    elif not trusted and cart.updated_at > at:
        return CartResult(False, 0, cart.total_cents, cart.currency, [])
    merged, ignored = _merge_lines(session, items, currency, trust_prices=trusted, catalog=catalog)
    session.execute(delete(CartLine).where(col(CartLine.cart_id) == cart.id))
    session.add_all(
        CartLine(cart_id=cart.id, product_id=pid, quantity=qty, unit_price_cents=price)
        for pid, (qty, price) in merged.items()
    )
    cart.total_cents = sum(qty * price for qty, price in merged.values())
    cart.currency = currency
    cart.updated_at = min(at, now)
    session.add(cart)
    session.flush()
    return CartResult(True, len(merged), cart.total_cents, currency, ignored)


# --------------------------------------------------------------------------- browser events


@dataclass(frozen=True)
class TrackResult:
    accepted: int
    duplicates: int
    shopper_id: int
    conversation_id: int | None
    # The shopper's presence or current page changed (the inbox shows both).
    presence_changed: bool


def track_events(
    session: Session,
    shopper: Shopper,
    events: Sequence[PageViewEvent | ProductViewEvent | CartEvent | OrderEvent],
    *,
    user_agent: str = "",
    window_seconds: int = 60,
    now: datetime | None = None,
) -> TrackResult:
    """Store a validated batch for this shopper, once per event id, and apply it:
    the latest recent page view moves the shopper's current page, the latest
    cart event replaces the cart (priced from the catalog). Orders from the
    browser are events only."""
    now = now or utcnow()
    unique: dict[str, Any] = {}
    for event in events:
        unique.setdefault(event.id, event)
    stored = set(session.exec(
        select(StoreEvent.event_id).where(
            StoreEvent.shopper_id == shopper.id, col(StoreEvent.event_id).in_(list(unique))
        )
    ).all())
    fresh = [e for e in unique.values() if e.id not in stored]
    times = {e.id: clamp_time(e.at, now) for e in fresh}

    # Only a page view from the last presence window says where the shopper is
    # now; an old one replayed from the browser's queue is history only.
    recent_pages = [e for e in fresh if isinstance(e, PageViewEvent)
                    and times[e.id] >= now - timedelta(seconds=window_seconds)]
    change = None
    if recent_pages:
        page = max(reversed(recent_pages), key=lambda e: times[e.id])  # ties: the later in the batch
        change = presence.touch_visit(session, shopper, user_agent=user_agent, url=page.page_url,
                                      title=page.page_title, window_seconds=window_seconds, now=now,
                                      happened_at=times[page.id])
        visit = session.get(Visit, change.visit_id)
    else:
        visit = latest_visit(session, shopper.id) if fresh else None

    # One catalog look-up for the batch: viewed products and the latest cart's lines.
    carts = [e for e in fresh if isinstance(e, CartEvent)]
    cart = max(reversed(carts), key=lambda e: times[e.id]) if carts else None
    skus = {e.data.sku for e in fresh if isinstance(e, ProductViewEvent)}
    catalog = _catalog(session, skus | ({li.sku for li in cart.data.items} if cart else set()))

    rows = []
    for event in fresh:
        at = times[event.id]
        # An event belongs to the visit it happened in; not to one that ended long before.
        in_visit = visit is not None and (min(visit.started_at, now) - FUTURE_SKEW
                                          <= at <= visit.last_seen_at + presence.VISIT_TIMEOUT)
        is_page = isinstance(event, PageViewEvent)
        rows.append({
            "event_id": event.id,
            "shopper_id": shopper.id,
            "visit_id": visit.id if in_visit else None,
            "kind": event.kind,
            "url": event.page_url if is_page else event.url,
            "title": event.page_title if is_page else event.title,
            "referrer": event.page_referrer if is_page else event.referrer,
            "product_id": _product_id(catalog, event.data.sku) if isinstance(event, ProductViewEvent) else None,
            "payload": json.dumps(_payload(event), separators=(",", ":"), ensure_ascii=False),
            "occurred_at": at,
            "received_at": now,
        })
    inserted = _insert_events(session, rows)

    # A cart event stored by a concurrent retry was applied by that request.
    if cart is not None and cart.id in inserted:
        replace_cart(session, shopper.id, cart.data.items, cart.data.currency, times[cart.id],
                     trusted=False, now=now, catalog=catalog)

    conversation = open_conversation_for(session, shopper.id)
    return TrackResult(
        accepted=len(inserted),
        duplicates=len(events) - len(inserted),
        shopper_id=shopper.id,
        conversation_id=conversation.id if conversation else None,
        presence_changed=change is not None and change.changed,
    )


# --------------------------------------------------------------------------- server to server


def shopper_for(
    session: Session, *, visitor_id: str | None = None, customer_id: str | None = None,
    name: str | None = None, email: str | None = None,
) -> Shopper:
    """The shopper a server-to-server call is about, created when new. With a
    visitor id the customer id is attached to that visitor (a customer already
    known under another visitor keeps their shopper)."""
    if visitor_id:
        shopper = get_or_create_shopper(session, visitor_id)
        if customer_id:
            shopper = identify_customer(session, shopper, customer_id, name or "", email or "")
        return shopper
    if not customer_id:
        raise TrackingError("customer_id or visitor is required")
    shopper = session.exec(select(Shopper).where(Shopper.customer_id == customer_id)).first()
    if shopper is None:
        try:
            with session.begin_nested():
                # Known only to the store's backend so far: a visitor id of its
                # own that no browser holds a token for.
                shopper = Shopper(visitor_id=f"cust_{secrets.token_urlsafe(18)}", customer_id=customer_id)
                session.add(shopper)
                session.flush()
        except IntegrityError:  # created concurrently
            shopper = session.exec(select(Shopper).where(Shopper.customer_id == customer_id)).one()
    changed = False
    if name and shopper.name != name:
        shopper.name, changed = name, True
    if email and shopper.email != email.strip():
        shopper.email, changed = email.strip(), True
    if changed:
        session.add(shopper)
        session.flush()
    return shopper


@dataclass(frozen=True)
class OrderResult:
    order_id: int
    external_id: str
    created: bool
    shopper_id: int
    total_cents: int
    currency: str
    ignored_skus: list[str]
    conversation_id: int | None


def record_order(
    session: Session, order: ServerOrder, *, visitor_id: str | None = None, now: datetime | None = None,
) -> OrderResult:
    """Store an order the store's backend reported (source "api"). Idempotent:
    an order whose ``order_id`` is already known is left unchanged."""
    now = now or utcnow()
    existing = session.exec(select(Order).where(Order.external_id == order.order_id)).first()
    if existing is None:
        shopper = shopper_for(session, visitor_id=visitor_id, customer_id=order.customer_id,
                              name=order.name, email=order.email)
        merged, ignored = _merge_lines(session, order.items, order.currency, trust_prices=True)
        row = Order(external_id=order.order_id, shopper_id=shopper.id, total_cents=_cents(order.total),
                    currency=order.currency, ordered_at=clamp_time(order.ordered_at, now),
                    source=API_ORDER_SOURCE)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
                session.add_all(
                    OrderLine(order_id=row.id, product_id=pid, quantity=qty, unit_price_cents=price)
                    for pid, (qty, price) in merged.items()
                )
                session.flush()
        except IntegrityError:  # the same order reported concurrently
            existing = session.exec(select(Order).where(Order.external_id == order.order_id)).one()
        else:
            conversation = open_conversation_for(session, shopper.id)
            return OrderResult(row.id, row.external_id, True, shopper.id, row.total_cents, row.currency,
                               ignored, conversation.id if conversation else None)
    conversation = open_conversation_for(session, existing.shopper_id)
    return OrderResult(existing.id, existing.external_id, False, existing.shopper_id, existing.total_cents,
                       existing.currency, [], conversation.id if conversation else None)


@dataclass(frozen=True)
class ServerCartResult:
    shopper_id: int
    cart: CartResult
    conversation_id: int | None


def record_cart(
    session: Session, cart: ServerCart, *, visitor_id: str | None = None, now: datetime | None = None,
) -> ServerCartResult:
    """Replace the shopper's cart with what the store's backend reported, at its prices."""
    now = now or utcnow()
    shopper = shopper_for(session, visitor_id=visitor_id, customer_id=cart.customer_id,
                          name=cart.name, email=cart.email)
    result = replace_cart(session, shopper.id, cart.items, cart.currency, clamp_time(cart.at, now),
                          trusted=True, now=now)
    conversation = open_conversation_for(session, shopper.id)
    return ServerCartResult(shopper.id, result, conversation.id if conversation else None)
