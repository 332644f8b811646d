"""outdial stats from counters kept by triggers; targets know whether they were answered

Revision ID: 0009_stats_counters
Revises: 0008_webhooks
Create Date: 2026-11-27 20:50:00.000000

Every change to outdial_targets — by the API, an import, the engine or any path added later —
moves the counts of live targets per shape (status, answered, which slots hold a destination,
try counts) in the same transaction, through triggers:

- SQLite (one writer at a time): row triggers update outdial_target_counts directly.
- PostgreSQL: statement triggers read the statement's transition tables and append one change
  row per shape to outdial_target_count_changes. Appending never waits on another writer, so
  engine workers and imports do not queue on a counter row; a COPY of thousands of rows adds a
  handful of change rows. The compactor (outdials.counts) folds changes into the counts.

A campaigncall whose result becomes `success` marks its target answered (a row trigger that
only fires for successes).

PostgreSQL only: outdial_targets' foreign keys (customer, outdial) are checked by the same
statement triggers once per statement instead of once per row — each row's outdial must exist
and belong to the row's customer, and its row is locked FOR KEY SHARE as a foreign key would —
and a trigger on outdials refuses to delete or re-key an outdial that has targets. The mapping
of an import's rows to targets loses its key to the job (only the import writes it, in the
job's transaction). bench/import_fk_bench.py measures what this saves an import.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_stats_counters"
down_revision: str | None = "0008_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = range(5)
TRIES = [f"try_count_{n}" for n in SLOTS]
KEY = ["outdial_id", "status", "answered", "destinations", *TRIES]
RETRY_WAIT = "tm_delete IS NULL AND status = 'idle' AND tm_last_end IS NOT NULL"


def _key_values(row: str) -> str:
    """The count key of a target row (`row` is NEW, OLD or a transition table's alias)."""
    destinations = " + ".join(
        f"(CASE WHEN {row}.destination_{n} IS NULL THEN 0 ELSE {1 << n} END)" for n in SLOTS
    )
    return ", ".join([f"{row}.outdial_id", f"{row}.status", f"{row}.answered", destinations,
                      *(f"{row}.{t}" for t in TRIES)])


def _count_columns() -> list[sa.Column]:
    return [
        sa.Column("outdial_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("destinations", sa.Integer(), nullable=False),
        *(sa.Column(t, sa.Integer(), nullable=False) for t in TRIES),
        sa.Column("targets", sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if not sqlite:
        # No change may slip between the backfill below and the triggers taking over.
        op.execute("LOCK TABLE outdial_targets, campaigncalls IN SHARE ROW EXCLUSIVE MODE")
    op.add_column("outdial_targets", sa.Column("answered", sa.Boolean(), nullable=False,
                                               server_default=sa.false()))
    op.execute(
        "UPDATE outdial_targets SET answered = true WHERE id IN "
        "(SELECT outdial_target_id FROM campaigncalls WHERE result = 'success')"
    )
    op.create_index("ix_outdial_targets_retry_wait", "outdial_targets",
                    ["outdial_id", "tm_last_end"], unique=False,
                    sqlite_where=sa.text(RETRY_WAIT), postgresql_where=sa.text(RETRY_WAIT))
    op.create_table("outdial_target_counts", *_count_columns(),
                    sa.PrimaryKeyConstraint(*KEY, name=op.f("pk_outdial_target_counts")))
    op.create_table(
        "outdial_target_count_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        *_count_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outdial_target_count_changes")),
    )
    op.create_index("ix_outdial_target_count_changes_outdial", "outdial_target_count_changes",
                    ["outdial_id"], unique=False)
    op.create_table(
        "count_compactions",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("tm_lease_expire", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_count_compactions")),
    )
    for statement in (_sqlite_triggers() if sqlite else _postgres_triggers()):
        op.execute(statement)
    columns = ", ".join(KEY)
    op.execute(
        f"INSERT INTO outdial_target_counts ({columns}, targets) "
        f"SELECT {_key_values('t')}, COUNT(*) FROM outdial_targets t "
        f"WHERE t.tm_delete IS NULL GROUP BY {_key_values('t')}"
    )


def _sqlite_triggers() -> list[str]:
    columns = ", ".join(KEY)
    conflict = f"ON CONFLICT ({columns}) DO UPDATE SET targets = targets + excluded.targets"

    def move(row: str, by: int) -> str:
        return (f"INSERT INTO outdial_target_counts ({columns}, targets) "
                f"SELECT {_key_values(row)}, {by} "
                f"WHERE {row}.tm_delete IS NULL {conflict};")

    answered = (
        "UPDATE outdial_targets SET answered = 1 "
        "WHERE id = NEW.outdial_target_id AND answered = 0;"
    )
    return [
        f"CREATE TRIGGER outdial_targets_count_insert AFTER INSERT ON outdial_targets "
        f"BEGIN {move('NEW', 1)} END",
        f"CREATE TRIGGER outdial_targets_count_update AFTER UPDATE ON outdial_targets "
        f"BEGIN {move('OLD', -1)} {move('NEW', 1)} END",
        f"CREATE TRIGGER outdial_targets_count_delete AFTER DELETE ON outdial_targets "
        f"BEGIN {move('OLD', -1)} END",
        f"CREATE TRIGGER campaigncalls_answered_insert AFTER INSERT ON campaigncalls "
        f"WHEN NEW.result = 'success' BEGIN {answered} END",
        f"CREATE TRIGGER campaigncalls_answered_update AFTER UPDATE OF result ON campaigncalls "
        f"WHEN NEW.result = 'success' AND OLD.result <> 'success' BEGIN {answered} END",
    ]


def _postgres_triggers() -> list[str]:
    columns = ", ".join(KEY)

    def changes(*sides: tuple[str, int]) -> str:
        parts = " UNION ALL ".join(
            f"SELECT {_key_values('r')}, {by} AS targets FROM {table} r "
            f"WHERE r.tm_delete IS NULL"
            for table, by in sides
        )
        return (f"INSERT INTO outdial_target_count_changes ({columns}, targets) "
                f"SELECT {columns}, SUM(targets) FROM ({parts}) moved ({columns}, targets) "
                f"GROUP BY {columns} HAVING SUM(targets) <> 0;")

    def outdials_exist(rows: str) -> str:
        """The foreign keys' check, once per statement: the outdials of `rows` are locked as
        a foreign key locks them (KEY SHARE: not deleted nor re-keyed before commit) and
        each row's customer must be its outdial's."""
        return (
            f"PERFORM 1 FROM outdials WHERE id IN (SELECT outdial_id FROM {rows} AS checked) "
            f"ORDER BY id FOR KEY SHARE; "
            f"IF EXISTS (SELECT 1 FROM {rows} r WHERE NOT EXISTS (SELECT 1 FROM outdials o "
            f"WHERE o.id = r.outdial_id AND o.customer_id = r.customer_id)) THEN "
            f"RAISE EXCEPTION 'outdial_targets: outdial_id names no outdial of the customer' "
            f"USING ERRCODE = 'foreign_key_violation'; END IF;"
        )

    rekeyed = ("(SELECT r.* FROM new_rows r JOIN old_rows o ON o.id = r.id "
               "WHERE (r.outdial_id, r.customer_id) IS DISTINCT FROM (o.outdial_id, o.customer_id))")
    statements = [
        # Row by row, the two foreign keys cost an import half of PostgreSQL's time
        # (bench/import_fk_bench.py); the statement triggers check them per statement instead.
        "ALTER TABLE outdial_targets DROP CONSTRAINT fk_outdial_targets_customer_id_customers",
        "ALTER TABLE outdial_targets DROP CONSTRAINT fk_outdial_targets_outdial_id_outdials",
        # The mapping rows are written only by their import, in the transaction that ends the
        # job, and jobs are never deleted: the job's key cannot dangle.
        "ALTER TABLE import_row_targets DROP CONSTRAINT fk_import_row_targets_import_id_import_jobs",
        # The other side of the key: an outdial with targets is neither deleted nor moved to
        # another customer (its row is locked by writers of targets, see outdials_exist).
        "CREATE FUNCTION outdials_keep_targets() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF EXISTS (SELECT 1 FROM old_rows o WHERE NOT EXISTS (SELECT 1 FROM outdials n "
        "WHERE n.id = o.id AND n.customer_id = o.customer_id) AND EXISTS (SELECT 1 FROM "
        "outdial_targets t WHERE t.outdial_id = o.id)) THEN RAISE EXCEPTION "
        "'outdials: the outdial still has targets' USING ERRCODE = 'foreign_key_violation'; "
        "END IF; RETURN NULL; END $$",
        "CREATE TRIGGER outdials_keep_targets_update AFTER UPDATE ON outdials "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION outdials_keep_targets()",
        "CREATE TRIGGER outdials_keep_targets_delete AFTER DELETE ON outdials "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION outdials_keep_targets()",
    ]
    for event, body, referencing in (
        ("insert", outdials_exist("new_rows") + changes(("new_rows", 1)), "NEW TABLE AS new_rows"),
        ("update", outdials_exist(rekeyed) + changes(("old_rows", -1), ("new_rows", 1)),
         "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("delete", changes(("old_rows", -1)), "OLD TABLE AS old_rows"),
    ):
        statements += [
            f"CREATE FUNCTION outdial_targets_count_{event}() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN {body} RETURN NULL; END $$",
            f"CREATE TRIGGER outdial_targets_count_{event} AFTER {event.upper()} ON outdial_targets "
            f"REFERENCING {referencing} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION outdial_targets_count_{event}()",
        ]
    statements += [
        "CREATE FUNCTION campaigncalls_answered() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "UPDATE outdial_targets SET answered = true "
        "WHERE id = NEW.outdial_target_id AND NOT answered; RETURN NULL; END $$",
        "CREATE TRIGGER campaigncalls_answered_insert AFTER INSERT ON campaigncalls "
        "FOR EACH ROW WHEN (NEW.result = 'success') EXECUTE FUNCTION campaigncalls_answered()",
        "CREATE TRIGGER campaigncalls_answered_update AFTER UPDATE OF result ON campaigncalls "
        "FOR EACH ROW WHEN (NEW.result = 'success' AND OLD.result <> 'success') "
        "EXECUTE FUNCTION campaigncalls_answered()",
    ]
    return statements


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for trigger, table in (
        ("outdial_targets_count_insert", "outdial_targets"),
        ("outdial_targets_count_update", "outdial_targets"),
        ("outdial_targets_count_delete", "outdial_targets"),
        ("campaigncalls_answered_insert", "campaigncalls"),
        ("campaigncalls_answered_update", "campaigncalls"),
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}" + ("" if sqlite else f" ON {table}"))
    if not sqlite:
        op.execute("DROP TRIGGER outdials_keep_targets_update ON outdials")
        op.execute("DROP TRIGGER outdials_keep_targets_delete ON outdials")
        for function in ("outdial_targets_count_insert", "outdial_targets_count_update",
                         "outdial_targets_count_delete", "campaigncalls_answered",
                         "outdials_keep_targets"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
        op.create_foreign_key("fk_outdial_targets_customer_id_customers", "outdial_targets",
                              "customers", ["customer_id"], ["id"])
        op.create_foreign_key("fk_outdial_targets_outdial_id_outdials", "outdial_targets",
                              "outdials", ["outdial_id"], ["id"])
        op.create_foreign_key("fk_import_row_targets_import_id_import_jobs", "import_row_targets",
                              "import_jobs", ["import_id"], ["id"])
    op.drop_table("count_compactions")
    op.drop_index("ix_outdial_target_count_changes_outdial",
                  table_name="outdial_target_count_changes")
    op.drop_table("outdial_target_count_changes")
    op.drop_table("outdial_target_counts")
    op.drop_index("ix_outdial_targets_retry_wait", table_name="outdial_targets",
                  sqlite_where=sa.text(RETRY_WAIT), postgresql_where=sa.text(RETRY_WAIT))
    with op.batch_alter_table("outdial_targets", schema=None) as batch_op:
        batch_op.drop_column("answered")
