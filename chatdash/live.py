"""Live push: who is watching what, and how a change reaches their screens.

The database is the truth. After a service has persisted a change, the
caller publishes a *topic* ("inbox" for every admin screen, "conv:<id>" for
the screens showing one conversation). Every client subscribed to that topic
gets its state modified out of band with Reflex's `app.modify_state`, which
re-reads from the database and sends the client only what changed. With
REDIS_URL set, the subscriber registry lives in Redis and Reflex relays the
update to whichever worker holds the client's socket.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict

import reflex as rx
from reflex.istate.manager.token import BaseStateToken

from chatdash.settings import get_settings

log = logging.getLogger("chatdash.live")

INBOX = "inbox"
# A subscription not renewed for this long is dropped (clients renew on load
# and every time they are pushed to).
SUBSCRIPTION_TTL = 6 * 3600

_tasks: set[asyncio.Task] = set()


def conversation_topic(conversation_id: int) -> str:
    return f"conv:{conversation_id}"


class _MemoryRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._topics: dict[str, dict[str, float]] = defaultdict(dict)

    def add(self, topic: str, member: str) -> None:
        with self._lock:
            self._topics[topic][member] = time.time()

    def remove(self, topic: str, member: str) -> None:
        with self._lock:
            self._topics.get(topic, {}).pop(member, None)

    def members(self, topic: str) -> list[str]:
        cutoff = time.time() - SUBSCRIPTION_TTL
        with self._lock:
            entries = self._topics.get(topic, {})
            for m in [m for m, t in entries.items() if t < cutoff]:
                entries.pop(m, None)
            return list(entries)


class _RedisRegistry:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url)

    def _key(self, topic: str) -> str:
        return f"chatdash:topic:{topic}"

    def add(self, topic: str, member: str) -> None:
        key = self._key(topic)
        pipe = self._redis.pipeline()
        pipe.zadd(key, {member: time.time()})
        pipe.expire(key, SUBSCRIPTION_TTL)
        pipe.execute()

    def remove(self, topic: str, member: str) -> None:
        self._redis.zrem(self._key(topic), member)

    def members(self, topic: str) -> list[str]:
        key = self._key(topic)
        self._redis.zremrangebyscore(key, 0, time.time() - SUBSCRIPTION_TTL)
        return [m.decode() for m in self._redis.zrange(key, 0, -1)]


_registry: _MemoryRegistry | _RedisRegistry | None = None


def registry() -> _MemoryRegistry | _RedisRegistry:
    global _registry
    if _registry is None:
        url = get_settings().redis_url
        _registry = _RedisRegistry(url) if url else _MemoryRegistry()
    return _registry


def _member(client_token: str, state_cls: type[rx.State]) -> str:
    return f"{client_token}|{state_cls.get_full_name()}"


def subscribe(topic: str, client_token: str, state_cls: type[rx.State]) -> None:
    if client_token:
        registry().add(topic, _member(client_token, state_cls))


def unsubscribe(topic: str, client_token: str, state_cls: type[rx.State]) -> None:
    if client_token:
        registry().remove(topic, _member(client_token, state_cls))


def _app():
    from chatdash.chatdash import app

    return app


async def _push(app, topic: str, member: str, method: str, args: tuple) -> None:
    from reflex.state import State

    token, _, state_name = member.partition("|")
    token_manager = app.event_namespace._token_manager if app.event_namespace else None
    if token_manager is not None and not await token_manager.is_token_connected(token):
        # The tab is gone (or reconnecting: it re-reads everything on hydrate).
        return
    state_cls = State.get_class_substate(state_name)
    async with app.modify_state(BaseStateToken(ident=token, cls=state_cls)) as root:
        state = await root.get_state(state_cls)
        await getattr(state, method)(*args)


def publish(topic: str, method: str, *args, exclude: rx.State | None = None) -> None:
    """Call `method(*args)` on every subscriber of `topic`, each in its own task.

    Never awaited by the caller: a handler holding its own client's lock must not
    wait on other clients. `exclude` is the calling state, which updates itself.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        log.warning("publish(%s) outside an event loop ignored", topic)
        return
    app = _app()
    skip = _member(exclude.router.session.client_token, type(exclude)) if exclude is not None else ""
    for member in registry().members(topic):
        if member == skip:
            continue
        task = loop.create_task(_push(app, topic, member, method, args))
        _tasks.add(task)
        task.add_done_callback(_done)


def _done(task: asyncio.Task) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("live push failed: %r", task.exception())


def shopper_activity(conversation_id: int) -> None:
    """The shopper of this conversation did something on the store (page, cart,
    order): screens showing the conversation refresh the shopper panel."""
    publish(conversation_topic(conversation_id), "_on_shopper_activity")


async def drain() -> None:
    """Wait for pushes in flight (tests, shutdown)."""
    while _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)
