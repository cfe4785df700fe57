"""The HTTP API app in process (Starlette's TestClient) on its own migrated
SQLite file, for the HTTP hardening tests."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chatdash.db import get_engine, migrate, session_scope
from chatdash.models import Product
from chatdash.services import identity
from chatdash.services.ratelimit import clear_limiters
from chatdash.settings import get_settings

with warnings.catch_warnings():
    # Starlette 1.x would like httpx2 for its TestClient; httpx works the same here.
    warnings.filterwarnings("ignore", message=".*httpx.*", category=Warning)
    from starlette.testclient import TestClient

STORE = "https://shop.test"
SETTINGS_ENV = ("CHATDASH_ALLOWED_ORIGINS", "CHATDASH_TRUSTED_PROXIES", "CHATDASH_BODY_TIMEOUT_SECONDS")


@contextmanager
def api_client(db_dir: Path, env: dict[str, str] | None = None,
               peer: tuple[str, int] = ("203.0.113.9", 50000)) -> Iterator[TestClient]:
    """A TestClient whose requests come from ``peer``, with ``env`` set."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", f"sqlite:///{db_dir / 'api.db'}")
        for name in SETTINGS_ENV:
            mp.delenv(name, raising=False)
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        get_settings.cache_clear()
        get_engine.cache_clear()
        clear_limiters()
        migrate(get_engine())
        with session_scope() as s:
            s.add(Product(sku="TENT-1", name="Summit Tent", category="Camping", price_cents=19_900,
                          url=f"{STORE}/p/TENT-1"))
        from chatdash.api.routes import api

        try:
            with TestClient(api, client=peer) as client:
                yield client
        finally:
            get_engine().dispose()
            get_settings.cache_clear()
            get_engine.cache_clear()
            clear_limiters()


def visitor_token() -> str:
    return identity.issue_visitor_token(get_settings().secret_key)


def bearer(secret: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret or get_settings().store_secret}"}
