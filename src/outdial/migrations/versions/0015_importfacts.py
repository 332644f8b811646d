"""do-not-call facts of targets kept row by row, and by the import itself

Revision ID: 0015_importfacts
Revises: 0014_reasoncounts
Create Date: 2026-11-28 07:00:00.000000

PostgreSQL only (SQLite keeps the row triggers of 0014). Migration 0014 kept a target's
`listed_until` with statement triggers over transition tables: every INSERT and UPDATE of
targets stored its rows a second time, joined them with the entries and, for an insert, took
the customer's lock; an engine UPDATE of ten thousand targets paired old and new rows only to
find that no destination had changed. An import of a million rows paid ~25 µs of PostgreSQL
CPU per row for it.

Now:
- a target inserted by the API gets its listed_until from a ROW trigger: the customer's lock
  (shared, as in 0014), then one look-up of its values in ix_dnc_entries_customer_value; the
  row is written again only when one is an entry;
- an UPDATE fires it only when it names a destination or the customer (`UPDATE OF`) and one
  of them changed (`WHEN`): the engine's writes never do;
- the import (strategy.dnc.keep_listed_until) says in its transaction that it keeps the fact
  itself (the setting `outdial.listed_until_by_writer`): the trigger's WHEN is then false and
  costs a setting read per row; the import takes the customer's lock before its commit and
  sets listed_until set-wise (a statement per slot), skipped when the customer has no entry.
The triggers on the entries and the lock's protocol are those of 0014.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_importfacts"
down_revision: str | None = "0014_reasoncounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = range(5)
DNC_FOREVER = "9999-12-31 00:00:00.000000"
# The advisory lock of a customer's do-not-call facts, as in 0014.
_LOCK = "hashtext('outdial listed_until'), hashtext({customer}::text)"
# Set (transaction-local) by a writer that keeps listed_until itself: the import.
BY_WRITER = "coalesce(current_setting('outdial.listed_until_by_writer', true), '') <> 'on'"


def _functions() -> list[str]:
    values = ", ".join(f"outdial_dnc_value(NEW.destination_{n})" for n in SLOTS)
    lock = f"PERFORM pg_advisory_xact_lock_shared({_LOCK.format(customer='NEW.customer_id')}); "
    until = (f"(SELECT max(coalesce(e.tm_expire, '{DNC_FOREVER}')) FROM dnc_entries e "
             f"WHERE e.customer_id = NEW.customer_id AND e.value IN ({values}))")
    return [
        # After the insert, not before: a BEFORE ROW trigger would make COPY write its rows
        # one at a time. The row is written again only when one of its values is an entry.
        "CREATE FUNCTION outdial_targets_listed_new() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"DECLARE until timestamp; BEGIN {lock} until := {until}; "
        "IF until IS NOT NULL THEN "
        "UPDATE outdial_targets SET listed_until = until WHERE id = NEW.id; END IF; "
        "RETURN NULL; END $$",
        # A changed destination: written into the row being stored.
        "CREATE FUNCTION outdial_targets_listed_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN {lock} NEW.listed_until := {until}; RETURN NEW; END $$",
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("LOCK TABLE outdial_targets IN SHARE ROW EXCLUSIVE MODE")
    for name in ("outdial_targets_listed_insert", "outdial_targets_listed_update"):
        op.execute(f"DROP TRIGGER {name} ON outdial_targets")
        op.execute(f"DROP FUNCTION {name}()")
    for function in _functions():
        op.execute(function)
    changed = " OR ".join(f"OLD.destination_{n}::text IS DISTINCT FROM NEW.destination_{n}::text"
                          for n in SLOTS)
    op.execute("CREATE TRIGGER outdial_targets_listed_insert AFTER INSERT ON outdial_targets "
               f"FOR EACH ROW WHEN ({BY_WRITER}) EXECUTE FUNCTION outdial_targets_listed_new()")
    op.execute("CREATE TRIGGER outdial_targets_listed_update BEFORE UPDATE OF "
               f"{', '.join(f'destination_{n}' for n in SLOTS)}, customer_id ON outdial_targets "
               f"FOR EACH ROW WHEN ({changed} OR OLD.customer_id <> NEW.customer_id) "
               "EXECUTE FUNCTION outdial_targets_listed_changed()")


def _until(row: str) -> str:
    values = ", ".join(f"outdial_dnc_value({row}.destination_{n})" for n in SLOTS)
    return (f"(SELECT max(coalesce(e.tm_expire, '{DNC_FOREVER}')) FROM dnc_entries e "
            f"WHERE e.customer_id = {row}.customer_id AND e.value IN ({values}))")


def downgrade() -> None:
    """Back to 0014's statement triggers (their text as 0014 wrote it)."""
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("LOCK TABLE outdial_targets IN SHARE ROW EXCLUSIVE MODE")
    for name in ("outdial_targets_listed_insert", "outdial_targets_listed_update"):
        op.execute(f"DROP TRIGGER {name} ON outdial_targets")
    op.execute("DROP FUNCTION outdial_targets_listed_new()")
    op.execute("DROP FUNCTION outdial_targets_listed_changed()")
    changed = ("SELECT n.* FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE "
               + " OR ".join(f"n.destination_{x}::text IS DISTINCT FROM o.destination_{x}::text"
                             for x in SLOTS)
               + " OR n.customer_id <> o.customer_id")
    listed_new = " UNION ".join(
        f"SELECT n.id FROM new_rows n JOIN dnc_entries e ON e.customer_id = n.customer_id "
        f"AND e.value = outdial_dnc_value(n.destination_{x}) WHERE n.destination_{x} IS NOT NULL"
        for x in SLOTS)
    lock = (f"PERFORM pg_advisory_xact_lock_shared({_LOCK.format(customer='customer_id')}) FROM "
            "(SELECT DISTINCT customer_id FROM {rows}) c ORDER BY c.customer_id;")
    own = (f"UPDATE outdial_targets t SET listed_until = {_until('t')} "
           "WHERE t.id IN (SELECT id FROM {rows}) "
           f"AND t.listed_until IS DISTINCT FROM {_until('t')};")

    def function(name: str, body: str) -> str:
        return (f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"{body} RETURN NULL; END $$")

    op.execute(function("outdial_targets_listed_insert",
                        lock.format(rows="new_rows")
                        + own.format(rows=f"({listed_new}) AS listed")))
    op.execute(function("outdial_targets_listed_update",
                        f"IF EXISTS ({changed}) THEN " + lock.format(rows=f"({changed}) AS changed")
                        + own.format(rows=f"({changed}) AS changed") + " END IF;"))
    op.execute("CREATE TRIGGER outdial_targets_listed_insert AFTER INSERT ON outdial_targets "
               "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
               "EXECUTE FUNCTION outdial_targets_listed_insert()")
    op.execute("CREATE TRIGGER outdial_targets_listed_update AFTER UPDATE ON outdial_targets "
               "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
               "EXECUTE FUNCTION outdial_targets_listed_update()")
