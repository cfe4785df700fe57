"""The chatdash app: pages, API routes and lifespan tasks."""

import asyncio
import contextlib
import logging
import sys
from datetime import timedelta

import reflex as rx

from chatdash import gc_tuning, live
from chatdash.api.admin_session import AdminSessionHeader
from chatdash.api.routes import api
from chatdash.components.chat import connection_notice
from chatdash.components.storage_shim import storage_shim
from chatdash.db import migrate
from chatdash.errors import backend_exception_handler
from chatdash.models import utcnow
from chatdash.pages import (  # noqa: F401  (register pages)
    conversations,
    insights,
    invite,
    login,
    settings,
    visitors,
    widget,
)
from chatdash.pages.login import native_login_post
from chatdash.pages.registry import add_pages
from chatdash.services import followup, leader, notify, presence, workspace
from chatdash.settings import get_settings
from demo_store import pages as demo_store_pages

log = logging.getLogger("chatdash")
# Database work runs in threads beside the event loop. With Python's default
# 5 ms switch interval a thread coming back from SQLite waits up to 5 ms for
# the busy loop to hand over the GIL, once per statement; 1 ms keeps writes
# that hold the SQLite writer lock short (bench/bench_live.py at 1,000 shoppers).
sys.setswitchinterval(0.001)
SWEEP_SECONDS = 2
# How often the leader looks for snoozed conversations due (an indexed read).
WAKE_SECONDS = 2
# The longest the sweeps stop when the leader dies: its lock's expiry, one renewal, one sweep.
TAKEOVER_GAP = timedelta(seconds=leader.TTL_SECONDS + leader.RENEW_SECONDS + SWEEP_SECONDS)


async def presence_sweeper() -> None:
    """Shoppers go quiet without telling us (closed laptop, lost network): when
    the presence window passes, each one that left is flipped on every screen."""
    # A sweeper that starts (a new leader, a restart) does not know what the
    # screens show: it starts from who was on site as long ago as a change of
    # leader can take, so whoever left meanwhile is announced (announcing one
    # who is still here changes nothing on screen).
    previous: set[int] | None = None
    try:
        previous = await asyncio.to_thread(presence.on_site_at, utcnow() - TAKEOVER_GAP,
                                           get_settings().presence_window_seconds)
    except Exception:
        log.exception("presence sweep: could not read who was on site; starting afresh")
    while True:
        try:
            previous = await asyncio.to_thread(presence.sweep, previous,
                                               get_settings().presence_window_seconds)
        except Exception:
            log.exception("presence sweep failed")
        await asyncio.sleep(SWEEP_SECONDS)


async def snooze_alarm() -> None:
    """Snoozed conversations whose time has come go back to open, every screen
    told (a conversation due while no leader ran wakes at the next tick)."""
    while True:
        try:
            await asyncio.to_thread(workspace.wake_due)
        except Exception:
            log.exception("waking snoozed conversations failed")
        await asyncio.sleep(WAKE_SECONDS)


async def recommender_training() -> None:
    """Train once when nothing is trained yet, then retrain on the schedule
    (settings.retrain_hours), as a run the model card shows and no Retrain
    overlaps. Serving picks new versions up by itself (this worker's at once)."""
    from chatdash.db import get_engine
    from chatdash.services.recommender import get_store, runs

    await asyncio.sleep(5)  # let migrations and the first requests go first
    while True:
        hours = get_settings().retrain_hours
        try:
            await asyncio.to_thread(
                runs.retrain_if_due, get_engine(), timedelta(hours=hours) if hours > 0 else None, store=get_store()
            )
        except Exception:
            log.exception("recommender training failed")
        await asyncio.sleep(600)


FOLLOWUP_SECONDS = 1


async def followup_asks() -> None:
    """Offline follow-up: widgets whose shopper nobody answered in time ask for an email."""
    while True:
        try:
            await asyncio.to_thread(followup.ask_due)
        except Exception:
            log.exception("follow-up: asking for emails failed")
        await asyncio.sleep(FOLLOWUP_SECONDS)


async def followup_emails() -> None:
    """Offline follow-up: agents' replies to shoppers who left go out by email
    (a loop of its own: a slow mail server never delays the asks)."""
    while True:
        try:
            await followup.send_due_emails(get_settings)
        except Exception:
            log.exception("follow-up: sending reply emails failed")
        await asyncio.sleep(FOLLOWUP_SECONDS)


async def staff_emails() -> None:
    """Staff emails held for the end of their window (what came in after an
    email, through any worker) and any a dead worker left unsent. The first of
    a window goes at once from the worker that stored it (email_notifications)."""
    while True:
        try:
            await notify.send_held_emails(get_settings)
        except Exception:
            log.exception("sending held staff emails failed")
        await asyncio.sleep(FOLLOWUP_SECONDS)


async def periodic_jobs() -> None:
    """The presence sweeper, the snooze alarm, the retraining schedule, the
    follow-up jobs and the held staff emails: in this process on one box; with
    REDIS_URL, in whichever worker holds the leader lock (each email job also
    claims its rows in the database, so a change of leader never sends twice)."""
    await leader.run_jobs([presence_sweeper, snooze_alarm, recommender_training, followup_asks, followup_emails,
                           staff_emails], get_settings().redis_url)


@contextlib.asynccontextmanager
async def prepare_database(_app=None):
    # Idempotent: brings an old database up to date on every start.
    await asyncio.to_thread(migrate)
    yield


@contextlib.asynccontextmanager
async def email_notifications():
    """The staff emails this worker's own writes call for, sent at once when due."""
    stop = notify.email_new_conversations(get_settings)
    try:
        yield
    finally:
        stop()


# A failing handler shows the user a generic message with an error id, in every mode.
# AdminSessionHeader wraps everything: the event socket sees the admin session
# token's hash, never the token (chatdash/api/admin_session.py).
# socket-watch.js: a socket closed before its handshake counts as failed at once.
app = rx.App(api_transformer=[api, AdminSessionHeader],
             head_components=[storage_shim(), rx.script(src="/socket-watch.js"), native_login_post()],
             backend_exception_handler=backend_exception_handler)
# A quiet "Reconnecting…" in place of Reflex's connection toast, whose developer
# text (websocket URL, error) would reach shoppers on store pages and in the widget.
# (A wrap gets the page as children: the fragment holds both, the notice beside the page.)
add_pages(app)  # chatdash's pages (imported above: they register as they load)
demo_store_pages.add_pages(app)
app.app_wraps[(5, "Overlay")] = lambda stateful: rx.fragment(connection_notice()) if stateful else None
app.register_lifespan_task(prepare_database)
app.register_lifespan_task(live.lifespan)
app.register_lifespan_task(email_notifications)
app.register_lifespan_task(periodic_jobs)
app.register_lifespan_task(gc_tuning.keep_full_collections_rare)
