"""The demo store meets chatdash only through chatdash's public interfaces: the
catalog CSV that import-catalog reads, and the server-to-server API
(/api/store/carts, /api/store/orders) — here the real API on a real SQLite file."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, col, select

from chatdash.db import get_engine, migrate, session_scope
from chatdash.models import Cart, CartLine, Order, OrderLine, Product, Shopper
from chatdash.services import catalog as chatdash_catalog
from chatdash.services import identity
from chatdash.services.demo_data import generate_demo_data, write_catalog_csv
from chatdash.services.ratelimit import clear_limiters
from chatdash.settings import get_settings
from demo_store import catalog as store_catalog
from demo_store.cart import CartLineView, CartView, OrderLineView, OrderView
from demo_store.chatdash_api import ChatdashAPI, Reporter, cart_payload
from demo_store.db import make_engine
from demo_store.models import Product as StoreProduct

STORE_URL = "http://localhost:3000/store"


@pytest.fixture
def store_engine(tmp_path: Path):
    eng = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    yield eng
    eng.dispose()


# --------------------------------------------------------------------------- catalog


def test_the_store_loads_the_same_catalog_csv_that_chatdash_imports(engine, store_engine, tmp_path):
    generate_demo_data(engine, store_url=STORE_URL, products=60, shoppers=5, orders=5)
    path = tmp_path / "catalog.csv"
    assert write_catalog_csv(engine, path, STORE_URL) == 60
    assert store_catalog.is_empty(store_engine)
    assert store_catalog.load_catalog_csv(path, store_engine) == 60

    with Session(engine) as s:
        theirs = {p.sku: p for p in s.exec(select(Product)).all()}
    with Session(store_engine) as s:
        ours = {p.sku: p for p in s.exec(select(StoreProduct)).all()}
    assert ours.keys() == theirs.keys()
    for sku, p in theirs.items():
        q = ours[sku]
        assert (q.name, q.category, q.description, q.price_cents, q.currency, q.image_url, q.in_stock) == (
            p.name, p.category, p.description, p.price_cents, p.currency, p.image_url, p.in_stock)
    # The file is import-catalog's format: chatdash reads it back as its own catalog, unchanged.
    result = chatdash_catalog.import_catalog(engine, path)
    assert (result.rows, result.created, result.updated, result.unchanged) == (60, 0, 0, 60)
    # Loading again changes nothing.
    assert store_catalog.load_catalog_csv(path, store_engine) == 60
    with Session(store_engine) as s:
        assert len(s.exec(select(StoreProduct)).all()) == 60


def test_a_catalog_csv_with_a_bad_row_loads_nothing(store_engine, tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text("SKU,Name,Category,Price,In Stock\nA-1,Tent,Camping,19.99,yes\nA-2,Mug,Camping,1.005,no\n")
    with pytest.raises(store_catalog.CatalogFileError, match="row 3: price"):
        store_catalog.load_catalog_csv(path, store_engine)
    assert store_catalog.is_empty(store_engine)
    path.write_text("sku,name,price\nA-1,Tent,19.99\n")
    with pytest.raises(store_catalog.CatalogFileError, match="missing column"):
        store_catalog.load_catalog_csv(path, store_engine)


# --------------------------------------------------------------------------- reports


@pytest.fixture
def chatdash_api(tmp_path: Path, monkeypatch) -> Iterator[httpx.ASGITransport]:
    """chatdash's HTTP API on its own migrated SQLite file, reached in-process."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'chatdash.db'}")
    get_settings.cache_clear()
    get_engine.cache_clear()
    clear_limiters()
    migrate(get_engine())
    with session_scope() as s:
        s.add_all([Product(sku="TENT-1", name="Summit Tent", category="Camping", price_cents=19_900,
                           url=f"{STORE_URL}/product/TENT-1"),
                   Product(sku="BAG-1", name="Sleeping Bag", category="Camping", price_cents=12_950,
                           url=f"{STORE_URL}/product/BAG-1")])
    from chatdash.api.routes import api

    yield httpx.ASGITransport(app=api)
    get_engine().dispose()
    get_settings.cache_clear()
    get_engine.cache_clear()
    clear_limiters()


def _reporter(transport: httpx.AsyncBaseTransport, reported: list[str], secret: str | None = None) -> Reporter:
    async def on_reported(number: str) -> None:
        reported.append(number)

    api = ChatdashAPI("http://chatdash.test", lambda: secret or get_settings().store_secret,
                      transport=transport, retry_delays=(0.01, 0.01, 0.01))
    return Reporter(api, on_order_reported=on_reported)


def _visitor() -> tuple[str, str]:
    token = identity.issue_visitor_token(get_settings().secret_key)
    return token, token.split(".")[0]


def _view(*lines: tuple[str, int, int]) -> CartView:
    views = [CartLineView(sku, sku, "", qty, cents, qty * cents, True) for sku, qty, cents in lines]
    return CartView(views, sum(v.line_total_cents for v in views), "USD")


def _chatdash_cart(visitor_id: str) -> list[tuple[str, int, int]]:
    with Session(get_engine()) as s:
        rows = s.exec(
            select(Product.sku, CartLine.quantity, CartLine.unit_price_cents)
            .join(CartLine, col(CartLine.product_id) == Product.id)
            .join(Cart, col(Cart.id) == CartLine.cart_id)
            .join(Shopper, col(Shopper.id) == Cart.shopper_id)
            .where(Shopper.visitor_id == visitor_id)
            .order_by(col(Product.sku))
        ).all()
    return [tuple(r) for r in rows]


def test_the_cart_payload_is_in_currency_units():
    assert cart_payload(_view(("BAG-1", 2, 12_950)), "add") == {
        "action": "add",
        "items": [{"sku": "BAG-1", "quantity": 2, "price": 129.5}],
        "total": 259.0,
        "currency": "USD",
    }


@pytest.mark.asyncio
async def test_the_latest_cart_reaches_chatdash_at_the_stores_prices(chatdash_api):
    token, visitor_id = _visitor()
    reporter = _reporter(chatdash_api, [])
    reporter.cart("shopper-a", token, _view(("TENT-1", 1, 19_900)))
    reporter.cart("shopper-a", token, _view(("TENT-1", 2, 19_900)))
    reporter.cart("shopper-a", token, _view(("TENT-1", 2, 18_000), ("BAG-1", 1, 12_950)))
    await reporter.drain()
    assert _chatdash_cart(visitor_id) == [("BAG-1", 1, 12_950), ("TENT-1", 2, 18_000)]
    reporter.cart("shopper-a", token, _view())
    await reporter.drain()
    assert _chatdash_cart(visitor_id) == []


@pytest.mark.asyncio
async def test_an_order_reaches_chatdash_once_and_is_marked_reported(chatdash_api):
    token, visitor_id = _visitor()
    reported: list[str] = []
    reporter = _reporter(chatdash_api, reported)
    number = f"DS-{uuid.uuid4().hex[:6].upper()}"
    placed = OrderView(number, 2 * 19_900, "USD", [OrderLineView("TENT-1", 2, 19_900)], token)
    reporter.order(placed)
    reporter.order(placed)  # a re-send (e.g. after a restart) is safe
    await reporter.drain()
    assert reported == [number, number]
    with Session(get_engine()) as s:
        orders = s.exec(select(Order).where(Order.external_id == number)).all()
        assert [(o.total_cents, o.source) for o in orders] == [(39_800, "api")]
        assert s.get(Shopper, orders[0].shopper_id).visitor_id == visitor_id
        lines = s.exec(select(OrderLine.quantity, OrderLine.unit_price_cents)
                       .where(OrderLine.order_id == orders[0].id)).all()
        assert [tuple(li) for li in lines] == [(2, 19_900)]


@pytest.mark.asyncio
async def test_a_refused_report_is_logged_not_retried_and_not_marked(chatdash_api, caplog):
    token, _ = _visitor()
    calls: list[str] = []

    async def counting(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return await chatdash_api.handle_async_request(request)

    reported: list[str] = []
    reporter = _reporter(httpx.MockTransport(counting), reported, secret="not-the-store-secret")
    with caplog.at_level(logging.ERROR, logger="demo_store.chatdash"):
        reporter.order(OrderView("DS-REFUSED", 100, "USD", [OrderLineView("TENT-1", 1, 100)], token))
        await reporter.drain()
    assert calls == ["/api/store/orders"]
    assert reported == []
    assert "401" in caplog.text


@pytest.mark.asyncio
async def test_reports_are_retried_while_chatdash_is_away(chatdash_api, caplog):
    token, visitor_id = _visitor()
    failures = [httpx.ConnectError("connection refused"), httpx.Response(503, headers={"Retry-After": "0"})]

    async def flaky(request: httpx.Request) -> httpx.Response:
        if failures:
            failure = failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return await chatdash_api.handle_async_request(request)

    reported: list[str] = []
    reporter = _reporter(httpx.MockTransport(flaky), reported)
    reporter.cart("shopper-b", token, _view(("BAG-1", 3, 12_950)))
    await reporter.drain()
    assert _chatdash_cart(visitor_id) == [("BAG-1", 3, 12_950)]

    # Never reachable: given up after the retries, logged, and the store is none the wiser.
    async def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    reporter = _reporter(httpx.MockTransport(down), reported)
    with caplog.at_level(logging.WARNING, logger="demo_store.chatdash"):
        reporter.order(OrderView("DS-AWAY", 100, "USD", [OrderLineView("TENT-1", 1, 100)], token))
        await reporter.drain()
    assert reported == []
    assert "gave up reporting the order DS-AWAY" in caplog.text


def test_nothing_is_reported_before_the_chat_names_the_shopper():
    reporter = _reporter(httpx.MockTransport(lambda r: pytest.fail("nothing may be sent")), [])
    reporter.cart("shopper-c", "", _view(("TENT-1", 1, 100)))
    reporter.order(OrderView("DS-NOBODY", 100, "USD", [OrderLineView("TENT-1", 1, 100)], ""))
    assert not reporter._tasks
