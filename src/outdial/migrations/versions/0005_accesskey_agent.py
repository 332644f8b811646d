"""access keys belong to the agent who made them

Revision ID: 0005_accesskey_agent
Revises: 0004_imports_lease
Create Date: 2026-11-27 17:40:00.000000

Keys made before this revision have no known maker: they keep `agent_id` NULL and work as before
(their customer's admin) until they are deleted or expire.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_accesskey_agent"
down_revision: str | None = "0004_imports_lease"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accesskeys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_accesskeys_agent_id"), ["agent_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_accesskeys_agent_id_agents"), "agents", ["agent_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("accesskeys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_accesskeys_agent_id_agents"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_accesskeys_agent_id"))
        batch_op.drop_column("agent_id")
