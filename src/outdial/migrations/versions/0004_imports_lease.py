"""import jobs: owner and lease, and the outdial's dedupe turn

Revision ID: 0004_imports_lease
Revises: 0003_engine_due
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_imports_lease"
down_revision: str | None = "0003_engine_due"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=64), nullable=False, server_default=""))
        # A job left running by a version without leases has none: it counts as expired.
        batch_op.add_column(sa.Column("tm_lease_expire", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("dedupe_turn", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_column("dedupe_turn")
        batch_op.drop_column("tm_lease_expire")
        batch_op.drop_column("owner")
