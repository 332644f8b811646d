"""the counts per shape keyed on the zone key too

Revision ID: 0017_heldcounts
Revises: 0016_hookengine
Create Date: 2026-11-28 10:45:00.000000

The counts per waiting reason (strategy.reasons_counts) read the targets outside their calling
window from the counts per shape instead of asking the rules about each one: a closed window
holds whole zone keys, often a third of a list or all of it at night. So the shape (migration
0009: status, answered, which slots hold a destination, try counts) gains the target's
zone_key. The triggers of 0009 are the same statements with one more key column; the counts
are rebuilt from the targets, under the lock 0009 took to build them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_heldcounts"
down_revision: str | None = "0016_hookengine"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = range(5)
TRIES = [f"try_count_{n}" for n in SLOTS]
BASE_KEY = ["outdial_id", "status", "answered", "destinations", *TRIES]
TABLES = ("outdial_target_counts", "outdial_target_count_changes")


def _key(zoned: bool) -> list[str]:
    return [*BASE_KEY, "zone_key"] if zoned else BASE_KEY


def _key_values(row: str, zoned: bool) -> str:
    """The count key of a target row (`row` is NEW, OLD or a transition table's alias)."""
    destinations = " + ".join(
        f"(CASE WHEN {row}.destination_{n} IS NULL THEN 0 ELSE {1 << n} END)" for n in SLOTS
    )
    return ", ".join([f"{row}.outdial_id", f"{row}.status", f"{row}.answered", destinations,
                      *(f"{row}.{t}" for t in TRIES),
                      *([f"{row}.zone_key"] if zoned else [])])


def _count_columns(zoned: bool) -> list[sa.Column]:
    return [
        sa.Column("outdial_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("destinations", sa.Integer(), nullable=False),
        *(sa.Column(t, sa.Integer(), nullable=False) for t in TRIES),
        *([sa.Column("zone_key", sa.String(), nullable=False)] if zoned else []),
        sa.Column("targets", sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    _switch(zoned=True)


def downgrade() -> None:
    _switch(zoned=False)


def _switch(zoned: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if not sqlite:
        # No change may slip between the rebuild below and the new triggers taking over.
        op.execute("LOCK TABLE outdial_targets IN SHARE ROW EXCLUSIVE MODE")
    else:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER outdial_targets_count_{event}")
    # Both tables are made again (they are rebuilt from the targets below): one way on both
    # databases, whatever SQLite's batch mode would make of a primary key changing.
    op.drop_index("ix_outdial_target_count_changes_outdial",
                  table_name="outdial_target_count_changes")
    for table in TABLES:
        op.drop_table(table)
    op.create_table("outdial_target_counts", *_count_columns(zoned),
                    sa.PrimaryKeyConstraint(*_key(zoned), name=op.f("pk_outdial_target_counts")))
    op.create_table(
        "outdial_target_count_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        *_count_columns(zoned),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outdial_target_count_changes")),
    )
    op.create_index("ix_outdial_target_count_changes_outdial", "outdial_target_count_changes",
                    ["outdial_id"], unique=False)
    for statement in (_sqlite_triggers(zoned) if sqlite else _postgres_functions(zoned)):
        op.execute(statement)
    key = _key(zoned)
    op.execute(
        f"INSERT INTO outdial_target_counts ({', '.join(key)}, targets) "
        f"SELECT {_key_values('t', zoned)}, COUNT(*) FROM outdial_targets t "
        f"WHERE t.tm_delete IS NULL GROUP BY {_key_values('t', zoned)}"
    )


def _sqlite_triggers(zoned: bool) -> list[str]:
    columns = ", ".join(_key(zoned))
    conflict = f"ON CONFLICT ({columns}) DO UPDATE SET targets = targets + excluded.targets"

    def move(row: str, by: int) -> str:
        return (f"INSERT INTO outdial_target_counts ({columns}, targets) "
                f"SELECT {_key_values(row, zoned)}, {by} "
                f"WHERE {row}.tm_delete IS NULL {conflict};")

    return [
        f"CREATE TRIGGER outdial_targets_count_insert AFTER INSERT ON outdial_targets "
        f"BEGIN {move('NEW', 1)} END",
        f"CREATE TRIGGER outdial_targets_count_update AFTER UPDATE ON outdial_targets "
        f"BEGIN {move('OLD', -1)} {move('NEW', 1)} END",
        f"CREATE TRIGGER outdial_targets_count_delete AFTER DELETE ON outdial_targets "
        f"BEGIN {move('OLD', -1)} END",
    ]


def _postgres_functions(zoned: bool) -> list[str]:
    """The statement triggers' functions of 0009, with the key of this revision (the triggers
    themselves stay)."""
    columns = ", ".join(_key(zoned))

    def changes(*sides: tuple[str, int]) -> str:
        parts = " UNION ALL ".join(
            f"SELECT {_key_values('r', zoned)}, {by} AS targets FROM {table} r "
            f"WHERE r.tm_delete IS NULL"
            for table, by in sides
        )
        return (f"INSERT INTO outdial_target_count_changes ({columns}, targets) "
                f"SELECT {columns}, SUM(targets) FROM ({parts}) moved ({columns}, targets) "
                f"GROUP BY {columns} HAVING SUM(targets) <> 0;")

    def outdials_exist(rows: str) -> str:
        return (
            f"PERFORM 1 FROM outdials WHERE id IN (SELECT outdial_id FROM {rows} AS checked) "
            f"ORDER BY id FOR KEY SHARE; "
            f"IF EXISTS (SELECT 1 FROM {rows} r WHERE NOT EXISTS (SELECT 1 FROM outdials o "
            f"WHERE o.id = r.outdial_id AND o.customer_id = r.customer_id)) THEN "
            f"RAISE EXCEPTION 'outdial_targets: outdial_id names no outdial of the customer' "
            f"USING ERRCODE = 'foreign_key_violation'; END IF;"
        )

    rekeyed = ("(SELECT r.* FROM new_rows r JOIN old_rows o ON o.id = r.id "
               "WHERE (r.outdial_id, r.customer_id) "
               "IS DISTINCT FROM (o.outdial_id, o.customer_id))")
    return [
        f"CREATE OR REPLACE FUNCTION outdial_targets_count_{event}() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$"
        for event, body in (
            ("insert", outdials_exist("new_rows") + changes(("new_rows", 1))),
            ("update", outdials_exist(rekeyed) + changes(("old_rows", -1), ("new_rows", 1))),
            ("delete", changes(("old_rows", -1))),
        )
    ]
