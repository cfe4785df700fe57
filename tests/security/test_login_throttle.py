"""Login throttling (per account and per client IP, with a growing wait) and
argon2 kept off the event loop."""

from __future__ import annotations

import statistics
import threading
import time
import uuid

import httpx
import pytest
from sqlmodel import Session

from chatdash.db import make_engine
from chatdash.services import auth
from chatdash.state.auth import AuthState
from tests.reflex_client import RawReflexClient
from tests.test_ratelimit import FakeClock

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


def test_logins_do_not_hold_up_other_requests(live_app, live_engine):
    """argon2 runs beside the event loop: while four clients log in, the
    health check answers about as fast as when nobody does."""
    email = _new_admin(live_engine)
    hasher_time = _argon2_seconds()

    def health_latencies(stop: threading.Event | None, count: int = 0) -> list[float]:
        out: list[float] = []
        with httpx.Client(timeout=30) as http:
            while (stop is not None and not stop.is_set()) or len(out) < count:
                t = time.perf_counter()
                http.get(f"{live_app.backend}/api/health").raise_for_status()
                out.append(time.perf_counter() - t)
        return out

    quiet = statistics.median(health_latencies(None, 20))
    started = threading.Barrier(5)
    answers: list[httpx.Response] = []

    def log_in_repeatedly() -> None:
        with httpx.Client(timeout=60) as http:
            started.wait()
            for _ in range(4):  # the right password: no failure is counted
                answers.append(_login(http, live_app, email, PASSWORD))

    threads = [threading.Thread(target=log_in_repeatedly) for _ in range(4)]
    for t in threads:
        t.start()
    stop = threading.Event()
    busy: list[float] = []
    poller = threading.Thread(target=lambda: busy.extend(health_latencies(stop)))
    started.wait()
    poller.start()
    for t in threads:
        t.join()
    stop.set()
    poller.join()
    assert [a.headers["location"] for a in answers] == [f"{live_app.frontend}/admin/conversations"] * 16
    assert len(busy) >= 5
    # On the loop, every request waited for whole argon2 verifications.
    assert statistics.median(busy) < quiet + hasher_time / 4, (quiet, hasher_time, sorted(busy))


def _argon2_seconds() -> float:
    hashed = auth.hash_password(PASSWORD)
    t = time.perf_counter()
    for _ in range(3):
        auth.verify_password(hashed, PASSWORD)
    return (time.perf_counter() - t) / 3
