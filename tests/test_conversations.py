"""Conversations: idempotent posting, text rules, tokens, reading, unread counts
and the inbox list — on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chatdash.db import session_scope
from chatdash.models import Conversation, Message, MessageKind, Product, Sender, Shopper, utcnow
from chatdash.services import conversations as convs
from chatdash.services import presence
from chatdash.services.conversations import ChatError, unseen_conversation_count

WINDOW = 60


def cid() -> str:
    """A fresh client message id, as the widget's outbox makes them."""
    return uuid.uuid4().hex


def new_shopper(session: Session, visitor_id: str | None = None, **fields) -> Shopper:
    shopper = convs.get_or_create_shopper(session, visitor_id or uuid.uuid4().hex[:24])
    for key, value in fields.items():
        setattr(shopper, key, value)
    session.add(shopper)
    session.flush()
    return shopper


def new_conversation(engine: Engine, **shopper_fields) -> tuple[int, int, str]:
    """A committed shopper and open conversation: (shopper id, conversation id, token)."""
    with session_scope(engine) as s:
        shopper = new_shopper(s, **shopper_fields)
        conv, created = convs.start_conversation(s, shopper.id)
        assert created
        return shopper.id, conv.id, conv.token


def new_product(session: Session, sku: str = "SKU-1", url: str = "https://shop.test/p/1") -> Product:
    product = Product(sku=sku, name=f"Linen shirt {sku}", category="Shirts", price_cents=4990,
                      url=url, image_url="https://shop.test/img/1.jpg")
    session.add(product)
    session.flush()
    return product


def post(engine: Engine, conv_id: int, sender: Sender, body: str = "hello", client_id: str | None = None,
         **kw) -> tuple[int, bool]:
    with session_scope(engine) as s:
        msg, created = convs.post_message(s, s.get(Conversation, conv_id), sender, client_id or cid(), body, **kw)
        return msg.id, created


def message_count(engine: Engine, conv_id: int | None = None) -> int:
    with Session(engine) as s:
        stmt = select(Message)
        if conv_id is not None:
            stmt = stmt.where(Message.conversation_id == conv_id)
        return len(s.exec(stmt).all())


# --- idempotent posting ---------------------------------------------------------


def test_retried_send_is_stored_once_and_returns_the_same_message(any_engine):
    _, conv_id, _ = new_conversation(any_engine)
    client_id = cid()
    first_id, first_created = post(any_engine, conv_id, Sender.SHOPPER, "Do you ship to Norway?", client_id)
    # The retry may even carry different text (a double-click after an edit): the first one stands.
    again_id, again_created = post(any_engine, conv_id, Sender.SHOPPER, "Do you ship to Norway??", client_id)
    assert first_created is True
    assert again_created is False
    assert again_id == first_id
    assert message_count(any_engine) == 1
    with Session(any_engine) as s:
        assert s.get(Message, first_id).body == "Do you ship to Norway?"


def test_different_client_ids_are_different_messages(any_engine):
    _, conv_id, _ = new_conversation(any_engine)
    a, _ = post(any_engine, conv_id, Sender.SHOPPER, "hello")
    b, _ = post(any_engine, conv_id, Sender.SHOPPER, "hello")
    assert a != b
    assert message_count(any_engine, conv_id) == 2


def test_same_client_id_in_two_conversations_is_two_messages(any_engine):
    _, conv_a, _ = new_conversation(any_engine)
    _, conv_b, _ = new_conversation(any_engine)
    client_id = cid()
    a, created_a = post(any_engine, conv_a, Sender.SHOPPER, "hi", client_id)
    b, created_b = post(any_engine, conv_b, Sender.SHOPPER, "hi", client_id)
    assert created_a and created_b
    assert a != b
    assert message_count(any_engine, conv_a) == 1
    assert message_count(any_engine, conv_b) == 1


def test_duplicate_inserted_by_another_session_before_our_insert_is_returned_not_raised(any_engine):
    """The race the unique constraint settles: another worker stores the same send
    between our "already stored?" check and our insert (the IntegrityError path)."""
    _, conv_id, _ = new_conversation(any_engine)
    client_id = cid()
    other_ids: list[int] = []

    def other_worker_wins(orm_execute_state) -> None:
        # Just before our INSERT (after our "already stored?" check).
        if not orm_execute_state.is_insert or other_ids:
            return
        with session_scope(any_engine) as other:
            row = Message(conversation_id=conv_id, sender=Sender.SHOPPER, body="from the other worker",
                          client_msg_id=client_id)
            other.add(row)
            other.flush()
            other_ids.append(row.id)

    with session_scope(any_engine) as s:
        conv = s.get(Conversation, conv_id)
        event.listen(s, "do_orm_execute", other_worker_wins)
        msg, created = convs.post_message(s, conv, Sender.SHOPPER, client_id, "from this worker")
        assert created is False
        assert msg.id == other_ids[0]
        assert msg.body == "from the other worker"
        # The session is still usable: the caller goes on and commits.
        _later, later_created = convs.post_message(s, conv, Sender.SHOPPER, cid(), "next message")
        assert later_created
    assert message_count(any_engine, conv_id) == 2
    with Session(any_engine) as s:
        assert s.get(Conversation, conv_id).last_message_preview == "next message"


def test_concurrent_duplicate_sends_from_threads_store_one_row(any_engine):
    """Eight workers all pass the "already stored?" check, then insert at once."""
    _, conv_id, _ = new_conversation(any_engine)
    client_id = cid()
    workers = 8
    everyone_checked = threading.Barrier(workers)
    results: list[tuple[int, bool]] = []
    errors: list[Exception] = []

    def send(i: int) -> None:
        try:
            with session_scope(any_engine) as s:
                event.listen(s, "before_flush", lambda *_: everyone_checked.wait(timeout=30), once=True)
                msg, created = convs.post_message(s, s.get(Conversation, conv_id), Sender.SHOPPER, client_id,
                                                  f"attempt {i}")
                results.append((msg.id, created))
        except Exception as exc:  # noqa: BLE001 - the test reports whatever escaped
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(results) == workers
    assert len({msg_id for msg_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert message_count(any_engine, conv_id) == 1


def test_concurrent_first_visit_creates_one_shopper(any_engine):
    visitor_id = uuid.uuid4().hex[:24]
    other_ids: list[int] = []

    def other_worker_wins(*_args) -> None:
        with session_scope(any_engine) as other:
            row = Shopper(visitor_id=visitor_id)
            other.add(row)
            other.flush()
            other_ids.append(row.id)

    with session_scope(any_engine) as s:
        event.listen(s, "before_flush", other_worker_wins, once=True)
        shopper = convs.get_or_create_shopper(s, visitor_id)
        assert shopper.id == other_ids[0]
    with Session(any_engine) as s:
        assert len(s.exec(select(Shopper).where(Shopper.visitor_id == visitor_id)).all()) == 1


def test_get_or_create_shopper_returns_the_known_shopper(any_engine):
    with session_scope(any_engine) as s:
        first = convs.get_or_create_shopper(s, "visitor-one-abcdef")
    with session_scope(any_engine) as s:
        again = convs.get_or_create_shopper(s, "visitor-one-abcdef")
        other = convs.get_or_create_shopper(s, "visitor-two-abcdef")
    assert again.id == first.id
    assert other.id != first.id


# --- text and id rules ----------------------------------------------------------


@pytest.mark.parametrize("body", ["", " ", "   \n\t  ", "\x00\x07", "\u200b\u202e", "\u200d \u200d"])
def test_empty_message_is_refused(body):
    with pytest.raises(ChatError) as err:
        convs.clean_text(body, 4000)
    assert str(err.value) == "Write a message first."


def test_message_at_the_limit_is_accepted_and_one_over_is_refused_with_the_limit():
    assert convs.clean_text("x" * 4000, 4000) == "x" * 4000
    with pytest.raises(ChatError, match=r"at most 4,000 characters \(this one has 4,001\)"):
        convs.clean_text("x" * 4001, 4000)
    # Far over the limit is refused before any normalising work, with the same limit named.
    with pytest.raises(ChatError, match="at most 10 characters"):
        convs.clean_text("y" * 1_000_000, 10)


def test_limit_counts_the_cleaned_text():
    # Surrounding white space and control characters do not count against the limit.
    assert convs.clean_text("  " + "z" * 10 + "\x00 ", 10) == "z" * 10


def test_control_characters_are_stripped_but_newlines_and_tabs_kept():
    raw = "  Hi\x00 there\x07\r\n\tsize M?\x1b[31m \u202eevil\u200b  "
    assert convs.clean_text(raw, 4000) == "Hi there\n\tsize M?[31m evil"


@pytest.mark.parametrize(
    "text",
    [
        "👩\u200d💻 works from home",  # zero-width joiner builds one emoji
        "family 👨\u200d👩\u200d👧",
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f Scotland",  # tag characters: a flag
        "\U0001fa77",  # pink heart, newer than Python 3.11's Unicode tables ("unassigned")
        "می\u200cخواهم",  # Persian: zero-width non-joiner is part of the spelling
        "Größe 42 – café ☕",
    ],
)
def test_real_text_survives_cleaning_unchanged(text):
    assert convs.clean_text(text, 4000) == text


def test_text_is_normalised_to_nfc():
    assert convs.clean_text("cafe\u0301", 4000) == "caf\u00e9"


@pytest.mark.parametrize("body", [None, 42, b"bytes", ["list"], {"text": "hi"}])
def test_non_text_message_is_refused(body):
    with pytest.raises(ChatError, match="must be text"):
        convs.clean_text(body, 4000)


@pytest.mark.parametrize("client_id", ["abcdefgh", "A" * 64, "a1_b2-c3", uuid.uuid4().hex, str(uuid.uuid4())])
def test_well_formed_client_ids_are_accepted(client_id):
    assert convs.check_client_id(client_id) == client_id


@pytest.mark.parametrize(
    "client_id",
    ["", "short", "abcdefg", "a" * 65, "has space1", "bad/char1", "dot.ted.id", "ünïcöde12", "abcdefgh\n",
     "a" * 64 + "\n", "\nabcdefgh", "abc'; drop", None, 12345678, b"abcdefgh"],
)
def test_malformed_client_ids_are_refused(client_id):
    with pytest.raises(ChatError, match="Malformed message id"):
        convs.check_client_id(client_id)


def test_malformed_client_id_or_text_stores_nothing(any_engine):
    _, conv_id, _ = new_conversation(any_engine)
    with pytest.raises(ChatError, match="Malformed"):
        post(any_engine, conv_id, Sender.SHOPPER, "hello", client_id="a" * 64 + "\n")
    with pytest.raises(ChatError, match="Write a message first"):
        post(any_engine, conv_id, Sender.SHOPPER, "  \x00 ")
    with pytest.raises(ChatError, match="at most 20"):
        post(any_engine, conv_id, Sender.SHOPPER, "w" * 21, max_chars=20)
    assert message_count(any_engine) == 0


def test_stored_text_is_the_cleaned_text_and_preview_is_one_short_line(any_engine):
    _, conv_id, _ = new_conversation(any_engine)
    msg_id, _ = post(any_engine, conv_id, Sender.SHOPPER, "  Hello\x00\n\nis the " + "blue " * 40 + "shirt in stock? ")
    with Session(any_engine) as s:
        msg = s.get(Message, msg_id)
        conv = s.get(Conversation, conv_id)
    assert msg.body.startswith("Hello\n\nis the blue")
    assert msg.body.endswith("shirt in stock?")
    assert "\n" not in conv.last_message_preview
    assert conv.last_message_preview.startswith("Hello is the blue blue")
    assert len(conv.last_message_preview) == convs.PREVIEW_CHARS
    assert conv.last_message_at == msg.created_at


# --- starting and reaching a conversation ---------------------------------------


def test_start_conversation_reuses_the_shoppers_open_conversation(any_engine):
    with session_scope(any_engine) as s:
        shopper = new_shopper(s)
        first, created = convs.start_conversation(s, shopper.id)
        assert created
    with session_scope(any_engine) as s:
        again, created_again = convs.start_conversation(s, shopper.id)
        assert not created_again
        assert again.id == first.id
        assert again.token == first.token


def test_closed_conversation_is_not_reused(any_engine):
    shopper_id, conv_id, token = new_conversation(any_engine)
    with session_scope(any_engine) as s:
        conv = s.get(Conversation, conv_id)
        conv.status = "closed"
        s.add(conv)
    with session_scope(any_engine) as s:
        assert convs.open_conversation_for(s, shopper_id) is None
        fresh, created = convs.start_conversation(s, shopper_id)
    assert created
    assert fresh.id != conv_id
    assert fresh.token != token


def test_tokens_are_long_unguessable_and_unique(any_engine):
    tokens = [new_conversation(any_engine)[2] for _ in range(40)]
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43,64}", token)  # 32 random bytes, url-safe


def test_shopper_cannot_reach_another_shoppers_conversation(any_engine):
    # A shopper's widget reaches a conversation only through its own shopper id,
    # resolved from the signed visitor id (chat.shopper_send / chat.open_widget).
    # A conversation id the widget holds is checked against that shopper, so a
    # forged id posts into the shopper's own conversation, never into another's.
    from chatdash.services import chat

    shopper_a, conv_a, _token_a = new_conversation(any_engine)
    post(any_engine, conv_a, Sender.SHOPPER, "A's private question")
    with session_scope(any_engine) as s:
        b = new_shopper(s)
        shopper_b, visitor_b = b.id, b.visitor_id
    conv_b, _message, created = chat.shopper_send(visitor_b, shopper_b, conv_a, cid(), "B's question",
                                                 engine=any_engine)
    assert created and conv_b != conv_a
    opened = chat.open_widget(visitor_b, engine=any_engine)
    assert opened.conversation_id == conv_b
    assert [m.body for m in opened.messages] == ["B's question"]
    with Session(any_engine) as s:
        assert [m.body for m in convs.list_messages(s, conv_a)] == ["A's private question"]
        assert convs.open_conversation_for(s, shopper_a).id == conv_a


def test_open_conversation_for_never_returns_another_shoppers(any_engine):
    conversations = [new_conversation(any_engine) for _ in range(5)]
    with session_scope(any_engine) as s:
        lonely = new_shopper(s).id
    with Session(any_engine) as s:
        assert convs.open_conversation_for(s, lonely) is None
        for shopper_id, conv_id, _ in conversations:
            found = convs.open_conversation_for(s, shopper_id)
            assert found.id == conv_id
            assert found.shopper_id == shopper_id


# --- reading --------------------------------------------------------------------


def test_messages_are_listed_oldest_first_and_after_an_id(any_engine):
    _, conv_id, _ = new_conversation(any_engine)
    _, other_conv, _ = new_conversation(any_engine)
    ids = []
    for i, sender in enumerate([Sender.SHOPPER, Sender.ADMIN, Sender.SHOPPER, Sender.ADMIN]):
        ids.append(post(any_engine, conv_id, sender, f"message {i}")[0])
        post(any_engine, other_conv, Sender.SHOPPER, f"elsewhere {i}")
    with Session(any_engine) as s:
        views = convs.list_messages(s, conv_id)
        assert [v.id for v in views] == ids
        assert [v.body for v in views] == [f"message {i}" for i in range(4)]
        assert [v.sender for v in views] == ["shopper", "admin", "shopper", "admin"]
        assert all(v.conversation_id == conv_id and v.kind == "text" and v.product is None for v in views)
        assert [v.id for v in convs.list_messages(s, conv_id, after_id=ids[1])] == ids[2:]
        assert convs.list_messages(s, conv_id, after_id=ids[-1]) == []
        # A limit keeps the latest messages, still oldest first.
        assert [v.id for v in convs.list_messages(s, conv_id, limit=2)] == ids[2:]
        assert convs.list_messages(s, 999_999) == []


def test_product_message_carries_a_product_card(any_engine):
    _, conv_id, _ = new_conversation(any_engine)
    with session_scope(any_engine) as s:
        product_id = new_product(s).id
    msg_id, created = post(any_engine, conv_id, Sender.ADMIN, "", product_id=product_id)
    assert created
    with Session(any_engine) as s:
        (view,) = convs.list_messages(s, conv_id)
        conv = s.get(Conversation, conv_id)
    assert view.id == msg_id
    assert view.kind == MessageKind.PRODUCT
    assert view.body == "Linen shirt SKU-1"
    assert view.product == convs.ProductCardView(
        id=product_id, sku="SKU-1", name="Linen shirt SKU-1", price_cents=4990, currency="USD",
        url="https://shop.test/p/1", image_url="https://shop.test/img/1.jpg", in_stock=True,
    )
    assert conv.last_message_preview == "Product: Linen shirt SKU-1"


def test_history_still_loads_after_a_product_leaves_the_catalog(any_engine):
    _, conv_id, _ = new_conversation(any_engine)
    with session_scope(any_engine) as s:
        product_id = new_product(s).id
    post(any_engine, conv_id, Sender.ADMIN, "", product_id=product_id)
    with session_scope(any_engine) as s:
        s.delete(s.get(Product, product_id))
    with Session(any_engine) as s:
        (view,) = convs.list_messages(s, conv_id)
    assert view.body == "Linen shirt SKU-1"
    assert view.product is None


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "ftp://shop.test/p/1", "//shop.test/p/1", "/p/1", "", "data:text/html,hi",
     " https://shop.test/p/1"],
)
def test_product_without_a_web_address_is_not_sent(any_engine, url):
    _, conv_id, _ = new_conversation(any_engine)
    with session_scope(any_engine) as s:
        product_id = new_product(s, url=url).id
    with pytest.raises(ChatError, match="no web address"):
        post(any_engine, conv_id, Sender.ADMIN, "", product_id=product_id)
    assert message_count(any_engine) == 0


def test_unknown_product_is_not_sent(any_engine):
    _, conv_id, _ = new_conversation(any_engine)
    with pytest.raises(ChatError, match="not in the catalog"):
        post(any_engine, conv_id, Sender.ADMIN, "", product_id=424242)
    assert message_count(any_engine) == 0


# --- seen marks and unread counts -----------------------------------------------


def unread_of(engine: Engine, conv_id: int) -> int:
    with Session(engine) as s:
        (row,) = [c for c in convs.list_conversations(s, window_seconds=WINDOW) if c.id == conv_id]
        return row.unread


def mark(engine: Engine, conv_id: int, side: Sender, up_to_id: int | None = None) -> bool:
    with session_scope(engine) as s:
        return convs.mark_seen(s, s.get(Conversation, conv_id), side, up_to_id)


def test_unread_counts_only_shopper_messages_after_the_admins_seen_mark(any_engine):
    _, conv_id, _ = new_conversation(any_engine)
    assert unread_of(any_engine, conv_id) == 0
    first, _ = post(any_engine, conv_id, Sender.SHOPPER, "one")
    post(any_engine, conv_id, Sender.SHOPPER, "two")
    post(any_engine, conv_id, Sender.SYSTEM, "Shopper identified")  # not the shopper talking
    post(any_engine, conv_id, Sender.SHOPPER, "three")
    assert unread_of(any_engine, conv_id) == 3

    assert mark(any_engine, conv_id, Sender.ADMIN, up_to_id=first) is True
    assert unread_of(any_engine, conv_id) == 2
    assert mark(any_engine, conv_id, Sender.ADMIN) is True
    assert unread_of(any_engine, conv_id) == 0
    assert mark(any_engine, conv_id, Sender.ADMIN) is False  # nothing new
    assert mark(any_engine, conv_id, Sender.ADMIN, up_to_id=first) is False  # never goes back
    assert unread_of(any_engine, conv_id) == 0

    post(any_engine, conv_id, Sender.SHOPPER, "four")
    assert unread_of(any_engine, conv_id) == 1


def test_admin_reply_marks_the_conversation_seen_by_the_admin(any_engine):
    _, conv_id, _ = new_conversation(any_engine)
    post(any_engine, conv_id, Sender.SHOPPER, "hello?")
    post(any_engine, conv_id, Sender.SHOPPER, "anyone?")
    reply, _ = post(any_engine, conv_id, Sender.ADMIN, "Hi! How can I help?")
    assert unread_of(any_engine, conv_id) == 0
    with Session(any_engine) as s:
        conv = s.get(Conversation, conv_id)
    assert conv.admin_seen_message_id == reply
    assert conv.shopper_seen_message_id < reply  # the shopper has not read the reply yet


def test_shopper_seen_mark_follows_what_the_widget_showed(any_engine):
    _, conv_id, _ = new_conversation(any_engine)
    own, _ = post(any_engine, conv_id, Sender.SHOPPER, "hello?")
    reply, _ = post(any_engine, conv_id, Sender.ADMIN, "Hi!")
    with Session(any_engine) as s:
        assert s.get(Conversation, conv_id).shopper_seen_message_id == own
    assert mark(any_engine, conv_id, Sender.SHOPPER) is True
    with Session(any_engine) as s:
        conv = s.get(Conversation, conv_id)
    assert conv.shopper_seen_message_id == reply
    assert conv.admin_seen_message_id == reply  # the shopper's mark leaves the admin's alone


def test_mark_seen_on_an_empty_conversation_changes_nothing(any_engine):
    _, conv_id, _ = new_conversation(any_engine)
    assert mark(any_engine, conv_id, Sender.ADMIN) is False
    assert mark(any_engine, conv_id, Sender.SHOPPER) is False


def test_notification_count_rises_with_shopper_messages_and_falls_when_seen(any_engine):
    def count() -> int:
        with Session(any_engine) as s:
            return unseen_conversation_count(s)

    assert count() == 0
    _, conv_a, _ = new_conversation(any_engine)
    assert count() == 0  # an empty conversation is nothing to look at yet
    post(any_engine, conv_a, Sender.SHOPPER, "hi")
    assert count() == 1
    post(any_engine, conv_a, Sender.SHOPPER, "still there?")
    assert count() == 1  # counts conversations, not messages
    _, conv_b, _ = new_conversation(any_engine)
    post(any_engine, conv_b, Sender.SHOPPER, "hello")
    assert count() == 2
    mark(any_engine, conv_a, Sender.ADMIN)
    assert count() == 1
    post(any_engine, conv_b, Sender.ADMIN, "Hi, how can I help?")
    assert count() == 0
    post(any_engine, conv_b, Sender.SHOPPER, "the blue one")
    assert count() == 1
    with session_scope(any_engine) as s:
        conv = s.get(Conversation, conv_b)
        conv.status = "closed"
        s.add(conv)
    assert count() == 0


# --- the inbox list -------------------------------------------------------------


def inbox(engine: Engine, now=None) -> list[convs.ConversationSummary]:
    with Session(engine) as s:
        return convs.list_conversations(s, window_seconds=WINDOW, now=now)


def test_inbox_lists_latest_activity_first(any_engine):
    _, a, _ = new_conversation(any_engine)
    _, b, _ = new_conversation(any_engine)
    _, c, _ = new_conversation(any_engine)
    for conv_id in (a, b, c):
        post(any_engine, conv_id, Sender.SHOPPER, f"hello from {conv_id}")
    assert [row.id for row in inbox(any_engine)] == [c, b, a]
    post(any_engine, a, Sender.SHOPPER, "me again")
    assert [row.id for row in inbox(any_engine)] == [a, c, b]
    assert inbox(any_engine)[0].preview == "me again"
    post(any_engine, b, Sender.ADMIN, "answer")  # an admin reply is activity too
    assert [row.id for row in inbox(any_engine)] == [b, a, c]


def test_inbox_leaves_out_closed_conversations(any_engine):
    _, a, _ = new_conversation(any_engine)
    _, b, _ = new_conversation(any_engine)
    with session_scope(any_engine) as s:
        conv = s.get(Conversation, a)
        conv.status = "closed"
        s.add(conv)
    assert [row.id for row in inbox(any_engine)] == [b]


def test_empty_inbox(any_engine):
    assert inbox(any_engine) == []


def test_inbox_labels_use_name_then_email_then_visitor(any_engine):
    _, named, _ = new_conversation(any_engine, name="Ada Lovelace", email="ada@example.com")
    _, emailed, _ = new_conversation(any_engine, email="grace@example.com")
    _, anonymous, _ = new_conversation(any_engine, visitor_id="k3x9q2abcdefghijklmnop")
    labels = {row.id: row.label for row in inbox(any_engine)}
    assert labels == {named: "Ada Lovelace", emailed: "grace@example.com", anonymous: "Visitor K3X9Q2"}


def test_inbox_shows_who_is_on_site_and_who_left(any_engine):
    now = utcnow()
    with session_scope(any_engine) as s:
        here, away, gone, never = (new_shopper(s) for _ in range(4))
        presence.touch_visit(s, here, user_agent="", url="https://shop.test/cart", window_seconds=WINDOW,
                             now=now - timedelta(seconds=5))
        presence.touch_visit(s, away, user_agent="", url="https://shop.test/a", window_seconds=WINDOW,
                             now=now - timedelta(seconds=WINDOW + 1))
        presence.touch_visit(s, gone, user_agent="", url="https://shop.test/b", window_seconds=WINDOW,
                             now=now - timedelta(seconds=20))
        presence.leave(s, gone, window_seconds=WINDOW, now=now - timedelta(seconds=10))
        ids = {}
        for name, shopper in (("here", here), ("away", away), ("gone", gone), ("never", never)):
            ids[convs.start_conversation(s, shopper.id)[0].id] = name
    rows = {ids[row.id]: row for row in inbox(any_engine, now=now)}
    assert {name: row.on_site for name, row in rows.items()} == {
        "here": True, "away": False, "gone": False, "never": False,
    }
    assert rows["here"].current_url == "https://shop.test/cart"
    assert rows["gone"].current_url == "https://shop.test/b"
    assert rows["never"].current_url == ""
