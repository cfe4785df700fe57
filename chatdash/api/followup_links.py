"""`/api/followup/unsubscribe?t=…`: the unsubscribe link of a follow-up email.

GET shows a page with one button (mail scanners open links; only a person's
click, a POST, unsubscribes); POST unsubscribes, from that button or from a
mail program's one-click List-Unsubscribe (RFC 8058). The token is an
HMAC-signed shopper id (services/followup.py)."""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from chatdash.services import followup
from chatdash.settings import get_settings

MAX_BODY = 1024


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    store = html.escape(get_settings().store_name)
    return HTMLResponse(
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)} · {store}</title></head>"
        "<body style='font-family: system-ui, sans-serif; color: #111; background: #f6f6f7; margin: 0; "
        "padding: 0 16px'>"
        "<main style='max-width: 440px; margin: 12vh auto; background: white; border-radius: 12px; "
        "padding: 28px 32px; box-shadow: 0 1px 3px rgba(0,0,0,.12)'>"
        f"<p style='color: #666; margin: 0 0 4px'>{store}</p><h1 style='font-size: 22px; margin: 0 0 12px'>"
        f"{html.escape(title)}</h1>{body}</main></body></html>",
        status_code=status,
    )


def _invalid() -> HTMLResponse:
    return _page("This link does not work",
                 "<p id='unsubscribe-invalid'>The unsubscribe link is incomplete or was changed. Use the link "
                 "from the email itself.</p>", status=400)


async def unsubscribe(request: Request) -> HTMLResponse:
    token = request.query_params.get("t", "")[:100]
    if followup.check_unsubscribe_token(token) is None:
        return _invalid()
    if request.method == "GET":
        return _page(
            "Stop emails about your chat?",
            "<p>We email you the store's replies when you have left the chat. You can stop that here.</p>"
            f"<form method='post' action='?t={html.escape(token, quote=True)}'>"
            "<button id='unsubscribe-confirm' type='submit' style='font: inherit; padding: 8px 16px; "
            "border-radius: 8px; border: 0; background: #2563eb; color: white; cursor: pointer'>"
            "Unsubscribe</button></form>",
        )
    body = await request.body()
    if len(body) > MAX_BODY:
        return _page("Too much data", "<p>That request was too large.</p>", status=413)
    from starlette.concurrency import run_in_threadpool

    if not await run_in_threadpool(followup.unsubscribe, token):
        return _invalid()
    return _page("You are unsubscribed",
                 "<p id='unsubscribe-done'>You will get no more emails about your chat with us. "
                 "Replies still wait for you in the chat on our site.</p>")


api_routes = [Route(followup.UNSUBSCRIBE_PATH, unsubscribe, methods=["GET", "POST"])]
