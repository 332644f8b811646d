"""Database engines and sessions for SQLite (the embedded default) and PostgreSQL."""

from sqlalchemy import ColumnElement, literal_column

from outdial.db.engine import (
    Database,
    DatabaseUnreachable,
    Limits,
    busy_reason,
    is_sqlite,
    log_failure,
    normalize_url,
)


def index_value(value: str) -> ColumnElement[str]:
    """A constant written into the SQL rather than bound, for a condition that must match a
    partial index's predicate (`status = 'idle'`, `status <> 'done'`): asyncpg prepares each
    statement, and PostgreSQL's generic plan for it (from its sixth run) cannot use a partial
    index whose predicate only a parameter would satisfy, so it would scan the table instead."""
    assert "'" not in value
    return literal_column(f"'{value}'")


__all__ = [
    "Database",
    "DatabaseUnreachable",
    "Limits",
    "busy_reason",
    "index_value",
    "is_sqlite",
    "log_failure",
    "normalize_url",
]
