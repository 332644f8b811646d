"""outdial stats from counters kept by triggers; targets know whether they were answered

Revision ID: 0007_stats_counters
Revises: 0006_channels
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
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_stats_counters"
down_revision: str | None = "0006_channels"
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

    statements = []
    for event, body, referencing in (
        ("insert", changes(("new_rows", 1)), "NEW TABLE AS new_rows"),
        ("update", changes(("old_rows", -1), ("new_rows", 1)),
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
        for function in ("outdial_targets_count_insert", "outdial_targets_count_update",
                         "outdial_targets_count_delete", "campaigncalls_answered"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_table("count_compactions")
    op.drop_index("ix_outdial_target_count_changes_outdial",
                  table_name="outdial_target_count_changes")
    op.drop_table("outdial_target_count_changes")
    op.drop_table("outdial_target_counts")
    op.drop_index("ix_outdial_targets_retry_wait", table_name="outdial_targets",
                  sqlite_where=sa.text(RETRY_WAIT), postgresql_where=sa.text(RETRY_WAIT))
    with op.batch_alter_table("outdial_targets", schema=None) as batch_op:
        batch_op.drop_column("answered")
