"""Service settings, read from OUTDIAL_* environment variables when a process starts."""

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a process needs to know; built once at start-up and passed down."""

    model_config = SettingsConfigDict(env_prefix="OUTDIAL_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///outdial.db"
    # Signs login tokens. When unset, a secret is generated once and kept in the database so that
    # every API process sharing that database accepts the same tokens.
    secret_key: str | None = None
    token_lifetime_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    admin_username: str | None = None
    admin_password: str | None = None
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    # Only the import route takes bodies this large; it reads them as a stream.
    max_import_bytes: int = Field(default=2 * 1024**3, gt=0)
    # Processes that check imported rows; 0 checks them in the serving process.
    import_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=0)
    log_level: str = "info"
