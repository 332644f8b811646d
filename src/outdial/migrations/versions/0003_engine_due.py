"""targets' next_attempt_at; the engine claims along an index in due order

Revision ID: 0003_engine_due
Revises: 0002
Create Date: 2026-11-27 17:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003_engine_due'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = 'tm_delete IS NULL'


def upgrade() -> None:
    with op.batch_alter_table('outdial_targets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(), nullable=True))
    # Targets waiting out a try_interval are due from their last end (the claim still holds
    # them back for the interval itself); the others are due since their creation.
    op.execute(
        "UPDATE outdial_targets SET next_attempt_at = tm_last_end "
        "WHERE tm_last_end IS NOT NULL AND status = 'idle'"
    )
    op.drop_index('ix_outdial_targets_dialable', table_name='outdial_targets',
                  sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
    op.create_index(
        'ix_outdial_targets_due', 'outdial_targets',
        ['outdial_id', 'status', sa.text('coalesce(next_attempt_at, tm_create)'), 'id'],
        unique=False, sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE),
    )


def downgrade() -> None:
    op.drop_index('ix_outdial_targets_due', table_name='outdial_targets',
                  sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
    op.create_index('ix_outdial_targets_dialable', 'outdial_targets',
                    ['outdial_id', 'status', 'tm_last_end'], unique=False,
                    sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
    with op.batch_alter_table('outdial_targets', schema=None) as batch_op:
        batch_op.drop_column('next_attempt_at')
