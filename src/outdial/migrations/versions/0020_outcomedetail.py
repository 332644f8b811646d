"""campaigncalls: why an attempt ended as it did, when its channel said

Revision ID: 0020_outcomedetail
Revises: 0019_onefold
Create Date: 2026-11-29 10:50:00.000000

A channel's explanation of an outcome (a redirect's Contact, credentials the trunk refused, a
connection that was gone, a worker that stopped) was only logged. It is now kept on the
campaigncall as `outcome_detail`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_outcomedetail"
down_revision: str | None = "0019_onefold"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN with a constant default: no copy of the table on either database.
    op.add_column("campaigncalls", sa.Column(
        "outcome_detail", sa.String(), nullable=False, server_default=""))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+): a batch copy would reflect the tables the foreign
    # keys name, whose expression indexes SQLAlchemy cannot reflect.
    op.drop_column("campaigncalls", "outcome_detail")
