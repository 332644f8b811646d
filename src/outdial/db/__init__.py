"""Database engines and sessions for SQLite (the embedded default) and PostgreSQL."""

from outdial.db.engine import Database, Limits, busy_reason, is_sqlite, normalize_url

__all__ = ["Database", "Limits", "busy_reason", "is_sqlite", "normalize_url"]
