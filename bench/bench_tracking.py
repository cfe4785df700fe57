"""Sustained throughput of POST /api/track: the API app under a real ASGI server
(granian) on a temporary SQLite file and on a temporary schema of the local
PostgreSQL, driven over loopback by concurrent httpx clients sending batches of
browser events from many visitors.

python bench/bench_tracking.py [--database sqlite|postgresql|both] [--workers 1] [--clients 8]
       [--requests 3000] [--seconds 60] [--batch 20] [--visitors 2000]

SQLite stores each batch in its own transaction; PostgreSQL goes through the
ingestion queue (chatdash/services/tracking/ingest.py), which stores the
batches that arrive within a few milliseconds together. At the end the stored
rows are counted: events stored must equal events accepted (0 lost, and the
unique (shopper, event id) constraint allows no duplicate).

Each batch is what the widget sends: 20 events of one visitor (a page view,
product views, cart changes and now and then an order). Visitors are many, so
the per-visitor rate limit never bites; each client connects from its own
loopback address (127.0.0.x) to stay under the per-address limit, as shoppers
of a real store would. Prints events/s and requests/s sustained, and latency
percentiles; any non-200 answer is counted and printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


def stored_events(url: str) -> int:
    from sqlalchemy import func, select

    from chatdash.models import StoreEvent

    engine = make_engine(url)
    with session_scope(engine) as s:
        count = s.execute(select(func.count()).select_from(StoreEvent)).scalar_one()
    engine.dispose()
    return count


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


async def drive(base_url: str, args: argparse.Namespace) -> tuple[list[float], Counter, int, float, int]:
    tokens = [identity.issue_visitor_token(SECRET) for _ in range(args.visitors)]
    rng = random.Random(7)
    # Built ahead so the clients measure the server, not JSON building.
    bodies = [{"visitor": rng.choice(tokens), "events": make_batch(rng, args.batch)}
              for _ in range(args.requests)]
    latencies: list[float] = []
    statuses: Counter = Counter()
    accepted = 0
    next_index = 0
    deadline = 0.0

    # Each client spreads its requests over enough loopback addresses to stay
    # under the per-address limit (IP_LIMIT requests a minute).
    per_address = IP_LIMIT[0] * 3 // 4
    addresses = max(1, -(-args.requests // (args.clients * per_address)))

    async def client(n: int) -> None:
        nonlocal next_index, accepted
        async with contextlib.AsyncExitStack() as stack:
            https = [await stack.enter_async_context(httpx.AsyncClient(
                base_url=base_url, timeout=30,
                transport=httpx.AsyncHTTPTransport(local_address=f"127.0.{n + 1}.{k + 10}")))
                for k in range(addresses)]
            sent = 0
            while next_index < len(bodies) and time.perf_counter() < deadline:
                body = bodies[next_index]
                next_index += 1
                t0 = time.perf_counter()
                r = await https[sent % addresses].post("/api/track", json=body)
                sent += 1
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    accepted += r.json()["accepted"]
                elif statuses[r.status_code] == 1:
                    print(f"  first {r.status_code}: {r.text[:300]}")

    # Warm up (imports, connections, SQLite caches), not measured.
    warmed = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        warm = identity.issue_visitor_token(SECRET)
        for _ in range(5 * args.workers):
            r = await http.post("/api/track", json={"visitor": warm, "events": make_batch(rng, args.batch)})
            warmed += r.json()["accepted"]
    start = time.perf_counter()
    deadline = start + args.seconds
    await asyncio.gather(*(client(n) for n in range(args.clients)))
    return latencies, statuses, accepted, time.perf_counter() - start, warmed


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run(kind: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as url:
        prepare_database(url)
        port = free_port()
        server = start_server(url, port, Path(tmp) / "granian.log", args.workers)
        try:
            cpu_before = server_cpu(server.pid)
            latencies, statuses, accepted, elapsed, warmed = asyncio.run(drive(f"http://127.0.0.1:{port}", args))
            cpu = server_cpu(server.pid) - cpu_before
        finally:
            server.terminate()
            server.wait(timeout=20)
        stored = stored_events(url) - warmed
        size_mb = sum(p.stat().st_size for p in Path(tmp).glob("bench.db*")) / 1e6

    done = sum(statuses.values())
    name = {"sqlite": "SQLite", "postgresql": "PostgreSQL (ingestion queue)"}[kind]
    print(f"POST /api/track, granian {args.workers} worker(s), {name}; {args.clients} clients, batches of "
          f"{args.batch} events from {args.visitors} visitors")
    print(f"  machine      {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"  requests     {done:,} in {elapsed:.1f} s  ({dict(statuses)})")
    print(f"  events       {accepted:,} accepted, {stored:,} stored, lost {accepted - stored:,}"
          + (f"  (database {size_mb:.1f} MB)" if kind == "sqlite" else ""))
    print(f"  throughput   {accepted / elapsed:,.0f} events/s   {done / elapsed:,.1f} requests/s")
    # What the machine's load cannot hide: the server's own CPU per event (the
    # database server's processes not included).
    print(f"  server CPU   {cpu:.1f} s, {cpu / max(accepted, 1) * 1e6:.0f} us per event "
          f"(= {accepted / max(cpu, 1e-9):,.0f} events/s per busy core)")
    print(f"  latency      p50 {pct(latencies, 50) * 1000:.1f} ms   p95 {pct(latencies, 95) * 1000:.1f} ms   "
          f"p99 {pct(latencies, 99) * 1000:.1f} ms   max {max(latencies) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--workers", type=int, default=1, help="granian worker processes")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument("--requests", type=int, default=3000, help="batches to send at most")
    parser.add_argument("--seconds", type=float, default=60, help="stop sending after this long")
    parser.add_argument("--batch", type=int, default=20, help="events per batch (the widget sends 20)")
    parser.add_argument("--visitors", type=int, default=2000, help="distinct visitors the batches come from")
    args = parser.parse_args()
    for kind in (["sqlite", "postgresql"] if args.database == "both" else [args.database]):
        run(kind, args)


if __name__ == "__main__":
    main()
