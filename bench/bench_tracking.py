"""Sustained throughput of POST /api/track: the API app under a real ASGI server
(granian) on a temporary SQLite file and on a temporary schema of the local
PostgreSQL, driven over loopback by concurrent keep-alive HTTP clients sending batches of
browser events from many visitors.

python bench/bench_tracking.py [--database sqlite|postgresql|both] [--workers 1] [--clients 8]
       [--requests 3000] [--seconds 60] [--batch 20] [--visitors 2000] [--retries 0.05]
python bench/bench_tracking.py --stages [--database ...] [--requests N] [--flush 32]

SQLite stores each batch in its own transaction; PostgreSQL goes through the
ingestion queue (chatdash/services/tracking/ingest.py), which stores the
batches that arrive within a few milliseconds together. At the end the stored
rows are counted: events stored must equal events accepted (0 lost), no
(shopper, event id) may be stored twice, and every event of a batch sent again
after its 200 (`--retries`, as a widget that lost the answer does) must come
back a duplicate.

Each batch is what the widget sends: 20 events of one visitor (a page view,
product views, cart changes and now and then an order). Visitors are many, so
the per-visitor rate limit never bites; each client connects from its own
loopback address (127.0.0.x) to stay under the per-address limit, as shoppers
of a real store would. Prints events/s and requests/s sustained, latency
percentiles, and the CPU per event of the server's processes and (PostgreSQL)
of the database backends serving it - the figures the machine's load inflates
least. Any non-200 answer is counted and printed.

`--stages` leaves HTTP out and prints, in this process, the CPU per event of
decoding the JSON, validating the events and storing them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatdash.api.track import IP_LIMIT
from chatdash.db import make_engine, migrate, session_scope
from chatdash.models import Product
from chatdash.services import identity

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key"  # noqa: S105 - signs the bench's own visitor tokens
STORE = "https://shop.bench"
N_PRODUCTS = 500


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_database(url: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    with session_scope(engine) as s:
        s.add_all(Product(sku=f"SKU-{i:04d}", name=f"Product {i}", category="Bench", price_cents=500 + i,
                          url=f"{STORE}/p/SKU-{i:04d}") for i in range(N_PRODUCTS))
    engine.dispose()


PG_URL = os.environ.get("CHATDASH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def database(kind: str, tmp: Path):
    """A new database of `kind`: its URL, for the run."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    from sqlalchemy import text

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def stored_events(url: str) -> tuple[int, int]:
    """Event rows stored, and distinct (shopper, event id) pairs among them."""
    from sqlalchemy import text

    engine = make_engine(url)
    with engine.connect() as conn:
        rows, distinct = conn.execute(text(
            "SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT shopper_id, event_id FROM storeevent) d) "
            "FROM storeevent")).one()
    engine.dispose()
    return rows, distinct


def server_cpu(pid: int) -> float:
    """CPU seconds used so far by the server and its worker processes."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def start_server(url: str, port: int, log_path: Path, workers: int = 1) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "CHATDASH_SECRET_KEY": SECRET,
           "CHATDASH_STORE_SECRET": "bench-store-secret", "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)  # in-memory rate limits: one box, one worker
    env.pop("CHATDASH_ALLOWED_ORIGINS", None)
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning", "chatdash.api.routes:api"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"granian exited:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("granian did not come up")


def make_batch(rng: random.Random, size: int) -> list[dict]:
    """One visitor's batch: a page view, then mostly product views, some cart
    changes, and an order in one batch of ten."""
    now = datetime.now(UTC).isoformat()
    events: list[dict] = []
    cart: dict[str, int] = {}
    for i in range(size):
        sku = f"SKU-{rng.randrange(N_PRODUCTS):04d}"
        base = {"id": uuid.uuid4().hex, "at": now, "url": f"{STORE}/p/{sku}", "title": f"Product {sku}"}
        if i == 0:
            events.append({**base, "kind": "page_view", "data": {"referrer": f"{STORE}/"}})
        elif i % 6 == 5:
            cart[sku] = cart.get(sku, 0) + 1
            items = [{"sku": s, "quantity": q, "price": 12.5} for s, q in cart.items()]
            events.append({**base, "kind": "cart", "data": {"action": "add", "sku": sku, "items": items,
                                                            "total": 12.5 * sum(cart.values()),
                                                            "currency": "USD"}})
        elif i == size - 1 and cart and rng.random() < 0.1:
            items = [{"sku": s, "quantity": q, "price": 12.5} for s, q in cart.items()]
            events.append({**base, "kind": "order", "data": {"order_id": f"B-{uuid.uuid4().hex[:10]}",
                                                             "items": items, "total": 12.5 * sum(cart.values()),
                                                             "currency": "USD"}})
        else:
            events.append({**base, "kind": "product_view", "data": {"sku": sku}})
    return events


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    accepted: int = 0  # events the server said it stored
    duplicates: int = 0  # events the server said it had already
    retried: int = 0  # events sent again after a 200 (each must come back a duplicate)
    elapsed: float = 0.0
    client_cpu: float = 0.0  # this process's CPU while sending (the load generator's share of the box)
    warmed: int = 0  # events stored by the warm-up, before the measured part


class _Connection:
    """A keep-alive HTTP/1.1 connection that POSTs ready-made JSON bodies and
    reads the answers: what a browser's fetch puts on the wire, at a small
    fraction of a general client's CPU (httpx spent about as much CPU per
    request as the server, on the same two cores)."""

    def __init__(self, host: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.host, self.port, self.reader, self.writer = host, port, reader, writer

    @classmethod
    async def open(cls, base_url: str, local_address: str) -> _Connection:
        host, port = base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port), local_addr=(local_address, 0))
        return cls(host, int(port), reader, writer)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:"))
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def drive(base_url: str, args: argparse.Namespace, measure_from=None) -> Outcome:
    tokens = [identity.issue_visitor_token(SECRET) for _ in range(args.visitors)]
    rng = random.Random(7)
    # Encoded ahead so the clients' CPU goes to sending, not to JSON building.
    bodies = [json.dumps({"visitor": rng.choice(tokens), "events": make_batch(rng, args.batch)}).encode()
              for _ in range(args.requests)]
    out = Outcome()
    next_index = 0
    deadline = 0.0

    # Each client spreads its requests over enough loopback addresses to stay
    # under the per-address limit (IP_LIMIT requests a minute).
    per_address = IP_LIMIT[0] * 3 // 4
    addresses = max(1, -(-args.requests // (args.clients * per_address)))

    async def client(n: int) -> None:
        nonlocal next_index
        crng = random.Random(n)
        conns = [await _Connection.open(base_url, f"127.0.{n + 1}.{k + 10}") for k in range(addresses)]
        try:
            sent = 0
            last_ok: bytes | None = None
            while next_index < len(bodies) and time.perf_counter() < deadline:
                # Now and then a batch already stored comes again (a widget that
                # lost the answer): every one of its events must be a duplicate.
                retry = last_ok is not None and crng.random() < args.retries
                if retry:
                    body, last_ok = last_ok, None
                else:
                    body = bodies[next_index]
                    next_index += 1
                t0 = time.perf_counter()
                status, answer_body = await conns[sent % addresses].post("/api/track", body)
                sent += 1
                out.latencies.append(time.perf_counter() - t0)
                out.statuses[status] += 1
                if status == 200:
                    answer = json.loads(answer_body)
                    out.accepted += answer["accepted"]
                    out.duplicates += answer["duplicates"]
                    if retry:
                        out.retried += args.batch
                    else:
                        last_ok = body
                elif out.statuses[status] == 1:
                    print(f"  first {status}: {answer_body[:300]!r}")
        finally:
            for conn in conns:
                conn.close()

    # Warm up (imports, connections, SQLite caches), not measured.
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        warm = identity.issue_visitor_token(SECRET)
        for _ in range(5 * args.workers):
            r = await http.post("/api/track", json={"visitor": warm, "events": make_batch(rng, args.batch)})
            out.warmed += r.json()["accepted"]
    if measure_from is not None:
        measure_from()
    start, cpu0 = time.perf_counter(), time.process_time()
    deadline = start + args.seconds
    await asyncio.gather(*(client(n) for n in range(args.clients)))
    out.elapsed = time.perf_counter() - start
    out.client_cpu = time.process_time() - cpu0
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def database_cpu(app_name: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving the bench's server
    (its connections carry `app_name`); other users of the server are not counted."""
    import psutil
    from sqlalchemy import text

    engine = make_engine(PG_URL)
    with engine.connect() as conn:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"),
                            {"n": app_name}).scalars().all()
    engine.dispose()
    out = {}
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            out[pid] = sum(psutil.Process(pid).cpu_times()[:2])
    return out


def database_commits(url: str) -> int:
    """Transactions committed so far in the bench's database (every user's: the
    machine should be otherwise quiet), to tell how many batches a flush held."""
    from sqlalchemy import text

    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")).scalar()
    engine.dispose()
    return int(n)


def run(kind: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as url:
        prepare_database(url)
        app_name = f"bench_track_{uuid.uuid4().hex[:8]}"
        server_url = url if kind == "sqlite" else f"{url}&application_name={app_name}"
        port = free_port()
        server = start_server(server_url, port, Path(tmp) / "granian.log", args.workers)
        before: dict[str, object] = {}

        def measure_from() -> None:
            before["server"] = server_cpu(server.pid)
            before["database"] = database_cpu(app_name) if kind == "postgresql" else {}
            before["commits"] = database_commits(url) if kind == "postgresql" else 0

        try:
            out = asyncio.run(drive(f"http://127.0.0.1:{port}", args, measure_from))
            cpu = server_cpu(server.pid) - before["server"]
            db_after = database_cpu(app_name) if kind == "postgresql" else {}
            db_cpu = sum(t - before["database"].get(pid, 0.0) for pid, t in db_after.items())
            commits = database_commits(url) - before["commits"] if kind == "postgresql" else 0
            load = os.getloadavg()
        finally:
            server.terminate()
            server.wait(timeout=20)
        stored, distinct = stored_events(url)
        server_log = (Path(tmp) / "granian.log").read_text(errors="replace")
        failed_flushes = server_log.count("storing them one by one")
        stored -= out.warmed
        distinct -= out.warmed
        size_mb = sum(p.stat().st_size for p in Path(tmp).glob("bench.db*")) / 1e6

    done = sum(out.statuses.values())
    accepted, elapsed, latencies = out.accepted, out.elapsed, out.latencies
    name = {"sqlite": "SQLite", "postgresql": "PostgreSQL (ingestion queue)"}[kind]
    print(f"POST /api/track, granian {args.workers} worker(s), {name}; {args.clients} clients, batches of "
          f"{args.batch} events from {args.visitors} visitors")
    print(f"  machine      {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end")
    print(f"  requests     {done:,} in {elapsed:.1f} s  ({dict(out.statuses)})")
    print(f"  events       {accepted:,} accepted, {stored:,} stored, lost {accepted - stored:,}, "
          f"stored twice {stored - distinct:,}; {out.retried:,} sent again after a 200, "
          f"{out.duplicates:,} answered as duplicates"
          + (f"  (database {size_mb:.1f} MB)" if kind == "sqlite" else ""))
    print(f"  throughput   {accepted / elapsed:,.0f} events/s   {done / elapsed:,.1f} requests/s")
    # What the machine's load cannot hide: the server's own CPU per event.
    print(f"  server CPU   {cpu:.1f} s, {cpu / max(accepted, 1) * 1e6:.0f} us per event "
          f"(= {accepted / max(cpu, 1e-9):,.0f} events/s per busy core)"
          + (f"; PostgreSQL backends {db_cpu:.1f} s, {db_cpu / max(accepted, 1) * 1e6:.0f} us per event"
             if kind == "postgresql" else ""))
    print(f"  client CPU   {out.client_cpu:.1f} s ({out.client_cpu / elapsed:.0%} of a core: the load generator)"
          + (f"; {commits:,} transactions committed in the database, "
             f"{done / max(commits, 1):.1f} requests per transaction" if kind == "postgresql" else ""))
    if failed_flushes:
        print(f"  server log   {failed_flushes:,} flushes failed and were stored batch by batch")
    print(f"  latency      p50 {pct(latencies, 50) * 1000:.1f} ms   p95 {pct(latencies, 95) * 1000:.1f} ms   "
          f"p99 {pct(latencies, 99) * 1000:.1f} ms   max {max(latencies) * 1000:.1f} ms")


def stages(args: argparse.Namespace) -> None:
    """Where a batch's CPU goes, without HTTP: decoding the body, validating the
    events, storing them (one flush of `--flush` batches on PostgreSQL, one
    transaction per batch on SQLite). Thread CPU time, so the machine's load
    inflates it less than wall time; PostgreSQL's own CPU (its backend process)
    is counted apart."""
    import psutil
    from sqlalchemy import text
    from sqlmodel import Session

    from chatdash.services import store_activity, tracking
    from chatdash.services.tracking.batched import Batch, store_batches

    rng = random.Random(7)
    tokens = [uuid.uuid4().hex[:24] for _ in range(args.visitors)]
    n = args.requests
    bodies = [json.dumps({"visitor": "x", "events": make_batch(rng, args.batch)}).encode() for _ in range(n)]
    events = n * args.batch
    print(f"in process: {n:,} batches of {args.batch} events ({events:,} events), "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")

    t0 = time.thread_time()
    decoded = [json.loads(b) for b in bodies]
    t1 = time.thread_time()
    parsed = [tracking.parse_events(d["events"]) for d in decoded]
    t2 = time.thread_time()
    print(f"  decode JSON     {(t1 - t0) / events * 1e6:6.1f} us per event")
    print(f"  validate        {(t2 - t1) / events * 1e6:6.1f} us per event")

    for kind in (["sqlite", "postgresql"] if args.database == "both" else [args.database]):
        with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as url:
            prepare_database(url)
            engine = make_engine(url)
            visitors = [tokens[i % len(tokens)] for i in range(n)]
            if kind == "sqlite":
                t0 = time.thread_time()
                for v, evs in zip(visitors, parsed, strict=True):
                    store_activity.store_batch(v, evs, "bench", engine=engine)
                cpu = time.thread_time() - t0
                print(f"  store SQLite    {cpu / events * 1e6:6.1f} us per event (one transaction per batch)")
            else:
                with engine.connect() as conn:
                    backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                    pg = psutil.Process(backend)
                    pg_before = sum(pg.cpu_times()[:2])
                    t0 = time.thread_time()
                    for start in range(0, n, args.flush):
                        chunk, seen = [], set()
                        for v, evs in zip(visitors[start:start + args.flush], parsed[start:start + args.flush],
                                          strict=True):
                            if v not in seen:
                                seen.add(v)
                                chunk.append(Batch(v, evs, "bench"))
                        with Session(bind=conn) as session:
                            store_batches(session, chunk, window_seconds=60)
                            session.commit()
                    cpu = time.thread_time() - t0
                    pg_cpu = sum(pg.cpu_times()[:2]) - pg_before
                print(f"  store PostgreSQL {cpu / events * 1e6:5.1f} us per event in flushes of {args.flush} batches "
                      f"(+ {pg_cpu / events * 1e6:.1f} us in PostgreSQL's backend)")
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--workers", type=int, default=1, help="granian worker processes")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument("--requests", type=int, default=3000, help="batches to send at most")
    parser.add_argument("--seconds", type=float, default=60, help="stop sending after this long")
    parser.add_argument("--batch", type=int, default=20, help="events per batch (the widget sends 20)")
    parser.add_argument("--visitors", type=int, default=2000, help="distinct visitors the batches come from")
    parser.add_argument("--retries", type=float, default=0.05,
                        help="share of requests that send a stored batch again (must come back duplicates)")
    parser.add_argument("--stages", action="store_true",
                        help="no HTTP: CPU per event of decoding, validating and storing, in this process")
    parser.add_argument("--flush", type=int, default=32, help="batches per PostgreSQL flush (--stages)")
    args = parser.parse_args()
    if args.stages:
        stages(args)
        return
    for kind in (["sqlite", "postgresql"] if args.database == "both" else [args.database]):
        run(kind, args)


if __name__ == "__main__":
    main()
