"""Reflex config. chatdash's own settings live in chatdash/settings.py."""

import os
from urllib.parse import urlsplit

import reflex as rx


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


PUBLIC_URL = os.environ.get("CHATDASH_PUBLIC_URL", "http://localhost:3000")
# `reflex run --backend-only` (REFLEX_BACKEND_ONLY=1) refuses any frontend port:
# a worker behind a proxy serves the event socket and the API only.
BACKEND_ONLY = os.environ.get("REFLEX_BACKEND_ONLY", "").lower() in ("1", "true", "yes")
API_URL = os.environ.get("CHATDASH_API_URL", "http://localhost:8000")

# Reflex's Redis state manager turns on only when REDIS_URL is set: one box by
# default, several workers sharing Redis when scaled out.
if os.environ.get("REDIS_URL"):
    # A tab's socket lives on one worker, which handles all its events and
    # pushes: with the opportunistic lock that worker keeps the tab's state and
    # its Redis lock between events (a few seconds, handed over at once when
    # another worker asks) instead of locking, reading and writing Redis for
    # each one. Measured at 1,000 shoppers on two workers: 12-15% less server
    # CPU, delivery p99 155-394 ms against 293-715 ms (BENCHMARKS.md).
    os.environ.setdefault("REFLEX_OPLOCK_ENABLED", "true")

config = rx.Config(
    app_name="chatdash",
    telemetry_enabled=False,
    # The badge covers the widget's Send button in production builds.
    show_built_with_reflex=False,
    redis_url=os.environ.get("REDIS_URL") or None,
    # Without Redis, client states stay in memory: Reflex's default (disk)
    # pickles every client's state into world-readable .states/*.pkl files.
    state_manager_mode="redis" if os.environ.get("REDIS_URL") else "memory",
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="indigo", radius="medium"))],
    disable_plugins=[rx.plugins.SitemapPlugin],
    **({} if BACKEND_ONLY else {"frontend_port": int(os.environ.get("CHATDASH_FRONTEND_PORT", "3000"))}),
    backend_port=int(os.environ.get("CHATDASH_BACKEND_PORT", "8000")),
    api_url=API_URL,
    # Reflex answers CORS with credentials allowed, and its event socket checks
    # Origin against the same list: only the app's own pages, never "*" (which
    # Reflex would echo for any site, cookies included). Store pages reach the
    # shopper API without credentials or preflight (chatdash/api/http.py).
    cors_allowed_origins=sorted({_origin(PUBLIC_URL), _origin(API_URL)}),
)
