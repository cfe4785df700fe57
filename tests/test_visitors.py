"""Live visitors (services/visitors.py): everyone on the store now, with their
page, pages this visit, cart and conversation; on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import select

from chatdash.db import session_scope
from chatdash.models import Product, utcnow
from chatdash.services import chat, presence, store_activity, visitors, workspace
from chatdash.services import conversations as convs
from chatdash.services.tracking.schema import parse_events

STORE = "https://shop.test"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile Safari/604.1"


def _browse(engine, pages: list[str], cart_quantity: int = 0) -> tuple[str, int]:
    """A shopper looks at `pages` (and puts tents in the cart): what the tracking API stores."""
    visitor_id = uuid.uuid4().hex
    raw = [{"id": uuid.uuid4().hex, "kind": "page_view", "url": f"{STORE}{p}", "title": f"Title of {p}",
            "data": {"referrer": ""}} for p in pages]
    if cart_quantity:
        with session_scope(engine) as s:
            if s.exec(select(Product).where(Product.sku == "TENT-1")).first() is None:
                s.add(Product(sku="TENT-1", name="Summit Tent", category="Tents", price_cents=9395,
                              url=f"{STORE}/tents/summit"))
        items = [{"sku": "TENT-1", "quantity": cart_quantity, "price": "93.95"}]
        raw.append({"id": uuid.uuid4().hex, "kind": "cart", "url": f"{STORE}/cart", "title": "Cart",
                    "data": {"items": items, "total": "0", "currency": "USD"}})
    result = store_activity.store_batch(visitor_id, parse_events(raw), IPHONE, engine=engine)
    return visitor_id, result.shopper_id


def test_everyone_on_the_store_is_listed_with_page_pages_cart_and_conversation(any_engine):
    _, browsing = _browse(any_engine, ["/", "/tents", "/tents/summit"])
    _, buying = _browse(any_engine, ["/", "/cart"], cart_quantity=2)
    with session_scope(any_engine) as s:
        conv, _ = convs.start_conversation(s, buying)
        conv_id = conv.id

    rows = {r.shopper_id: r for r in visitors.visitors_on_site(engine=any_engine)}
    assert set(rows) == {browsing, buying}
    assert (rows[browsing].current_title, rows[browsing].pages, rows[browsing].cart_cents,
            rows[browsing].conversation_id, rows[browsing].conversation_status) == (
        "Title of /tents/summit", 3, 0, 0, "")
    assert (rows[buying].current_url, rows[buying].cart_cents, rows[buying].conversation_id,
            rows[buying].conversation_status) == (f"{STORE}/cart", 18790, conv_id, "open")
    assert rows[buying].device.startswith("Mobile") and rows[buying].label.startswith("Visitor ")

    by_cart = visitors.visitors_on_site("cart", engine=any_engine)
    assert [r.shopper_id for r in by_cart] == [buying, browsing]
    assert visitors.visitor(buying, engine=any_engine) == rows[buying]


def test_who_left_or_went_quiet_is_not_listed(any_engine, monkeypatch):
    _, stays = _browse(any_engine, ["/"])
    left_visitor, left = _browse(any_engine, ["/"])
    with session_scope(any_engine) as s:
        presence.leave(s, convs.get_or_create_shopper(s, left_visitor), window_seconds=60)

    later = utcnow() + timedelta(seconds=5)  # past the grace a page change gets
    assert [r.shopper_id for r in visitors.visitors_on_site(engine=any_engine, now=later)] == [stays]
    assert visitors.visitor(left, engine=any_engine, now=later) is None

    quiet = utcnow() + timedelta(hours=1)  # long past the presence window
    assert visitors.visitors_on_site(engine=any_engine, now=quiet) == []


def test_a_shopper_with_two_visits_on_site_is_one_row_at_their_latest_page(any_engine):
    visitor_id, shopper = _browse(any_engine, ["/first"])
    with session_scope(any_engine) as s:
        # a second device of the same shopper, seen a moment later
        presence.touch_visit(s, convs.get_or_create_shopper(s, visitor_id), user_agent="Mozilla/5.0 (Windows NT 10.0)",
                             url=f"{STORE}/second", title="Second", window_seconds=60,
                             now=utcnow() + timedelta(seconds=1))
    rows = visitors.visitors_on_site(engine=any_engine, now=utcnow() + timedelta(seconds=2))
    assert [(r.shopper_id, r.current_title) for r in rows] == [(shopper, "Second")]


def test_a_shopper_whose_chat_is_snoozed_or_resolved_still_has_it_and_its_status(any_engine):
    """Any conversation counts, not only an open one: the row links to the
    shopper's conversation and says whether it sleeps or was resolved."""
    snoozed_visitor, snoozed = _browse(any_engine, ["/"])
    _, resolved = _browse(any_engine, ["/boots"])
    conv_of: dict[int, int] = {}
    for shopper in (snoozed, resolved):
        with session_scope(any_engine) as s:
            conv_of[shopper] = convs.start_conversation(s, shopper)[0].id
    nobody = 0  # (a workspace change records who made it)
    workspace.snooze(nobody, conv_of[snoozed], "1h", engine=any_engine)
    workspace.set_status(nobody, conv_of[resolved], "resolved", engine=any_engine)

    rows = {r.shopper_id: r for r in visitors.visitors_on_site(engine=any_engine)}
    assert (rows[snoozed].conversation_id, rows[snoozed].conversation_status) == (conv_of[snoozed], "snoozed")
    assert (rows[resolved].conversation_id, rows[resolved].conversation_status) == (conv_of[resolved], "resolved")
    assert visitors.visitor(resolved, engine=any_engine) == rows[resolved]

    # The shopper writes again: the same conversation, awake.
    opened = chat.open_widget(snoozed_visitor, engine=any_engine)
    chat.shopper_send(snoozed_visitor, opened.shopper_id, opened.conversation_id, uuid.uuid4().hex, "Still there?",
                      engine=any_engine)
    row = visitors.visitor(snoozed, engine=any_engine)
    assert (row.conversation_id, row.conversation_status) == (conv_of[snoozed], "open")
