"""Login throttling (per account and per client IP, with a growing wait) and
argon2 kept off the event loop."""

from __future__ import annotations

import asyncio
import threading
import uuid

import httpx
import pytest
from sqlmodel import Session

from chatdash.db import make_engine
from chatdash.services import auth
from chatdash.state.auth import AuthState
from tests.reflex_client import RawReflexClient
from tests.test_ratelimit import FakeClock
from tests.waiting import wait_until_async

PASSWORD = "the-right-password"


def _throttle(clock: FakeClock) -> auth.LoginThrottle:
    return auth.LoginThrottle(per_account=5, per_ip=20, window_seconds=300, clock=clock)


@pytest.fixture
def admin_email(engine) -> str:
    with Session(engine) as s:
        auth.create_admin(s, "owner@store.test", PASSWORD)
        s.commit()
    return "owner@store.test"


def _try(engine, throttle, password, email="owner@store.test", ip="198.51.100.7"):
    return auth.log_in(email, password, ip, 1, engine=engine, throttle=throttle)


def test_the_right_password_is_refused_after_five_wrong_ones(engine, admin_email):
    throttle = _throttle(FakeClock())
    for _ in range(5):
        assert _try(engine, throttle, "wrong-password").error == "Wrong email or password."
    locked = _try(engine, throttle, PASSWORD)
    assert locked.admin is None and not locked.token
    assert locked.error == "Too many attempts, try again in 5 minutes."


def test_the_wait_grows_with_more_failures(engine, admin_email):
    clock = FakeClock()
    throttle = _throttle(clock)
    for _round in range(2):
        for _ in range(5):
            assert _try(engine, throttle, "wrong-password").error == "Wrong email or password."
        assert _try(engine, throttle, PASSWORD).error.startswith("Too many attempts")
        clock.now += 301  # the first window has passed
    # Ten failures within the hour: now the wait is up to the hour.
    assert _try(engine, throttle, PASSWORD).error == "Too many attempts, try again in 50 minutes."
    clock.now += 50 * 60
    assert _try(engine, throttle, PASSWORD).admin is not None


def test_a_right_password_before_the_limit_clears_the_account(engine, admin_email):
    throttle = _throttle(FakeClock())
    for _ in range(4):
        _try(engine, throttle, "wrong-password")
    assert _try(engine, throttle, PASSWORD).admin is not None
    for _ in range(4):
        assert _try(engine, throttle, "wrong-password").error == "Wrong email or password."


def test_one_ip_guessing_many_accounts_is_throttled(engine, admin_email):
    throttle = _throttle(FakeClock())
    for i in range(20):
        assert _try(engine, throttle, "guess", email=f"user{i}@store.test").error == "Wrong email or password."
    # The real account has no failures of its own, but this address is locked out…
    assert _try(engine, throttle, PASSWORD).error == "Too many attempts, try again in 5 minutes."
    # …while the owner, from their own address, still gets in.
    assert _try(engine, throttle, PASSWORD, ip="203.0.113.9").admin is not None


# --- against the running app, through the websocket like the login page ------------

@pytest.fixture
def live_engine(live_app):
    eng = make_engine(live_app.db_url)
    yield eng
    eng.dispose()


def _new_admin(live_engine) -> str:
    email = f"throttle-{uuid.uuid4().hex[:8]}@store.test"
    with Session(live_engine) as s:
        auth.create_admin(s, email, PASSWORD)
        s.commit()
    return email


def _login(http: httpx.Client, live_app, email: str, password: str) -> httpx.Response:
    """What the login page's form posts."""
    return http.post(f"{live_app.backend}/api/admin/session", data={"email": email, "password": password},
                     headers={"Origin": live_app.frontend}, follow_redirects=False)


def _login_page_message(live_app, location: str) -> str:
    """The message the login page shows where the refused login sent the browser."""
    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path=location.removeprefix(live_app.frontend))
        return client.seen_values(AuthState).get("login_error", "")
    finally:
        client.close()


def test_forty_wrong_passwords_then_the_right_one_is_refused(live_app, live_engine):
    email = _new_admin(live_engine)
    with httpx.Client(timeout=30) as http:
        for _ in range(40):
            answer = _login(http, live_app, email, "wrong-password")
            assert answer.status_code == 303 and "chatdash_admin" not in answer.headers.get("set-cookie", "")
        answer = _login(http, live_app, email, PASSWORD)
    assert answer.status_code == 303
    assert "chatdash_admin" not in answer.headers.get("set-cookie", "")
    assert _login_page_message(live_app, answer.headers["location"]) == \
        "Too many attempts, try again in 5 minutes."


def test_a_login_leaves_the_event_loop_free_while_argon2_runs(engine, admin_email, monkeypatch):
    """The password check runs in a thread: while one is in progress (held
    open here until the test lets it finish) the event loop keeps serving.
    Were argon2 run on the loop, the loop would stop inside the check."""
    inside, release = threading.Event(), threading.Event()
    real_verify = auth.verify_password

    def held_verify(password_hash: str, password: str) -> bool:
        inside.set()
        release.wait(30)
        return real_verify(password_hash, password)

    monkeypatch.setattr(auth, "verify_password", held_verify)

    async def scenario() -> tuple[bool, auth.LoginResult]:
        login = asyncio.create_task(auth.log_in_async(
            admin_email, PASSWORD, "198.51.100.7", 1, engine=engine, throttle=_throttle(FakeClock())))
        await wait_until_async(inside.is_set, timeout=30, what="the password check starting")
        await asyncio.sleep(0)  # the check has started, and the loop still runs other work meanwhile
        pending_meanwhile = not login.done()
        release.set()
        return pending_meanwhile, await login

    pending_meanwhile, result = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    assert pending_meanwhile
    assert result.admin is not None and result.token
