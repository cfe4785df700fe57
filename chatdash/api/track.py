"""HTTP endpoints for store events.

``POST /api/track``
    From the shopper's browser (widget.js): ``{"visitor": <token>, "events": [...]}``.
    JSON or ``text/plain`` bodies (``navigator.sendBeacon``). Answers
    ``200 {"accepted", "duplicates"}`` or a 4xx ``{"error", "detail"}``.
``POST /api/store/orders``, ``POST /api/store/carts``
    From the store's backend, authenticated by ``Authorization: Bearer <store secret>``.

Malformed input is always a 4xx with a reason, never a 500. The schema and
the storing live in ``chatdash.services.tracking``.
"""

from __future__ import annotations

import hmac
import math
from typing import Any

from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from chatdash.api.http import (
    ALLOWED_ORIGINS_ENV,  # noqa: F401  (tests and docs name it through this module)
    ApiError,
    check_origin,
    client_address,
    read_json,
    shopper_cors,
)
from chatdash.services import identity, store_activity, tracking
from chatdash.services.ratelimit import RateLimiter, limiter
from chatdash.services.tracking import ingest
from chatdash.settings import get_settings

# Per visitor: one batch every half second on average is far beyond a real shopper.
VISITOR_LIMIT = (120, 60)
# Per IP: many shoppers may share one address (offices, mobile carriers).
IP_LIMIT = (1200, 60)
# Wrong store secrets per IP before further wrong ones answer 429 (the right
# secret is never refused: a guesser must not lock the store out).
AUTH_FAILURE_LIMIT = (20, 60)
MAX_STORE_BODY = 64 * 1024


async def _hit(lim: RateLimiter, key: str, what: str) -> None:
    if not await lim.hit_async(key):
        wait = max(1, math.ceil(await lim.retry_after_async(key)))
        raise ApiError(429, f"too many requests from this {what}; retry in {wait} s",
                       headers={"Retry-After": str(wait)})


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object", [{"field": "(body)", "message": "must be a JSON object"}])
    return data


def _invalid(exc: tracking.TrackingError) -> ApiError:
    return ApiError(413 if exc.too_large else 422, exc.message, exc.detail)


async def _guarded(handler, request: Request) -> JSONResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except OperationalError:
        # The database is busy or away: worth a retry, unlike malformed input.
        return ApiError(503, "storage is busy; retry later", headers={"Retry-After": "5"}).response()


# --------------------------------------------------------------------------- browser


async def _track(request: Request) -> JSONResponse:
    check_origin(request)
    await _hit(limiter("track-ip", *IP_LIMIT), client_address(request), "address")
    data = _object(await read_json(request, tracking.MAX_BATCH_BYTES, lone_surrogates=True))  # per event: 422
    visitor_id = identity.verify_visitor_token(get_settings().secret_key, data.get("visitor"))
    if visitor_id is None:
        raise ApiError(401, "unknown visitor: get a token from POST /api/visitor",
                       [{"field": "visitor", "message": "is not a visitor token this server issued"}])
    await _hit(limiter("track-visitor", *VISITOR_LIMIT), visitor_id, "visitor")
    try:
        events = tracking.parse_events(data.get("events"))
    except tracking.TrackingError as exc:
        raise _invalid(exc) from None
    user_agent = request.headers.get("user-agent", "")[:512]
    if ingest.batched():
        # Queued with other requests' batches, answered after their commit.
        result = await ingest.store(visitor_id, events, user_agent)
    else:
        result = await run_in_threadpool(store_activity.store_batch, visitor_id, events, user_agent)
    return JSONResponse({"accepted": result.accepted, "duplicates": result.duplicates})


async def track(request: Request) -> JSONResponse:
    return shopper_cors(await _guarded(_track, request))


# --------------------------------------------------------------------------- store backend


async def _authorise(request: Request) -> None:
    """Bearer store secret, compared in constant time. Wrong secrets are counted
    per client address; past the limit a wrong one answers 429, but the right
    secret always passes, so someone guessing cannot lock the store out."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    secret = get_settings().store_secret
    if secret and scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), secret.encode()):
        return
    failures = limiter("store-auth-failures", *AUTH_FAILURE_LIMIT)
    ip = client_address(request)
    if not await failures.hit_async(ip):
        wait = max(1, math.ceil(await failures.retry_after_async(ip)))
        raise ApiError(429, f"too many failed authentications from this address; retry in {wait} s",
                       headers={"Retry-After": str(wait)})
    raise ApiError(401, "missing or wrong store secret: send Authorization: Bearer <CHATDASH_STORE_SECRET>",
                   headers={"WWW-Authenticate": 'Bearer realm="chatdash store api"'})


def _visitor_of(given: str | None) -> str | None:
    if not given:
        return None
    visitor_id = identity.verify_visitor_token(get_settings().secret_key, given)
    if visitor_id is None:
        raise ApiError(422, "unknown visitor",
                       [{"field": "visitor", "message": "is not a visitor token this server issued"}])
    return visitor_id


async def _orders(request: Request) -> JSONResponse:
    await _authorise(request)
    try:
        order = tracking.parse_order(_object(await read_json(request, MAX_STORE_BODY)))
    except tracking.TrackingError as exc:
        raise _invalid(exc) from None
    result = await run_in_threadpool(store_activity.store_order, order, _visitor_of(order.visitor))
    return JSONResponse(
        {"order_id": result.external_id, "created": result.created, "shopper_id": result.shopper_id,
         "total": result.total_cents / 100, "currency": result.currency, "ignored_skus": result.ignored_skus},
        status_code=201 if result.created else 200,
    )


async def store_orders(request: Request) -> JSONResponse:
    return await _guarded(_orders, request)


async def _carts(request: Request) -> JSONResponse:
    await _authorise(request)
    try:
        cart = tracking.parse_cart(_object(await read_json(request, MAX_STORE_BODY)))
    except tracking.TrackingError as exc:
        raise _invalid(exc) from None
    result = await run_in_threadpool(store_activity.store_cart, cart, _visitor_of(cart.visitor))
    return JSONResponse({"shopper_id": result.shopper_id, "lines": result.cart.lines,
                         "total": result.cart.total_cents / 100, "currency": result.cart.currency,
                         "ignored_skus": result.cart.ignored_skus})


async def store_carts(request: Request) -> JSONResponse:
    return await _guarded(_carts, request)
