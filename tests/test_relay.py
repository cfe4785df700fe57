"""Events committed in one worker reach the others through the real Redis:
two relays stand for two workers, each with its own event loop and thread."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from datetime import UTC, datetime

import pytest
import redis

from chatdash import events
from chatdash.events import ConversationSummary, MessagePosted, MessageView, Typing
from chatdash.relay import RedisRelay

REDIS_URL = os.environ.get("CHATDASH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class Worker:
    """A relay running on its own event loop in its own thread, like a worker process's."""

    def __init__(self, stream: str) -> None:
        self.received: list[list[events.DomainEvent]] = []
        self.arrived = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self.relay = RedisRelay(REDIS_URL, self._deliver, stream=stream)
        self._stop: asyncio.Event | None = None
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        assert started.wait(10)

    def _deliver(self, batch) -> None:
        assert threading.get_ident() == self.thread.ident  # on the worker's loop
        with self.arrived:
            self.received.append(batch)
            self.arrived.notify_all()

    def _run(self, started: threading.Event) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            async with self.relay.running():
                await self.relay.wait_ready()
                started.set()
                await self._stop.wait()

        self.loop.run_until_complete(main())

    def on_loop(self, fn, *args) -> None:
        """Run `fn(*args)` on the worker's event loop (as a state handler would)."""
        done = threading.Event()
        self.loop.call_soon_threadsafe(lambda: (fn(*args), done.set()))
        assert done.wait(10)

    def wait_for(self, count: int, timeout: float = 10) -> list[list[events.DomainEvent]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= count, timeout), self.received
            return list(self.received)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def stream():
    name = f"test:events:{uuid.uuid4().hex}"
    yield name
    redis.Redis.from_url(REDIS_URL).delete(name)


def message(conversation_id: int, text: str) -> MessagePosted:
    now = datetime.now(UTC)
    return MessagePosted(
        message=MessageView(
            id=1,
            conversation_id=conversation_id,
            sender="shopper",
            kind="text",
            body=text,
            client_msg_id=uuid.uuid4().hex,
            created_at=now,
        ),
        conversation=ConversationSummary(
            id=conversation_id,
            shopper_id=3,
            label="Visitor 3",
            preview=text,
            last_message_at=now,
            unread=1,
            on_site=True,
        ),
        unseen_conversations=1,
    )


def test_a_batch_committed_in_one_worker_reaches_the_other_once_and_not_itself(stream):
    a, b = Worker(stream), Worker(stream)
    try:
        batch = [message(7, "Do you ship to Oslo?")]
        a.relay.publish(batch)  # from this thread: a writer thread that committed
        assert b.wait_for(1) == [batch]
        # The publishing worker does not get its own batch back, and the other
        # gets the batch once: a later batch is the next thing each sees.
        marker = [Typing(7, "admin")]
        b.relay.publish(marker)
        assert a.wait_for(1) == [marker]
        b.relay.publish([Typing(8, "admin")])
        a.wait_for(2)
        assert b.received == [batch]
        assert a.received == [marker, [Typing(8, "admin")]]
    finally:
        a.stop()
        b.stop()


def test_a_signal_emitted_on_the_event_loop_is_relayed_without_blocking_it(stream):
    a, b = Worker(stream), Worker(stream)
    try:
        a.on_loop(a.relay.publish, [Typing(9, "shopper")])
        assert b.wait_for(1) == [[Typing(9, "shopper")]]
    finally:
        a.stop()
        b.stop()


def test_batches_from_one_worker_arrive_in_the_order_they_were_committed(stream):
    a, b = Worker(stream), Worker(stream)
    try:
        sent = [[message(1, f"message {i}")] for i in range(200)]
        for batch in sent:
            a.relay.publish(batch)
        assert b.wait_for(200) == sent
    finally:
        a.stop()
        b.stop()


def test_a_worker_started_later_reads_only_what_is_committed_after_it_started(stream):
    a = Worker(stream)
    try:
        a.relay.publish([Typing(1, "admin")])  # before b exists: not b's business
        b = Worker(stream)
        try:
            a.relay.publish([Typing(2, "admin")])
            assert b.wait_for(1) == [[Typing(2, "admin")]]
        finally:
            b.stop()
    finally:
        a.stop()
