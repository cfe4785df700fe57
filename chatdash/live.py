"""Live: the one adapter from domain events to screens.

Use cases record typed events (`chatdash.events`) that are delivered after
their transaction commits. A state method marked `@live.on(EventType,
topic=...)` handles one kind of event for the tabs subscribed to that topic
("inbox" for every admin screen, "conv:<id>" for the screens showing one
conversation, "shopper:<id>" for the panel showing one shopper).

Pushes are incremental and coalesced: events for one tab that arrive within
`WINDOW` seconds are applied together in one `app.modify_state`, so one
Reflex delta goes out; events with the same `coalesce_key` collapse to the
newest. Handlers apply what the event carries (one row, one flag) and never
read the database under the tab's lock; a route's `load` function, when it
needs data, runs once per event in a worker thread before any lock is taken
(once per flush for an event a newer one replaces). Dense streams (typing,
tracking activity) have longer windows of their own (`SLOW_WINDOWS`).

`lifespan(app)` binds the adapter to the running app at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from typing import Any

import reflex as rx
from reflex.istate.manager.token import BaseStateToken

from chatdash import events
from chatdash.events import DomainEvent
from chatdash.settings import get_settings

log = logging.getLogger("chatdash.live")

INBOX = "inbox"
VISITORS = "visitors"  # every Visitors page
RECOMMENDER = "recommender"  # every model card (Settings → Recommendations)
# Events for one tab within this window go out as one update.
WINDOW = 0.08
# Streams a client can make as dense as it likes (keystrokes, tracking batches)
# reach each tab at most once per window of their own: 2,000 typing events or
# 100 tracking batches are a few pushes and a few panel loads, not thousands.
SLOW_WINDOWS: dict[type[DomainEvent], float] = {
    events.Typing: 0.5,
    events.ShopperActivity: 1.0,
}
# A subscription not renewed for this long is dropped (tabs renew on load).
SUBSCRIPTION_TTL = 6 * 3600
# A load result is shared by the tabs flushing within this long.
LOAD_SHARE_SECONDS = 2.0


def conversation_topic(conversation_id: int) -> str:
    return f"conv:{conversation_id}"


def shopper_topic(shopper_id: int) -> str:
    return f"shopper:{shopper_id}"


def inbox_topic(_event: DomainEvent) -> str:
    return INBOX


def visitors_topic(_event: DomainEvent) -> str:
    return VISITORS


def recommender_topic(_event: DomainEvent) -> str:
    return RECOMMENDER


def by_conversation(event: Any) -> str:
    return conversation_topic(event.conversation_id)


def by_shopper(event: Any) -> str:
    return shopper_topic(event.shopper_id)


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class _Mark:
    event_type: type[DomainEvent]
    topic: Callable[[Any], str | None]
    load: Callable[[Any], Any] | None
    window: float | None
    echo: bool


@dataclass(frozen=True, eq=False)
class Route:
    """Events of `event_type` reach `handler` on `state_cls` of the tabs
    subscribed to `topic(event)`."""

    event_type: type[DomainEvent]
    state_cls: type[rx.State]
    handler: Callable[..., Any]
    topic: Callable[[Any], str | None]
    load: Callable[[Any], Any] | None
    window: float | None = None
    echo: bool = True


def on(event_type: type[DomainEvent], *, topic: Callable[[Any], str | None],
       load: Callable[[Any], Any] | None = None, window: float | None = None, echo: bool = True) -> Callable:
    """Mark a state method (underscore-named, so no client can call it) as the
    handler of `event_type` for the tabs subscribed to `topic(event)`. With
    `load`, the handler gets `(event, load(event))`; `load` runs in a thread.
    `window` (seconds) makes this route's pushes come at most that often, for
    screens that summarise many shoppers (the event's own window otherwise).
    `echo=False`: not to the tab the event names as its `origin` (which shows
    what it did already)."""

    def mark(fn: Callable) -> Callable:
        fn.__dict__.setdefault("_live_marks", []).append(_Mark(event_type, topic, load, window, echo))
        return fn

    return mark


def routes_of(state_cls: type[rx.State]) -> list[Route]:
    """The routes declared on one state class (not its subclasses)."""
    found = []
    for attr in vars(state_cls).values():
        for mark in getattr(attr, "_live_marks", ()):
            found.append(Route(mark.event_type, state_cls, attr, mark.topic, mark.load, mark.window,
                               mark.echo))
    return found


def all_routes() -> list[Route]:
    """Every route declared on every state class of the app."""
    found: list[Route] = []
    stack: list[type[rx.State]] = [rx.State]
    while stack:
        cls = stack.pop()
        found.extend(routes_of(cls))
        stack.extend(cls.get_substates())
    return found


# --------------------------------------------------------------------------- subscriptions


class _Registry:
    """Which of this worker's tabs watch which topic. Per process: a tab's
    socket lives in one worker, which is the only one that pushes to it; a tab
    that reconnects to another worker subscribes there again on load."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._topics: dict[str, dict[str, float]] = defaultdict(dict)

    def add(self, key: str, token: str) -> None:
        with self._lock:
            self._topics[key][token] = time.time()

    def remove(self, key: str, token: str) -> None:
        with self._lock:
            entries = self._topics.get(key)
            if entries is not None:
                entries.pop(token, None)
                if not entries:
                    del self._topics[key]

    def members(self, key: str) -> list[str]:
        cutoff = time.time() - SUBSCRIPTION_TTL
        with self._lock:
            entries = self._topics.get(key)
            if not entries:
                return []
            for token in [t for t, seen in entries.items() if seen < cutoff]:
                entries.pop(token, None)
            return list(entries)


_registry = _Registry()


def registry() -> _Registry:
    return _registry


def _key(topic: str, state_cls: type[rx.State]) -> str:
    return f"{topic}|{state_cls.get_full_name()}"


def subscribe(state: rx.State, topic: str) -> None:
    """This tab's `type(state)` wants the events routed to it for `topic`."""
    token = state.router.session.client_token
    if token:
        registry().add(_key(topic, type(state)), token)


def unsubscribe(state: rx.State, topic: str) -> None:
    token = state.router.session.client_token
    if token:
        registry().remove(_key(topic, type(state)), token)


# --------------------------------------------------------------------------- delivery


class Adapter:
    """Receives committed events (from any thread), queues them per tab and
    applies each tab's queue in one state update."""

    def __init__(self, app: Any, routes: list[Route]) -> None:
        self.app = app
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.routes: dict[type[DomainEvent], list[Route]] = defaultdict(list)
        for route in routes:
            self.routes[route.event_type].append(route)
        # Per tab and window: what waits for its next update, keyed so that newer
        # events replace older ones.
        self._pending: dict[tuple[str, float], dict[Hashable, tuple[int, Route, DomainEvent]]] = {}
        # Per tab: the windows whose time has come, and whether an update is
        # being applied. One update per tab at a time, holding everything due:
        # the tab's windows (typing, the bell, the list) do not queue on its
        # state lock behind each other.
        self._due: dict[str, set[tuple[str, float]]] = {}
        self._flushing: set[str] = set()
        self._loads: dict[tuple[int, int], asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self._seq = 0

    # ----- from the writers -----------------------------------------------
    def receive(self, batch: list[DomainEvent]) -> None:
        if threading.get_ident() == self._loop_thread:
            self._dispatch(batch)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._dispatch, batch)

    def _dispatch(self, batch: list[DomainEvent]) -> None:
        reg = registry()
        for event in batch:
            for route in self.routes.get(type(event), ()):
                topic = route.topic(event)
                if topic is None:
                    continue
                skip = "" if route.echo else getattr(event, "origin", "")
                for token in reg.members(_key(topic, route.state_cls)):
                    if not skip or token != skip:
                        self._enqueue(token, route, event)

    def _enqueue(self, token: str, route: Route, event: DomainEvent) -> None:
        window = route.window or SLOW_WINDOWS.get(type(event), WINDOW)
        pending = self._pending.get((token, window))
        if pending is None:
            pending = self._pending[(token, window)] = {}
            self.loop.call_later(window, self._start_flush, (token, window))
        self._seq += 1
        if event.coalesce_key is None:
            key: Hashable = (id(route), self._seq)
        else:
            key = (id(route), event.coalesce_key)
            # The newest wins, and takes its place after what came before it.
            pending.pop(key, None)
        pending[key] = (self._seq, route, event)
        if route.load is not None and event.coalesce_key is None:
            # Started now so it is ready by the flush; an event that a newer one
            # may replace is loaded at the flush instead, once.
            self._load(route, event)

    # ----- loads (blocking reads, once per event, off the loop) -------------
    def _load(self, route: Route, event: DomainEvent) -> asyncio.Future:
        key = (id(route.load), id(event))
        future = self._loads.get(key)
        if future is None:
            future = self.loop.run_in_executor(None, route.load, event)
            self._loads[key] = future
            # The key holds ids: keep the event alive as long as the entry.
            future.add_done_callback(
                lambda _f, k=key, e=event: self.loop.call_later(LOAD_SHARE_SECONDS, self._loads.pop, k, e))
        return future

    # ----- to the screens ---------------------------------------------------
    def _start_flush(self, bucket: tuple[str, float]) -> None:
        token = bucket[0]
        self._due.setdefault(token, set()).add(bucket)
        if token not in self._flushing:
            self._flushing.add(token)
            self.background(self._flush_tab(token))

    async def _flush_tab(self, token: str) -> None:
        """Apply what is due for this tab, in the order it happened, until
        nothing more came due meanwhile."""
        try:
            while due := self._due.pop(token, None):
                items: list[tuple[int, Route, DomainEvent]] = []
                for bucket in due:
                    items.extend(self._pending.pop(bucket, {}).values())
                if not items:
                    continue
                items.sort(key=lambda item: item[0])
                try:
                    await self._flush(token, [(route, event) for _seq, route, event in items])
                except Exception:  # the state lock timed out, the tab's state is gone, ...
                    log.warning("live update of a tab failed; its next update re-sends what changes",
                                exc_info=True)
        finally:
            self._flushing.discard(token)

    def background(self, coro: Any) -> asyncio.Task:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("live task failed", exc_info=task.exception())

    async def _flush(self, token: str, items: list[tuple[Route, DomainEvent]]) -> None:
        loaded: list[Any] = []
        for route, event in items:
            if route.load is None:
                loaded.append(None)
                continue
            try:
                loaded.append(await self._load(route, event))
            except Exception:
                log.exception("loading %s for %s failed", type(event).__name__, route.state_cls.__name__)
                loaded.append(_FAILED)
        if not self._here(token):
            return  # gone, or moved to another worker: a reconnecting tab re-reads everything on hydrate
        first = items[0][0].state_cls
        async with self.app.modify_state(BaseStateToken(ident=token, cls=first)) as root:
            for (route, event), data in zip(items, loaded, strict=True):
                if data is _FAILED:
                    continue
                try:
                    state = await root.get_state(route.state_cls)
                    result = route.handler(state, event) if route.load is None else route.handler(state, event, data)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("%s.%s failed on %s", route.state_cls.__name__, route.handler.__name__,
                                  type(event).__name__)

    def _here(self, token: str) -> bool:
        """The tab's socket is connected to this worker (the only one that pushes to it)."""
        namespace = self.app.event_namespace
        manager = getattr(namespace, "_token_manager", None) if namespace else None
        if manager is None:
            return True
        record = manager.token_to_socket.get(token)
        return (record is not None and record.instance_id == manager.instance_id
                and manager.sid_to_token.get(record.sid) == token)


_FAILED = object()
_adapter: Adapter | None = None


def adapter() -> Adapter | None:
    return _adapter


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Bind the adapter to the running app (a Reflex lifespan task). With
    `REDIS_URL`, events also travel between workers (`chatdash.relay`)."""
    global _adapter
    _adapter = Adapter(app, all_routes())
    url = get_settings().redis_url
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(events.listen(_adapter.receive))
        if url:
            from chatdash.relay import RedisRelay

            relay = await stack.enter_async_context(RedisRelay(url, _adapter.receive).running())
            stack.callback(events.listen(relay.publish))
        try:
            yield
        finally:
            _adapter = None


def background(fn: Callable[..., Any], *args: Any) -> None:
    """Run blocking `fn(*args)` in a worker thread without waiting for it (a
    write a push handler wants done, e.g. marking a pushed message seen).
    Its own events are delivered when it commits."""
    if _adapter is None:
        return
    _adapter.background(asyncio.to_thread(fn, *args))
