"""retry rules on outplans, campaign priority, do-not-call lists and their entries

Revision ID: 0011_retry_dnc
Revises: 0010_windows
Create Date: 2026-11-27 20:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_retry_dnc"
down_revision: str | None = "0010_windows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "tm_delete IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("outplans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retry_rules", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("priority", sa.String(length=16), nullable=False, server_default="due_first")
        )
        batch_op.add_column(
            sa.Column("dnclist_ids", sa.JSON(none_as_null=True), nullable=False,
                      server_default="[]")
        )
    with op.batch_alter_table("outdial_targets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_slot", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("outcome_tries", sa.JSON(none_as_null=True), nullable=True))
    op.create_index(
        "ix_outdial_targets_fresh", "outdial_targets",
        ["outdial_id", "status", sa.text("(next_attempt_at IS NOT NULL)"),
         sa.text("coalesce(next_attempt_at, tm_create)"), "id"],
        unique=False, sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE),
    )

    op.create_table(
        "dnclists",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("applies_to_all", sa.Boolean(), nullable=False),
        sa.Column("tm_create", sa.DateTime(), nullable=False),
        sa.Column("tm_update", sa.DateTime(), nullable=True),
        sa.Column("tm_delete", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_dnclists_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dnclists")),
    )
    op.create_index(
        "ix_dnclists_live_page", "dnclists", ["customer_id", "tm_create", "id"], unique=False,
        sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE),
    )
    op.create_table(
        "dnc_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("dnclist_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("tm_expire", sa.DateTime(), nullable=True),
        sa.Column("tm_create", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_dnc_entries_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["dnclist_id"], ["dnclists.id"], name=op.f("fk_dnc_entries_dnclist_id_dnclists")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dnc_entries")),
    )
    op.create_index("uq_dnc_entries_list_value", "dnc_entries", ["dnclist_id", "value"],
                    unique=True)
    op.create_index("ix_dnc_entries_page", "dnc_entries", ["dnclist_id", "tm_create", "id"],
                    unique=False)
    # Import jobs fill a do-not-call list as they fill an outdial.
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.alter_column("outdial_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.add_column(sa.Column("dnclist_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_import_jobs_dnclist_id_dnclists"), "dnclists", ["dnclist_id"], ["id"])
        batch_op.create_index("ix_import_jobs_dnclist_id", ["dnclist_id", "tm_create"],
                              unique=False)


def downgrade() -> None:
    op.execute("DELETE FROM import_row_errors WHERE import_id IN "
               "(SELECT id FROM import_jobs WHERE dnclist_id IS NOT NULL)")
    op.execute("DELETE FROM import_jobs WHERE dnclist_id IS NOT NULL")
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_import_jobs_dnclist_id")
        batch_op.drop_constraint(op.f("fk_import_jobs_dnclist_id_dnclists"), type_="foreignkey")
        batch_op.drop_column("dnclist_id")
        batch_op.alter_column("outdial_id", existing_type=sa.Uuid(), nullable=False)
    op.drop_index("ix_dnc_entries_page", table_name="dnc_entries")
    op.drop_index("uq_dnc_entries_list_value", table_name="dnc_entries")
    op.drop_table("dnc_entries")
    op.drop_index("ix_dnclists_live_page", table_name="dnclists",
                  sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
    op.drop_table("dnclists")
    op.drop_index("ix_outdial_targets_fresh", table_name="outdial_targets",
                  sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
    with op.batch_alter_table("outdial_targets", schema=None) as batch_op:
        batch_op.drop_column("outcome_tries")
        batch_op.drop_column("first_slot")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("dnclist_ids")
        batch_op.drop_column("priority")
    with op.batch_alter_table("outplans", schema=None) as batch_op:
        batch_op.drop_column("retry_rules")
