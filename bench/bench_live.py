"""The live chat under load: N shoppers with open widgets and A admins on the
Conversations page, as raw Reflex socket clients in one asyncio process, against
a production build of the app (issue 8's bar).

  .venv/bin/python bench/bench_live.py --shoppers 100 --admins 3 --duration 60 --start
  .venv/bin/python bench/bench_live.py --shoppers 300 --admins 3 --duration 60 --start --app-dir /tmp/chatdash-before
  .venv/bin/python bench/bench_live.py --shoppers 100 --admins 3 --duration 60 --url http://127.0.0.1:PORT \\
      [--db-url sqlite:////path/live.db] [--server-pid PID]

--start builds and starts the checkout given by --app-dir (default: this one) the way
tests/live_app.py does: `reflex run --env prod` on one free port, its own SQLite file
and state folder in a temporary directory, the small demo store, its own build folder
(<app-dir>/.web-bench, so it never fights the tests' .web-test). The first build of a
new build folder runs npm install and takes minutes; later runs reuse it.

Each client is a python-socketio AsyncClient speaking Reflex's wire protocol (the one
tests/reflex_client.py uses), all in this one process, over loopback only:

- shopper: opens /widget (hydrate_and_load, whose on_load asks the page for a stored
  visitor token with call_script; the harness answers as assets/chat.js does: none
  stored, so the server issues one and calls chatdashOutbox.init, answered with an
  empty outbox), POSTs /api/presence every 15 s, and sends a message every 20-30 s
  (`send` {"item": {"id", "text"}}, answered by call_script ack/fail). Shoppers
  connect from 127.0.0.2..127.0.0.254 (sockets and heartbeats), as a real store's
  shoppers come from many addresses.
- admin: posts the login form (/api/admin/session), then opens
  /admin/conversations with the HttpOnly session cookie it got in the socket's
  handshake (hydrate_and_load; the page's on_load loads the list). Every 5-10 s it
  selects a random conversation of a bench shopper (which conversation is whose it
  learns from the list's previews), waits for its messages (at most --select-timeout;
  a later answer is still timed), and replies.

Measured (latencies over what was emitted after the ramp; counts over the whole run):

- delivery: a shopper emits `send` with a unique text -> the first admin socket that
  receives a delta containing that text (the inbox row's preview or the open chat);
- reply: an admin emits `send_reply` with a unique text -> that shopper's socket
  receives a delta containing it;
- select: an admin emits `select` -> the delta carrying that conversation's messages;
- ack: a shopper emits `send` -> the server's call_script ack for it;
- lost: never arrived within --grace seconds after the run; refused sends (the
  server answered chatdashOutbox.fail) are counted apart, and a lost reply that is not
  in the database either was still queued behind the admin's earlier events at the
  end; duplicated: a text stored twice in the database (checked at the end) or shown
  twice in one widget's list;
- server CPU (% of one core, summed over the server's process tree) and RSS, the
  harness's own CPU and the machine's CPU and load average, sampled every second.

The admin handlers are found by resolve_admin_handlers(): the split states
(chatdash.state.inbox.InboxState, chatdash.state.chat.ChatState) when the checkout
has them, else chatdash.state.conversations.ConversationsState.

Needs aiohttp (python-socketio's asyncio client runs on it) and psutil:
.venv/bin/pip install aiohttp psutil
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import fcntl
import gc
import hashlib
import ipaddress
import json
import os
import platform
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

BENCH_ROOT = Path(__file__).resolve().parent.parent

MAX_SHOPPERS = 2000
MAX_ADMINS = 20
MAX_DURATION = 900  # seconds of steady load
MAX_RAMP = 120
MAX_GRACE = 120

SUFFIX = "_rx_state_"  # production builds suffix var names in deltas
# Every text the bench sends starts with a marker unique to this run (so runs against
# the same database never mix): "bm" + run id + s (shopper) or r (reply) + sequence.
RUN_ID = uuid.uuid4().hex[:6]
MARKER_RE = re.compile(rf"bm{RUN_ID}[sr]\d{{6}}")
MARKER_LEN = 15
CALLBACK_RE = re.compile(r'ReflexEvent\(\\?"([^"\\]+)\\?",\s*\(?\{\s*\[?"?(\w+)"?\]?\s*:')
OUTBOX_CALL_RE = re.compile(r"chatdashOutbox\.(\w+)\((.*)\)\s*;?\s*$", re.S)
# The same call wrapped by chatdash.state.widget.outbox_call (waits for chat.js to load).
OUTBOX_WRAPPED_RE = re.compile(r"ok\(window\.chatdashOutbox\.(\w+)\((.*?)\)\) : setTimeout", re.S)
STORE_URL = "https://shop.bench"
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/130.0 Safari/537.36 chatdash-bench")
QUESTIONS = ["is this in stock in size M?", "when would it arrive?", "can I return it if it does not fit?",
             "do you have it in blue?", "is there a discount for two?", "what is it made of?"]
ANSWERS = ["Yes, it ships tomorrow.", "Let me check that for you.", "It comes in three colours.",
           "Returns are free for 30 days.", "We have 4 left in stock."]


def var(name: str) -> str:
    return name.removesuffix(SUFFIX)


# ----- which handlers to call ----------------------------------------------------

def resolve_admin_handlers() -> dict[str, str]:
    """Full event names of the admin handlers: the split states when the checkout
    has them (issue 8), else the old ConversationsState."""
    try:
        from chatdash.state.chat import ChatState
        from chatdash.state.inbox import InboxState

        load, select, reply = (InboxState, "load"), (InboxState, "select"), (ChatState, "send_reply")
    except ImportError:
        from chatdash.state.conversations import ConversationsState

        load, select, reply = ((ConversationsState, h) for h in ("load", "select", "send_reply"))
    return {k: f"{cls.get_full_name()}.{h}" for k, (cls, h) in
            {"load": load, "select": select, "send_reply": reply}.items()}


def resolve_names() -> dict[str, str]:
    from reflex.state import State

    from chatdash.state.auth import AuthState
    from chatdash.state.widget import WidgetState

    return {
        "hydrate": f"{State.get_full_name()}.hydrate_and_load",
        "widget_state": WidgetState.get_full_name(),
        "send": f"{WidgetState.get_full_name()}.send",
        "auth_state": AuthState.get_full_name(),
        **resolve_admin_handlers(),
    }


# ----- starting the app -----------------------------------------------------------

def start_app(app_dir: Path, web_dir: Path, workdir: Path):
    """The checkout in app_dir as a production build on one free port (as
    tests/live_app.py starts it, but with its own build folder)."""
    import httpx

    from tests.live_app import ADMIN_EMAIL, ADMIN_PASSWORD, LiveApp, free_port

    # One run at a time owns a build folder: a second build would delete the files
    # the first one serves.
    digest = hashlib.sha256(str(web_dir).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"chatdash-bench-{digest}.lock"
    lock = lock_path.open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another bench run is using {web_dir} ({lock_path})") from None
    port = free_port()
    db_url = f"sqlite:///{workdir / 'live.db'}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CHATDASH_ADMIN_EMAIL": ADMIN_EMAIL,
        "CHATDASH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CHATDASH_SECRET_KEY": os.environ["CHATDASH_SECRET_KEY"],
        "CHATDASH_STORE_SECRET": os.environ["CHATDASH_STORE_SECRET"],
        "CHATDASH_PUBLIC_URL": f"http://localhost:{port}",
        "CHATDASH_API_URL": f"http://localhost:{port}",
        "CHATDASH_FRONTEND_PORT": str(port),
        "CHATDASH_BACKEND_PORT": str(port),
        "CHATDASH_MODEL_DIR": str(workdir / "models"),
        # The demo store's own database and catalog, here too: in the checkout's data/
        # they kept this run's port in every product's address after it ended.
        "DEMO_STORE_DATA_DIR": str(workdir / "demo_store"),
        "CHATDASH_RETRAIN_HOURS": "0",
        "REFLEX_WEB_WORKDIR": str(web_dir),
        "REFLEX_STATES_WORKDIR": str(workdir / "states"),
        "REFLEX_USE_NPM": "1",
        "REFLEX_TELEMETRY_ENABLED": "false",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    env.pop("REDIS_URL", None)  # one box: Reflex's default state manager, in-memory limits
    print(f"setting up a small demo store in {workdir} ...", flush=True)
    subprocess.run([sys.executable, "-m", "chatdash.cli", "setup", "--small-demo"],
                   cwd=app_dir, env=env, check=True, capture_output=True, text=True)
    log_path = workdir / "reflex.log"
    print(f"starting `reflex run --env prod` from {app_dir} on port {port} (build folder {web_dir}; "
          f"log {log_path}) ...", flush=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reflex", "run", "--env", "prod", "--loglevel", "info"],
        cwd=app_dir, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    app = LiveApp(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}", db_url, env, proc, log_path, lock)
    started = time.monotonic()
    while time.monotonic() < started + 900:
        if proc.poll() is not None:
            app.stop()
            raise SystemExit(f"reflex exited early:\n{log_path.read_text()[-4000:]}")
        try:
            if (httpx.get(f"{app.backend}/api/health", timeout=2).status_code == 200
                    and httpx.get(f"{app.frontend}/widget", timeout=5, follow_redirects=True).status_code == 200):
                print(f"app up after {time.monotonic() - started:.0f} s", flush=True)
                return app
        except httpx.HTTPError:
            pass
        time.sleep(1)
    app.stop()
    raise SystemExit(f"app did not come up in time:\n{log_path.read_text()[-4000:]}")


def check_loopback(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SystemExit(f"--url must be http(s)://host:port, not {url!r}")
    for info in socket.getaddrinfo(parts.hostname, parts.port or 80, proto=socket.IPPROTO_TCP):
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise SystemExit(f"{parts.hostname} resolves to {info[4][0]}: this harness only targets loopback")
    return url.rstrip("/")


# ----- measurements ---------------------------------------------------------------

@dataclass
class Sent:
    marker: str
    kind: str  # "msg" (shopper -> admins) or "reply" (admin -> shopper)
    shopper: int
    t_emit: float
    steady: bool
    client_id: str
    admin: int = -1
    t_arrive: float | None = None
    t_ack: float | None = None
    refused: str = ""


@dataclass
class Stats:
    select: list[tuple[float, float, bool]] = field(default_factory=list)  # (t_emit, latency, steady)
    select_slow: int = 0  # not answered within --select-timeout (still measured if answered later)
    select_unanswered: int = 0  # never answered before the end
    beats: Counter = field(default_factory=Counter)
    beat_latency: list[tuple[float, bool]] = field(default_factory=list)
    widget_open: list[float] = field(default_factory=list)
    admin_open: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    unknown_scripts: Counter = field(default_factory=Counter)
    widget_dups: set[tuple[int, str]] = field(default_factory=set)
    deltas: Counter = field(default_factory=Counter)
    delta_bytes: Counter = field(default_factory=Counter)
    loop_lag: list[float] = field(default_factory=list)
    reconnects: Counter = field(default_factory=Counter)  # kind -> sockets reconnected after a drop
    reconnect_time: list[float] = field(default_factory=list)  # drop -> hydrated again, seconds


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(-(-q * len(s) // 100)) - 1))]


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


def summary(values: list[float]) -> dict:
    return {"n": len(values), **{f"p{q}_ms": None if (p := percentile(values, q)) is None else round(p * 1000, 1)
                                 for q in (50, 95, 99)},
            "max_ms": round(max(values) * 1000, 1) if values else None}


class Monitor:
    """CPU and RSS of the server's process tree, this process and the machine."""

    def __init__(self, server_pid: int | None) -> None:
        import psutil

        self.psutil = psutil
        self.root = psutil.Process(server_pid) if server_pid else None
        self.me = psutil.Process()
        self.procs: dict[int, object] = {}
        self.samples: list[dict] = []
        self.me.cpu_percent(None)
        psutil.cpu_percent(None)
        self.sample(record=False)

    def _tree(self):
        if self.root is None:
            return []
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except self.psutil.NoSuchProcess:
            return []
        return [self.procs.setdefault(p.pid, p) for p in procs]

    def sample(self, record: bool = True, steady: bool = False) -> None:
        cpu = rss = 0.0
        for p in self._tree():
            try:
                cpu += p.cpu_percent(None)
                rss += p.memory_info().rss
            except self.psutil.Error:
                pass
        row = {"t": time.perf_counter(), "server_cpu": cpu, "server_rss_mb": rss / 2**20,
               "harness_cpu": self.me.cpu_percent(None), "machine_cpu": self.psutil.cpu_percent(None),
               "load1": os.getloadavg()[0], "steady": steady}
        if record:
            self.samples.append(row)

    def report(self) -> dict:
        steady = [s for s in self.samples if s["steady"]] or self.samples
        if not steady:
            return {}

        def mean(k):
            return round(sum(s[k] for s in steady) / len(steady), 1)

        return {
            "server_cpu_mean_pct": mean("server_cpu"),
            "server_cpu_max_pct": round(max(s["server_cpu"] for s in self.samples), 1),
            "server_rss_max_mb": round(max(s["server_rss_mb"] for s in self.samples), 1),
            "server_rss_end_mb": round(self.samples[-1]["server_rss_mb"], 1),
            "harness_cpu_mean_pct": mean("harness_cpu"),
            "harness_cpu_max_pct": round(max(s["harness_cpu"] for s in self.samples), 1),
            "machine_cpu_mean_pct": mean("machine_cpu"),
            "load1_min": round(min(s["load1"] for s in steady), 2),
            "load1_max": round(max(s["load1"] for s in steady), 2),
            "samples": len(steady),
        }


# ----- the clients ----------------------------------------------------------------

class Client:
    kind = "client"

    def __init__(self, bench: Bench, idx: int, session, path: str) -> None:
        self.b = bench
        self.idx = idx
        self.session = session
        self.path = path
        self.rng = random.Random(f"{bench.args.seed}-{self.kind}-{idx}")
        self.client_token = str(uuid.uuid4())
        self.hydrated = asyncio.Event()
        self.sio = self._new_socket()
        self.connected = False
        self.reconnecting = False
        self.headers: dict[str, str] = {}  # sent with the socket's handshake (the admin's cookie)

    def _new_socket(self):
        import socketio

        sio = socketio.AsyncClient(reconnection=False, http_session=self.session, handle_sigint=False)
        sio.on("event", self._on_event, namespace="/_event")
        sio.on("disconnect", self._on_disconnect, namespace="/_event")
        return sio

    async def connect(self) -> None:
        await self.sio.connect(
            f"{self.b.url}?token={self.client_token}", socketio_path="/_event", namespaces=["/_event"],
            transports=["websocket"], wait_timeout=60, headers=self.headers,
        )
        self.connected = True

    async def _on_disconnect(self, *_args) -> None:
        dropped = self.connected and not self.b.stop_all.is_set()
        self.connected = False
        if not dropped:
            return
        if self.b.args.reconnect and not self.reconnecting:
            self.reconnecting = True
            asyncio.get_running_loop().create_task(self._reconnect(time.perf_counter()))
        else:
            self.b.stats.errors[f"{self.kind} socket dropped"] += 1

    async def _reconnect(self, t_drop: float) -> None:
        """As the page's socket.io client does: connect again (the load balancer picks
        a live worker), same tab token, and load the page again."""
        b, delay = self.b, 0.25
        try:
            while not b.stop_all.is_set():
                await b.sleep(delay * (0.5 + self.rng.random()), b.stop_all)
                self.sio = self._new_socket()
                try:
                    await self.connect()
                    await self.hydrate()
                    await asyncio.wait_for(self.reopened(), b.args.open_timeout)
                except Exception:  # noqa: BLE001 - try again, as the browser would
                    with contextlib.suppress(Exception):
                        await self.sio.disconnect()
                    self.connected = False
                    delay = min(delay * 2, 4.0)
                    continue
                b.stats.reconnects[self.kind] += 1
                b.stats.reconnect_time.append(time.perf_counter() - t_drop)
                return
        finally:
            self.reconnecting = False

    async def reopened(self) -> None:
        await self.hydrated.wait()

    async def emit(self, name: str, payload: dict) -> None:
        if not self.connected:
            return
        try:
            await self.sio.emit("event", {
                "name": name, "payload": payload,
                "router_data": {"pathname": self.path, "query": {}, "asPath": self.path},
            }, namespace="/_event")
        except Exception as exc:  # noqa: BLE001 - counted and reported
            self.b.stats.errors[f"{self.kind} emit: {type(exc).__name__}"] += 1

    async def hydrate(self, client_storage: dict[str, str] | None = None) -> None:
        self.hydrated.clear()
        await self.emit(self.b.names["hydrate"], {"vars": client_storage or {}})

    async def _on_event(self, update: dict) -> None:
        t = time.perf_counter()
        try:
            delta = update.get("delta") or {}
            if delta:
                text = json.dumps(delta)
                self.b.stats.deltas[self.kind] += 1
                self.b.stats.delta_bytes[self.kind] += len(text)
                for state in delta.values():
                    if isinstance(state, dict) and state.get("is_hydrated" + SUFFIX, state.get("is_hydrated")):
                        self.hydrated.set()
                self.on_delta(t, delta, text)
            for event in update.get("events") or []:
                if event.get("name") == "_call_script":
                    await self.on_script(t, event.get("payload") or {})
        except Exception as exc:  # noqa: BLE001 - a harness bug must show, not hang the run
            self.b.stats.errors[f"{self.kind} handler: {type(exc).__name__}: {exc}"[:120]] += 1

    def on_delta(self, t: float, delta: dict, text: str) -> None:
        raise NotImplementedError

    async def on_script(self, t: float, payload: dict) -> None:
        self.b.stats.unknown_scripts[str(payload.get("javascript_code"))[:60]] += 1

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sio.disconnect(), 5)


class Shopper(Client):
    kind = "shopper"

    def __init__(self, bench: Bench, idx: int, session) -> None:
        super().__init__(bench, idx, session, "/widget")
        self.visitor_token = ""
        self.token_ready = asyncio.Event()
        self.page_id = uuid.uuid4().hex[:16]
        self.ready = False
        # chat.js's outbox: typed and not yet acknowledged (client id -> text); sent
        # again by the server's init on every (re)load.
        self.outbox: dict[str, str] = {}
        self.inited = asyncio.Event()

    async def hydrate(self, client_storage: dict[str, str] | None = None) -> None:
        self.inited.clear()
        await super().hydrate(client_storage)

    async def reopened(self) -> None:
        await self.inited.wait()

    def _settled(self, cid: str) -> None:
        self.outbox.pop(cid, None)

    # What the server asks chat.js to do (rx.call_script), answered as chat.js would.
    async def on_script(self, t: float, payload: dict) -> None:
        code = str(payload.get("javascript_code") or "")
        result = None
        if "storedVisitor()" in code:
            result = self.visitor_token  # "" the first time: the server issues a token
        elif (m := OUTBOX_WRAPPED_RE.search(code)) or (m := OUTBOX_CALL_RE.search(code)):
            method, raw = m.group(1), m.group(2)
            try:
                args = ast.literal_eval(f"({raw},)") if raw.strip() else ()
            except (ValueError, SyntaxError):
                args = ()
            if method == "init" and len(args) >= 2:
                if args[1]:
                    self.visitor_token = args[1]
                    self.token_ready.set()
                result = [{"id": cid, "text": text} for cid, text in self.outbox.items()]
                self.inited.set()
            elif method == "ack" and args:
                self.b.acked(args[0], t)
                self._settled(args[0])
            elif method in ("ackMany", "settle") and args:
                for cid in args[0]:
                    self.b.acked(cid, t)
                    self._settled(cid)
                for cid in (args[1] if len(args) > 1 else []):
                    self.b.refused(cid, "refused in a resend")
                    self._settled(cid)
            elif method == "fail" and args:
                self.b.refused(args[0], str(args[1]) if len(args) > 1 else "")
                self._settled(args[0])
            else:
                self.b.stats.unknown_scripts[code[:60]] += 1
        else:
            self.b.stats.unknown_scripts[code[:60]] += 1
        callback = payload.get("callback")
        if callback and (m := CALLBACK_RE.search(str(callback))):
            await self.emit(m.group(1), {m.group(2): result})

    def on_delta(self, t: float, delta: dict, text: str) -> None:
        for marker in set(MARKER_RE.findall(text)):
            rec = self.b.records.get(marker)
            if rec is not None and rec.kind == "reply" and rec.shopper == self.idx and rec.t_arrive is None:
                rec.t_arrive = t
        state = delta.get(self.b.names["widget_state"]) or {}
        for key, value in state.items():
            name = var(key)
            if name == "visitor_token" and value:
                self.visitor_token = value
                self.token_ready.set()
            elif isinstance(value, list):
                bodies = [m.get("body", "") for m in value if isinstance(m, dict)]
                for body, n in Counter(b for b in bodies if isinstance(b, str) and MARKER_RE.match(b)).items():
                    if n > 1:
                        self.b.stats.widget_dups.add((self.idx, body[:MARKER_LEN]))

    async def beat(self) -> None:
        t0 = time.perf_counter()
        body = {"visitor": self.visitor_token, "state": "alive", "page": self.page_id,
                "url": f"{STORE_URL}/product/SKU-{self.idx % 240:04d}", "title": f"Product {self.idx % 240}"}
        try:
            async with self.session.post(f"{self.b.url}/api/presence", json=body) as resp:
                await resp.read()
                status = str(resp.status)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            status = type(exc).__name__
        self.b.stats.beats[status] += 1
        if status == "200":
            self.b.stats.beat_latency.append((time.perf_counter() - t0, self.b.steady(t0)))

    async def send_message(self) -> None:
        if not self.connected and not self.reconnecting:
            return
        marker = self.b.new_marker("s")
        cid = uuid.uuid4().hex
        text = f"{marker} Hello, {self.rng.choice(QUESTIONS)}"
        t = time.perf_counter()
        self.b.add(Sent(marker, "msg", self.idx, t, self.b.steady(t), cid))
        self.outbox[cid] = text  # while the socket is down it waits here, as in chat.js
        await self.emit(self.b.names["send"], {"item": {"id": cid, "text": text}})

    async def run(self, delay: float) -> None:
        b = self.b
        await b.sleep(delay, b.stop_sending)
        if b.stop_sending.is_set():
            return
        t0 = time.perf_counter()
        try:
            await self.connect()
            await self.hydrate()
            await asyncio.wait_for(self.token_ready.wait(), b.args.open_timeout)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            b.stats.errors[f"shopper open: {type(exc).__name__}"] += 1
            return
        b.stats.widget_open.append(time.perf_counter() - t0)
        self.ready = True
        lo, hi = b.args.message_every
        await asyncio.gather(self._beats(), self._messages(self.rng.uniform(0, hi), lo, hi))

    async def _beats(self) -> None:
        while not self.b.stop_all.is_set():
            await self.beat()
            await self.b.sleep(self.b.args.beat_every, self.b.stop_all)

    async def _messages(self, first: float, lo: float, hi: float) -> None:
        await self.b.sleep(first, self.b.stop_sending)
        while not self.b.stop_sending.is_set() and (self.connected or self.reconnecting):
            await self.send_message()
            await self.b.sleep(self.rng.uniform(lo, hi), self.b.stop_sending)


class Admin(Client):
    kind = "admin"

    def __init__(self, bench: Bench, idx: int, session) -> None:
        super().__init__(bench, idx, session, "/admin/conversations")
        self.selected = 0
        # Selects emitted and not yet answered, oldest first: (shopper, t_emit, answered).
        self.pending_selects: list[tuple[int, float, asyncio.Event]] = []

    def on_delta(self, t: float, delta: dict, text: str) -> None:
        b = self.b
        for marker in set(MARKER_RE.findall(text)):
            rec = b.records.get(marker)
            if rec is not None and rec.kind == "msg" and rec.t_arrive is None:
                rec.t_arrive, rec.admin = t, self.idx
        for state in delta.values():
            if not isinstance(state, dict):
                continue
            for key, value in state.items():
                name = var(key)
                if isinstance(value, list) and value and isinstance(value[0], dict):
                    if "preview" in value[0] and "id" in value[0]:
                        for row in value:  # inbox rows: learn which conversation is whose
                            if (m := MARKER_RE.search(str(row.get("preview", "")))) and m.group() in b.records:
                                b.conv_of[b.records[m.group()].shopper] = row["id"]
                    elif name == "messages" and self.pending_selects:
                        # The open chat: does it show the messages of a conversation being selected?
                        shown = {b.records[m].shopper for m in MARKER_RE.findall(json.dumps(value)) if m in b.records}
                        for pending in [p for p in self.pending_selects if p[0] in shown]:
                            self.pending_selects.remove(pending)
                            b.stats.select.append((pending[1], t - pending[1], b.steady(pending[1])))
                            pending[2].set()

    async def run(self, delay: float) -> None:
        b = self.b
        await b.sleep(delay, b.stop_sending)
        t0 = time.perf_counter()
        try:
            # The login form's post; its answer sets the HttpOnly session cookie,
            # which the conversations page's socket then sends with its handshake.
            async with self.session.post(f"{b.url}/api/admin/session", allow_redirects=False,
                                         data={"email": b.admin_email, "password": b.admin_password}) as resp:
                cookie = resp.cookies.get("chatdash_admin")
                if resp.status != 303 or cookie is None:
                    raise RuntimeError(f"login refused: {resp.status} {resp.headers.get('location')}")
            self.headers = {"Cookie": f"chatdash_admin={cookie.value}"}
            await self.connect()
            await self.hydrate()
            await asyncio.wait_for(self.hydrated.wait(), b.args.open_timeout)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            b.stats.errors[f"admin open: {type(exc).__name__}"] += 1
            return
        b.stats.admin_open.append(time.perf_counter() - t0)
        lo, hi = b.args.reply_every
        while not b.stop_sending.is_set() and (self.connected or self.reconnecting):
            await b.sleep(self.rng.uniform(lo, hi), b.stop_sending)
            if b.stop_sending.is_set():
                break
            if self.connected:
                await self.select_and_reply()

    async def select_and_reply(self) -> None:
        b = self.b
        choices = [(s, c) for s, c in b.conv_of.items() if c != self.selected and b.shoppers[s].ready]
        if not choices:
            return
        shopper, conv = self.rng.choice(sorted(choices))
        done = asyncio.Event()
        self.pending_selects.append((shopper, time.perf_counter(), done))
        await self.emit(b.names["select"], {"conversation_id": conv})
        try:
            await asyncio.wait_for(done.wait(), b.args.select_timeout)
        except TimeoutError:
            b.stats.select_slow += 1  # the admin gives up waiting and replies; the select is still timed
        self.selected = conv
        if b.stop_sending.is_set():
            return
        marker = b.new_marker("r")
        cid = uuid.uuid4().hex
        t = time.perf_counter()
        b.add(Sent(marker, "reply", shopper, t, b.steady(t), cid, admin=self.idx))
        await self.emit(b.names["send_reply"],
                        {"form_data": {"reply": f"{marker} {self.rng.choice(ANSWERS)}", "client_id": cid}})


# ----- the run --------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace, url: str, names: dict[str, str]) -> None:
        self.args = args
        self.url = url
        self.names = names
        self.admin_email = args.admin_email
        self.admin_password = args.admin_password
        self.records: dict[str, Sent] = {}
        self.by_cid: dict[str, Sent] = {}
        self.conv_of: dict[int, int] = {}  # shopper index -> conversation id
        self.stats = Stats()
        self.seq = 0
        self.t_steady = self.t_end = float("inf")
        self.stop_sending = asyncio.Event()
        self.stop_all = asyncio.Event()
        self.shoppers: list[Shopper] = []
        self.admins: list[Admin] = []
        self.t_kill: float | None = None
        self.acked_before_kill: set[str] = set()
        self.killed: dict = {}

    def steady(self, t: float) -> bool:
        return self.t_steady <= t < self.t_end

    def new_marker(self, kind: str) -> str:
        self.seq += 1
        return f"bm{RUN_ID}{kind}{self.seq:06d}"

    def add(self, rec: Sent) -> None:
        self.records[rec.marker] = rec
        self.by_cid[rec.client_id] = rec

    def acked(self, cid: str, t: float) -> None:
        if (rec := self.by_cid.get(cid)) is not None and rec.t_ack is None:
            rec.t_ack = t

    def refused(self, cid: str, reason: str) -> None:
        if (rec := self.by_cid.get(cid)) is not None:
            rec.refused = reason or "refused"

    @staticmethod
    async def sleep(seconds: float, stop: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, seconds))

    def outstanding(self) -> int:
        pending = sum(1 for r in self.records.values() if r.t_arrive is None and not r.refused)
        return pending + sum(len(a.pending_selects) for a in self.admins)

    async def _loop_lag(self) -> None:
        while not self.stop_all.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.05)
            self.stats.loop_lag.append(time.perf_counter() - t - 0.05)

    async def _freeze_heap(self) -> None:
        """The harness's own full garbage collections (1,000 clients' objects)
        would stop its loop for 200+ ms and show up as server latency: keep
        its survivors frozen, as the app does (chatdash/gc_tuning.py)."""
        while not self.stop_all.is_set():
            await self.sleep(10.0, self.stop_all)
            gc.collect(1)
            gc.freeze()

    async def _kill_worker(self, monitor: Monitor) -> None:
        """kill -9 the worker process holding the most established sockets, and
        remember which messages were acknowledged before it."""
        await self.sleep(self.t_steady + self.args.kill_worker_after - time.perf_counter(), self.stop_all)
        if self.stop_all.is_set():
            return
        port = urlsplit(self.url).port
        best, most = None, 0
        for proc in monitor._tree():
            try:
                n = sum(1 for c in proc.net_connections("tcp")
                        if c.status == "ESTABLISHED" and c.laddr and c.laddr.port == port)
            except monitor.psutil.Error:
                continue
            if n > most:
                best, most = proc, n
        if best is None:
            self.stats.errors["kill: no worker with sockets found"] += 1
            return
        self.t_kill = time.perf_counter()
        self.acked_before_kill = {r.marker for r in self.records.values() if r.kind == "msg" and r.t_ack is not None}
        os.kill(best.pid, signal.SIGKILL)
        self.killed = {"pid": best.pid, "sockets": most, "at_s": round(self.t_kill - self.t_steady, 1),
                       "acked_before": len(self.acked_before_kill)}
        print(f"killed worker {best.pid} (kill -9) holding {most} sockets, "
              f"{len(self.acked_before_kill)} messages acknowledged before it", flush=True)

    async def _sample(self, monitor: Monitor) -> None:
        while not self.stop_all.is_set():
            await self.sleep(1.0, self.stop_all)
            monitor.sample(steady=self.steady(time.perf_counter()))

    async def run(self, monitor: Monitor) -> float:
        import aiohttp

        args = self.args
        sessions: dict[str, aiohttp.ClientSession] = {}

        def session_for(ip: str) -> aiohttp.ClientSession:
            if ip not in sessions:
                sessions[ip] = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0, local_addr=(ip, 0)),
                    headers={"User-Agent": USER_AGENT}, timeout=aiohttp.ClientTimeout(total=60))
            return sessions[ip]

        self.admins = [Admin(self, j, session_for("127.0.0.1")) for j in range(args.admins)]
        self.shoppers = [Shopper(self, i, session_for(f"127.0.0.{2 + i % 253}")) for i in range(args.shoppers)]
        helpers = [asyncio.create_task(self._loop_lag()), asyncio.create_task(self._sample(monitor)),
                   asyncio.create_task(self._freeze_heap())]
        if args.kill_worker_after is not None:
            helpers.append(asyncio.create_task(self._kill_worker(monitor)))
        t0 = time.perf_counter()
        self.t_steady = t0 + args.ramp
        self.t_end = self.t_steady + args.duration
        step = args.ramp / max(1, args.shoppers)
        tasks = [asyncio.create_task(a.run(0.2 * j)) for j, a in enumerate(self.admins)]
        tasks += [asyncio.create_task(s.run(1.0 + i * step)) for i, s in enumerate(self.shoppers)]
        print(f"ramp: {args.shoppers} shoppers over {args.ramp:.0f} s, then {args.duration:.0f} s of steady load ...",
              flush=True)
        await self.sleep(self.t_end - time.perf_counter(), self.stop_all)
        self.stop_sending.set()
        t_grace = time.perf_counter()
        while self.outstanding() and time.perf_counter() - t_grace < args.grace:
            await asyncio.sleep(0.5)
        grace_used = time.perf_counter() - t_grace
        self.stats.select_unanswered = sum(len(a.pending_selects) for a in self.admins)
        self.stop_all.set()
        await asyncio.wait(tasks, timeout=30)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*(c.close() for c in [*self.admins, *self.shoppers]))
        for t in helpers:
            t.cancel()
        for s in sessions.values():
            await s.close()
        return grace_used


def db_checks(db_url: str, records: dict[str, Sent]) -> dict:
    """What the database holds of the bench's texts: copies stored twice, and
    shopper messages the server acknowledged but did not store."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT conversation_id, client_msg_id, body FROM message WHERE body LIKE :prefix"),
                {"prefix": f"bm{RUN_ID}%"}).all()
    finally:
        engine.dispose()
    by_marker = Counter(body[:MARKER_LEN] for _c, _id, body in rows if MARKER_RE.fullmatch(body[:MARKER_LEN]))
    by_client_id = Counter((c, cid) for c, cid, _b in rows)
    acked = [r for r in records.values() if r.kind == "msg" and r.t_ack is not None]
    return {
        "stored": sum(by_marker.values()),
        "duplicated_texts": sum(1 for n in by_marker.values() if n > 1),
        "extra_copies": sum(n - 1 for n in by_marker.values() if n > 1),
        "duplicated_client_ids": sum(1 for n in by_client_id.values() if n > 1),
        "acked_not_stored": sum(1 for r in acked if r.marker not in by_marker),
        "replies_not_stored": sum(1 for r in records.values() if r.kind == "reply" and r.marker not in by_marker),
    }


def app_commit(app_dir: Path) -> str:
    try:
        head = subprocess.run(["git", "-C", str(app_dir), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(app_dir), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def find_server_pid(url: str) -> int | None:
    import psutil

    port = urlsplit(url).port
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return conn.pid
    return None


def report(args, bench: Bench, monitor: Monitor, db: dict | None, meta: dict) -> dict:
    recs = list(bench.records.values())
    msgs = [r for r in recs if r.kind == "msg"]
    replies = [r for r in recs if r.kind == "reply"]
    st = bench.stats

    def lat(rs, attr="t_arrive"):
        return [getattr(r, attr) - r.t_emit for r in rs if r.steady and getattr(r, attr) is not None]

    result = {
        "bench": "live", **meta,
        "delivery": {**summary(lat(msgs)), "sent": len(msgs),
                     "lost": sum(1 for r in msgs if r.t_arrive is None and not r.refused),
                     "refused": sum(1 for r in msgs if r.refused),
                     "never_acked": sum(1 for r in msgs if r.t_ack is None and not r.refused)},
        "reply": {**summary(lat(replies)), "sent": len(replies),
                  "lost": sum(1 for r in replies if r.t_arrive is None)},
        "select": {**summary([d for _t, d, steady in st.select if steady]), "sent": len(st.select)
                   + st.select_unanswered, "slower_than_timeout": st.select_slow, "unanswered": st.select_unanswered},
        "ack": summary(lat(msgs, "t_ack")),
        "heartbeat": {**summary([d for d, steady in st.beat_latency if steady]), "status": dict(st.beats)},
        "widget_open": summary(st.widget_open),
        "admin_open": summary(st.admin_open),
        "duplicated": {"widget_lists": len(st.widget_dups), **({"db_" + k: v for k, v in db.items()} if db else {})},
        "resources": monitor.report(),
        "harness_loop_lag": summary(st.loop_lag),
        "deltas": {k: {"count": st.deltas[k], "mb": round(st.delta_bytes[k] / 2**20, 1)} for k in st.deltas},
        "errors": dict(st.errors),
        "unknown_scripts": dict(st.unknown_scripts),
    }
    refused_reasons = Counter(r.refused for r in msgs if r.refused)
    if refused_reasons:
        result["refused_reasons"] = dict(refused_reasons)
    if st.reconnects or bench.killed:
        before = [bench.records[m] for m in bench.acked_before_kill]
        result["reconnect"] = {**summary(st.reconnect_time), "by_kind": dict(st.reconnects)}
        result["kill"] = {**bench.killed,
                          "acked_before_not_on_admin_screen": sum(1 for r in before if r.t_arrive is None)}
    if bench.t_kill is not None:
        # Steady delivery before the kill and after it: what the kill cost, and what the run was without it.
        result["kill"]["delivery_before"] = summary(lat([r for r in msgs if r.t_emit < bench.t_kill]))
        result["kill"]["delivery_after"] = summary(lat([r for r in msgs if r.t_emit >= bench.t_kill]))
    # A message whose own text never reached an admin, but a later message of the same
    # shopper did: the inbox row shows a conversation's latest message, so two messages
    # that arrive together (an outbox re-sent after a reconnect) show only the second
    # until the conversation is opened. Stored (see the database check) and not lost;
    # told apart from messages nobody saw anything of.
    arrived_after: dict[int, float] = {}
    for r in msgs:
        if r.t_arrive is not None:
            arrived_after[r.shopper] = max(arrived_after.get(r.shopper, 0.0), r.t_emit)
    result["delivery"]["superseded"] = sum(
        1 for r in msgs if r.t_arrive is None and not r.refused and arrived_after.get(r.shopper, 0.0) > r.t_emit)

    w = 30
    print()
    print(f"chatdash live load — {meta['shoppers']} shoppers, {meta['admins']} admins, {meta['duration_s']:.0f} s "
          f"steady after a {meta['ramp_s']:.0f} s ramp; app {meta['app_dir']} @ {meta['app_commit']}; "
          f"{meta['cpus']} cores; {meta['date']}")
    print(f"{'':{w}} {'n':>6} {'p50':>9} {'p95':>9} {'p99':>9} {'max':>9}  lost / other")
    rows = [
        ("delivery (shopper -> admin)", result["delivery"],
         f"{result['delivery']['lost']} lost of {len(msgs)} ({result['delivery']['superseded']} of them superseded: "
         f"a later message of the shopper reached an admin), {result['delivery']['refused']} refused"),
        ("admin reply (admin -> shopper)", result["reply"], f"{result['reply']['lost']} lost of {len(replies)}"
         + (f" ({db['replies_not_stored']} never stored: still queued at the end)" if db and db["replies_not_stored"]
            else "")),
        ("admin selects a conversation", result["select"],
         f"{st.select_unanswered} unanswered of {result['select']['sent']}, "
         f"{st.select_slow} slower than {args.select_timeout:.0f} s"),
        ("shopper send -> ack", result["ack"], f"{result['delivery']['never_acked']} never acked"),
        ("presence heartbeat POST", result["heartbeat"],
         ", ".join(f"{k}: {v}" for k, v in sorted(st.beats.items()))),
        ("widget open (connect -> token)", result["widget_open"], ""),
        ("admin open (login + page)", result["admin_open"], ""),
    ]
    for label, s, extra in rows:
        print(f"{label:{w}} {s['n']:>6} " + " ".join(f"{fmt_ms(None if s[k] is None else s[k] / 1000):>9}"
                                                     for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")) + f"  {extra}")
    if "kill" in result:
        k = result["kill"]
        print(f"kill -9 of worker {k.get('pid')} at {k.get('at_s')} s into the steady part, holding "
              f"{k.get('sockets')} sockets: {k.get('acked_before', 0)} messages acknowledged before it, "
              f"{k['acked_before_not_on_admin_screen']} of them never on an admin screen; sockets reconnected "
              f"{dict(st.reconnects)}, drop -> page loaded again p50 {fmt_ms(percentile(st.reconnect_time, 50))} "
              f"p99 {fmt_ms(percentile(st.reconnect_time, 99))}")
        for when in ("before", "after"):
            d = k[f"delivery_{when}"]
            if d["n"]:
                print(f"  delivery of messages sent {when} the kill: n {d['n']}, p50 {fmt_ms(d['p50_ms'] / 1000)}, "
                      f"p99 {fmt_ms(d['p99_ms'] / 1000)}")
    dup = result["duplicated"]
    print(f"duplicated: {dup['widget_lists']} texts shown twice in a widget list"
          + (f"; database: {dup['db_duplicated_texts']} texts stored twice ({dup['db_extra_copies']} extra copies), "
             f"{dup['db_duplicated_client_ids']} repeated client ids, {dup['db_acked_not_stored']} acked but not "
             f"stored, {dup['db_stored']} bench texts stored" if db else "; database not checked (no --db-url)"))
    res = result["resources"]
    if res:
        print(f"server: CPU mean {res['server_cpu_mean_pct']}% / max {res['server_cpu_max_pct']}% of one core, "
              f"RSS max {res['server_rss_max_mb']:.0f} MB (end {res['server_rss_end_mb']:.0f} MB)")
        print(f"harness: CPU mean {res['harness_cpu_mean_pct']}% / max {res['harness_cpu_max_pct']}% of one core; "
              f"event-loop lag p99 {fmt_ms(percentile(st.loop_lag, 99))}")
        print(f"machine: CPU mean {res['machine_cpu_mean_pct']}% of all {meta['cpus']} cores, load average (1 min) "
              f"{res['load1_min']}-{res['load1_max']} during the steady part")
    for k, v in result["deltas"].items():
        print(f"deltas received by {k}s: {v['count']} ({v['mb']} MB)")
    if st.errors:
        print("errors: " + "; ".join(f"{k} x{v}" for k, v in st.errors.most_common()))
    if st.unknown_scripts:
        print("unanswered call_script: " + "; ".join(f"{k!r} x{v}" for k, v in st.unknown_scripts.most_common(5)))
    if refused_reasons:
        print("refused: " + "; ".join(f"{k} x{v}" for k, v in refused_reasons.most_common()))
    print("JSON " + json.dumps(result, separators=(",", ":")))
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shoppers", type=int, default=100)
    p.add_argument("--admins", type=int, default=3)
    p.add_argument("--duration", type=float, default=60, help="seconds of steady load after the ramp")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running app (loopback only), e.g. http://127.0.0.1:3000")
    where.add_argument("--start", action="store_true", help="build and start the app in --app-dir")
    p.add_argument("--app-dir", type=Path, default=BENCH_ROOT,
                   help="the checkout to start and whose state classes name the handlers (default: this one)")
    p.add_argument("--web-dir", type=Path, help="Reflex build folder for --start (default: <app-dir>/.web-bench)")
    p.add_argument("--db-url", help="with --url: the app's database, for the duplicate check at the end")
    p.add_argument("--server-pid", type=int, help="with --url: the server process to sample (default: the listener)")
    p.add_argument("--admin-email", help="default: the test admin of tests/live_app.py")
    p.add_argument("--admin-password")
    p.add_argument("--ramp", type=float, help="seconds over which shoppers connect (default: shoppers/20, 5-60)")
    p.add_argument("--grace", type=float, default=30, help="seconds to wait for stragglers after the run")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--message-every", type=float, nargs=2, default=(20.0, 30.0), metavar=("MIN", "MAX"))
    p.add_argument("--reply-every", type=float, nargs=2, default=(5.0, 10.0), metavar=("MIN", "MAX"))
    p.add_argument("--beat-every", type=float, default=15.0)
    p.add_argument("--select-timeout", type=float, default=60.0)
    p.add_argument("--open-timeout", type=float, default=60.0)
    p.add_argument("--reconnect", action="store_true",
                   help="clients whose socket drops connect again and reload, as the pages do (chat.js resends "
                        "its outbox); without it a drop is counted as an error")
    p.add_argument("--kill-worker-after", type=float, default=None, metavar="S",
                   help="S seconds into the steady part, kill -9 the server worker holding the most sockets "
                        "(needs several workers and --reconnect)")
    p.add_argument("--keep", action="store_true", help="keep the --start temporary directory (database, log)")
    args = p.parse_args(argv)
    if args.ramp is None:
        args.ramp = min(60.0, max(5.0, args.shoppers / 20))
    for name, value, low, top in (("shoppers", args.shoppers, 1, MAX_SHOPPERS), ("admins", args.admins, 1, MAX_ADMINS),
                                  ("duration", args.duration, 1, MAX_DURATION), ("ramp", args.ramp, 0, MAX_RAMP),
                                  ("grace", args.grace, 0, MAX_GRACE)):
        if not low <= value <= top:
            p.error(f"--{name} must be between {low} and {top}")
    if args.message_every[0] < 5 or args.reply_every[0] < 1 or args.beat_every < 5:
        p.error("--message-every min >= 5 s, --reply-every min >= 1 s, --beat-every >= 5 s")
    args.app_dir = args.app_dir.resolve()
    args.web_dir = (args.web_dir or args.app_dir / ".web-bench").resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The checkout under test comes first: its state classes give the event names.
    sys.path[:0] = [str(args.app_dir), str(BENCH_ROOT)]
    # The harness imports the app's modules only for names; a key here keeps them
    # from writing <app-dir>/data/secret.key. --start gives the server the same ones.
    os.environ.setdefault("CHATDASH_SECRET_KEY", secrets.token_urlsafe(32))
    os.environ.setdefault("CHATDASH_STORE_SECRET", secrets.token_urlsafe(32))
    from tests.live_app import ADMIN_EMAIL, ADMIN_PASSWORD

    args.admin_email = args.admin_email or ADMIN_EMAIL
    args.admin_password = args.admin_password or ADMIN_PASSWORD
    names = resolve_names()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # sockets: the started server inherits it too
    need = 2 * (args.shoppers + args.admins) + 200
    if hard < need:
        raise SystemExit(f"open-file limit {hard} is below the {need} this run needs")

    app = tmp = None
    try:
        if args.start:
            tmp = Path(tempfile.mkdtemp(prefix="chatdash-bench-"))
            app = start_app(args.app_dir, args.web_dir, tmp)
            # The process serving the port (the `reflex run` CLI above it only waits).
            url, db_url = app.backend, app.db_url
            server_pid = find_server_pid(url) or app.process.pid
        else:
            url, db_url = check_loopback(args.url), args.db_url
            server_pid = args.server_pid or find_server_pid(url)
        print(f"handlers: select={names['select']}\n          send_reply={names['send_reply']}", flush=True)
        monitor = Monitor(server_pid)
        load_before = os.getloadavg()

        async def go() -> tuple[Bench, float]:
            bench = Bench(args, url, names)
            limit = args.ramp + args.duration + args.grace + 120
            grace_used = await asyncio.wait_for(bench.run(monitor), limit)
            return bench, grace_used

        bench, grace_used = asyncio.run(go())
        db = db_checks(db_url, bench.records) if db_url else None
        meta = {
            "shoppers": args.shoppers, "admins": args.admins, "duration_s": args.duration, "ramp_s": args.ramp,
            "grace_used_s": round(grace_used, 1), "seed": args.seed, "run_id": RUN_ID, "app_dir": str(args.app_dir),
            "app_commit": app_commit(args.app_dir), "started": bool(args.start),
            "select_handler": names["select"].rsplit(".", 2)[-2] + "." + names["select"].rsplit(".", 1)[-1],
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
        result = report(args, bench, monitor, db, meta)
        if app is not None and app.process.poll() is not None:
            print(f"the server exited during the run:\n{app.log_path.read_text()[-3000:]}")
            return 1
        return 0 if not result["errors"] else 1
    finally:
        if app is not None:
            app.stop()
        if tmp is not None and args.keep:
            print(f"kept {tmp}")
        elif tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
