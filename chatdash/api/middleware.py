"""ASGI middleware around everything the backend serves: the API routes, the
Reflex event socket and, in a production build (single port), the pages.

``BodyTimeout``
    A request body that has not fully arrived ``body_timeout_seconds`` after
    the headers gets ``408`` and the connection is closed, so a client that
    declares 900 bytes and sends 7 cannot hold a connection (and a worker's
    buffer) open for ever.
``SecurityHeaders``
    Content-Security-Policy, framing and referrer rules. Admin pages may not
    be framed by anyone; the widget page is framed by the store's pages (the
    origins in ``CHATDASH_ALLOWED_ORIGINS``, or any when none are set).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatdash import routes
from chatdash.api.http import allowed_origins
from chatdash.settings import get_settings


class BodyTimeout:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + get_settings().body_timeout_seconds
        body_done = timed_out = response_started = False

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out
            if timed_out:
                return {"type": "http.disconnect"}
            if body_done:
                return await receive()  # e.g. waiting for a disconnect while streaming
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                if not response_started:
                    await _send_timeout(send)
                # The app sees a client that went away; whatever it answers is dropped.
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if timed_out:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except ClientDisconnect:
            if not timed_out:
                raise


async def _send_timeout(send: Send) -> None:
    seconds = get_settings().body_timeout_seconds
    body = json.dumps({"error": f"the request body did not arrive within {seconds:g} s", "detail": []}).encode()
    await send({"type": "http.response.start", "status": 408, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _websocket(origin: str) -> str:
    return origin.replace("https://", "wss://", 1).replace("http://", "ws://", 1)


def content_security_policy(path: str) -> str:
    """The policy for a response to ``path``: what its page may load, run and be framed by."""
    settings = get_settings()
    app, api = _origin(settings.public_url), _origin(settings.api_url)
    # Inline scripts: Reflex's built pages carry inline bootstrap scripts.
    # eval: Reflex runs rx.call_script (the widget's outbox, the store, the
    # login's redirects) through eval. Scripts still come only from the app.
    scripts = f"'self' 'unsafe-inline' 'unsafe-eval' {app} {api}"
    if path == routes.WIDGET or path.startswith(routes.WIDGET + "/"):
        stores = allowed_origins()
        ancestors = "'self' " + (" ".join(sorted(stores)) if stores else "*")
    else:
        ancestors = "'none'"
    return "; ".join([
        "default-src 'self'",
        f"script-src {scripts}",
        "style-src 'self' 'unsafe-inline'",
        # Product images come from the store's catalog, wherever it keeps them.
        "img-src 'self' data: blob: https: http:",
        "font-src 'self' data:",
        f"connect-src 'self' {app} {api} {_websocket(app)} {_websocket(api)}",
        f"frame-src 'self' {app}",
        "object-src 'none'",
        "base-uri 'self'",
        f"form-action 'self' {app} {api}",
        f"frame-ancestors {ancestors}",
    ])


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                policy = content_security_policy(path)
                headers.setdefault("Content-Security-Policy", policy)
                if "frame-ancestors 'none'" in policy:
                    headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("X-Content-Type-Options", "nosniff")
            await send(message)

        await self.app(scope, receive, send_with_headers)
