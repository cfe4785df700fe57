"""Start the real app (`reflex run`) on free ports with its own database, for
browser and raw-client tests."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "chatdash-test-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveApp:
    frontend: str
    backend: str
    db_url: str
    env: dict[str, str]
    process: subprocess.Popen
    log_path: Path
    lock: object = None

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "chatdash.cli", *args],
            cwd=ROOT, env=self.env, check=True, capture_output=True, text=True,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.lock is not None:
            self.lock.close()  # releases the build folder for the next test session


def start_live_app(workdir: Path, extra_env: dict[str, str] | None = None) -> LiveApp:
    # One test session at a time owns .web-test: a second build would delete
    # the files the first one is serving.
    lock = (ROOT / ".web-test.lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    # Prod mode serves the built frontend and the backend on one port.
    fport = bport = free_port()
    db_url = f"sqlite:///{workdir / 'live.db'}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CHATDASH_ADMIN_EMAIL": ADMIN_EMAIL,
        "CHATDASH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CHATDASH_PUBLIC_URL": f"http://localhost:{fport}",
        "CHATDASH_API_URL": f"http://localhost:{bport}",
        "CHATDASH_FRONTEND_PORT": str(fport),
        "CHATDASH_BACKEND_PORT": str(bport),
        # Its own build folder, so a developer's running `./dev run` is not disturbed;
        # prod mode, so edits in the tree never hot-reload the server under test.
        "REFLEX_WEB_WORKDIR": str(ROOT / ".web-test"),
        "REFLEX_STATES_WORKDIR": str(workdir / "states"),
        "CHATDASH_MODEL_DIR": str(workdir / "models"),
        # The demo store's own database and catalog file.
        "DEMO_STORE_DATA_DIR": str(workdir / "demo_store"),
        "REFLEX_USE_NPM": "1",
        "REFLEX_TELEMETRY_ENABLED": "false",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        **(extra_env or {}),
    }
    subprocess.run([sys.executable, "-m", "chatdash.cli", "setup", "--small-demo"],
                   cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    log_path = workdir / "reflex.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reflex", "run", "--env", "prod", "--loglevel", "info"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    app = LiveApp(f"http://localhost:{fport}", f"http://localhost:{bport}", db_url, env, proc, log_path, lock)
    def serving() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"reflex exited early:\n{log_path.read_text()[-4000:]}")
        try:
            return (httpx.get(f"{app.backend}/api/health", timeout=2).status_code == 200
                    and httpx.get(f"{app.frontend}/login", timeout=5, follow_redirects=True).status_code == 200)
        except httpx.HTTPError:
            return False

    try:
        wait_until(serving, timeout=300, every=1,
                   what=lambda: f"the app serving its pages:\n{log_path.read_text()[-4000:]}")
    except BaseException:
        app.stop()
        raise
    return app
