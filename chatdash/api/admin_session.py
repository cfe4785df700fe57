"""The admin session cookie, kept out of reach of page scripts.

Reflex's ``rx.Cookie`` is written by the page's own JavaScript, so it cannot be
HttpOnly, and every script on the origin (the demo store, the widget page)
could read it. Here the cookie is set and cleared by HTTP answers instead:

``POST /api/admin/session``
    The login form (a plain HTML form post). Throttled like every login; on
    success the answer sets ``chatdash_admin`` (HttpOnly, SameSite=Strict,
    Secure on https) and sends the browser to the dashboard; otherwise back to
    the login page with a reason code the page turns into a message.
``GET /api/admin/logout``
    Ends the session of the cookie it carries and clears it.

``AdminSessionHeader`` (ASGI middleware around the whole backend)
    On the event socket's handshake it takes the token out of the Cookie
    header and passes only its SHA-256 on, as ``X-Chatdash-Admin-Session`` (a
    client's own header of that name is dropped). Reflex copies the handshake's
    headers into every client's state, so the raw token never enters a state,
    in memory, on disk or in Redis.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from chatdash import routes
from chatdash.api.http import client_address
from chatdash.db import session_scope
from chatdash.services import auth
from chatdash.settings import get_settings

COOKIE = "chatdash_admin"
SESSION_HEADER = "x-chatdash-admin-session"
EVENT_PATH = "/_event"
MAX_FORM_BYTES = 4096


def _page(path: str, **query: str) -> str:
    base = get_settings().public_url.rstrip("/") + path
    return f"{base}?{urlencode(query)}" if query else base


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _same_site_origin(request: Request) -> bool:
    """The form is posted from the app's own login page (no Origin: not a browser form)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    s = get_settings()
    return origin.rstrip("/").lower() in {_origin(s.public_url), _origin(s.api_url)}


def _set_cookie(response: Response, token: str, max_age: int) -> None:
    response.set_cookie(COOKIE, token, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=get_settings().public_url.lower().startswith("https://"))


async def login(request: Request) -> Response:
    if not _same_site_origin(request):
        return Response("forbidden", status_code=403)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return RedirectResponse(_page(routes.LOGIN, error="missing"), status_code=303)
    form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    email = (form.get("email") or [""])[0][:320]
    password = (form.get("password") or [""])[0][: auth.MAX_PASSWORD + 1]
    if not email.strip() or not password:
        return RedirectResponse(_page(routes.LOGIN, error="missing"), status_code=303)
    hours = get_settings().admin_session_hours
    result = await auth.log_in_async(email, password, client_address(request), hours)
    if result.admin is None:
        if result.error.startswith("Too many"):
            minutes = "".join(ch for ch in result.error if ch.isdigit()) or "1"
            return RedirectResponse(_page(routes.LOGIN, error="throttled", minutes=minutes), status_code=303)
        return RedirectResponse(_page(routes.LOGIN, error="wrong"), status_code=303)
    response = RedirectResponse(_page(routes.CONVERSATIONS), status_code=303)
    _set_cookie(response, result.token, hours * 3600)
    return response


async def logout(request: Request) -> Response:
    token = request.cookies.get(COOKIE, "")
    response = RedirectResponse(_page(routes.LOGIN), status_code=303)
    # The SameSite=Strict cookie comes only with a link followed on this site:
    # a link on another site logs nobody out.
    if token:
        if len(token) <= 128:
            with session_scope() as session:
                auth.end_session(session, token)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


api_routes = [
    Route("/api/admin/session", login, methods=["POST"]),
    Route("/api/admin/logout", logout, methods=["GET"]),
]

LOGIN_ERRORS = {
    "wrong": "Wrong email or password.",
    "missing": "Enter your email and password.",
}


def login_error(code: str, minutes: str) -> str:
    """The login page's message for a reason code (never text from the URL)."""
    if code == "throttled":
        return auth.too_many_attempts(60 * max(1, min(int(minutes) if minutes.isdigit() else 1, 60 * 24)))
    return LOGIN_ERRORS.get(code, "")


class AdminSessionHeader:
    """Hands the event socket the session token's hash instead of the token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope.get("path", "").startswith(EVENT_PATH):
            scope = dict(scope, headers=_rewrite(scope.get("headers", [])))
        await self.app(scope, receive, send)


def _rewrite(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    digest = ""
    for name, value in headers:
        lname = name.lower()
        if lname == SESSION_HEADER.encode():
            continue  # only this middleware says which session it is
        if lname == b"cookie":
            kept = []
            for part in value.decode("latin-1").split(";"):
                key, _, token = part.strip().partition("=")
                if key.strip() != COOKIE:
                    if part.strip():
                        kept.append(part.strip())
                    continue
                token = token.strip().strip('"')
                if token and len(token) <= 128:
                    digest = auth.token_hash(token)
            if kept:
                out.append((name, "; ".join(kept).encode("latin-1")))
            continue
        out.append((name, value))
    if digest:
        out.append((SESSION_HEADER.encode(), digest.encode()))
    return out
