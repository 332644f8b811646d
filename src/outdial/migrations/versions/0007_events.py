"""events: the outbox of every change, read in id order by the API, the stream and webhooks

Revision ID: 0007_events
Revises: 0006_channels
Create Date: 2026-11-27 20:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_events"
down_revision: str | None = "0006_channels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("tm_create", sa.DateTime(), nullable=False),
        sa.Column("data", sa.JSON(none_as_null=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_customer_id_id", "events", ["customer_id", "id"], unique=False)
    op.create_index("ix_events_tm_create", "events", ["tm_create"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_tm_create", table_name="events")
    op.drop_index("ix_events_customer_id_id", table_name="events")
    op.drop_table("events")
