"""webhooks and their deliveries

Revision ID: 0007_webhooks
Revises: 0007_events
Create Date: 2026-11-27 20:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_webhooks"
down_revision: str | None = "0007_events"  # after the outbox it reads from
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "tm_delete IS NULL"
PENDING = "status = 'pending'"


def _event_id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("event_types", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("secret_encrypted", sa.String(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("event_cursor", _event_id(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("tm_create", sa.DateTime(), nullable=False),
        sa.Column("tm_update", sa.DateTime(), nullable=True),
        sa.Column("tm_delete", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_webhooks_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_index(
        "ix_webhooks_live_page", "webhooks", ["customer_id", "tm_create", "id"],
        sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("webhook_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", _event_id(), nullable=True),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("tm_queued", sa.DateTime(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("tm_lease_expire", sa.DateTime(), nullable=True),
        sa.Column("response_code", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(), nullable=False),
        sa.Column("tm_create", sa.DateTime(), nullable=False),
        sa.Column("tm_update", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["webhook_id"], ["webhooks.id"],
            name=op.f("fk_webhook_deliveries_webhook_id_webhooks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "webhook_id", "event_id", name=op.f("uq_webhook_deliveries_webhook_id_event_id")
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_page", "webhook_deliveries", ["webhook_id", "tm_create", "id"]
    )
    op.create_index(
        "ix_webhook_deliveries_pending", "webhook_deliveries", ["webhook_id", "event_id"],
        sqlite_where=sa.text(PENDING), postgresql_where=sa.text(PENDING),
    )
    op.create_index("ix_webhook_deliveries_tm_create", "webhook_deliveries", ["tm_create"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")  # its indexes go with it
    op.drop_table("webhooks")
