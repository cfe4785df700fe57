"""The HTTP API app served by granian (the server `reflex run --env prod`
uses) on a free loopback port: lighter than a full production build, for tests
that need real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.live_app import ROOT, free_port
from tests.waiting import wait_until


@contextmanager
def serve_api(workdir: Path, env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """Yields (host, port) once /api/health answers; stops the server after."""
    port = free_port()
    log_path = workdir / "granian.log"
    full_env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir / 'api.db'}", **(env or {})}
    full_env.pop("REDIS_URL", None)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--log-level", "warning", "chatdash.api.routes:api"],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        def serving() -> bool:
            assert proc.poll() is None, f"granian exited:\n{log_path.read_text()[-3000:]}"
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code in (200, 503)
            except httpx.HTTPError:
                return False

        wait_until(serving, timeout=60, every=0.1,
                   what=lambda: f"granian serving /api/health:\n{log_path.read_text()[-3000:]}")
        yield "127.0.0.1", port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
