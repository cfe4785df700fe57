"""Start chatdash as several worker processes on the real PostgreSQL and Redis,
the way README's "Scale out" section runs them behind a proxy: each worker a
`reflex run --env prod --backend-only` (event socket and HTTP API) on its own
port, all sharing one database schema and one Redis database.

The tests reach each worker on its own port, so they choose which worker a
client talks to (a proxy would choose in production) and can kill one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from sqlalchemy import text

from chatdash.db import make_engine
from tests.live_app import ADMIN_EMAIL, ADMIN_PASSWORD, ROOT, free_port
from tests.waiting import wait_until

PG_URL = os.environ.get("CHATDASH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
# A Redis database of their own: the workers' stream, leader lock and client
# states never meet another test's keys on db 0.
REDIS_URL = os.environ.get("CHATDASH_TEST_SCALE_REDIS_URL", "redis://127.0.0.1:6379/7")


@dataclass
class Worker:
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the worker's whole process tree (CLI, server and its worker) at once."""
        os.killpg(self.process.pid, sig)
        self.process.wait(30)


@dataclass
class Cluster:
    db_url: str
    schema: str
    env: dict[str, str]
    workdir: Path
    workers: list[Worker] = field(default_factory=list)

    def start_worker(self, processes: int = 1) -> Worker:
        """One `reflex run --env prod --backend-only` on its own port, started the way
        `./dev serve` starts it (chatdash.serve: a dead worker process is respawned),
        with `processes` granian worker processes behind that port."""
        port, n = free_port(), len(self.workers)
        log_path = self.workdir / f"worker-{n}.log"
        # Each worker its own model directory, as on separate machines: models
        # reach it through the database.
        # The socket accepts pages of the public and API addresses: the tests'
        # clients come to each worker's own (behind a proxy both are the proxy's).
        env = {
            **self.env,
            "CHATDASH_MODEL_DIR": str(self.workdir / f"models-{n}"),
            "CHATDASH_API_URL": f"http://127.0.0.1:{port}",
            "GRANIAN_WORKERS": str(processes),
        }
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chatdash.serve",
                    "--env",
                    "prod",
                    "--backend-only",
                    "--backend-host",
                    "127.0.0.1",
                    "--backend-port",
                    str(port),
                    "--loglevel",
                    "info",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(port, proc, log_path)
        self.workers.append(worker)
        return worker

    def wait_up(self, worker: Worker, timeout: float = 180) -> None:
        def healthy() -> bool:
            if not worker.alive():
                raise RuntimeError(f"worker exited:\n{worker.log_path.read_text()[-4000:]}")
            try:
                return httpx.get(f"{worker.url}/api/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=timeout, every=0.3,
                   what=lambda: f"worker up:\n{worker.log_path.read_text()[-4000:]}")

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(REDIS_URL)

    def stop(self) -> None:
        for worker in self.workers:
            if worker.alive():
                try:
                    worker.kill(signal.SIGTERM)
                except subprocess.TimeoutExpired:
                    worker.kill(signal.SIGKILL)
        admin = make_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        admin.dispose()


def start_cluster(workdir: Path, workers: int = 2, extra_env: dict[str, str] | None = None) -> Cluster:
    """A fresh schema on the real PostgreSQL with the small demo store, and
    `workers` workers sharing it and the real Redis."""
    schema = f"scale_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    sep = "&" if "?" in PG_URL else "?"
    db_url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": REDIS_URL,
        "REFLEX_BACKEND_ONLY": "1",
        "GRANIAN_WORKERS": "1",
        "CHATDASH_ADMIN_EMAIL": ADMIN_EMAIL,
        "CHATDASH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CHATDASH_PUBLIC_URL": "http://localhost:3000",
        "CHATDASH_API_URL": "http://localhost:3000",
        "CHATDASH_MODEL_DIR": str(workdir / "models"),  # the setup command's; workers get their own
        "REFLEX_WEB_WORKDIR": str(workdir / "web"),
        "REFLEX_STATES_WORKDIR": str(workdir / "states"),
        "DEMO_STORE_DATA_DIR": str(workdir / "demo_store"),
        "REFLEX_TELEMETRY_ENABLED": "false",
        # Every test client comes from 127.0.0.1.
        "CHATDASH_NEW_VISITORS_PER_IP": "100000",
        "CHATDASH_NEW_CONVERSATIONS_PER_IP": "100000",
        "CHATDASH_RETRAIN_BUDGET_SECONDS": "4",  # Settings → Recommendations' Retrain tunes briefly
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        **(extra_env or {}),
    }
    subprocess.run(
        [sys.executable, "-m", "chatdash.cli", "setup", "--small-demo"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    cluster = Cluster(db_url, schema, env, workdir)
    try:
        started = [cluster.start_worker() for _ in range(workers)]
        for worker in started:
            cluster.wait_up(worker)
    except BaseException:
        cluster.stop()
        raise
    return cluster
