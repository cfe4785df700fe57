"""One typed settings object, read from the environment (prefix CHATDASH_) and `.env`."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"


class Settings(BaseSettings):
    """Everything configurable about a chatdash deployment."""

    model_config = SettingsConfigDict(
        env_prefix="CHATDASH_", env_file=".env", extra="ignore"
    )

    store_name: str = "Demo Store"
    # Where the app's pages are served (frontend) and where its API lives (backend).
    public_url: str = "http://localhost:3000"
    api_url: str = "http://localhost:8000"

    database_url: str = Field(
        default=f"sqlite:///{DATA_DIR / 'chatdash.db'}",
        validation_alias="DATABASE_URL",
    )
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")

    # Used to sign visitor ids and session tokens. Generated once and kept in
    # data/secret.key when not given, so restarts keep sessions valid.
    secret_key: str = ""
    # Shared with the store's backend: HMAC key for identifying customers and
    # the key for server-to-server order/cart calls.
    store_secret: str = ""

    admin_email: str | None = None
    admin_password: str | None = None
    admin_session_hours: int = 24 * 7
    # An admin session unused this long ends (checked on the server).
    admin_idle_hours: float = 12.0

    # Login throttling: this many failed logins per account (and per client IP,
    # higher because shops share one address behind NAT) within the window
    # refuse further attempts; the wait grows with more failures (README).
    login_failures_per_account: int = 5
    login_failures_per_ip: int = 20
    login_window_minutes: float = 5.0

    # New visitors (signed tokens minted) and new conversations allowed per
    # client IP within their windows, and per socket (one browser tab).
    new_visitors_per_ip: int = 30
    new_visitors_window_minutes: float = 10.0
    new_conversations_per_ip: int = 10
    new_conversations_window_hours: float = 12.0
    new_visitors_per_socket: int = 3
    # At most one new-conversation email per recipient this often; what
    # arrives in between is listed in the next one.
    email_coalesce_minutes: float = 5.0
    # Offline follow-up: an agent's replies to a shopper who left the site go
    # by email at the end of this window, all in one (one email per
    # conversation per window at most).
    followup_coalesce_minutes: float = 3.0

    # Store origins allowed to report events to /api/track (comma-separated;
    # empty or "*" allows any origin).
    allowed_origins: str = ""
    # Reverse proxies whose X-Forwarded-For is believed for per-IP limits
    # (comma-separated IPs or CIDRs; empty: none, the peer address counts).
    trusted_proxies: str = ""
    # A request body not fully received this long after its headers gets 408.
    body_timeout_seconds: float = Field(default=10.0, gt=0)

    # Recommender artifacts, and how often the running app retrains (0 = never;
    # it still trains once on first start when nothing is trained yet).
    model_dir: str = ""
    retrain_hours: float = 24.0
    # Seconds Settings → Recommendations' Retrain may spend choosing parameters.
    retrain_budget_seconds: float = Field(default=120.0, ge=0)

    message_max_chars: int = 4000
    presence_window_seconds: int = 60
    # The store's clock (an IANA name): "tomorrow 9:00" for a snooze, and the
    # snooze times the admin reads and types, are in it.
    store_timezone: str = "UTC"
    # A team member counts as online (auto-assign) while their conversations
    # page renewed its mark within this long; the page renews every third of it.
    agent_online_seconds: int = Field(default=90, ge=6)

    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_from: str = "chatdash@localhost"

    @field_validator("store_timezone")
    @classmethod
    def _timezone_exists(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)") from exc
        return value

    @property
    def store_tz(self):
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.store_timezone)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        from chatdash.services.client_ip import parse_trusted_proxies

        parse_trusted_proxies(value)  # a bad entry stops the start with its name
        return value

    @property
    def demo_store_url(self) -> str:
        return f"{self.public_url.rstrip('/')}/store"


def _persistent_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value)
    path.chmod(0o600)
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    settings = Settings()
    if not settings.secret_key:
        settings.secret_key = _persistent_secret(DATA_DIR / "secret.key")
    if not settings.store_secret:
        settings.store_secret = _persistent_secret(DATA_DIR / "store_secret.key")
    return settings
