"""webhooks: a lease on the endpoint for a run of its new events

Revision ID: 0016_hookengine
Revises: 0015_importfacts
Create Date: 2026-11-28 07:40:00.000000

A run of an endpoint's new events (nothing of it waiting) is claimed by leasing the webhook's
row, not each delivery: its deliveries are written once, when they have arrived, instead of
being inserted pending, leased and updated (three writes, and dead entries in the pending
index that every claim then walks over until a vacuum can remove them).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_hookengine"
down_revision: str | None = "0015_importfacts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain nullable ADD COLUMNs: SQLite takes them as they are (no batch copy of the table).
    op.add_column("webhooks", sa.Column("owner", sa.String(64), nullable=True))
    op.add_column("webhooks", sa.Column("tm_lease_expire", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("tm_lease_expire")
        batch.drop_column("owner")
