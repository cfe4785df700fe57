"""Limits on what a stranger can make the store pay for: a new visitor (a
Shopper row) and a new conversation (an inbox row and a staff email), per
client IP and per socket (one browser tab's connection).

Real shops sit behind NAT (an office, a mobile carrier): the per-IP limits
are set well above what one household or office does, the per-socket ones
at what one tab needs. Checked before anything is stored; refused with a
message the widget shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlmodel import Session, select

from chatdash.models import Shopper
from chatdash.services.conversations import ChatError
from chatdash.services.ratelimit import RateLimiter, limiter
from chatdash.settings import get_settings


@dataclass(frozen=True)
class Client:
    """Who asks: the client's IP (as the per-IP limits see it) and its socket."""

    ip: str
    socket: str = ""


def _wait_text(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{math.ceil(minutes / 60)} hours"


def _admit(checks: list[tuple[RateLimiter, str]], refusal: str) -> None:
    """Count one hit on every (limiter, key), or none if any is over its limit."""
    wait = max(lim.retry_after(key) for lim, key in checks)
    if wait > 0 or not all(lim.hit(key) for lim, key in checks):
        raise ChatError(f"{refusal} Try again in {_wait_text(max(wait, 60))}.")


def admit_new_visitor(client: Client) -> None:
    """Raises ChatError when this client has made too many new visitors lately."""
    s = get_settings()
    window = s.new_visitors_window_minutes * 60
    checks = [(limiter("new-visitor-ip", s.new_visitors_per_ip, window), client.ip or "?")]
    if client.socket:
        checks.append((limiter("new-visitor-socket", s.new_visitors_per_socket, window), client.socket))
    _admit(checks, "Too many new chats from your network right now.")


def admit_visitor(session: Session, visitor_id: str, client: Client | None) -> None:
    """`admit_new_visitor` for a visitor id that has no shopper yet (None: no limit)."""
    if client is None:
        return
    if session.exec(select(Shopper.id).where(Shopper.visitor_id == visitor_id)).first() is None:
        admit_new_visitor(client)


def admit_new_conversation(client: Client | None) -> None:
    """Raises ChatError when this client's IP has started too many conversations lately."""
    if client is None:
        return
    s = get_settings()
    lim = limiter("new-conversation-ip", s.new_conversations_per_ip, s.new_conversations_window_hours * 3600)
    _admit([(lim, client.ip or "?")], "Too many new conversations from your network.")
