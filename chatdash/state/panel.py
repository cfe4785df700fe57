"""View models of the shopper panel (right side of the conversations page),
built from services.insights. Small and flat: they travel to the browser."""

from __future__ import annotations

import dataclasses
from urllib.parse import unquote, urlsplit

from chatdash.services.devices import DeviceInfo
from chatdash.services.insights import SessionSummary, ShopperHistory
from chatdash.state.views import ProductHit, clock, money


def readable_path(url: str) -> str:
    """A page address as an admin reads it when the page has no title: the
    path and query, without scheme and host ("/store/product/KID-001")."""
    parts = urlsplit(url)
    path = unquote(parts.path or "/") + (f"?{unquote(parts.query)}" if parts.query else "")
    return path if parts.netloc else url


@dataclasses.dataclass
class PageRow:
    url: str = ""
    title: str = ""
    time: str = ""


@dataclasses.dataclass
class CartRow:
    name: str = ""
    sku: str = ""
    quantity: int = 0
    price: str = ""


@dataclasses.dataclass
class OrderRow:
    order_id: str = ""
    date: str = ""
    total: str = ""
    item_count: int = 0


@dataclasses.dataclass
class SessionView:
    present: bool = False
    device: str = ""
    started: str = ""
    pages_count: int = 0
    pages: list[PageRow] = dataclasses.field(default_factory=list)
    viewed: list[ProductHit] = dataclasses.field(default_factory=list)  # reason: when
    cart_total: str = ""
    cart_count: int = 0
    cart: list[CartRow] = dataclasses.field(default_factory=list)

    @classmethod
    def build(cls, s: SessionSummary | None) -> SessionView:
        if s is None:
            return cls()
        device = DeviceInfo(s.device, s.browser, s.os).label
        return cls(
            present=True,
            device=device,
            started=clock(s.started_at),
            pages_count=s.pages_viewed,
            pages=[PageRow(p.url, p.title or readable_path(p.url), clock(p.at)) for p in s.pages[:20]],
            viewed=[ProductHit.of(id=i.product_id, sku=i.sku, name=i.name, price_cents=i.price_cents,
                                  currency=i.currency, url=i.url, image_url=i.image_url, reason=clock(i.at))
                    for i in s.items_viewed[:20]],
            cart_total=money(s.cart_total_cents, s.cart_currency or "USD"),
            cart_count=sum(c.quantity for c in s.cart_items),
            cart=[CartRow(c.name, c.sku, c.quantity, money(c.unit_price_cents * c.quantity, s.cart_currency or "USD"))
                  for c in s.cart_items],
        )


@dataclasses.dataclass
class HistoryView:
    returning: bool = False
    first_seen: str = ""
    previous_visits: int = 0
    orders_count: int = 0
    total_spent: str = ""
    orders: list[OrderRow] = dataclasses.field(default_factory=list)
    most_viewed: list[ProductHit] = dataclasses.field(default_factory=list)  # reason: how often

    @classmethod
    def build(cls, h: ShopperHistory) -> HistoryView:
        return cls(
            returning=h.is_returning,
            first_seen=h.first_seen.strftime("%d %b %Y") if h.first_seen else "",
            previous_visits=h.previous_visits,
            orders_count=h.orders_count,
            total_spent=money(h.total_spent_cents, h.currency or "USD"),
            orders=[OrderRow(o.external_id, o.ordered_at.strftime("%d %b %Y"), money(o.total_cents, o.currency),
                             o.items) for o in h.orders[:10]],
            most_viewed=[ProductHit.of(id=v.product_id, sku=v.sku, name=v.name, url=v.url, reason=f"{v.views}×")
                         for v in h.most_viewed],
        )
