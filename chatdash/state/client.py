"""Who is on the other end of a websocket event, for per-IP and per-socket limits."""

from __future__ import annotations

import reflex as rx

from chatdash.services import client_ip as client_ip_service
from chatdash.services.admission import Client


def client_ip(state: rx.State) -> str:
    """The client's address: the socket's peer, or the X-Forwarded-For client
    when the peer is a trusted proxy (CHATDASH_TRUSTED_PROXIES)."""
    router = state.router
    return client_ip_service.client_ip(router.session.client_ip,
                                       router.headers.raw_headers.get("x-forwarded-for"))


def client_of(state: rx.State) -> Client:
    return Client(client_ip(state), state.router.session.session_id)
