"""channels; outplans name their SIP and email channels; campaigncalls record the channel's word

Revision ID: 0006_channels
Revises: 0005_accesskey_agent
Create Date: 2026-11-27 17:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_channels"
down_revision: str | None = "0005_accesskey_agent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IN_FLIGHT = "status <> 'done'"


def _nil_uuid() -> str:
    # sa.Uuid is stored as 32 hex digits on SQLite and as a native uuid on PostgreSQL.
    if op.get_bind().dialect.name == "sqlite":
        return "0" * 32
    return "00000000-0000-0000-0000-000000000000"


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("settings", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("password_encrypted", sa.String(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("tm_create", sa.DateTime(), nullable=False),
        sa.Column("tm_update", sa.DateTime(), nullable=True),
        sa.Column("tm_delete", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_channels_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels")),
    )
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.create_index(
            "ix_channels_live_page", ["customer_id", "tm_create", "id"], unique=False,
            sqlite_where=sa.text("tm_delete IS NULL"), postgresql_where=sa.text("tm_delete IS NULL"),
        )

    nil = _nil_uuid()
    with op.batch_alter_table("outplans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sip_channel_id", sa.Uuid(), nullable=False, server_default=nil))
        batch_op.add_column(
            sa.Column("email_channel_id", sa.Uuid(), nullable=False, server_default=nil)
        )

    with op.batch_alter_table("campaigncalls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel_id", sa.Uuid(), nullable=False, server_default=nil))
        batch_op.add_column(sa.Column(
            "channel_type", sa.String(length=16), nullable=False, server_default="simulated"
        ))
        batch_op.add_column(sa.Column("sip_code", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("sip_reason", sa.String(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("hangup_by", sa.String(length=16), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("digits", sa.String(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("smtp_code", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("smtp_reply", sa.String(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("message_id", sa.String(), nullable=False, server_default=""))
        batch_op.create_index(
            "ix_campaigncalls_channel_in_flight", ["channel_id"], unique=False,
            sqlite_where=sa.text(IN_FLIGHT), postgresql_where=sa.text(IN_FLIGHT),
        )
        batch_op.create_index(
            "ix_campaigncalls_channel_started", ["channel_id", "tm_create"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("campaigncalls", schema=None) as batch_op:
        batch_op.drop_index("ix_campaigncalls_channel_started")
        batch_op.drop_index(
            "ix_campaigncalls_channel_in_flight",
            sqlite_where=sa.text(IN_FLIGHT), postgresql_where=sa.text(IN_FLIGHT),
        )
        for column in ("message_id", "smtp_reply", "smtp_code", "digits", "hangup_by",
                       "sip_reason", "sip_code", "channel_type", "channel_id"):
            batch_op.drop_column(column)
    with op.batch_alter_table("outplans", schema=None) as batch_op:
        batch_op.drop_column("email_channel_id")
        batch_op.drop_column("sip_channel_id")
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_channels_live_page",
            sqlite_where=sa.text("tm_delete IS NULL"), postgresql_where=sa.text("tm_delete IS NULL"),
        )
    op.drop_table("channels")
