"""What every HTTP route shares: JSON errors, reading a JSON body within limits,
the store-origin check, CORS for shopper routes and the client's address."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from chatdash.services.client_ip import client_ip
from chatdash.settings import get_settings

# The store's own origins, comma-separated (e.g.
# "https://shop.example.com,https://www.shop.example.com"). Empty or "*": any origin.
ALLOWED_ORIGINS_ENV = "CHATDASH_ALLOWED_ORIGINS"
JSON_TYPES = ("application/json", "text/plain", "")


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail, self.headers = status, error, detail or [], headers

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.error, "detail": self.detail}, status_code=self.status,
                            headers=self.headers)


def client_address(request: Request) -> str:
    """The address per-IP limits count (X-Forwarded-For only from a trusted proxy)."""
    return client_ip(request.client.host if request.client else None, request.headers.get("x-forwarded-for"))


def allowed_origins() -> frozenset[str] | None:
    """The configured store origins, or None when any origin is allowed."""
    raw = get_settings().allowed_origins
    origins = frozenset(o.strip().rstrip("/").lower() for o in raw.split(",") if o.strip())
    return None if not origins or "*" in origins else origins


def origin_allowed(origin: str | None) -> bool:
    """Requests without an Origin header (servers, some beacons) are not browsers
    acting for another site; a present Origin must be one of the store's."""
    allowed = allowed_origins()
    return allowed is None or origin is None or origin.strip().rstrip("/").lower() in allowed


def check_origin(request: Request) -> None:
    """403 for a browser request from a page that is not one of the store's."""
    if not origin_allowed(request.headers.get("origin")):
        raise ApiError(403, f"requests from this origin are refused; add it to {ALLOWED_ORIGINS_ENV}")


def shopper_cors(response: JSONResponse) -> JSONResponse:
    """Let store pages read the answer, never with credentials: widget.js sends
    none (no cookie is ever needed here), so ``*`` is enough and leaks nothing."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _has_lone_surrogate(value: Any) -> bool:
    """A string in it that JSON's \\uD800-style escapes made invalid Unicode: it
    could be neither stored nor sent on (UTF-8 cannot encode it)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


async def read_json(request: Request, max_bytes: int, *, lone_surrogates: bool = False) -> Any:
    """The body as JSON: 415 for another content type, 413 when too large, 400 when not
    JSON or when a string in it is not valid Unicode (a lone UTF-16 surrogate escape),
    unless the caller checks that itself (`lone_surrogates=True`: tracking refuses
    just the event holding it)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise ApiError(415, f"content type must be application/json or text/plain, not {content_type[:100]}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"body is larger than {max_bytes:,} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise ApiError(413, f"body is larger than {max_bytes:,} bytes")
    except ClientDisconnect:
        # The client went away, or the body timed out (BodyTimeout has answered 408).
        raise ApiError(400, "the body did not arrive") from None
    if not body.strip():
        raise ApiError(400, "body is empty; expected a JSON object")
    try:
        data = json.loads(body)
    except RecursionError as exc:
        raise ApiError(400, "body is nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise ApiError(400, "body is not valid JSON", [{"field": "(body)", "message": "is not UTF-8 text"}]) from exc
    except json.JSONDecodeError as exc:
        raise ApiError(400, "body is not valid JSON", [{"field": "(body)", "message": str(exc)[:200]}]) from exc
    except ValueError as exc:
        # Python refuses to convert integers of more than 4,300 digits (CVE-2020-10735).
        raise ApiError(400, "body is not valid JSON: a number has too many digits",
                       [{"field": "(body)", "message": str(exc)[:200]}]) from exc
    if not lone_surrogates and b"\\u" in body and _has_lone_surrogate(data):
        raise ApiError(400, "body contains text that is not valid Unicode (a lone UTF-16 surrogate escape)")
    return data
