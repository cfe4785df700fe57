"""A raw Reflex websocket client: calls any event handler with any arguments,
the way a hostile client could, without the app's own frontend.

Reflex 0.10 sends nothing that marks the end of an event (`StateUpdate.final`
is deprecated and never set), and a refused handler sends nothing at all. So
`call` sends a marker event after the one it calls: a client's events run one
after another, so the marker's delta (`is_hydrated` set to true) arrives after
every update of the event before it. Hydration ends with the same flag, set
once the page's on_load handlers have run.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import socketio

# Generous: on the shared 2-core box an event can queue behind other tests'
# work; a call that really hangs still fails, loudly.
TIMEOUT = 30.0

_HYDRATE = "hydrate_and_load"


def _sets_hydrated(delta: dict[str, Any]) -> bool:
    from reflex.state import State

    root = delta.get(State.get_full_name(), {})
    return any(k.removesuffix("_rx_state_") == "is_hydrated" and v is True for k, v in root.items())


class RawReflexClient:
    def __init__(self, backend_url: str, cookies: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.token = str(uuid.uuid4())
        self.deltas: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []  # events the server asks the page to run
        self._cond = threading.Condition()
        self._finished = 0  # deltas setting is_hydrated: finished markers and hydrations
        self._expected = 0  # how many of those the events sent so far will produce
        self._disconnected = False
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("event", self._on_event, namespace="/_event")
        self.sio.on("disconnect", self._on_disconnect, namespace="/_event")
        cookie = "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())
        self.sio.connect(
            f"{backend_url}?token={self.token}",
            socketio_path="/_event",
            namespaces=["/_event"],
            transports=["websocket"],
            headers={**(headers or {}), **({"Cookie": cookie} if cookie else {})},
            wait_timeout=10,
        )

    def hydrate(self, client_storage: dict[str, str] | None = None, path: str = "/") -> None:
        """Send the hydrate event a browser sends on connect, with its cookies
        given as {"<full state name>.<var>": value}; returns once the page's
        on_load handlers have run."""
        from reflex.state import State

        self.call(State, _HYDRATE, {"vars": client_storage or {}}, path=path)

    def _on_event(self, update: dict) -> None:
        with self._cond:
            self.events.extend(update.get("events") or [])
            if delta := update.get("delta"):
                self.deltas.append(delta)
                if _sets_hydrated(delta):
                    self._finished += 1
            self._cond.notify_all()

    def _on_disconnect(self, *_args: Any) -> None:
        with self._cond:
            self._disconnected = True
            self._cond.notify_all()

    def _emit(self, name: str, payload: dict, path: str) -> None:
        self.sio.emit(
            "event",
            {"name": name, "payload": payload,
             "router_data": {"pathname": path, "query": {}, "asPath": path}},
            namespace="/_event",
        )

    def call(self, state_cls: type, handler: str, payload: dict | None = None,
             path: str = "/", timeout: float = TIMEOUT, wait: float | None = None) -> list[dict[str, Any]]:
        """Emit one event and return the deltas it produced, once all have arrived.

        Raises TimeoutError if the event has not finished within `timeout`.
        `wait` is ignored: it was how long to wait for a first update, kept so
        older callers still run.
        """
        from reflex.state import OnLoadInternalState, State

        name = f"{state_cls.get_full_name()}.{handler}"
        hydrating = state_cls is State and handler == _HYDRATE
        with self._cond:
            start = len(self.deltas)
            self._expected += 1
            target = self._expected
        self._emit(name, payload or {}, path)
        if not hydrating:
            self._emit(f"{OnLoadInternalState.get_full_name()}.set_is_hydrated", {"value": True}, path)
        self._wait(lambda: self._finished >= target, timeout, f"{handler} to finish")
        return self.deltas[start:]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT,
                 since: int = 0) -> dict[str, Any]:
        """The first delta (from index `since`) that passes `predicate`, waiting for
        one to arrive: for pushes the server sends on its own. Raises TimeoutError."""
        found: list[dict[str, Any]] = []

        def check() -> bool:
            found[:] = [d for d in self.deltas[since:] if predicate(d)][:1]
            return bool(found)

        self._wait(check, timeout, "a delta passing the predicate")
        return found[0]

    def wait_for_event(self, predicate: Callable[[dict[str, Any]], bool],
                       timeout: float = TIMEOUT) -> dict[str, Any]:
        """The first event the server sent (e.g. a toast) that passes `predicate`."""
        found: list[dict[str, Any]] = []

        def check() -> bool:
            found[:] = [e for e in self.events if predicate(e)][:1]
            return bool(found)

        self._wait(check, timeout, "an event passing the predicate")
        return found[0]

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                left = deadline - time.monotonic()
                if self._disconnected:
                    raise ConnectionError(f"disconnected while waiting for {what}")
                if left <= 0:
                    raise TimeoutError(f"no {what} within {timeout} s; last deltas: {self.deltas[-5:]}")
                self._cond.wait(left)

    def seen_values(self, state_cls: type) -> dict[str, Any]:
        """Every value of state_cls the server has sent this client so far."""
        name = state_cls.get_full_name()
        seen: dict[str, Any] = {}
        for delta in self.deltas:
            for key, value in delta.get(name, {}).items():
                # Production builds suffix var names in deltas (e.g. "error_rx_state_").
                seen[key.removesuffix("_rx_state_")] = value
        return seen

    def close(self) -> None:
        self.sio.disconnect()
