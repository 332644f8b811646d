"""import jobs, their row reports and mappings; index for answered targets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 06:53:23.975424
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('import_jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('outdial_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('default_region', sa.String(length=8), nullable=False),
    sa.Column('validation', sa.String(length=16), nullable=False),
    sa.Column('dedupe', sa.Boolean(), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=False),
    sa.Column('rows_imported', sa.Integer(), nullable=False),
    sa.Column('rows_rejected', sa.Integer(), nullable=False),
    sa.Column('rows_duplicate', sa.Integer(), nullable=False),
    sa.Column('errors', sa.JSON(none_as_null=True), nullable=False),
    sa.Column('tm_create', sa.DateTime(), nullable=False),
    sa.Column('tm_end', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_import_jobs_customer_id_customers')),
    sa.ForeignKeyConstraint(['outdial_id'], ['outdials.id'], name=op.f('fk_import_jobs_outdial_id_outdials')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_jobs'))
    )
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_import_jobs_outdial_id', ['outdial_id', 'tm_create'], unique=False)
        batch_op.create_index('ix_import_jobs_running', ['status'], unique=False, postgresql_where=sa.text("status = 'running'"), sqlite_where=sa.text("status = 'running'"))

    op.create_table('import_row_errors',
    sa.Column('import_id', sa.Uuid(), nullable=False),
    sa.Column('row', sa.Integer(), nullable=False),
    sa.Column('field', sa.String(), nullable=False),
    sa.Column('message', sa.String(), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['import_jobs.id'], name=op.f('fk_import_row_errors_import_id_import_jobs')),
    sa.PrimaryKeyConstraint('import_id', 'row', 'field', name=op.f('pk_import_row_errors'))
    )
    op.create_table('import_row_targets',
    sa.Column('import_id', sa.Uuid(), nullable=False),
    sa.Column('row', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['import_jobs.id'], name=op.f('fk_import_row_targets_import_id_import_jobs')),
    sa.PrimaryKeyConstraint('import_id', 'row', name=op.f('pk_import_row_targets'))
    )
    with op.batch_alter_table('campaigncalls', schema=None) as batch_op:
        batch_op.create_index('ix_campaigncalls_answered', ['outdial_id', 'outdial_target_id'], unique=False, sqlite_where=sa.text("result = 'success'"), postgresql_where=sa.text("result = 'success'"))



def downgrade() -> None:
    with op.batch_alter_table('campaigncalls', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigncalls_answered', sqlite_where=sa.text("result = 'success'"), postgresql_where=sa.text("result = 'success'"))

    op.drop_table('import_row_targets')
    op.drop_table('import_row_errors')
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_import_jobs_running', postgresql_where=sa.text("status = 'running'"), sqlite_where=sa.text("status = 'running'"))
        batch_op.drop_index('ix_import_jobs_outdial_id')

    op.drop_table('import_jobs')
