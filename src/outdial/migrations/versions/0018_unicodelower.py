"""SQLite: destinations' normalised values lower-cased by Unicode's rules

Revision ID: 0018_unicodelower
Revises: 0017_heldcounts
Create Date: 2026-11-28 20:30:00.000000

A destination's normalised value (the key of do-not-call entries and contact limits) lower-cases
emails and SIP URIs. Python does it by Unicode's rules, and so does PostgreSQL's lower() in a
UTF-8 locale; SQLite's built-in lower() folds ASCII letters only, so on SQLite a listed
`jörg@example.com` did not match a target's `JÖRG@example.com`. Every SQLite connection now
replaces lower() with Python's (db.sqlite.unicode_lower). What the built-in computed is
rebuilt here: the indexes on the values, and listed_until of the targets with a non-ASCII
letter in a destination. PostgreSQL: nothing to do.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_unicodelower"
down_revision: str | None = "0017_heldcounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = range(5)
DNC_FOREVER = "9999-12-31 00:00:00.000000"  # as migration 0014


def _value(column: str) -> str:
    """A destination's normalised value in SQLite, as migration 0014 wrote it."""
    kind = f"json_extract({column}, '$.type')"
    target = f"json_extract({column}, '$.target')"
    return (f"CASE WHEN {kind} = 'tel' THEN {target} WHEN {kind} = 'sip' THEN CASE "
            f"WHEN lower({target}) LIKE 'sip:%' THEN lower({target}) "
            f"WHEN lower({target}) LIKE 'sips:%' THEN 'sip:' || substr(lower({target}), 6) "
            f"ELSE 'sip:' || lower({target}) END ELSE lower({target}) END")


def _ascii_lower(value: object) -> object:
    """SQLite's built-in lower(): ASCII letters only."""
    if not isinstance(value, str):
        return value
    return "".join(c.lower() if c.isascii() else c for c in value)


def _unicode_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value  # db.sqlite.unicode_lower


def _rebuild(lower: object) -> None:
    """Recompute, with `lower` as this connection's lower(), what lower() computed: the indexes
    on the values and listed_until of the targets with a non-ASCII character in a destination
    (the only rows the two lower()s can give different values)."""
    op.get_bind().connection.dbapi_connection.create_function(
        "lower", 1, lower, deterministic=True)
    for n in SLOTS:
        op.execute(f"REINDEX ix_outdial_targets_value_{n}")
    values = ", ".join(_value(f"outdial_targets.destination_{n}") for n in SLOTS)
    non_ascii = " OR ".join(
        f"json_extract(destination_{n}, '$.target') GLOB '*[^ -~]*'" for n in SLOTS)
    op.execute(
        "UPDATE outdial_targets SET listed_until = (SELECT max(coalesce(e.tm_expire, "
        f"'{DNC_FOREVER}')) FROM dnc_entries e WHERE e.customer_id = outdial_targets.customer_id "
        f"AND e.value IN ({values})) WHERE tm_delete IS NULL AND ({non_ascii})")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(_unicode_lower)


def downgrade() -> None:
    # For the version before, which reads them with the built-in. This connection keeps the
    # built-in's rules until it is closed.
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(_ascii_lower)
