"""waiting-reason counts without reading every target: stored do-not-call facts, indexes

Revision ID: 0014_reasoncounts
Revises: 0013_export2
Create Date: 2026-11-28 03:40:00.000000

The counts per waiting reason (strategy.reasons_counts) ask the rules only about the targets
some rule may hold now, each set found along an index:

- `first_slot` moved on: ix_outdial_targets_moved_on (the counts per shape cannot tell those
  targets' tries left).
- on a do-not-call list: `listed_until`, the latest moment until which some destination of the
  target is an entry of some list of its customer (DNC_FOREVER for an entry that never expires;
  NULL: none is). The database keeps it current on every write of an entry (add, delete,
  change of expiry) and of a target (insert, change of a destination); an entry expiring is
  then a comparison with the time. It says "may be listed" (the lists a campaign honours are
  a subset): the rule itself still reads the entries.
- a destination over a contact limit: the destinations' normalised values indexed per customer
  (ix_outdial_targets_value_N), to find the targets of a capped address; the same indexes find
  the targets of an entry's value.

PostgreSQL: the normalised value is the SQL function outdial_dnc_value (the same rule as
strategy.reasons.value_sql and outdials.destinations.dnc_value; a test keeps them equal). A
writer of entries and a writer of targets of one customer exclude each other for the rest of
their transactions (advisory locks: entries exclusive, targets shared, keyed on the customer),
so that neither misses the other's rows: without it, an entry added while a target with its
value is inserted would leave the target's listed_until unset.
SQLite has one writer at a time: row triggers, no lock.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_reasoncounts"
down_revision: str | None = "0013_export2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = range(5)
MOVED_ON = "tm_delete IS NULL AND first_slot > 0"
LISTED = "tm_delete IS NULL AND listed_until IS NOT NULL"
# listed_until of an entry without expiry: later than any time the service will see.
DNC_FOREVER = "9999-12-31 00:00:00.000000"


def _value_sqlite(column: str) -> str:
    """A destination's normalised value in SQLite (written identically in the indexes and the
    triggers, so that SQLite matches them)."""
    kind = f"json_extract({column}, '$.type')"
    target = f"json_extract({column}, '$.target')"
    return (f"CASE WHEN {kind} = 'tel' THEN {target} WHEN {kind} = 'sip' THEN CASE "
            f"WHEN lower({target}) LIKE 'sip:%' THEN lower({target}) "
            f"WHEN lower({target}) LIKE 'sips:%' THEN 'sip:' || substr(lower({target}), 6) "
            f"ELSE 'sip:' || lower({target}) END ELSE lower({target}) END")


def _value(column: str, sqlite: bool) -> str:
    return _value_sqlite(column) if sqlite else f"outdial_dnc_value({column})"


def _until(row: str, sqlite: bool) -> str:
    """listed_until of the target `row` (an alias or NEW), from the entries."""
    values = ", ".join(_value(f"{row}.destination_{n}", sqlite) for n in SLOTS)
    return (f"(SELECT max(coalesce(e.tm_expire, '{DNC_FOREVER}')) FROM dnc_entries e "
            f"WHERE e.customer_id = {row}.customer_id AND e.value IN ({values}))")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if not sqlite:
        op.execute("LOCK TABLE outdial_targets, dnc_entries IN SHARE ROW EXCLUSIVE MODE")
        op.execute("""
            CREATE FUNCTION outdial_dnc_value(destination json) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT CASE WHEN destination ->> 'type' = 'tel' THEN destination ->> 'target'
                        WHEN destination ->> 'type' = 'sip' THEN CASE
                            WHEN lower(destination ->> 'target') LIKE 'sip:%'
                                THEN lower(destination ->> 'target')
                            WHEN lower(destination ->> 'target') LIKE 'sips:%'
                                THEN 'sip:' || substr(lower(destination ->> 'target'), 6)
                            ELSE 'sip:' || lower(destination ->> 'target') END
                        ELSE lower(destination ->> 'target') END
            $$""")
    with op.batch_alter_table("outdial_targets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("listed_until", sa.DateTime(), nullable=True))
    op.create_index("ix_outdial_targets_moved_on", "outdial_targets", ["outdial_id"],
                    unique=False, sqlite_where=sa.text(MOVED_ON),
                    postgresql_where=sa.text(MOVED_ON))
    op.create_index("ix_outdial_targets_listed", "outdial_targets",
                    ["outdial_id", "listed_until"], unique=False,
                    sqlite_where=sa.text(LISTED), postgresql_where=sa.text(LISTED))
    for n in SLOTS:
        where = f"tm_delete IS NULL AND destination_{n} IS NOT NULL"
        op.execute(f"CREATE INDEX ix_outdial_targets_value_{n} ON outdial_targets "
                   f"(customer_id, ({_value(f'destination_{n}', sqlite)})) WHERE {where}")
    op.create_index("ix_dnc_entries_customer_value", "dnc_entries", ["customer_id", "value"],
                    unique=False)
    for statement in (_sqlite_triggers() if sqlite else _postgres_triggers()):
        op.execute(statement)
    # The targets stored before: their listed_until from the entries there are.
    for n in SLOTS:
        op.execute(
            f"UPDATE outdial_targets SET listed_until = {_until('outdial_targets', sqlite)} "
            f"WHERE tm_delete IS NULL AND destination_{n} IS NOT NULL AND EXISTS (SELECT 1 "
            f"FROM dnc_entries e WHERE e.customer_id = outdial_targets.customer_id "
            f"AND e.value = {_value(f'outdial_targets.destination_{n}', sqlite)})")


def _sqlite_triggers() -> list[str]:
    def retarget(value: str) -> str:
        """Recompute listed_until of the customer's targets with a destination of `value`."""
        matches = " OR ".join(
            f"(destination_{n} IS NOT NULL AND {_value(f'destination_{n}', True)} = {value})"
            for n in SLOTS)
        return (f"UPDATE outdial_targets SET listed_until = {_until('outdial_targets', True)} "
                f"WHERE customer_id = {{row}}.customer_id AND tm_delete IS NULL AND ({matches});")

    own = f"UPDATE outdial_targets SET listed_until = {_until('NEW', True)} WHERE id = NEW.id;"
    changed = " OR ".join(f"OLD.destination_{n} IS NOT NEW.destination_{n}" for n in SLOTS)
    return [
        "CREATE TRIGGER dnc_entries_listed_insert AFTER INSERT ON dnc_entries BEGIN "
        f"{retarget('NEW.value').format(row='NEW')} END",
        "CREATE TRIGGER dnc_entries_listed_delete AFTER DELETE ON dnc_entries BEGIN "
        f"{retarget('OLD.value').format(row='OLD')} END",
        "CREATE TRIGGER dnc_entries_listed_update AFTER UPDATE OF value, tm_expire, customer_id "
        f"ON dnc_entries BEGIN {retarget('OLD.value').format(row='OLD')} "
        f"{retarget('NEW.value').format(row='NEW')} END",
        # A new target is only written again when one of its values is an entry.
        "CREATE TRIGGER outdial_targets_listed_insert AFTER INSERT ON outdial_targets "
        f"WHEN {_until('NEW', True)} IS NOT NULL BEGIN {own} END",
        "CREATE TRIGGER outdial_targets_listed_update AFTER UPDATE OF "
        f"{', '.join(f'destination_{n}' for n in SLOTS)}, customer_id ON outdial_targets "
        f"WHEN {changed} OR OLD.customer_id IS NOT NEW.customer_id BEGIN {own} END",
    ]


# The advisory lock of a customer's do-not-call facts (a two-key lock: a space of its own).
_LOCK = "hashtext('outdial listed_until'), hashtext(customer_id::text)"


def _postgres_triggers() -> list[str]:
    def retarget(rows: str) -> str:
        """Recompute listed_until of the targets with a destination of a value in `rows`,
        after taking the customers' locks (in order: two writers never deadlock)."""
        updates = " ".join(
            f"UPDATE outdial_targets t SET listed_until = {_until('t', False)} "
            f"FROM (SELECT DISTINCT customer_id, value FROM {rows}) c "
            f"WHERE t.customer_id = c.customer_id AND t.tm_delete IS NULL "
            f"AND t.destination_{n} IS NOT NULL AND outdial_dnc_value(t.destination_{n}) = c.value "
            f"AND t.listed_until IS DISTINCT FROM {_until('t', False)};"
            for n in SLOTS)
        return (f"PERFORM pg_advisory_xact_lock({_LOCK}) FROM "
                f"(SELECT DISTINCT customer_id FROM {rows}) c ORDER BY c.customer_id; {updates}")

    def function(name: str, body: str) -> str:
        return (f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"{body} RETURN NULL; END $$")

    # Targets whose destinations (or customer) an UPDATE changed.
    changed = ("SELECT n.* FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE "
               + " OR ".join(f"n.destination_{x}::text IS DISTINCT FROM o.destination_{x}::text"
                             for x in SLOTS)
               + " OR n.customer_id <> o.customer_id")
    # New targets with a value that is an entry: a join, so that a COPY of a million rows
    # with no entry of its customer's costs one pass over the new rows.
    listed_new = " UNION ".join(
        f"SELECT n.id FROM new_rows n JOIN dnc_entries e ON e.customer_id = n.customer_id "
        f"AND e.value = outdial_dnc_value(n.destination_{x}) WHERE n.destination_{x} IS NOT NULL"
        for x in SLOTS)
    lock_targets = (f"PERFORM pg_advisory_xact_lock_shared({_LOCK}) FROM "
                    f"(SELECT DISTINCT customer_id FROM {{rows}}) c ORDER BY c.customer_id;")
    own = (f"UPDATE outdial_targets t SET listed_until = {_until('t', False)} "
           f"WHERE t.id IN (SELECT id FROM {{rows}}) "
           f"AND t.listed_until IS DISTINCT FROM {_until('t', False)};")
    return [
        function("dnc_entries_listed_insert", retarget("new_rows")),
        function("dnc_entries_listed_delete", retarget("old_rows")),
        function("dnc_entries_listed_update",
                 retarget("(SELECT customer_id, value FROM old_rows UNION "
                          "SELECT customer_id, value FROM new_rows) AS written")),
        "CREATE TRIGGER dnc_entries_listed_insert AFTER INSERT ON dnc_entries "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION dnc_entries_listed_insert()",
        "CREATE TRIGGER dnc_entries_listed_delete AFTER DELETE ON dnc_entries "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION dnc_entries_listed_delete()",
        "CREATE TRIGGER dnc_entries_listed_update AFTER UPDATE ON dnc_entries "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION dnc_entries_listed_update()",
        # Insert: the lock first, then the join reads the entries committed by then.
        function("outdial_targets_listed_insert",
                 lock_targets.format(rows="new_rows")
                 + own.format(rows=f"({listed_new}) AS listed")),
        # Update: nothing unless a destination changed (the engine's writes change none).
        function("outdial_targets_listed_update",
                 f"IF EXISTS ({changed}) THEN "
                 + lock_targets.format(rows=f"({changed}) AS changed")
                 + own.format(rows=f"({changed}) AS changed") + " END IF;"),
        "CREATE TRIGGER outdial_targets_listed_insert AFTER INSERT ON outdial_targets "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION outdial_targets_listed_insert()",
        "CREATE TRIGGER outdial_targets_listed_update AFTER UPDATE ON outdial_targets "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION outdial_targets_listed_update()",
    ]


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for name in ("dnc_entries_listed_insert", "dnc_entries_listed_delete",
                     "dnc_entries_listed_update", "outdial_targets_listed_insert",
                     "outdial_targets_listed_update"):
            op.execute(f"DROP TRIGGER {name}")
    else:
        for table, name in (("dnc_entries", "dnc_entries_listed_insert"),
                            ("dnc_entries", "dnc_entries_listed_delete"),
                            ("dnc_entries", "dnc_entries_listed_update"),
                            ("outdial_targets", "outdial_targets_listed_insert"),
                            ("outdial_targets", "outdial_targets_listed_update")):
            op.execute(f"DROP TRIGGER {name} ON {table}")
            op.execute(f"DROP FUNCTION {name}()")
    op.drop_index("ix_dnc_entries_customer_value", table_name="dnc_entries")
    for n in SLOTS:
        op.execute(f"DROP INDEX ix_outdial_targets_value_{n}")
    op.drop_index("ix_outdial_targets_listed", table_name="outdial_targets",
                  sqlite_where=sa.text(LISTED), postgresql_where=sa.text(LISTED))
    op.drop_index("ix_outdial_targets_moved_on", table_name="outdial_targets",
                  sqlite_where=sa.text(MOVED_ON), postgresql_where=sa.text(MOVED_ON))
    # A plain DROP COLUMN (SQLite 3.35+): a batch rebuild of the table would lose its
    # expression indexes, which SQLAlchemy cannot reflect.
    op.drop_column("outdial_targets", "listed_until")
    if not sqlite:
        op.execute("DROP FUNCTION outdial_dnc_value(json)")
