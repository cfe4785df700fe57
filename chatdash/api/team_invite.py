"""`POST /api/admin/invite`: an invited agent (or one whose password the
owner reset) sets a password through the one-time link, and is logged in
with the same HttpOnly session cookie as the login form's
(chatdash/api/admin_session.py)."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from chatdash import routes
from chatdash.api.admin_session import MAX_FORM_BYTES, _page, _same_site_origin, _set_cookie
from chatdash.services import auth, team
from chatdash.settings import get_settings

# Reason codes the invite page turns into messages (never text from the URL).
INVITE_ERRORS = {
    "expired": "This link has expired or was already used. Ask the store's owner for a new one.",
    "short": f"Passwords need at least {auth.MIN_PASSWORD} characters.",
    "long": f"Passwords can have at most {auth.MAX_PASSWORD} characters.",
    "mismatch": "The two passwords differ.",
    "name": "Names can have at most 200 characters.",
}


async def accept_invite(request: Request) -> Response:
    if not _same_site_origin(request):
        return Response("forbidden", status_code=403)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return RedirectResponse(_page(routes.INVITE, error="long"), status_code=303)
    form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)

    def field(name: str, limit: int) -> str:
        return (form.get(name) or [""])[0][:limit]

    token = field("token", 200)
    password = field("password", auth.MAX_PASSWORD + 1)
    name = field("name", 201)

    def back(code: str) -> Response:
        return RedirectResponse(_page(routes.INVITE, t=token, error=code), status_code=303)

    if password != field("password2", auth.MAX_PASSWORD + 1):
        return back("mismatch")
    if len(password) < auth.MIN_PASSWORD:
        return back("short")
    if len(password) > auth.MAX_PASSWORD:
        return back("long")
    if len(name.strip()) > 200:
        return back("name")
    hours = get_settings().admin_session_hours
    try:
        # argon2: off the event loop.
        _admin, session_token = await asyncio.to_thread(team.accept, token, password, name, session_hours=hours)
    except auth.AuthError:
        return back("expired")
    response = RedirectResponse(_page(routes.CONVERSATIONS), status_code=303)
    _set_cookie(response, session_token, hours * 3600)
    return response


api_routes = [Route("/api/admin/invite", accept_invite, methods=["POST"])]
