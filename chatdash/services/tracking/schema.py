"""What a store may send: pydantic models of events, orders and carts, and errors that name each bad field."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
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

from chatdash.models import EventKind

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

EVENT_ID_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_ACTION_RE = re.compile(r"[a-z_]{0,32}")
# Unicode's control characters (category Cc) are exactly these 65 code points;
# `\s` is str.isspace(). One regex scan instead of a unicodedata call per
# character: the per-character checks were about a third of the validation's CPU.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACE_OR_CONTROL_RE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
_CENT = Decimal("0.01")
# The common address, plain ASCII: an http(s) scheme and a host of ordinary
# characters (no brackets, no "/?#"). urlsplit finds the same scheme and a
# non-empty netloc in every string this matches; others go through urlsplit.
_PLAIN_HTTP_URL_RE = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~%!$&'()*+,;=:@-]+(?:[/?#][!-~]*)?")


def _compact_json_encoder() -> Callable[[Any], str]:
    """``json.dumps(obj, separators=(",", ":"), ensure_ascii=False)``, the same
    text, without the 2-3 us that json spends per call making a new encoder:
    the C encoder json makes on every call is made once (with the same
    arguments). Only for trees of JSON values (no cycles are looked for)."""
    fallback = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    if c_make_encoder is None:  # a Python without json's C accelerator
        return fallback.encode
    encode = c_make_encoder(None, fallback.default, encode_basestring, None, ":", ",", False, False, True)
    return lambda obj: "".join(encode(obj, 0))


compact_json = _compact_json_encoder()


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
    if _CONTROL_RE.search(value):
        raise ValueError("must not contain control characters")
    return value


def _http_url(value: str) -> str:
    """An absolute http(s) address; refuses javascript:, data:, relative URLs."""
    if value == "":
        return value
    if _SPACE_OR_CONTROL_RE.search(value):
        raise ValueError("must be an http(s) address without spaces or control characters")
    if _PLAIN_HTTP_URL_RE.fullmatch(value):
        return value  # what urlsplit below accepts, without its cost
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
    return " ".join(_CONTROL_RE.sub(" ", value).split())


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
    cents = amount.quantize(_CENT)
    if amount != cents:
        raise ValueError("must have at most two decimals")
    return cents


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
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+14:00 or 9999-12-31T23:59-14:00: no such time in UTC.
        raise ValueError("is out of range: in UTC it falls before year 1 or after year 9999") from None


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


# --------------------------------------------------------------------------- models


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


_NOT_UNICODE, _TOO_DEEP = -1, -2


def _serialised_size(value: Any) -> int:
    """Bytes of `value` as compact JSON (UTF-8); or _NOT_UNICODE (JSON may
    spell half of a UTF-16 pair, "\\ud800", on its own: no database stores
    that), or _TOO_DEEP."""
    try:
        return len(compact_json(value).encode())
    except UnicodeEncodeError:
        return _NOT_UNICODE
    except RecursionError:
        return _TOO_DEEP


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
    # The usual batch is smaller, all of it, than one event may be: then no
    # event is too large, and one encoding of the list tells it.
    whole = _serialised_size(raw)
    sized = whole < 0 or whole > MAX_EVENT_BYTES
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            detail.append({"event": i, "id": None, "field": "(event)", "message": "must be a JSON object"})
            continue
        event_id = item.get("id") if isinstance(item.get("id"), str) else None
        size = _serialised_size(item) if sized else 0
        if size < 0:
            message = ("contains text that is not valid Unicode (a lone UTF-16 surrogate)" if size == _NOT_UNICODE
                       else "is nested too deeply")
            detail.append({"event": i, "id": None, "field": "(event)", "message": message})
            continue
        if size > MAX_EVENT_BYTES:
            detail.append({"event": i, "id": event_id, "field": "(event)",
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
