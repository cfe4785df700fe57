"""Live pushes are incremental: raw socket clients on the real app see one row,
one flag or one message change, never the whole list re-sent for a flag."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlmodel import Session

from chatdash import events, live
from chatdash.services import auth, identity
from chatdash.state.chat import ChatState
from chatdash.state.inbox import InboxState
from chatdash.state.notifications import NotificationState
from chatdash.state.shopper_panel import ShopperPanelState
from chatdash.state.widget import WidgetState
from tests.live_app import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.reflex_client import RawReflexClient

CONVERSATIONS = "/admin/conversations"


def _values(delta: dict, state: type) -> dict[str, Any]:
    return {k.removesuffix("_rx_state_"): v for k, v in delta.get(state.get_full_name(), {}).items()}


def _wait_for(client: RawReflexClient, state: type, test: Callable[[dict[str, Any]], bool],
              since: int = 0, timeout: float = 20) -> tuple[int, dict[str, Any]]:
    """The index and values of the first delta (from `since`) of `state` that passes `test`."""

    def passes(delta: dict) -> bool:
        values = _values(delta, state)
        return bool(values) and test(values)

    delta = client.wait_for(passes, timeout=timeout, since=since)
    index = next(i for i in range(since, len(client.deltas)) if client.deltas[i] is delta)
    return index, _values(delta, state)


def _admin_client(live_app, live_db) -> RawReflexClient:
    with Session(live_db) as s:
        admin = auth.authenticate(s, ADMIN_EMAIL, ADMIN_PASSWORD)
        token = auth.start_session(s, admin.id, hours=1)
        s.commit()
    client = RawReflexClient(live_app.backend, cookies={"chatdash_admin": token})
    client.hydrate(path=CONVERSATIONS)
    return client


def _shopper_client(live_app, token: str = "") -> RawReflexClient:
    client = RawReflexClient(live_app.backend)
    client.hydrate(path="/widget")
    client.call(WidgetState, "adopt_visitor", {"token": token}, path="/widget")
    return client


def _send(client: RawReflexClient, text: str) -> None:
    client.call(WidgetState, "send", {"item": {"id": uuid.uuid4().hex, "text": text}}, path="/widget")


def _select_conversation_ending_with(admin: RawReflexClient, text: str) -> int:
    """Load the inbox, find the conversation whose preview is `text`, select it."""
    admin.call(InboxState, "load", path=CONVERSATIONS)
    _, inbox = _wait_for(admin, InboxState, lambda v: any(r["preview"] == text for r in v.get("rows", [])))
    conv_id = next(r["id"] for r in inbox["rows"] if r["preview"] == text)
    admin.call(InboxState, "select", {"conversation_id": conv_id}, path=CONVERSATIONS)
    return conv_id


def _chat_open_on_both_sides(admin: RawReflexClient, shopper: RawReflexClient, question: str) -> None:
    """The shopper asks; the admin opens the conversation and sees the question."""
    _send(shopper, question)
    _select_conversation_ending_with(admin, question)
    _wait_for(admin, ChatState, lambda v: any(m["body"] == question for m in v.get("messages", [])))


def test_a_shopper_message_reaches_the_admin_as_one_row_and_one_message(live_app, live_db):
    shopper = _shopper_client(live_app)
    admin = _admin_client(live_app, live_db)
    try:
        first = f"Is the tent waterproof? {uuid.uuid4().hex[:6]}"
        _send(shopper, first)
        conv_id = _select_conversation_ending_with(admin, first)
        _wait_for(admin, ChatState, lambda v: [m["body"] for m in v.get("messages", [])][-1:] == [first])

        mark = len(admin.deltas)
        second = f"And does it fit four? {uuid.uuid4().hex[:6]}"
        _send(shopper, second)
        _, chat = _wait_for(admin, ChatState, lambda v: any(m["body"] == second for m in v.get("messages", [])),
                            since=mark)
        assert [m["body"] for m in chat["messages"]] == [first, second]  # appended once, in order
        # The row moves up with the new preview (other updates of the list, such
        # as the seen mark of the first message, may come before it).
        _, rows = _wait_for(admin, InboxState, lambda v: v.get("rows", [{}])[0].get("preview") == second,
                            since=mark)
        assert rows["rows"][0]["id"] == conv_id
    finally:
        shopper.close()
        admin.close()


def test_a_message_reaches_the_shoppers_other_tab_and_shows_once_in_the_tab_that_sent_it(live_app):
    """The sending tab shows its message from its own event (it is not pushed
    back to it: echo=False); the same browser's other tab gets it pushed."""
    token = identity.issue_visitor_token(live_app.env["CHATDASH_SECRET_KEY"])
    sender = _shopper_client(live_app, token)
    other = None
    try:
        texts = [f"first tab {n} {uuid.uuid4().hex[:6]}" for n in range(2)]
        _send(sender, texts[0])
        other = _shopper_client(live_app, token)  # a second tab, opened on the conversation
        _wait_for(other, WidgetState, lambda v: [m["body"] for m in v.get("messages", [])] == texts[:1])
        _send(sender, texts[1])
        _wait_for(other, WidgetState, lambda v: [m["body"] for m in v.get("messages", [])] == texts)
        # The positive marker for the sending tab: the other tab writes, and that is pushed to it.
        reply = f"second tab {uuid.uuid4().hex[:6]}"
        _send(other, reply)
        _, shown = _wait_for(sender, WidgetState, lambda v: any(m["body"] == reply for m in v.get("messages", [])))
        assert [m["body"] for m in shown["messages"]] == [*texts, reply]
    finally:
        sender.close()
        if other is not None:
            other.close()


def test_the_admin_reading_sends_the_widget_a_seen_mark_not_the_history(live_app, live_db):
    shopper = _shopper_client(live_app)
    admin = _admin_client(live_app, live_db)
    try:
        texts = [f"question {n} {uuid.uuid4().hex[:6]}" for n in range(3)]
        for text in texts:
            _send(shopper, text)
        _, widget = _wait_for(shopper, WidgetState, lambda v: [m["body"] for m in v.get("messages", [])] == texts)
        last_id = widget["messages"][-1]["id"]
        mark = len(shopper.deltas)

        _select_conversation_ending_with(admin, texts[-1])

        # The positive marker: the widget learns the admin has read up to the last message...
        i, seen = _wait_for(shopper, WidgetState, lambda v: v.get("admin_seen_id") == last_id, since=mark)
        # ...and that is all it was sent: no re-read of the history.
        assert "messages" not in seen
        assert all("messages" not in _values(d, WidgetState) for d in shopper.deltas[mark:i + 1])
        # The bell of another admin tab falls with the same event.
        _wait_for(admin, NotificationState, lambda v: "unseen_count" in v)
    finally:
        shopper.close()
        admin.close()


def test_an_admin_reply_reaches_the_widget_once_even_when_sent_twice(live_app, live_db):
    shopper = _shopper_client(live_app)
    admin = _admin_client(live_app, live_db)
    try:
        _chat_open_on_both_sides(admin, shopper, f"Do you ship abroad? {uuid.uuid4().hex[:6]}")

        answer = f"Yes, to 40 countries {uuid.uuid4().hex[:6]}"
        form = {"reply": answer, "client_id": uuid.uuid4().hex}
        admin.call(ChatState, "send_reply", {"form_data": form}, path=CONVERSATIONS)
        admin.call(ChatState, "send_reply", {"form_data": form}, path=CONVERSATIONS)  # a double submit
        _, widget = _wait_for(shopper, WidgetState, lambda v: any(m["body"] == answer for m in v.get("messages", [])))
        assert [m["body"] for m in widget["messages"]].count(answer) == 1
        _, chat = _wait_for(admin, ChatState, lambda v: any(m["body"] == answer for m in v.get("messages", [])))
        assert [m["body"] for m in chat["messages"]].count(answer) == 1
    finally:
        shopper.close()
        admin.close()


def test_the_list_shows_a_page_and_more_on_demand_and_counts_every_open_conversation(live_app, live_db):
    from chatdash.services import chat
    from chatdash.services import conversations as convs
    from chatdash.state.inbox import INBOX_PAGE

    # Enough conversations that the first page cannot hold them all (written
    # straight to the database: the admin's load reads them).
    for n in range(INBOX_PAGE + 5):
        with Session(live_db) as s:
            shopper = convs.get_or_create_shopper(s, uuid.uuid4().hex)
            s.commit()
            shopper_id, visitor_id = shopper.id, shopper.visitor_id
        chat.shopper_send(visitor_id, shopper_id, 0, uuid.uuid4().hex, f"paging {n}", engine=live_db)
    with Session(live_db) as s:
        total = convs.open_conversation_count(s)
    admin = _admin_client(live_app, live_db)
    shopper = _shopper_client(live_app)
    try:
        mark = len(admin.deltas)
        admin.call(InboxState, "load", path=CONVERSATIONS)
        _, first = _wait_for(admin, InboxState, lambda v: bool(v.get("rows")) and "open_total" in v, since=mark)
        assert len(first["rows"]) == INBOX_PAGE and first["open_total"] == total

        # A new conversation comes in on top, the count grows, the page keeps its length.
        mark = len(admin.deltas)
        text = f"new here {uuid.uuid4().hex[:6]}"
        _send(shopper, text)
        _, pushed = _wait_for(admin, InboxState, lambda v: v.get("rows", [{}])[0].get("preview") == text,
                              since=mark)
        assert len(pushed["rows"]) == INBOX_PAGE
        assert [r["id"] for r in pushed["rows"][1:]] == [r["id"] for r in first["rows"][:-1]]
        _wait_for(admin, InboxState, lambda v: v.get("open_total") == total + 1, since=mark)

        mark = len(admin.deltas)
        admin.call(InboxState, "show_more", path=CONVERSATIONS)
        _, more = _wait_for(admin, InboxState, lambda v: "rows" in v, since=mark)
        assert len(more["rows"]) == min(2 * INBOX_PAGE, total + 1)
        assert [r["id"] for r in more["rows"][:INBOX_PAGE]] == [r["id"] for r in pushed["rows"]]
    finally:
        shopper.close()
        admin.close()


def test_a_burst_of_typing_reaches_the_admin_as_a_few_pushes(live_app, live_db):
    shopper = _shopper_client(live_app)
    admin = _admin_client(live_app, live_db)
    try:
        _chat_open_on_both_sides(admin, shopper, f"Still there? {uuid.uuid4().hex[:6]}")

        keystrokes = 300
        mark = len(admin.deltas)
        started = time.monotonic()
        for _ in range(keystrokes):  # as fast as the socket takes them, not waiting for answers
            shopper._emit(f"{WidgetState.get_full_name()}.typing", {}, "/widget")
        # The positive marker: a message sent after the keystrokes (one client's
        # events are handled in order, so every keystroke was handled before it).
        after = f"found it {uuid.uuid4().hex[:6]}"
        _send(shopper, after)
        i, _ = _wait_for(admin, ChatState, lambda v: any(m["body"] == after for m in v.get("messages", [])),
                         since=mark)
        elapsed = time.monotonic() - started
        pushes = [d for d in admin.deltas[mark:i + 1] if "shopper_typing_seq" in _values(d, ChatState)]
        # The admin was told the shopper is typing, at most once per typing window.
        assert pushes
        assert len(pushes) <= elapsed / live.SLOW_WINDOWS[events.Typing] + 1
        assert len(pushes) < keystrokes / 10
    finally:
        shopper.close()
        admin.close()


def test_a_burst_of_tracking_batches_reloads_the_shopper_panel_a_few_times(live_app, live_db):
    token = identity.issue_visitor_token(live_app.env["CHATDASH_SECRET_KEY"])
    shopper = _shopper_client(live_app, token)
    admin = _admin_client(live_app, live_db)
    try:
        _chat_open_on_both_sides(admin, shopper, f"Which tent? {uuid.uuid4().hex[:6]}")
        _wait_for(admin, ShopperPanelState, lambda v: "session_view" in v)

        batches = 60
        mark = len(admin.deltas)
        started = time.monotonic()
        with httpx.Client(base_url=live_app.backend, timeout=30) as http:
            for n in range(batches):
                page = {"id": uuid.uuid4().hex, "kind": "page_view", "url": f"https://shop.test/page/{n}",
                        "title": f"Page {n}", "data": {"referrer": ""}}
                r = http.post("/api/track", json={"visitor": token, "events": [page]})
                assert r.status_code == 200, r.text
        # The positive marker: the panel shows the last page (every batch was stored first).
        i, last = _wait_for(admin, ShopperPanelState,
                            lambda v: any(p.get("title") == f"Page {batches - 1}"
                                          for p in v.get("session_view", {}).get("pages", [])),
                            since=mark)
        elapsed = time.monotonic() - started
        reloads = [d for d in admin.deltas[mark:i + 1] if "session_view" in _values(d, ShopperPanelState)]
        assert len(reloads) <= elapsed / live.SLOW_WINDOWS[events.ShopperActivity] + 1
        assert len(reloads) < batches / 5
        assert last["session_view"]["pages_count"] >= batches
    finally:
        shopper.close()
        admin.close()

