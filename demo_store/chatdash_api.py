"""How the demo store tells chatdash about carts and orders: the payloads of
chatdash's tracking API, and a background reporter for its server-to-server
endpoints (docs/tracking.md), as any store's backend would use them.

``POST /api/store/carts`` and ``POST /api/store/orders`` with
``Authorization: Bearer <store secret>``, naming the shopper by the visitor
token the chat widget holds. Reports run as background tasks: a store page
never waits for chatdash, and never breaks when chatdash is slow or away.
Network errors, 5xx and 429 are retried with backoff; anything else is logged.
Cart reports are coalesced per shopper (only the latest cart is sent, in
order); orders are idempotent at chatdash (by order number), so a retry or a
re-send is safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from demo_store.cart import CartView, OrderView

log = logging.getLogger("demo_store.chatdash")

# Pauses before each retry (seconds): about half a minute in all.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
MAX_RETRY_AFTER = 30.0
TIMEOUT = httpx.Timeout(5.0, connect=3.0)


def _units(cents: int) -> float:
    return cents / 100


def cart_payload(view: CartView, action: str = "update") -> dict[str, Any]:
    """The cart as chatdash's tracking API takes it (prices in currency units)."""
    return {
        "action": action,
        "items": [
            {"sku": line.sku, "quantity": line.quantity, "price": _units(line.unit_price_cents)}
            for line in view.lines
        ],
        "total": _units(view.total_cents),
        "currency": view.currency,
    }


def order_payload(order: OrderView) -> dict[str, Any]:
    """An order as chatdash's tracking API takes it."""
    return {
        "order_id": order.number,
        "items": [
            {"sku": line.sku, "quantity": line.quantity, "price": _units(line.unit_price_cents)}
            for line in order.lines
        ],
        "total": _units(order.total_cents),
        "currency": order.currency,
    }


class ChatdashAPI:
    """chatdash's server-to-server endpoints, with retries."""

    def __init__(self, base_url: str, secret: Callable[[], str], *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 retry_delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        self.base_url = base_url.rstrip("/")
        self._secret = secret
        self._transport = transport
        self._delays = retry_delays
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        # One connection pool per event loop (tests run several loops).
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=TIMEOUT, transport=self._transport)
            self._loop = loop
        return self._client

    async def post(self, path: str, body: dict[str, Any], what: str) -> dict[str, Any] | None:
        """POST ``body``; the JSON answer, or None when chatdash refused it or
        could not be reached after the retries (both are logged)."""
        headers = {"Authorization": f"Bearer {self._secret()}"}
        for attempt in range(len(self._delays) + 1):
            wait = self._delays[min(attempt, len(self._delays) - 1)]
            try:
                response = await self._http().post(path, json=body, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return response.json()
                problem = f"{response.status_code} {response.text[:300]}"
                if response.status_code not in (408, 429) and response.status_code < 500:
                    log.error("chatdash refused the %s (not retried): %s", what, problem)
                    return None
                retry_after = response.headers.get("retry-after", "")
                if retry_after.isdigit():
                    wait = max(wait, min(float(retry_after), MAX_RETRY_AFTER))
            if attempt == len(self._delays):
                break
            log.info("reporting the %s to chatdash failed (%s); retrying in %.1f s", what, problem, wait)
            await asyncio.sleep(wait)
        log.warning("gave up reporting the %s to chatdash: %s", what, problem)
        return None


class Reporter:
    """Sends cart changes and orders to chatdash in the background."""

    def __init__(self, api: ChatdashAPI,
                 on_order_reported: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.api = api
        self._on_order_reported = on_order_reported
        self._tasks: set[asyncio.Task] = set()
        self._carts: dict[str, dict[str, Any]] = {}
        self._cart_senders: dict[str, asyncio.Task] = {}

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task | None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # no event loop: nothing to report from
            coro.close()
            log.warning("no event loop; a report to chatdash was dropped")
            return None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def cart(self, shopper: str, visitor: str, view: CartView) -> None:
        """Report the shopper's whole cart (it replaces the previous one)."""
        if not visitor:
            return  # chatdash cannot tell who this is yet; sent once the chat names the shopper
        body = {"visitor": visitor, **cart_payload(view)}
        body.pop("action")
        self._carts[shopper] = body
        if shopper not in self._cart_senders:
            task = self._spawn(self._send_carts(shopper))
            if task is not None:
                self._cart_senders[shopper] = task

    async def _send_carts(self, shopper: str) -> None:
        try:
            # Later changes replace the pending one, so chatdash gets the latest cart last.
            while shopper in self._carts:
                await self.api.post("/api/store/carts", self._carts.pop(shopper), "cart")
        except Exception:
            log.exception("reporting a cart to chatdash failed")
        finally:
            self._cart_senders.pop(shopper, None)

    def order(self, order: OrderView) -> None:
        """Report a placed order; once chatdash has it, ``on_order_reported`` marks it."""
        if not order.chatdash_visitor:
            return  # kept unreported; sent when the chat names the shopper
        self._spawn(self._send_order(order))

    async def _send_order(self, order: OrderView) -> None:
        try:
            body = {"visitor": order.chatdash_visitor, **order_payload(order)}
            answer = await self.api.post("/api/store/orders", body, f"order {order.number}")
            if answer is not None and self._on_order_reported is not None:
                await self._on_order_reported(order.number)
        except Exception:
            log.exception("reporting order %s to chatdash failed", order.number)

    async def drain(self) -> None:
        """Wait until every report started so far is done (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
