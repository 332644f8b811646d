"""outdials, targets, auth, campaigns

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 06:45:09.880939
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('customers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('detail', sa.String(), nullable=False),
    sa.Column('tm_create', sa.DateTime(), nullable=False),
    sa.Column('tm_update', sa.DateTime(), nullable=True),
    sa.Column('tm_delete', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers'))
    )
    op.create_table('server_secrets',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_server_secrets'))
    )
    op.create_table('accesskeys',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('detail', sa.String(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('tm_expire', sa.DateTime(), nullable=False),
    sa.Column('tm_create', sa.DateTime(), nullable=False),
    sa.Column('tm_update', sa.DateTime(), nullable=True),
    sa.Column('tm_delete', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_accesskeys_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accesskeys')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_accesskeys_token_hash'))
    )
    with op.batch_alter_table('accesskeys', schema=None) as batch_op:
        batch_op.create_index('ix_accesskeys_customer_id_tm_create', ['customer_id', 'tm_create', 'id'], unique=False)

    op.create_table('agents',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('password_hash', sa.String(), nullable=False),
    sa.Column('permission', sa.String(length=16), nullable=False),
    sa.Column('tm_create', sa.DateTime(), nullable=False),
    sa.Column('tm_update', sa.DateTime(), nullable=True),
    sa.Column('tm_delete', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_agents_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agents')),
    sa.UniqueConstraint('username', name=op.f('uq_agents_username'))
    )
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agents_customer_id'), ['customer_id'], unique=False)

    op.create_table('campaigns',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('detail', sa.String(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('service_level', sa.Integer(), nullable=False),
    sa.Column('end_handle', sa.String(length=16), nullable=False),
    sa.Column('actions', sa.JSON(none_as_null=True), nullable=False),
    sa.Column('outplan_id', sa.Uuid(), nullable=False),
    sa.Column('outdial_id', sa.Uuid(), nullable=False),
    sa.Column('queue_id', sa.Uuid(), nullable=False),
    sa.Column('next_campaign_id', sa.Uuid(), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('dial_rate', sa.Integer(), nullable=False),
    sa.Column('tm_create', sa.DateTime(), nullable=False),
    sa.Column('tm_update', sa.DateTime(), nullable=True),
    sa.Column('tm_delete', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_campaigns_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index('ix_campaigns_live_page', ['customer_id', 'tm_create', 'id'], unique=False, sqlite_where=sa.text('tm_delete IS NULL'), postgresql_where=sa.text('tm_delete IS NULL'))
        batch_op.create_index('ix_campaigns_status', ['status'], unique=False)

    op.create_table('outdials',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('detail', sa.String(), nullable=False),
    sa.Column('data', sa.String(), nullable=False),
    sa.Column('tm_create', sa.DateTime(), nullable=False),
    sa.Column('tm_update', sa.DateTime(), nullable=True),
    sa.Column('tm_delete', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_outdials_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outdials'))
    )
    with op.batch_alter_table('outdials', schema=None) as batch_op:
        batch_op.create_index('ix_outdials_live_page', ['customer_id', 'tm_create', 'id'], unique=False, sqlite_where=sa.text('tm_delete IS NULL'), postgresql_where=sa.text('tm_delete IS NULL'))

    op.create_table('outplans',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('detail', sa.String(), nullable=False),
    sa.Column('source', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('dial_timeout', sa.Integer(), nullable=False),
    sa.Column('try_interval', sa.BigInteger(), nullable=False),
    sa.Column('max_try_count_0', sa.Integer(), nullable=False),
    sa.Column('max_try_count_1', sa.Integer(), nullable=False),
    sa.Column('max_try_count_2', sa.Integer(), nullable=False),
    sa.Column('max_try_count_3', sa.Integer(), nullable=False),
    sa.Column('max_try_count_4', sa.Integer(), nullable=False),
    sa.Column('tm_create', sa.DateTime(), nullable=False),
    sa.Column('tm_update', sa.DateTime(), nullable=True),
    sa.Column('tm_delete', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_outplans_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outplans'))
    )
    with op.batch_alter_table('outplans', schema=None) as batch_op:
        batch_op.create_index('ix_outplans_live_page', ['customer_id', 'tm_create', 'id'], unique=False, sqlite_where=sa.text('tm_delete IS NULL'), postgresql_where=sa.text('tm_delete IS NULL'))

    op.create_table('outdial_targets',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('outdial_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('detail', sa.String(), nullable=False),
    sa.Column('data', sa.String(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('destination_0', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('destination_1', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('destination_2', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('destination_3', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('destination_4', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('try_count_0', sa.Integer(), nullable=False),
    sa.Column('try_count_1', sa.Integer(), nullable=False),
    sa.Column('try_count_2', sa.Integer(), nullable=False),
    sa.Column('try_count_3', sa.Integer(), nullable=False),
    sa.Column('try_count_4', sa.Integer(), nullable=False),
    sa.Column('tm_last_end', sa.DateTime(), nullable=True),
    sa.Column('tm_create', sa.DateTime(), nullable=False),
    sa.Column('tm_update', sa.DateTime(), nullable=True),
    sa.Column('tm_delete', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_outdial_targets_customer_id_customers')),
    sa.ForeignKeyConstraint(['outdial_id'], ['outdials.id'], name=op.f('fk_outdial_targets_outdial_id_outdials')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outdial_targets'))
    )
    with op.batch_alter_table('outdial_targets', schema=None) as batch_op:
        batch_op.create_index('ix_outdial_targets_dialable', ['outdial_id', 'status', 'tm_last_end'], unique=False, sqlite_where=sa.text('tm_delete IS NULL'), postgresql_where=sa.text('tm_delete IS NULL'))
        batch_op.create_index('ix_outdial_targets_live_page', ['outdial_id', 'tm_create', 'id'], unique=False, sqlite_where=sa.text('tm_delete IS NULL'), postgresql_where=sa.text('tm_delete IS NULL'))

    op.create_table('campaigncalls',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('outplan_id', sa.Uuid(), nullable=False),
    sa.Column('outdial_id', sa.Uuid(), nullable=False),
    sa.Column('outdial_target_id', sa.Uuid(), nullable=False),
    sa.Column('queue_id', sa.Uuid(), nullable=False),
    sa.Column('activeflow_id', sa.Uuid(), nullable=False),
    sa.Column('flow_id', sa.Uuid(), nullable=False),
    sa.Column('reference_type', sa.String(length=16), nullable=False),
    sa.Column('reference_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('source', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('destination', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('destination_index', sa.Integer(), nullable=False),
    sa.Column('try_count', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.String(length=64), nullable=False),
    sa.Column('tm_lease_expire', sa.DateTime(), nullable=True),
    sa.Column('tm_end', sa.DateTime(), nullable=True),
    sa.Column('tm_create', sa.DateTime(), nullable=False),
    sa.Column('tm_update', sa.DateTime(), nullable=True),
    sa.Column('tm_delete', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaigncalls_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_campaigncalls_customer_id_customers')),
    sa.ForeignKeyConstraint(['outdial_target_id'], ['outdial_targets.id'], name=op.f('fk_campaigncalls_outdial_target_id_outdial_targets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigncalls'))
    )
    with op.batch_alter_table('campaigncalls', schema=None) as batch_op:
        batch_op.create_index('ix_campaigncalls_campaign_page', ['campaign_id', 'tm_create', 'id'], unique=False)
        batch_op.create_index('ix_campaigncalls_in_flight', ['campaign_id', 'tm_lease_expire'], unique=False, sqlite_where=sa.text("status <> 'done'"), postgresql_where=sa.text("status <> 'done'"))
        batch_op.create_index('ix_campaigncalls_live_page', ['customer_id', 'tm_create', 'id'], unique=False, sqlite_where=sa.text('tm_delete IS NULL'), postgresql_where=sa.text('tm_delete IS NULL'))
        batch_op.create_index('uq_campaigncalls_one_in_flight', ['outdial_target_id'], unique=True, sqlite_where=sa.text("status <> 'done'"), postgresql_where=sa.text("status <> 'done'"))



def downgrade() -> None:
    with op.batch_alter_table('campaigncalls', schema=None) as batch_op:
        batch_op.drop_index('uq_campaigncalls_one_in_flight', sqlite_where=sa.text("status <> 'done'"), postgresql_where=sa.text("status <> 'done'"))
        batch_op.drop_index('ix_campaigncalls_live_page', sqlite_where=sa.text('tm_delete IS NULL'), postgresql_where=sa.text('tm_delete IS NULL'))
        batch_op.drop_index('ix_campaigncalls_in_flight', sqlite_where=sa.text("status <> 'done'"), postgresql_where=sa.text("status <> 'done'"))
        batch_op.drop_index('ix_campaigncalls_campaign_page')

    op.drop_table('campaigncalls')
    with op.batch_alter_table('outdial_targets', schema=None) as batch_op:
        batch_op.drop_index('ix_outdial_targets_live_page', sqlite_where=sa.text('tm_delete IS NULL'), postgresql_where=sa.text('tm_delete IS NULL'))
        batch_op.drop_index('ix_outdial_targets_dialable', sqlite_where=sa.text('tm_delete IS NULL'), postgresql_where=sa.text('tm_delete IS NULL'))

    op.drop_table('outdial_targets')
    with op.batch_alter_table('outplans', schema=None) as batch_op:
        batch_op.drop_index('ix_outplans_live_page', sqlite_where=sa.text('tm_delete IS NULL'), postgresql_where=sa.text('tm_delete IS NULL'))

    op.drop_table('outplans')
    with op.batch_alter_table('outdials', schema=None) as batch_op:
        batch_op.drop_index('ix_outdials_live_page', sqlite_where=sa.text('tm_delete IS NULL'), postgresql_where=sa.text('tm_delete IS NULL'))

    op.drop_table('outdials')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigns_status')
        batch_op.drop_index('ix_campaigns_live_page', sqlite_where=sa.text('tm_delete IS NULL'), postgresql_where=sa.text('tm_delete IS NULL'))

    op.drop_table('campaigns')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agents_customer_id'))

    op.drop_table('agents')
    with op.batch_alter_table('accesskeys', schema=None) as batch_op:
        batch_op.drop_index('ix_accesskeys_customer_id_tm_create')

    op.drop_table('accesskeys')
    op.drop_table('server_secrets')
    op.drop_table('customers')
