"""``GET /api/card/<message id>/<signature>``: a product card opened from the
shopper's widget. The click is recorded (services/attribution.py) and the
browser goes on to the product's page, which is always the catalog's own
http(s) address for that card (never one taken from the request)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from chatdash.api.http import client_address
from chatdash.services import attribution
from chatdash.services.ratelimit import limiter

# Per client address: far more than anyone opens cards, few enough to keep a flood cheap.
CLICK_LIMIT = (120, 60)

GONE = """<!doctype html><html><head><meta charset="utf-8"><title>Product not available</title></head>
<body style="font-family: system-ui, sans-serif; padding: 2rem">
<p>This product link is no longer available.</p></body></html>"""


async def card_click(request: Request) -> Response:
    message_id = attribution.verify_click(request.path_params.get("message_id"),
                                          request.path_params.get("signature"))
    if message_id is None:
        return HTMLResponse(GONE, status_code=404)
    if not await limiter("card-click", *CLICK_LIMIT).hit_async(client_address(request)):
        return HTMLResponse("Too many requests; try again in a minute.", status_code=429,
                            headers={"Retry-After": "60"})
    url = await run_in_threadpool(attribution.record_click, message_id)
    if url is None:
        return HTMLResponse(GONE, status_code=404)
    # 303: the next request is a plain GET of the product page; not cached, so every open is seen.
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


api_routes = [Route("/api/card/{message_id}/{signature}", card_click, methods=["GET"])]
