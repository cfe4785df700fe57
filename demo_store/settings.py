"""The demo store's settings, read from the environment (and `.env`) the way a
separate store's backend would read its own configuration.

What it shares with chatdash is what any store shares with it: the address of
chatdash's API and the store secret. Both are read from the same variables
chatdash documents (``CHATDASH_API_URL``, ``CHATDASH_STORE_SECRET``, or the
generated ``data/store_secret.key``), so one `.env` serves both sides.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# chatdash writes its generated store secret here (see docs/tracking.md).
STORE_SECRET_FILE = PROJECT_ROOT / "data" / "store_secret.key"


class StoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    name: str = Field("Demo Store", validation_alias=AliasChoices("DEMO_STORE_NAME", "CHATDASH_STORE_NAME"))
    # The store's own files: its database and the catalog CSV it was loaded from.
    data_dir: Path = Field(PROJECT_ROOT / "data" / "demo_store", validation_alias="DEMO_STORE_DATA_DIR")
    database_url: str = Field("", validation_alias="DEMO_STORE_DATABASE_URL")
    # Where chatdash's API and embed script are served.
    chatdash_url: str = Field(
        "http://localhost:8000", validation_alias=AliasChoices("DEMO_STORE_CHATDASH_URL", "CHATDASH_API_URL")
    )
    store_secret: str = Field("", validation_alias="CHATDASH_STORE_SECRET")

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'store.db'}"

    @property
    def catalog_csv(self) -> Path:
        return self.data_dir / "catalog.csv"

    @property
    def api_base(self) -> str:
        return self.chatdash_url.rstrip("/")

    def secret(self) -> str:
        """The store secret; the generated file is read when it is needed, since
        chatdash may create it after the store's settings were first read."""
        if not self.store_secret and STORE_SECRET_FILE.exists():
            self.store_secret = STORE_SECRET_FILE.read_text().strip()
        return self.store_secret


@lru_cache(maxsize=1)
def get_settings() -> StoreSettings:
    return StoreSettings()
