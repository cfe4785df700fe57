"""Identified customers (services/customers.py): the admin's panel follows the
customer's live visit, the anonymous part of a visit joins the customer when
they log in, and one customer has one conversation on every device — on a
SQLite file and on PostgreSQL, through the use cases the routes call."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from chatdash import events
from chatdash.db import session_scope
from chatdash.models import Conversation, Message, Order, Product, Shopper, StoreEvent, Visit, utcnow
from chatdash.services import chat, customers, presence, store_activity, tracking
from chatdash.services import conversations as convs
from chatdash.services.shopper_context import shopper_context

STORE = "https://shop.test"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.2 Mobile/15E148 Safari/604.1")
FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"


@pytest.fixture
def shop(any_engine) -> Engine:
    with session_scope(any_engine) as s:
        for sku, name, cents in (("TENT-1", "Summit Tent", 18_790), ("BAG-1", "Sleeping Bag", 12_950)):
            s.add(Product(sku=sku, name=name, category="Camping", price_cents=cents, url=f"{STORE}/p/{sku}"))
    return any_engine


def visitor() -> str:
    return uuid.uuid4().hex[:24]


def browse(engine: Engine, visitor_id: str, raw: list[dict], user_agent: str = IPHONE):
    return store_activity.store_batch(visitor_id, tracking.parse_events(raw), user_agent, engine=engine)


def page(path: str, title: str) -> dict:
    return {"id": uuid.uuid4().hex, "kind": "page_view", "url": f"{STORE}{path}", "title": title}


def product(sku: str) -> dict:
    return {"id": uuid.uuid4().hex, "kind": "product_view", "url": f"{STORE}/p/{sku}", "title": sku,
            "data": {"sku": sku}}


def cart(sku: str, price: float) -> dict:
    return {"id": uuid.uuid4().hex, "kind": "cart", "url": f"{STORE}/cart", "title": "Cart",
            "data": {"items": [{"sku": sku, "quantity": 1, "price": price}], "total": price, "currency": "USD"}}


def returning_customer(engine: Engine, customer_id: str) -> int:
    """A customer known from an earlier visit on another device, days ago, with an order."""
    long_ago = utcnow() - timedelta(days=3)
    with session_scope(engine) as s:
        shopper = Shopper(visitor_id=f"old-{uuid.uuid4().hex[:20]}", customer_id=customer_id, name="Ada Lovelace")
        s.add(shopper)
        s.flush()
        s.add(Visit(shopper_id=shopper.id, user_agent=FIREFOX_WINDOWS, device="desktop", browser="Firefox",
                    os="Windows", started_at=long_ago, last_seen_at=long_ago,
                    current_url=f"{STORE}/order/1001", current_title="Order 1001 confirmed",
                    open_for=shopper.visitor_id))
        s.add(Order(external_id=f"o-{uuid.uuid4().hex[:8]}", shopper_id=shopper.id, total_cents=5_000,
                    ordered_at=long_ago, source="api"))
        return shopper.id


def test_an_identified_customers_panel_follows_the_live_visit_not_an_old_one(shop):
    customer_id = f"CUST-{uuid.uuid4().hex[:8]}"
    customer = returning_customer(shop, customer_id)
    phone = visitor()
    # The store page identifies the customer on load, then reports the browsing.
    assert customers.identify(phone, customer_id, engine=shop) == customer
    browse(shop, phone, [page("/", "Home"), page("/p/TENT-1", "Summit Tent"), product("TENT-1"),
                         cart("TENT-1", 187.90)])
    presence.beat(phone, True, user_agent=IPHONE, url=f"{STORE}/p/TENT-1", title="Summit Tent", engine=shop)

    context = shopper_context(customer, engine=shop)
    assert context.presence.on_site
    assert context.presence.current_title == "Summit Tent"
    assert "iOS" in context.presence.device
    assert context.session.device == "mobile"
    assert [i.sku for i in context.session.items_viewed] == ["TENT-1"]
    assert context.session.cart_total_cents == 18_790
    # History still has the earlier visit and order.
    assert context.history.previous_visits == 1
    assert context.history.orders_count == 1
    # The inbox shows the customer chatting from the phone as on site.
    conv, _m, _c = chat.shopper_send(phone, customer, 0, uuid.uuid4().hex, "Is it waterproof?", engine=shop)
    with Session(shop) as s:
        assert presence.shoppers_on_site(s, [customer], window_seconds=60) == {customer}
        (row,) = convs.list_conversations(s, window_seconds=60, ids=[conv])
        assert row.on_site and row.current_url == f"{STORE}/p/TENT-1"


def test_logging_in_mid_visit_brings_the_anonymous_part_and_its_chat_along(shop, heard):
    customer_id = f"CUST-{uuid.uuid4().hex[:8]}"
    customer = returning_customer(shop, customer_id)
    # The customer wrote from their laptop earlier: an open conversation.
    laptop = visitor()
    opened = chat.open_widget(laptop, chat.Customer(customer_id), engine=shop)
    assert opened.shopper_id == customer
    conv, _m, _c = chat.shopper_send(laptop, customer, 0, uuid.uuid4().hex, "From my laptop", engine=shop)

    # Anonymous on the phone: browses, fills the cart, asks a question.
    phone = visitor()
    browse(shop, phone, [page("/", "Home"), product("BAG-1"), cart("BAG-1", 129.50)])
    anon = chat.open_widget(phone, engine=shop).shopper_id
    anon_conv, _m, _c = chat.shopper_send(phone, anon, 0, uuid.uuid4().hex, "Asked before logging in",
                                         engine=shop)
    with Session(shop) as s:
        anon_events = s.exec(select(func.count()).select_from(StoreEvent)
                             .where(StoreEvent.shopper_id == anon)).one()
    heard.clear()

    # Logs in: chatdash.identify() on the page.
    assert customers.identify(phone, customer_id, engine=shop) == customer

    with Session(shop) as s:
        moved = s.exec(select(func.count()).select_from(StoreEvent).where(StoreEvent.shopper_id == customer)).one()
        left_behind = s.exec(select(func.count()).select_from(StoreEvent).where(StoreEvent.shopper_id == anon)).one()
        assert (moved, left_behind) == (anon_events, 0)
        assert s.exec(select(func.count()).select_from(Visit).where(Visit.shopper_id == anon)).one() == 0
        texts = s.exec(select(Message.body).where(Message.conversation_id == conv).order_by(Message.id)).all()
        assert texts == ["From my laptop", "Asked before logging in"]
        assert s.get(Conversation, anon_conv).status == customers.MERGED
        assert convs.open_conversation_for(s, customer).id == conv
    # The inbox drops the visitor's row and shows the customer's with the latest message.
    (merged,) = [e for e in heard if isinstance(e, events.ShopperMerged)]
    assert (merged.shopper_id, merged.into_shopper_id, merged.closed_conversation_id) == (anon, customer, anon_conv)
    assert merged.conversation.id == conv and merged.conversation.preview == "Asked before logging in"
    assert merged.conversation.label == "Ada Lovelace"

    # The panel: the phone's live visit and cart, the laptop's visit and the order in History.
    presence.beat(phone, True, user_agent=IPHONE, url=f"{STORE}/p/BAG-1", title="Sleeping Bag", engine=shop)
    context = shopper_context(customer, engine=shop)
    assert context.presence.on_site and context.presence.current_title == "Sleeping Bag"
    assert context.session.cart_total_cents == 12_950
    assert [i.sku for i in context.session.items_viewed] == ["BAG-1"]
    assert context.session.pages_viewed == 2
    assert context.history.orders_count == 1

    # The phone's widget keeps writing into the one conversation (its state still names the old ids).
    again, _m, _c = chat.shopper_send(phone, anon, anon_conv, uuid.uuid4().hex, "Still me", engine=shop)
    assert again == conv
    # Identifying again changes nothing.
    assert customers.identify(phone, customer_id, engine=shop) == customer
    with Session(shop) as s:
        assert s.exec(select(func.count()).select_from(Message).where(Message.conversation_id == conv)).one() == 3


def test_one_customer_has_one_conversation_on_every_device(any_engine):
    customer = chat.Customer(f"CUST-{uuid.uuid4().hex[:8]}")
    phone, laptop = visitor(), visitor()
    first = chat.open_widget(phone, customer, engine=any_engine)
    conv, _m, _c = chat.shopper_send(phone, first.shopper_id, 0, uuid.uuid4().hex, "Hello from the phone",
                                     engine=any_engine)
    other = chat.open_widget(laptop, customer, engine=any_engine)
    assert other.shopper_id == first.shopper_id
    assert other.conversation_id == conv
    assert [m.body for m in other.messages] == ["Hello from the phone"]
    again, _m, _c = chat.shopper_send(laptop, other.shopper_id, conv, uuid.uuid4().hex, "And the laptop",
                                      engine=any_engine)
    assert again == conv
    # Each device has its own visit; a heartbeat from one never moves the other's.
    presence.beat(phone, True, user_agent=IPHONE, url=f"{STORE}/a", title="A", engine=any_engine)
    presence.beat(laptop, True, user_agent=FIREFOX_WINDOWS, url=f"{STORE}/b", title="B", engine=any_engine)
    with Session(any_engine) as s:
        visits = s.exec(select(Visit).where(Visit.shopper_id == first.shopper_id).order_by(Visit.id)).all()
        assert [(v.device, v.current_title) for v in visits] == [("mobile", "A"), ("desktop", "B")]


def test_a_second_customer_on_the_same_browser_sees_nothing_of_the_first(any_engine):
    shared = visitor()
    first_id, second_id = f"CUST-{uuid.uuid4().hex[:8]}", f"CUST-{uuid.uuid4().hex[:8]}"
    first = chat.open_widget(shared, chat.Customer(first_id), engine=any_engine)
    conv, _m, _c = chat.shopper_send(shared, first.shopper_id, 0, uuid.uuid4().hex, "My private order question",
                                     engine=any_engine)
    presence.beat(shared, True, user_agent=IPHONE, url=f"{STORE}/a", title="A", engine=any_engine)

    second = chat.open_widget(shared, chat.Customer(second_id), engine=any_engine)
    assert second.shopper_id != first.shopper_id
    assert second.conversation_id == 0 and second.messages == []
    presence.beat(shared, True, user_agent=IPHONE, url=f"{STORE}/b", title="B", engine=any_engine)
    with Session(any_engine) as s:
        assert s.exec(select(Shopper.customer_id).where(Shopper.id == first.shopper_id)).one() == first_id
        assert convs.open_conversation_for(s, first.shopper_id).id == conv
        # The first customer's visit stays theirs; the browser's new one is the second's.
        assert convs.latest_visit(s, first.shopper_id).current_title == "A"
        assert convs.latest_visit(s, second.shopper_id).current_title == "B"
    # And the first customer, back on the browser, has their chat again.
    back = chat.open_widget(shared, chat.Customer(first_id), engine=any_engine)
    assert back.conversation_id == conv


def test_the_store_backend_naming_a_visitor_and_a_customer_joins_them(shop):
    customer_id = f"CUST-{uuid.uuid4().hex[:8]}"
    customer = returning_customer(shop, customer_id)
    phone = visitor()
    browse(shop, phone, [page("/p/TENT-1", "Summit Tent")])
    order = tracking.parse_order({"order_id": f"o-{uuid.uuid4().hex[:8]}", "customer_id": customer_id,
                                  "total": 187.90, "currency": "USD",
                                  "items": [{"sku": "TENT-1", "quantity": 1, "price": 187.90}]})
    result = store_activity.store_order(order, phone, engine=shop)
    assert result.shopper_id == customer
    context = shopper_context(customer, engine=shop)
    assert context.session.current_title == "Summit Tent"
    assert context.history.orders_count == 2


def test_the_page_and_the_chat_identifying_at_once_merge_once(shop, heard):
    """chatdash.identify() posts /api/identify and reloads the open chat, which
    identifies too: both arrive together."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    customer_id = f"CUST-{uuid.uuid4().hex[:8]}"
    customer = returning_customer(shop, customer_id)
    laptop = visitor()
    conv, _m, _c = chat.shopper_send(laptop, chat.open_widget(laptop, chat.Customer(customer_id), engine=shop)
                                     .shopper_id, 0, uuid.uuid4().hex, "Earlier", engine=shop)
    phone = visitor()
    anon = chat.open_widget(phone, engine=shop).shopper_id
    chat.shopper_send(phone, anon, 0, uuid.uuid4().hex, "Before logging in", engine=shop)
    browse(shop, phone, [page("/", "Home"), product("BAG-1")])
    heard.clear()

    start = threading.Barrier(8)

    def identify(i: int) -> int:
        start.wait()
        if i % 2:
            return customers.identify(phone, customer_id, engine=shop)
        return chat.open_widget(phone, chat.Customer(customer_id), engine=shop).shopper_id

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(identify, range(8))) == {customer}
    assert len([e for e in heard if isinstance(e, events.ShopperMerged)]) == 1
    with Session(shop) as s:
        texts = s.exec(select(Message.body).where(Message.conversation_id == conv).order_by(Message.id)).all()
        assert texts == ["Earlier", "Before logging in"]
        assert s.exec(select(func.count()).select_from(Visit).where(Visit.shopper_id == customer)).one() == 2


def test_closing_the_tab_on_one_device_keeps_a_customer_live_on_another_on_site(any_engine, heard):
    """The laptop's last heartbeat is newer than the phone's (heartbeats on one
    page are written every 20 s): the laptop's tab closing must not show the
    customer, still on the phone, as gone."""
    customer = chat.Customer(f"CUST-{uuid.uuid4().hex[:8]}")
    phone, laptop = visitor(), visitor()
    shopper_id = chat.open_widget(phone, customer, engine=any_engine).shopper_id
    chat.open_widget(laptop, customer, engine=any_engine)
    conv, _m, _c = chat.shopper_send(phone, shopper_id, 0, uuid.uuid4().hex, "Hi", engine=any_engine)
    base = utcnow() - timedelta(seconds=25)
    with session_scope(any_engine) as s:
        shopper = s.get(Shopper, shopper_id)
        presence.touch_visit(s, shopper, visitor_id=phone, user_agent=IPHONE, url=f"{STORE}/p/TENT-1",
                             title="Summit Tent", window_seconds=60, now=base)
        presence.touch_visit(s, shopper, visitor_id=laptop, user_agent=FIREFOX_WINDOWS, url=f"{STORE}/cart",
                             title="Cart", window_seconds=60, now=base + timedelta(seconds=10))
    heard.clear()
    with session_scope(any_engine) as s:
        change = presence.leave(s, s.get(Shopper, shopper_id), visitor_id=laptop, window_seconds=60,
                                now=base + timedelta(seconds=12))
    assert change.on_site
    assert not [e for e in heard if isinstance(e, events.PresenceChanged) and not e.on_site]

    context = shopper_context(shopper_id, engine=any_engine)
    assert context.presence.on_site and context.presence.current_title == "Summit Tent"
    assert context.session.device == "mobile"
    with Session(any_engine) as s:
        (row,) = convs.list_conversations(s, window_seconds=60, ids=[conv])
        assert row.on_site and row.current_url == f"{STORE}/p/TENT-1"
        assert presence.shoppers_on_site(s, [shopper_id], window_seconds=60) == {shopper_id}
        assert presence.everyone_on_site(s, window_seconds=60) >= {shopper_id}


def test_an_admin_replying_in_a_conversation_merged_away_reaches_the_customer(shop):
    customer_id = f"CUST-{uuid.uuid4().hex[:8]}"
    laptop, phone = visitor(), visitor()
    customer = chat.open_widget(laptop, chat.Customer(customer_id), engine=shop).shopper_id
    kept, _m, _c = chat.shopper_send(laptop, customer, 0, uuid.uuid4().hex, "From the laptop", engine=shop)
    anon = chat.open_widget(phone, engine=shop).shopper_id
    merged, _m, _c = chat.shopper_send(phone, anon, 0, uuid.uuid4().hex, "From the phone", engine=shop)
    customers.identify(phone, customer_id, engine=shop)

    # The admin had the phone's conversation open: reading and replying go on in the customer's.
    opened = chat.open_for_admin(merged, engine=shop)
    assert opened.conversation_id == kept
    assert [m.body for m in opened.messages] == ["From the laptop", "From the phone"]
    reply, _created = chat.admin_send(None, merged, uuid.uuid4().hex, "Answered for both", engine=shop)
    assert reply.conversation_id == kept
    assert [m.body for m in chat.open_widget(phone, chat.Customer(customer_id), engine=shop).messages][-1] == \
        "Answered for both"
