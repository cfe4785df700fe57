"""A raw Reflex websocket client: calls any event handler with any arguments,
the way a hostile client could, without the app's own frontend."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import socketio


class RawReflexClient:
    def __init__(self, backend_url: str, cookies: dict[str, str] | None = None) -> None:
        self.token = str(uuid.uuid4())
        self.deltas: list[dict[str, Any]] = []
        self._got = threading.Event()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("event", self._on_event, namespace="/_event")
        cookie = "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())
        self.sio.connect(
            f"{backend_url}?token={self.token}",
            socketio_path="/_event",
            namespaces=["/_event"],
            transports=["websocket"],
            headers={"Cookie": cookie} if cookie else {},
            wait_timeout=10,
        )

    def hydrate(self, client_storage: dict[str, str] | None = None, path: str = "/") -> None:
        """Send the hydrate event a browser sends on connect, with its cookies
        given as {"<full state name>.<var>": value}."""
        from reflex.state import State

        self.call(State, "hydrate_and_load", {"vars": client_storage or {}}, path=path)

    def _on_event(self, update: dict) -> None:
        if update.get("delta"):
            self.deltas.append(update["delta"])
        self._got.set()

    def call(self, state_cls: type, handler: str, payload: dict | None = None,
             path: str = "/", wait: float = 3.0) -> list[dict[str, Any]]:
        """Emit one event and return the deltas received while it ran."""
        start = len(self.deltas)
        self._got.clear()
        self.sio.emit(
            "event",
            {
                "name": f"{state_cls.get_full_name()}.{handler}",
                "payload": payload or {},
                "router_data": {"pathname": path, "query": {}, "asPath": path},
            },
            namespace="/_event",
        )
        self._got.wait(wait)
        # Give trailing deltas of the same event a moment to arrive.
        threading.Event().wait(0.5)
        return self.deltas[start:]

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
