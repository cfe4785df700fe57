"""The Insights page: what the product cards sent into chats earned, read
once per load (services/attribution.py computes it; this maps it to charts)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from chatdash.services import attribution
from chatdash.state.auth import AuthState, admin_event
from chatdash.state.views import money

# The series every funnel chart shows, in order (data keys of the chart rows).
STEPS = ("Sent", "Clicked", "Added to cart", "Ordered")


@dataclasses.dataclass
class FunnelRow:
    """One source or product as the tables show it."""

    key: str = ""
    label: str = ""
    sent: int = 0
    clicked: int = 0
    carted: int = 0
    ordered: int = 0
    revenue: str = ""
    conversion: str = ""  # ordered / sent

    @classmethod
    def of(cls, f: attribution.Funnel, currency: str) -> FunnelRow:
        return cls(f.key, f.label, f.sent, f.clicked, f.carted, f.ordered, money(f.revenue_cents, currency),
                   _rate(f.ordered, f.sent))


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "—"


def _chart_row(f: attribution.Funnel, name: str) -> dict[str, Any]:
    return {name: f.label, "Sent": f.sent, "Clicked": f.clicked, "Added to cart": f.carted, "Ordered": f.ordered,
            "Revenue": round(f.revenue_cents / 100, 2)}


class InsightsState(AuthState):
    period: str = "12"  # weeks, as the period control's value
    loaded: bool = False
    sent: int = 0
    clicked: int = 0
    carted: int = 0
    ordered: int = 0
    clicked_rate: str = "—"
    carted_rate: str = "—"
    ordered_rate: str = "—"
    revenue: str = ""
    by_source_chart: list[dict[str, Any]] = []
    by_week_chart: list[dict[str, Any]] = []
    sources: list[FunnelRow] = []
    top_products: list[FunnelRow] = []

    reading: bool = False  # a report is being computed (about a second at 100k cards)

    @admin_event
    def load(self):
        self.reading = True
        return InsightsState.read  # the page shows "reading" first, then the numbers

    @admin_event
    def set_period(self, value: Any):
        if not isinstance(value, str) or value not in {str(p) for p in attribution.PERIODS}:
            return None
        self.period = value
        self.reading = True
        return InsightsState.read

    @admin_event
    async def read(self):
        try:
            await self._read()
        finally:
            self.reading = False

    async def _read(self) -> None:
        report = await asyncio.to_thread(attribution.insights, int(self.period))
        t, currency = report.total, report.currency
        self.sent, self.clicked, self.carted, self.ordered = t.sent, t.clicked, t.carted, t.ordered
        self.clicked_rate, self.carted_rate = _rate(t.clicked, t.sent), _rate(t.carted, t.sent)
        self.ordered_rate = _rate(t.ordered, t.sent)
        self.revenue = money(t.revenue_cents, currency)
        self.by_source_chart = [_chart_row(f, "source") for f in report.by_source]
        self.by_week_chart = [_chart_row(f, "week") for f in report.by_week]
        self.sources = [FunnelRow.of(f, currency) for f in report.by_source]
        self.top_products = [FunnelRow.of(f, currency) for f in report.top_products]
        self.loaded = True
