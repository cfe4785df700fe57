"""Attribution rules (services/attribution.py): each product card sent into a
chat is followed to a click, a cart and an order of the same shopper within
7 days, counted once per conversation and product, split by source — on a
SQLite file and on PostgreSQL. Carts and orders go in through the real
tracking use cases, clicks through the signed card link."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import numpy as np
import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chatdash import events
from chatdash.db import session_scope
from chatdash.models import CardSource, Conversation, Message, Product, utcnow
from chatdash.services import attribution, auth, chat, customers, store_activity, tracking
from chatdash.services import conversations as convs

UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"


@pytest.fixture
def db(any_engine) -> Engine:
    return any_engine


@pytest.fixture
def shop(db):
    """Three products (one sku with LIKE's `_` in it, one that `_` would match) and an admin."""
    with session_scope(db) as s:
        products = {}
        for sku, price in (("TEE_1", 2500), ("TEEX1", 900), ("MUG-2", 1200)):
            p = Product(sku=sku, name=f"Product {sku}", category="Shop", price_cents=price,
                        url=f"https://shop.test/p/{sku}")
            s.add(p)
            s.flush()
            products[sku] = p.id
        admin = auth.create_admin(s, f"admin-{uuid.uuid4().hex[:6]}@shop.test", None, "Ada")
    return db, admin.id, products


def shopper_with_chat(db: Engine) -> tuple[str, int, int]:
    """A new visitor who wrote to the store: (visitor id, shopper id, conversation id)."""
    visitor_id = uuid.uuid4().hex
    with session_scope(db) as s:
        shopper_id = convs.get_or_create_shopper(s, visitor_id).id
    conv_id, _, _ = chat.shopper_send(visitor_id, shopper_id, 0, uuid.uuid4().hex, "Any tips?", engine=db)
    return visitor_id, shopper_id, conv_id


def send(db: Engine, admin_id: int, conv_id: int, product_id: int, source: str = CardSource.RECOMMENDED,
         days_ago: float = 0) -> int:
    message, _ = chat.admin_send(admin_id, conv_id, uuid.uuid4().hex, product_id=product_id, source=source,
                                 engine=db)
    if days_ago:
        with session_scope(db) as s:
            s.execute(update(Message).where(Message.id == message.id)
                      .values(created_at=utcnow() - timedelta(days=days_ago)))
    return message.id


def cart(db: Engine, visitor_id: str, skus: list[str], days_ago: float = 0) -> None:
    at = (utcnow() - timedelta(days=days_ago)).isoformat()
    raw = [{"id": uuid.uuid4().hex, "kind": "cart", "at": at, "url": "https://shop.test/cart",
            "data": {"action": "add", "items": [{"sku": sku, "quantity": 1, "price": 10} for sku in skus],
                     "currency": "USD"}}]
    store_activity.store_batch(visitor_id, tracking.parse_events(raw), UA, engine=db)


def order(db: Engine, lines: list[tuple[str, int, float]], *, visitor_id: str | None = None,
          customer_id: str | None = None, days_ago: float = 0) -> None:
    body = {"order_id": f"W-{uuid.uuid4().hex[:8]}", "total": sum(q * p for _s, q, p in lines), "currency": "USD",
            "items": [{"sku": sku, "quantity": q, "price": p} for sku, q, p in lines],
            "ordered_at": (utcnow() - timedelta(days=days_ago)).isoformat()}
    if customer_id:
        body["customer_id"] = customer_id
    else:
        body["visitor"] = "verified-by-the-route"
    store_activity.store_order(tracking.parse_order(body), visitor_id, engine=db)


def outcomes(db: Engine, conv_id: int) -> dict[int, dict]:
    with Session(db) as s:
        df = attribution.card_outcomes(s, conversation_id=conv_id)
    return {int(r.product_id): {k: v.item() if isinstance(v, np.generic) else v for k, v in r._asdict().items()}
            for r in df.itertuples(index=False)}


# --------------------------------------------------------------------------- sent: once per conversation and product


def test_a_card_sent_twice_counts_once_under_its_first_source(shop):
    db, admin_id, products = shop
    _v, _s, conv_id = shopper_with_chat(db)
    send(db, admin_id, conv_id, products["TEE_1"], CardSource.SEARCH)
    send(db, admin_id, conv_id, products["TEE_1"], CardSource.BOUGHT_ALSO)
    send(db, admin_id, conv_id, products["MUG-2"], CardSource.SAME_ORDER)
    found = outcomes(db, conv_id)
    assert set(found) == {products["TEE_1"], products["MUG-2"]}
    assert found[products["TEE_1"]]["source"] == CardSource.SEARCH
    line = attribution.conversation_attribution(conv_id, engine=db)
    assert (line.sent, line.ordered, line.revenue_cents) == (2, 0, 0)


def test_the_same_product_in_another_conversation_is_another_card(shop):
    db, admin_id, products = shop
    conv_ids = [shopper_with_chat(db)[2] for _ in range(2)]
    for conv_id in conv_ids:
        send(db, admin_id, conv_id, products["TEE_1"])
    report = attribution.insights(4, engine=db)
    assert report.total.sent == 2
    assert [(p.label, p.sent) for p in report.top_products] == [("Product TEE_1", 2)]


def test_an_unknown_source_is_refused_and_nothing_is_sent(shop):
    db, admin_id, products = shop
    _v, _s, conv_id = shopper_with_chat(db)
    with pytest.raises(chat.ChatError, match="Unknown product source"):
        chat.admin_send(admin_id, conv_id, uuid.uuid4().hex, product_id=products["TEE_1"], source="made-up",
                        engine=db)
    assert attribution.conversation_attribution(conv_id, engine=db).sent == 0


# --------------------------------------------------------------------------- clicked: the signed link


def test_a_click_through_the_signed_link_counts_once_and_tells_the_screens(shop, heard):
    db, admin_id, products = shop
    _v, shopper_id, conv_id = shopper_with_chat(db)
    message_id = send(db, admin_id, conv_id, products["MUG-2"])
    url = attribution.card_click_url(message_id)
    mid, sig = url.rsplit("/", 2)[-2:]
    assert attribution.verify_click(mid, sig) == message_id
    assert attribution.verify_click(str(message_id + 1), sig) is None  # a signature names one card
    assert attribution.verify_click(mid, "0" * 32) is None
    heard.clear()
    assert attribution.record_click(message_id, engine=db) == "https://shop.test/p/MUG-2"
    assert [(e.shopper_id, e.conversation_id) for e in heard if isinstance(e, events.ShopperActivity)] \
        == [(shopper_id, conv_id)]
    with Session(db) as s:
        first = s.get(Message, message_id).clicked_at
    assert attribution.record_click(message_id, engine=db) == "https://shop.test/p/MUG-2"
    with Session(db) as s:
        assert s.get(Message, message_id).clicked_at == first  # the first click stays
    assert len([e for e in heard if isinstance(e, events.ShopperActivity)]) == 1
    line = attribution.conversation_attribution(conv_id, engine=db)
    assert (line.sent, line.clicked, line.ordered) == (1, 1, 0)


def test_a_text_message_is_no_card_to_click(shop):
    db, _admin_id, _products = shop
    _v, _s, conv_id = shopper_with_chat(db)
    with Session(db) as s:
        text_id = s.exec(select(Message.id).where(Message.conversation_id == conv_id)).first()
    assert attribution.record_click(text_id, engine=db) is None


# --------------------------------------------------------------------------- cart and order within 7 days


def test_cart_and_order_of_the_same_shopper_within_seven_days_count_with_revenue(shop):
    db, admin_id, products = shop
    visitor_id, _s, conv_id = shopper_with_chat(db)
    send(db, admin_id, conv_id, products["TEE_1"], days_ago=6)
    send(db, admin_id, conv_id, products["MUG-2"], days_ago=6)
    cart(db, visitor_id, ["TEE_1"], days_ago=5)
    order(db, [("TEE_1", 2, 25.0), ("TEEX1", 1, 9.0)], visitor_id=visitor_id, days_ago=1)
    found = outcomes(db, conv_id)
    tee, mug = found[products["TEE_1"]], found[products["MUG-2"]]
    assert (tee["carted"], tee["ordered"], tee["revenue_cents"]) == (True, True, 5000)
    assert (mug["carted"], mug["ordered"], mug["revenue_cents"]) == (False, False, 0)
    line = attribution.conversation_attribution(conv_id, engine=db)
    assert (line.sent, line.ordered, line.revenue_cents, line.currency) == (2, 1, 5000, "USD")


def test_a_cart_holding_a_lookalike_sku_is_not_the_product(shop):
    """`TEEX1` would match the pattern of `TEE_1` if LIKE's `_` were not escaped."""
    db, admin_id, products = shop
    visitor_id, _s, conv_id = shopper_with_chat(db)
    send(db, admin_id, conv_id, products["TEE_1"], days_ago=2)
    send(db, admin_id, conv_id, products["TEEX1"], days_ago=2)
    cart(db, visitor_id, ["TEEX1"], days_ago=1)
    found = outcomes(db, conv_id)
    assert found[products["TEEX1"]]["carted"] is True
    assert found[products["TEE_1"]]["carted"] is False


def test_carts_and_orders_outside_the_window_do_not_count(shop):
    db, admin_id, products = shop
    visitor_id, _s, conv_id = shopper_with_chat(db)
    send(db, admin_id, conv_id, products["TEE_1"], days_ago=9)  # window: 9 to 2 days ago
    send(db, admin_id, conv_id, products["MUG-2"], days_ago=3)  # window: 3 days ago to 4 days ahead
    # Before the send (the mug), after the window (the tee).
    cart(db, visitor_id, ["TEE_1", "MUG-2"], days_ago=4)
    order(db, [("TEE_1", 1, 25.0)], visitor_id=visitor_id, days_ago=1)
    order(db, [("MUG-2", 1, 12.0)], visitor_id=visitor_id, days_ago=5)
    found = outcomes(db, conv_id)
    assert not found[products["MUG-2"]]["carted"] and not found[products["MUG-2"]]["ordered"]
    assert found[products["TEE_1"]]["carted"] is True  # 4 days ago: inside its window
    assert found[products["TEE_1"]]["ordered"] is False  # 1 day ago: a day past it
    assert attribution.conversation_attribution(conv_id, engine=db).revenue_cents == 0


def test_a_resend_extends_the_window(shop):
    db, admin_id, products = shop
    visitor_id, _s, conv_id = shopper_with_chat(db)
    send(db, admin_id, conv_id, products["TEE_1"], days_ago=12)
    send(db, admin_id, conv_id, products["TEE_1"], days_ago=3)
    order(db, [("TEE_1", 1, 25.0)], visitor_id=visitor_id, days_ago=1)
    assert outcomes(db, conv_id)[products["TEE_1"]]["ordered"] is True


def test_another_shoppers_order_is_not_this_cards(shop):
    db, admin_id, products = shop
    _v, _s, conv_id = shopper_with_chat(db)
    other_visitor, _o, _oc = shopper_with_chat(db)
    send(db, admin_id, conv_id, products["TEE_1"], days_ago=1)
    cart(db, other_visitor, ["TEE_1"])
    order(db, [("TEE_1", 1, 25.0)], visitor_id=other_visitor)
    found = outcomes(db, conv_id)[products["TEE_1"]]
    assert (found["carted"], found["ordered"]) == (False, False)


# --------------------------------------------------------------------------- the same shopper, merged


def test_a_visitor_who_identifies_as_a_known_customer_is_that_customer(shop):
    """The card went to an anonymous visitor; they log in as a customer the
    store already knew, and the store's backend reports the order by customer id."""
    db, admin_id, products = shop
    order(db, [("MUG-2", 1, 12.0)], customer_id="cust-7", days_ago=30)  # known from an old order
    visitor_id, anon_id, conv_id = shopper_with_chat(db)
    send(db, admin_id, conv_id, products["TEE_1"], days_ago=2)
    customer_id = customers.identify(visitor_id, "cust-7", engine=db)
    assert customer_id != anon_id
    order(db, [("TEE_1", 3, 25.0)], customer_id="cust-7")
    with Session(db) as s:
        conv = s.get(Conversation, conv_id)
        assert conv.shopper_id == customer_id  # the chat moved with the merge
    found = outcomes(db, conv_id)[products["TEE_1"]]
    assert (found["ordered"], found["revenue_cents"]) == (True, 7500)


def test_a_card_whose_shopper_row_points_to_a_customer_follows_the_pointer(shop):
    """A shopper row merged into a customer (merged_into_id) without its chat
    moving: the customer's orders are the card's shopper's."""
    db, admin_id, products = shop
    _v, anon_id, conv_id = shopper_with_chat(db)
    send(db, admin_id, conv_id, products["TEE_1"], days_ago=1)
    order(db, [("TEE_1", 1, 25.0)], customer_id="cust-9")
    with session_scope(db) as s:
        from chatdash.models import Shopper

        customer = s.exec(select(Shopper).where(Shopper.customer_id == "cust-9")).one()
        s.get(Shopper, anon_id).merged_into_id = customer.id
    assert outcomes(db, conv_id)[products["TEE_1"]]["revenue_cents"] == 2500


# --------------------------------------------------------------------------- revenue counted once


def test_an_order_line_two_cards_reach_counts_for_the_first(shop):
    db, admin_id, products = shop
    visitor_id, shopper_id, conv_id = shopper_with_chat(db)
    send(db, admin_id, conv_id, products["TEE_1"], CardSource.SEARCH, days_ago=3)
    with session_scope(db) as s:  # a second chat of the same shopper
        later = Conversation(token=uuid.uuid4().hex, shopper_id=shopper_id, status="resolved")
        s.add(later)
        s.flush()
        later_id = later.id
    send(db, admin_id, later_id, products["TEE_1"], CardSource.RECOMMENDED, days_ago=2)
    order(db, [("TEE_1", 1, 25.0)], visitor_id=visitor_id)
    report = attribution.insights(4, engine=db)
    assert (report.total.sent, report.total.ordered, report.total.revenue_cents) == (2, 1, 2500)
    by_source = {f.key: f for f in report.by_source}
    assert (by_source["search"].ordered, by_source["search"].revenue_cents) == (1, 2500)
    assert (by_source["recommended"].sent, by_source["recommended"].ordered) == (1, 0)


# --------------------------------------------------------------------------- the Insights report


def test_insights_split_the_funnel_by_source_and_week(shop):
    db, admin_id, products = shop
    visitor_id, _s, conv_id = shopper_with_chat(db)
    other_visitor, _o, other_conv = shopper_with_chat(db)
    send(db, admin_id, conv_id, products["TEE_1"], CardSource.VIEWED_TOGETHER, days_ago=8)
    clicked = send(db, admin_id, conv_id, products["MUG-2"], CardSource.SEARCH)
    send(db, admin_id, other_conv, products["MUG-2"], CardSource.SEARCH)
    send(db, admin_id, other_conv, products["TEEX1"], CardSource.RECOMMENDED, days_ago=40)  # before the period
    attribution.record_click(clicked, engine=db)
    order(db, [("TEE_1", 1, 25.0)], visitor_id=visitor_id, days_ago=7)
    cart(db, other_visitor, ["MUG-2"])

    report = attribution.insights(4, engine=db)
    assert (report.total.sent, report.total.clicked, report.total.carted, report.total.ordered) == (3, 1, 2, 1)
    assert report.total.revenue_cents == 2500
    by_source = {f.key: (f.sent, f.clicked, f.carted, f.ordered, f.revenue_cents) for f in report.by_source}
    assert by_source == {"search": (2, 1, 1, 0, 0), "recommended": (0, 0, 0, 0, 0),
                         "bought_also": (0, 0, 0, 0, 0), "same_order": (0, 0, 0, 0, 0),
                         "viewed_together": (1, 0, 1, 1, 2500)}
    assert [f.label for f in report.by_source] == ["Search", "Recommended", "Bought also", "Same order",
                                                   "Viewed together"]
    assert len(report.by_week) == 4
    assert sum(w.sent for w in report.by_week) == 3
    assert report.by_week[-1].sent == 2  # this week's two searches
    assert [(p.label, p.sent) for p in report.top_products] == [("Product MUG-2", 2), ("Product TEE_1", 1)]
    # 52 weeks reach the card sent 40 days ago.
    assert attribution.insights(52, engine=db).total.sent == 4


def test_cards_sent_before_sources_were_recorded_show_as_other(shop):
    db, admin_id, products = shop
    _v, _s, conv_id = shopper_with_chat(db)
    chat.admin_send(admin_id, conv_id, uuid.uuid4().hex, product_id=products["TEE_1"], engine=db)
    report = attribution.insights(4, engine=db)
    assert [(f.key, f.label, f.sent) for f in report.by_source][-1] == ("other", "Other", 1)


def test_an_empty_store_has_an_empty_report(shop):
    db, _admin_id, _products = shop
    report = attribution.insights(12, engine=db)
    assert report.total.sent == 0 and report.top_products == []
    assert len(report.by_week) == 12 and all(w.sent == 0 for w in report.by_week)
    with pytest.raises(ValueError):
        attribution.insights(5, engine=db)


# --------------------------------------------------------------------------- the card link over HTTP


def test_the_card_link_counts_the_click_and_goes_to_the_catalogs_address(tmp_path):
    """GET /api/card/<id>/<signature> as the widget's card links: a 303 to the
    product page, the click stored; a forged signature or a text message is a 404."""
    from chatdash.db import get_engine
    from tests.security.http_client import STORE, api_client

    with api_client(tmp_path) as client:
        db = get_engine()
        with session_scope(db) as s:
            product_id = s.exec(select(Product.id).where(Product.sku == "TENT-1")).one()
            admin_id = auth.create_admin(s, "links@shop.test", None, "Lin").id
        _v, _s, conv_id = shopper_with_chat(db)
        message_id = send(db, admin_id, conv_id, product_id, CardSource.SAME_ORDER)
        path = urlsplit(attribution.card_click_url(message_id)).path
        mid = path.split("/")[-2]

        forged = client.get(f"/api/card/{mid}/{'f' * 32}", follow_redirects=False)
        assert forged.status_code == 404 and "no longer available" in forged.text
        assert attribution.conversation_attribution(conv_id, engine=db).clicked == 0

        opened = client.get(path, follow_redirects=False)
        assert opened.status_code == 303
        assert opened.headers["location"] == f"{STORE}/p/TENT-1"
        assert attribution.conversation_attribution(conv_id, engine=db).clicked == 1

        with Session(db) as s:
            text_id = s.exec(select(Message.id)
                             .where(Message.conversation_id == conv_id, Message.kind == "text")).first()
        not_a_card = client.get(urlsplit(attribution.card_click_url(text_id)).path, follow_redirects=False)
        assert not_a_card.status_code == 404
