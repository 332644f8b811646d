"""destinations' normalised values case-folded by one frozen mapping, in Python and in SQL

Revision ID: 0019_onefold
Revises: 0018_unicodelower
Create Date: 2026-11-29 04:20:00.000000

The keys of do-not-call entries and contacts are written by Python; the targets' keys are
computed by the database (outdial_dnc_value on PostgreSQL, lower() on SQLite). Python's
str.lower and PostgreSQL's lower() disagree on some letters ("ΟΔΥΣΣΕΑΣ" ends in "ς" in Python
and "σ" in PostgreSQL; "İ" is "i" plus a combining dot in one and "i" in the other), and
PostgreSQL's depends on the database's locale: a listed address written with such a letter
was called, and its contact limit never counted. Every side now applies the one case folding
of outdials.casefold (which also makes "ς" and "σ" one letter):

- PostgreSQL: outdial_casefold(text), a translate() of that mapping's letters (of A-Z alone
  for an ASCII value), and outdial_dnc_value with it; the indexes on the values are rebuilt.
- SQLite: lower() is registered by every connection as that mapping (db.sqlite); the indexes
  on the values are rebuilt.
- Both: the entries' values and the contacts' addresses with a non-ASCII character are
  recomputed ("i" and a combining dot above, str.lower's "İ", become "i"; two entries of one
  list that become one value are merged: the later expiry stays), then listed_until of the
  targets with a non-ASCII character in a destination.
"""

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from outdial.outdials.casefold import FOLDED, LETTERS, fold

revision: str = "0019_onefold"
down_revision: str | None = "0018_unicodelower"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = range(5)
DNC_FOREVER = "9999-12-31 00:00:00.000000"  # as migration 0014
ASCII_CAPITALS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _dnc_value_function(lower: str) -> str:
    """outdial_dnc_value as migration 0014 wrote it, without case by the function `lower`."""
    target = "destination ->> 'target'"
    return f"""
        CREATE OR REPLACE FUNCTION outdial_dnc_value(destination json) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE WHEN destination ->> 'type' = 'tel' THEN {target}
                    WHEN destination ->> 'type' = 'sip' THEN CASE
                        WHEN {lower}({target}) LIKE 'sip:%' THEN {lower}({target})
                        WHEN {lower}({target}) LIKE 'sips:%'
                            THEN 'sip:' || substr({lower}({target}), 6)
                        ELSE 'sip:' || {lower}({target}) END
                    ELSE {lower}({target}) END
        $$"""


def _non_ascii(column: str, sqlite: bool) -> str:
    return f"{column} GLOB '*[^ -~]*'" if sqlite else f"octet_length({column}) <> char_length({column})"


def _target_value_sqlite(column: str) -> str:
    """A destination's normalised value in SQLite, as migration 0014 wrote it."""
    kind = f"json_extract({column}, '$.type')"
    target = f"json_extract({column}, '$.target')"
    return (f"CASE WHEN {kind} = 'tel' THEN {target} WHEN {kind} = 'sip' THEN CASE "
            f"WHEN lower({target}) LIKE 'sip:%' THEN lower({target}) "
            f"WHEN lower({target}) LIKE 'sips:%' THEN 'sip:' || substr(lower({target}), 6) "
            f"ELSE 'sip:' || lower({target}) END ELSE lower({target}) END")


def _later(one: Any, other: Any) -> Any:
    """The later of two expiries; None (never) is the latest."""
    return None if one is None or other is None else max(one, other)


def _unfolded(written: Callable[[str], str]) -> Callable[[str], str]:
    """Python's str.lower made "İ" an "i" and a combining dot above; fold makes it "i". A key
    written that way becomes the key of an "İ" (so also an "i" written with that dot)."""
    return lambda key: written(key.replace("i\u0307", "i"))


def _recompute_keys(lower: Callable[[str], str], sqlite: bool) -> None:
    """The entries' values and the contacts' addresses with a non-ASCII character, without
    case by `lower` (a tel value is E.164: ASCII, left alone)."""
    bind = op.get_bind()
    entries = bind.execute(sa.text(
        "SELECT id, dnclist_id, value, tm_expire FROM dnc_entries WHERE type <> 'tel' AND "
        f"{_non_ascii('value', sqlite)} ORDER BY id")).all()
    for entry in entries:
        value = lower(entry.value)
        if value == entry.value:
            continue
        twin = bind.execute(sa.text(
            "SELECT id, tm_expire FROM dnc_entries WHERE dnclist_id = :list AND value = :value"),
            {"list": entry.dnclist_id, "value": value}).first()
        if twin is None:
            bind.execute(sa.text("UPDATE dnc_entries SET value = :value WHERE id = :id"),
                         {"value": value, "id": entry.id})
            continue
        # The list holds the value twice now: one entry, listing as long as the two did.
        bind.execute(sa.text("DELETE FROM dnc_entries WHERE id = :id"), {"id": entry.id})
        bind.execute(sa.text("UPDATE dnc_entries SET tm_expire = :expire WHERE id = :id"),
                     {"expire": _later(entry.tm_expire, twin.tm_expire), "id": twin.id})
    contacts = bind.execute(sa.text(
        f"SELECT id, address FROM contacts WHERE {_non_ascii('address', sqlite)}")).all()
    for contact in contacts:
        if (address := lower(contact.address)) != contact.address:
            bind.execute(sa.text("UPDATE contacts SET address = :address WHERE id = :id"),
                         {"address": address, "id": contact.id})


def _recompute_listed_until(sqlite: bool) -> None:
    """listed_until of the live targets with a non-ASCII character in a destination: the only
    ones whose values the change of mapping can change."""
    if sqlite:
        values = ", ".join(_target_value_sqlite(f"outdial_targets.destination_{n}") for n in SLOTS)
        non_ascii = " OR ".join(
            _non_ascii(f"json_extract(destination_{n}, '$.target')", True) for n in SLOTS)
    else:
        values = ", ".join(f"outdial_dnc_value(outdial_targets.destination_{n})" for n in SLOTS)
        non_ascii = " OR ".join(
            _non_ascii(f"(destination_{n} ->> 'target')", False) for n in SLOTS)
    op.execute(
        "UPDATE outdial_targets SET listed_until = (SELECT max(coalesce(e.tm_expire, "
        f"'{DNC_FOREVER}')) FROM dnc_entries e WHERE e.customer_id = outdial_targets.customer_id "
        f"AND e.value IN ({values})) WHERE tm_delete IS NULL AND ({non_ascii})")


def _postgres_fold_function(letters: str, folded: str) -> str:
    return f"""
        CREATE OR REPLACE FUNCTION outdial_casefold(value text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE WHEN octet_length(value) = char_length(value)
                    THEN translate(value, '{ASCII_CAPITALS}', '{ASCII_CAPITALS.lower()}')
                    ELSE translate(value, '{letters}', '{folded}') END
        $$"""


def _rebuild(sqlite: bool, lower: Callable[[str], str]) -> None:
    if sqlite:
        op.get_bind().connection.dbapi_connection.create_function(
            "lower", 1, lambda v: lower(v) if isinstance(v, str) else v, deterministic=True)
    else:
        op.execute("LOCK TABLE outdial_targets, dnc_entries, contacts IN SHARE ROW EXCLUSIVE MODE")
    for n in SLOTS:
        op.execute(f"REINDEX {'' if sqlite else 'INDEX '}ix_outdial_targets_value_{n}")
    _recompute_keys(lower, sqlite)
    _recompute_listed_until(sqlite)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if not sqlite:
        assert "'" not in LETTERS + FOLDED and "$" not in LETTERS + FOLDED
        op.execute(_postgres_fold_function(LETTERS, FOLDED))
        op.execute(_dnc_value_function("outdial_casefold"))
    _rebuild(sqlite, _unfolded(fold))


def downgrade() -> None:
    # The version before lower-cases with Python's str.lower and PostgreSQL's lower(). (On
    # SQLite this connection keeps the lower() given here until it is closed.)
    sqlite = op.get_bind().dialect.name == "sqlite"
    if not sqlite:
        op.execute(_dnc_value_function("lower"))
        op.execute("DROP FUNCTION outdial_casefold(text)")
    _rebuild(sqlite, str.lower)
