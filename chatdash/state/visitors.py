"""The Visitors page: everyone on the store now, read once on load, then kept
up to date visitor by visitor from presence and store-activity events."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any
from urllib.parse import urlsplit

from chatdash import live
from chatdash.events import PresenceChanged, ShopperActivity
from chatdash.services import visitors
from chatdash.state.auth import AuthState, admin_event
from chatdash.state.views import clock, money

# A page summarising hundreds of shoppers changes on every page view of any
# of them: its tabs take the news at most once a second.
VISITORS_WINDOW = 1.0


@dataclasses.dataclass
class VisitorView:
    shopper_id: int = 0
    label: str = ""
    identified: bool = False
    page_title: str = ""
    page_path: str = ""
    device: str = ""
    pages: int = 0
    cart: str = ""
    cart_cents: int = 0
    conversation_id: int = 0
    since: str = ""
    last_seen: float = 0.0

    @classmethod
    def from_row(cls, r: visitors.VisitorRow) -> VisitorView:
        parts = urlsplit(r.current_url)
        return cls(
            shopper_id=r.shopper_id,
            label=r.label,
            identified=r.identified,
            page_title=r.current_title or parts.path or r.current_url,
            page_path=(parts.path + (f"?{parts.query}" if parts.query else ""))[:120],
            device=r.device,
            pages=r.pages,
            cart=money(r.cart_cents, r.currency) if r.cart_cents else "",
            cart_cents=r.cart_cents,
            conversation_id=r.conversation_id,
            since=clock(r.started_at),
            last_seen=r.last_seen_at.timestamp(),
        )


def _load_visitor(event: Any) -> visitors.VisitorRow | None:
    return visitors.visitor(event.shopper_id)


class VisitorsState(AuthState):
    visitors: list[VisitorView] = []
    sort_by: str = "recent"

    @admin_event
    async def load(self):
        live.subscribe(self, live.VISITORS)
        await self._read()

    @admin_event
    async def set_sort(self, value: Any):
        if value not in visitors.SORTS:
            return
        self.sort_by = value
        self.visitors = self._sorted(self.get_value("visitors"))

    async def _read(self) -> None:
        rows = await asyncio.to_thread(visitors.visitors_on_site, self.sort_by)
        self.visitors = [VisitorView.from_row(r) for r in rows]

    def _sorted(self, rows: list[VisitorView]) -> list[VisitorView]:
        if self.sort_by == "cart":
            return sorted(rows, key=lambda v: (-v.cart_cents, -v.last_seen, v.shopper_id))
        return sorted(rows, key=lambda v: (-v.last_seen, v.shopper_id))

    # ----- pushed --------------------------------------------------------
    @live.on(PresenceChanged, topic=live.visitors_topic, load=_load_visitor, window=VISITORS_WINDOW)
    def _on_presence(self, event: PresenceChanged, row: visitors.VisitorRow | None) -> None:
        self._replace(event.shopper_id, row if event.on_site else None)

    @live.on(ShopperActivity, topic=live.visitors_topic, load=_load_visitor, window=VISITORS_WINDOW)
    def _on_activity(self, event: ShopperActivity, row: visitors.VisitorRow | None) -> None:
        self._replace(event.shopper_id, row)

    def _replace(self, shopper_id: int, row: visitors.VisitorRow | None) -> None:
        """The visitor's row as it is now: updated, added, or gone (left the store)."""
        rows = [v for v in self.get_value("visitors") if v.shopper_id != shopper_id]
        if row is not None:
            rows.append(VisitorView.from_row(row))
        self.visitors = self._sorted(rows)[:visitors.MAX_VISITORS]
