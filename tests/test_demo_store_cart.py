"""The demo store's cart, checkout and catalog browsing on its own SQLite file:
quantities, unknown skus, stock, currencies and orders, validated as if from a browser."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from demo_store import cart as store_cart
from demo_store import catalog
from demo_store.cart import CartError
from demo_store.db import make_engine, session_scope
from demo_store.models import Cart, CartLine, Order, OrderLine, Product

SHOP = "shopper-one-abcdefghij"
VISITOR = "visitor-one-abcdefghij.signature-abcdefghijklmnopqrstu"


def _product(sku: str, name: str, category: str, price_cents: int, in_stock: bool = True,
             currency: str = "USD") -> Product:
    return Product(sku=sku, name=name, category=category, price_cents=price_cents, currency=currency,
                   image_url="http://localhost:3000/product-images/x.svg", in_stock=in_stock,
                   description=f"About {name}.")


@pytest.fixture
def store_engine(tmp_path):
    """The store's own database: a SQLite file with its tables and nothing else."""
    eng = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    yield eng
    eng.dispose()


@pytest.fixture
def engine(store_engine):
    """A small catalog; carts and orders belong to the shopper SHOP."""
    with session_scope(store_engine) as s:
        s.add_all([
            _product("TENT-1", "Summit Tent", "Camping", 19_900),
            _product("BAG-1", "Down Sleeping Bag", "Camping", 12_950),
            _product("MUG-1", "Enamel Mug", "Camping", 1_200, in_stock=False),
            _product("EUR-1", "Euro Stove", "Camping", 5_000, currency="EUR"),
            _product("SHOE-1", "Trail Shoe", "Running", 11_000),
        ])
    return store_engine


@pytest.fixture
def shop():
    return SHOP


def _stored_cart(engine, shopper: str) -> tuple[Cart, list[CartLine]]:
    with Session(engine) as s:
        cart = s.exec(select(Cart).where(Cart.shopper == shopper)).one()
        lines = s.exec(select(CartLine).where(CartLine.cart_id == cart.id)).all()
        return cart, list(lines)


def test_adding_products_keeps_the_stored_total_equal_to_the_lines(engine, shop):
    with session_scope(engine) as s:
        store_cart.add_to_cart(s, shop, "TENT-1", 2)
        view = store_cart.add_to_cart(s, shop, "BAG-1", 1)
    assert [(line.sku, line.quantity, line.line_total_cents) for line in view.lines] == [
        ("TENT-1", 2, 39_800), ("BAG-1", 1, 12_950)]
    assert view.total_cents == 52_750
    assert view.item_count == 3
    cart, lines = _stored_cart(engine, shop)
    assert cart.total_cents == sum(line.quantity * line.unit_price_cents for line in lines) == 52_750


def test_adding_the_same_product_again_raises_its_quantity_up_to_99(engine, shop):
    with session_scope(engine) as s:
        store_cart.add_to_cart(s, shop, "TENT-1", 2)
        assert store_cart.add_to_cart(s, shop, "TENT-1", 3).lines[0].quantity == 5
        view = store_cart.add_to_cart(s, shop, "TENT-1", 99)
    assert len(view.lines) == 1
    assert view.lines[0].quantity == 99
    assert view.total_cents == 99 * 19_900


def test_set_quantity_and_remove_update_the_total(engine, shop):
    with session_scope(engine) as s:
        store_cart.add_to_cart(s, shop, "TENT-1", 1)
        store_cart.add_to_cart(s, shop, "SHOE-1", 1)
        view = store_cart.set_quantity(s, shop, "SHOE-1", 3)
        assert view.total_cents == 19_900 + 33_000
        view = store_cart.remove(s, shop, "TENT-1")
    assert [line.sku for line in view.lines] == ["SHOE-1"]
    assert view.total_cents == 33_000
    cart, lines = _stored_cart(engine, shop)
    assert cart.total_cents == 33_000 and len(lines) == 1
    with session_scope(engine) as s:
        assert store_cart.get_cart(s, shop).total_cents == 33_000


@pytest.mark.parametrize("quantity", [0, -1, 100, 10**9, 1.5, "2", None, True, [1]])
def test_a_quantity_outside_1_to_99_or_not_an_integer_is_refused(engine, shop, quantity):
    with session_scope(engine) as s:
        with pytest.raises(CartError):
            store_cart.add_to_cart(s, shop, "TENT-1", quantity)
        with pytest.raises(CartError):
            store_cart.set_quantity(s, shop, "TENT-1", quantity)
        assert store_cart.get_cart(s, shop).lines == []


@pytest.mark.parametrize("sku", ["NOPE-1", "", "x" * 65, None, 12, {"sku": "TENT-1"}])
def test_unknown_or_malformed_skus_are_refused(engine, shop, sku):
    with session_scope(engine) as s:
        with pytest.raises(CartError, match="not in the catalog"):
            store_cart.add_to_cart(s, shop, sku, 1)
        with pytest.raises(CartError, match="not in the catalog"):
            store_cart.remove(s, shop, sku)


def test_out_of_stock_products_cannot_be_added(engine, shop):
    with session_scope(engine) as s, pytest.raises(CartError, match="out of stock"):
        store_cart.add_to_cart(s, shop, "MUG-1", 1)


def test_a_cart_holds_one_currency(engine, shop):
    with session_scope(engine) as s:
        store_cart.add_to_cart(s, shop, "TENT-1", 1)
        with pytest.raises(CartError, match="priced in EUR"):
            store_cart.add_to_cart(s, shop, "EUR-1", 1)


def test_place_order_writes_order_and_lines_and_empties_the_cart(engine, shop):
    with session_scope(engine) as s:
        store_cart.add_to_cart(s, shop, "TENT-1", 2)
        store_cart.add_to_cart(s, shop, "BAG-1", 1)
        order = store_cart.place_order(s, shop, VISITOR)
    assert order.number.startswith("DS-")
    assert (order.total_cents, order.chatdash_visitor) == (52_750, VISITOR)
    with Session(engine) as s:
        stored = s.exec(select(Order).where(Order.number == order.number)).one()
        assert (stored.shopper, stored.total_cents, stored.reported_at) == (shop, 52_750, None)
        lines = s.exec(select(OrderLine).where(OrderLine.order_id == stored.id)).all()
        assert sorted((line.sku, line.quantity, line.unit_price_cents) for line in lines) == [
            ("BAG-1", 1, 12_950), ("TENT-1", 2, 19_900)]
    cart, cart_lines = _stored_cart(engine, shop)
    assert cart.total_cents == 0 and cart_lines == []


def test_an_empty_cart_cannot_be_ordered(engine, shop):
    with session_scope(engine) as s:
        with pytest.raises(CartError, match="empty"):
            store_cart.place_order(s, shop)
        store_cart.add_to_cart(s, shop, "TENT-1", 1)
        store_cart.remove(s, shop, "TENT-1")
        with pytest.raises(CartError, match="empty"):
            store_cart.place_order(s, shop)
    with Session(engine) as s:
        assert s.exec(select(Order)).all() == []


def test_an_order_is_refused_while_an_item_is_out_of_stock(engine, shop):
    with session_scope(engine) as s:
        store_cart.add_to_cart(s, shop, "TENT-1", 1)
        store_cart.add_to_cart(s, shop, "BAG-1", 1)
    with session_scope(engine) as s:  # the bag sells out meanwhile
        s.exec(select(Product).where(Product.sku == "BAG-1")).one().in_stock = False
    with session_scope(engine) as s:
        with pytest.raises(CartError, match="Down Sleeping Bag"):
            store_cart.place_order(s, shop)
        # It can still be lowered or removed, but not raised.
        with pytest.raises(CartError, match="out of stock"):
            store_cart.set_quantity(s, shop, "BAG-1", 2)
        store_cart.remove(s, shop, "BAG-1")
        order = store_cart.place_order(s, shop)
    assert order.total_cents == 19_900


def test_the_cart_follows_catalog_price_changes(engine, shop):
    with session_scope(engine) as s:
        store_cart.add_to_cart(s, shop, "TENT-1", 2)
    with session_scope(engine) as s:
        s.exec(select(Product).where(Product.sku == "TENT-1")).one().price_cents = 15_000
    with session_scope(engine) as s:
        view = store_cart.add_to_cart(s, shop, "SHOE-1", 1)
        assert view.total_cents == 2 * 15_000 + 11_000
        order = store_cart.place_order(s, shop)
    assert order.total_cents == 41_000


def test_carts_are_per_shopper(engine, shop):
    other = store_cart.new_shopper()
    with session_scope(engine) as s:
        store_cart.add_to_cart(s, shop, "TENT-1", 1)
        store_cart.add_to_cart(s, other, "SHOE-1", 4)
        assert [line.sku for line in store_cart.get_cart(s, shop).lines] == ["TENT-1"]
        assert store_cart.get_cart(s, other).total_cents == 44_000


def test_a_malformed_shopper_token_reaches_no_cart(engine):
    for token in ("", "short", "x" * 65, "bad token with spaces!!", None, 12):
        with session_scope(engine) as s:
            assert store_cart.get_cart(s, token) == store_cart.EMPTY_CART
            with pytest.raises(CartError):
                store_cart.add_to_cart(s, token, "TENT-1", 1)
    with Session(engine) as s:
        assert s.exec(select(Cart)).all() == []
    assert store_cart.is_shopper(store_cart.new_shopper())


def test_an_order_without_the_chats_visitor_waits_until_the_chat_names_the_shopper(engine, shop):
    with session_scope(engine) as s:
        store_cart.add_to_cart(s, shop, "TENT-1", 1)
        first = store_cart.place_order(s, shop, "not a visitor token")
        store_cart.add_to_cart(s, shop, "SHOE-1", 2)
    assert first.chatdash_visitor == ""
    with session_scope(engine) as s:
        view, orders = store_cart.link_visitor(s, shop, VISITOR)
    assert [line.sku for line in view.lines] == ["SHOE-1"]
    assert [(o.number, o.chatdash_visitor) for o in orders] == [(first.number, VISITOR)]
    assert [(li.sku, li.quantity, li.unit_price_cents) for li in orders[0].lines] == [("TENT-1", 1, 19_900)]
    with session_scope(engine) as s:
        store_cart.mark_reported(s, first.number)
        assert store_cart.link_visitor(s, shop, VISITOR)[1] == []
        # Nothing to link for a forged token or a stranger without a cart.
        assert store_cart.link_visitor(s, shop, "forged") == (None, [])
        assert store_cart.link_visitor(s, store_cart.new_shopper(), VISITOR) == (None, [])


# --------------------------------------------------------------------------- browsing


def test_categories_come_with_their_product_counts(engine, shop):
    with Session(engine) as s:
        assert catalog.categories(s) == [
            catalog.CategoryCount("Camping", 4), catalog.CategoryCount("Running", 1)]


def test_browse_pages_through_a_category_in_stock_first(engine, shop):
    with Session(engine) as s:
        first = catalog.browse(s, category="Camping", page=1, per_page=2)
        second = catalog.browse(s, category="Camping", page=2, per_page=2)
        past_the_end = catalog.browse(s, category="Camping", page=99, per_page=2)
    assert (first.total, first.pages, first.page) == (4, 2, 1)
    assert [p.sku for p in first.products + second.products] == ["BAG-1", "EUR-1", "TENT-1", "MUG-1"]
    assert past_the_end.page == 2


def test_browse_searches_within_a_category(engine, shop):
    with Session(engine) as s:
        assert [p.sku for p in catalog.browse(s, query="  trail ").products] == ["SHOE-1"]
        assert catalog.browse(s, query="trail", category="Camping").products == []
        empty = catalog.browse(s, query="no such thing")
    assert (empty.total, empty.pages, empty.page) == (0, 1, 1)


def test_product_by_sku_and_more_in_its_category(engine, shop):
    with Session(engine) as s:
        tent = catalog.product_by_sku(s, "TENT-1")
        assert tent is not None and tent.description == "About Summit Tent."
        assert catalog.product_by_sku(s, "NOPE") is None
        assert catalog.product_by_sku(s, "x" * 100) is None
        more = catalog.more_in_category(s, tent)
    assert [p.sku for p in more] == ["BAG-1", "EUR-1", "MUG-1"]
