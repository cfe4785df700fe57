"""The demo store's cart and checkout, and its catalog browsing, on a real SQLite file."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from chatdash.db import session_scope
from chatdash.models import Cart, CartLine, Order, OrderLine, Product, Shopper
from chatdash.services import store_cart, storefront
from chatdash.services.store_cart import CartError

STORE = "http://localhost:3000/store"


def _product(sku: str, name: str, category: str, price_cents: int, in_stock: bool = True,
             currency: str = "USD") -> Product:
    return Product(sku=sku, name=name, category=category, price_cents=price_cents, currency=currency,
                   url=f"{STORE}/product/{sku}", image_url="http://localhost:3000/product-images/x.svg",
                   in_stock=in_stock, description=f"About {name}.")


@pytest.fixture
def shop(engine):
    """A small catalog and one shopper; returns the shopper id."""
    with session_scope(engine) as s:
        s.add_all([
            _product("TENT-1", "Summit Tent", "Camping", 19_900),
            _product("BAG-1", "Down Sleeping Bag", "Camping", 12_950),
            _product("MUG-1", "Enamel Mug", "Camping", 1_200, in_stock=False),
            _product("EUR-1", "Euro Stove", "Camping", 5_000, currency="EUR"),
            _product("SHOE-1", "Trail Shoe", "Running", 11_000),
        ])
        shopper = Shopper(visitor_id="visitor-one-abcdefgh")
        s.add(shopper)
        s.flush()
        return shopper.id


def _stored_cart(engine, shopper_id: int) -> tuple[Cart, list[CartLine]]:
    with Session(engine) as s:
        cart = s.exec(select(Cart).where(Cart.shopper_id == shopper_id)).one()
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
        order = store_cart.place_order(s, shop)
    assert order.external_id.startswith("DS-")
    with Session(engine) as s:
        stored = s.exec(select(Order).where(Order.external_id == order.external_id)).one()
        assert (stored.shopper_id, stored.total_cents, stored.source) == (shop, 52_750, "store")
        lines = s.exec(select(OrderLine).where(OrderLine.order_id == stored.id)).all()
        assert sorted((line.quantity, line.unit_price_cents) for line in lines) == [(1, 12_950), (2, 19_900)]
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
    with session_scope(engine) as s:
        other = store_cart.shopper_id_for_visitor(s, "visitor-two-abcdefgh", create=True)
        store_cart.add_to_cart(s, shop, "TENT-1", 1)
        store_cart.add_to_cart(s, other, "SHOE-1", 4)
        assert [line.sku for line in store_cart.get_cart(s, shop).lines] == ["TENT-1"]
        assert store_cart.get_cart(s, other).total_cents == 44_000


def test_looking_up_a_visitor_creates_a_shopper_only_when_asked(engine, shop):
    with session_scope(engine) as s:
        assert store_cart.shopper_id_for_visitor(s, "visitor-new-abcdefgh", create=False) is None
        created = store_cart.shopper_id_for_visitor(s, "visitor-new-abcdefgh", create=True)
        assert store_cart.shopper_id_for_visitor(s, "visitor-new-abcdefgh", create=False) == created
        assert store_cart.shopper_id_for_visitor(s, "visitor-one-abcdefgh", create=False) == shop


def test_tracking_payload_lists_items_and_total_in_currency_units(engine, shop):
    with session_scope(engine) as s:
        view = store_cart.add_to_cart(s, shop, "BAG-1", 2)
    assert store_cart.tracking_payload(view, "add") == {
        "action": "add",
        "items": [{"sku": "BAG-1", "quantity": 2, "price": 129.5}],
        "total": 259.0,
        "currency": "USD",
    }


# --------------------------------------------------------------------------- browsing


def test_categories_come_with_their_product_counts(engine, shop):
    with Session(engine) as s:
        assert storefront.categories(s) == [
            storefront.CategoryCount("Camping", 4), storefront.CategoryCount("Running", 1)]


def test_browse_pages_through_a_category_in_stock_first(engine, shop):
    with Session(engine) as s:
        first = storefront.browse(s, category="Camping", page=1, per_page=2)
        second = storefront.browse(s, category="Camping", page=2, per_page=2)
        past_the_end = storefront.browse(s, category="Camping", page=99, per_page=2)
    assert (first.total, first.pages, first.page) == (4, 2, 1)
    assert [p.sku for p in first.products + second.products] == ["BAG-1", "EUR-1", "TENT-1", "MUG-1"]
    assert past_the_end.page == 2


def test_browse_searches_within_a_category(engine, shop):
    with Session(engine) as s:
        assert [p.sku for p in storefront.browse(s, query="  trail ").products] == ["SHOE-1"]
        assert storefront.browse(s, query="trail", category="Camping").products == []
        empty = storefront.browse(s, query="no such thing")
    assert (empty.total, empty.pages, empty.page) == (0, 1, 1)


def test_product_by_sku_and_more_in_its_category(engine, shop):
    with Session(engine) as s:
        tent = storefront.product_by_sku(s, "TENT-1")
        assert tent is not None and tent.description == "About Summit Tent."
        assert storefront.product_by_sku(s, "NOPE") is None
        assert storefront.product_by_sku(s, "x" * 100) is None
        more = storefront.more_in_category(s, tent)
    assert [p.sku for p in more] == ["BAG-1", "EUR-1", "MUG-1"]
