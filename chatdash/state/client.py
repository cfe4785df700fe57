"""Who is on the other end of a websocket event, for per-IP and per-socket limits."""

from __future__ import annotations

import reflex as rx

from chatdash.services.admission import Client


def client_ip(state: rx.State) -> str:
    """The client's address: the socket's peer (Reflex's own `trusted_proxy_hops`
    config, when set, has already read it from X-Forwarded-For)."""
    return state.router.session.client_ip or "?"


def client_of(state: rx.State) -> Client:
    return Client(client_ip(state), state.router.session.session_id)
