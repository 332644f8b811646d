"""waiting-reason counts without reading every target

Revision ID: 0012_reasoncounts
Revises: 0011_retry_dnc
Create Date: 2026-11-28 03:40:00.000000

The counts per waiting reason (strategy.reasons_counts) ask the rules only about the targets
some rule may hold now, each set found along an index; this adds the one that was missing: the
targets whose first_slot moved on (the counts per shape cannot tell their tries left).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_reasoncounts"
down_revision: str | None = "0011_retry_dnc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MOVED_ON = "tm_delete IS NULL AND first_slot > 0"


def upgrade() -> None:
    op.create_index("ix_outdial_targets_moved_on", "outdial_targets", ["outdial_id"],
                    unique=False, sqlite_where=sa.text(MOVED_ON),
                    postgresql_where=sa.text(MOVED_ON))


def downgrade() -> None:
    op.drop_index("ix_outdial_targets_moved_on", table_name="outdial_targets",
                  sqlite_where=sa.text(MOVED_ON), postgresql_where=sa.text(MOVED_ON))
