"""HTTP routes served beside the Reflex app: the embed script, visitor
tokens, presence heartbeats and health."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chatdash.api import admin_session, card_click, followup_links, team_invite, track
from chatdash.api.http import ApiError, check_origin, client_address, read_json, shopper_cors
from chatdash.api.middleware import BodyTimeout, SecurityHeaders
from chatdash.db import get_engine
from chatdash.services import customers, identity, presence, proactive
from chatdash.services.closed_pages import closed_pages
from chatdash.services.ratelimit import limiter
from chatdash.settings import get_settings

LOADER = (Path(__file__).parent / "widget_loader.js").read_text()
PAGE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
HEARTBEAT_SECONDS = 15
MAX_PRESENCE_BODY = 4096
MAX_IDENTIFY_BODY = 4096


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def health(_request: Request) -> JSONResponse:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - reported to the caller, not raised
        return JSONResponse({"status": "error", "database": str(exc)[:200]}, status_code=503)
    return JSONResponse({"status": "ok"})


async def widget_js(_request: Request) -> Response:
    s = get_settings()
    body = (
        LOADER.replace("__API__", s.api_url.rstrip("/"))
        .replace("__APP__", s.public_url.rstrip("/"))
        .replace("__HEARTBEAT_MS__", str(HEARTBEAT_SECONDS * 1000))
    )
    return Response(body, media_type="application/javascript",
                    headers={"Cache-Control": "public, max-age=300"})


async def _visitor(request: Request) -> JSONResponse:
    """Return the caller's visitor token if it is genuine, else a new one."""
    check_origin(request)
    if not await limiter("visitor-ip", 60, 60).hit_async(client_address(request)):
        return error(429, "too many requests")
    data = await read_json(request, 1024)
    secret = get_settings().secret_key
    given = data.get("visitor") if isinstance(data, dict) else None
    if isinstance(given, str) and identity.verify_visitor_token(secret, given):
        return JSONResponse({"visitor": given})
    return JSONResponse({"visitor": identity.issue_visitor_token(secret)})


async def _presence_beat(request: Request) -> JSONResponse:
    """Heartbeat ({"state": "alive", url, title}) or page closed ({"state": "left"}).
    The answer to a heartbeat may say `chat: {open, message, text}`: an agent
    wrote first (services/proactive.py), and this page opens the widget."""
    check_origin(request)
    data = await read_json(request, MAX_PRESENCE_BODY)
    if not isinstance(data, dict):
        return error(400, "body must be a JSON object")
    settings = get_settings()
    visitor_id = identity.verify_visitor_token(settings.secret_key, data.get("visitor"))
    if visitor_id is None:
        return error(401, "unknown visitor")
    state = data.get("state")
    if state not in ("alive", "left"):
        return error(400, "state must be 'alive' or 'left'")
    url, title = data.get("url", ""), data.get("title", "")
    if not isinstance(url, str) or not isinstance(title, str):
        return error(400, "url and title must be strings")
    if url and not url.startswith(("http://", "https://")):
        return error(400, "url must be an http(s) address")
    page = data.get("page", "")
    if page and (not isinstance(page, str) or not PAGE_ID_RE.match(page)):
        return error(400, "page must be a page-load id")
    if not await limiter("presence", 120, 60).hit_async(visitor_id):
        return error(429, "too many heartbeats")
    pages = closed_pages()
    if page and state == "left":
        await pages.close(page)
        if await pages.other_page_open(visitor_id, page):
            # The next page already beat, or another tab is open: still on site.
            return JSONResponse({"ok": True, "ignored": "another page of this visitor is open"})
    elif page and await pages.is_closed(page):
        return JSONResponse({"ok": True, "ignored": "page already closed"})
    elif page:
        await pages.beat(visitor_id, page)
    popup = await run_in_threadpool(_beat, visitor_id, state == "alive", request.headers.get("user-agent", ""),
                                    url[:2000], title[:300])
    answer: dict[str, object] = {"ok": True, "next": HEARTBEAT_SECONDS}
    if popup is not None:
        # An agent wrote first: the page opens the chat (once: this answer claimed it).
        answer["chat"] = {"open": True, "message": popup.message_id, "text": popup.text}
    return JSONResponse(answer)


def _beat(visitor_id: str, alive: bool, user_agent: str, url: str, title: str) -> proactive.Popup | None:
    """The heartbeat, and (from a live page) an agent's opening message to pop up."""
    presence.beat(visitor_id, alive, user_agent=user_agent, url=url, title=title)
    return proactive.claim_popup(visitor_id) if alive else None


async def _identify(request: Request) -> JSONResponse:
    """A store page's logged-in customer ({visitor, customer_id, hmac, name?, email?},
    the HMAC computed by the store's backend): this browser's visits, events and
    chat join that customer from now on."""
    check_origin(request)
    data = await read_json(request, MAX_IDENTIFY_BODY)
    if not isinstance(data, dict):
        return error(400, "body must be a JSON object")
    settings = get_settings()
    visitor_id = identity.verify_visitor_token(settings.secret_key, data.get("visitor"))
    if visitor_id is None:
        return error(401, "unknown visitor")
    if not await limiter("identify", 20, 60).hit_async(visitor_id):
        return error(429, "too many identify calls")
    customer = identity.verify_customer_identity(
        settings.store_secret, data.get("customer_id"), data.get("hmac"),
        name=data.get("name", ""), email=data.get("email", ""))
    if customer is None:
        return error(403, "customer_id and hmac do not match (HMAC-SHA256 of the id with the store secret)")
    await run_in_threadpool(customers.identify, visitor_id, customer.customer_id,
                            customer.name[:200], customer.email[:320])
    return JSONResponse({"ok": True})


def _shopper_route(handler):
    """A route store pages call: ApiError becomes its JSON answer, and the page may read it."""
    async def route(request: Request) -> JSONResponse:
        try:
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
        return shopper_cors(response)
    return route


visitor = _shopper_route(_visitor)
presence_beat = _shopper_route(_presence_beat)
identify_route = _shopper_route(_identify)


api = Starlette(routes=[
    Route("/api/health", health),
    Route("/widget.js", widget_js),
    Route("/api/visitor", visitor, methods=["POST"]),
    Route("/api/presence", presence_beat, methods=["POST"]),
    Route("/api/identify", identify_route, methods=["POST"]),
    Route("/api/track", track.track, methods=["POST"]),
    Route("/api/store/orders", track.store_orders, methods=["POST"]),
    Route("/api/store/carts", track.store_carts, methods=["POST"]),
    *admin_session.api_routes,  # the admin's HttpOnly session cookie
    *team_invite.api_routes,  # an invited agent sets a password and is logged in
    *card_click.api_routes,  # a product card opened in the widget (attribution)
    *followup_links.api_routes,  # a follow-up email's unsubscribe link
], middleware=[Middleware(SecurityHeaders), Middleware(BodyTimeout)])
