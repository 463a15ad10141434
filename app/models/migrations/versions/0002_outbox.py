"""durable outbox

Revision ID: 0002_outbox
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_outbox'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.Enum('order', 'lost_statement', name='outbox_purpose', native_enum=False, length=32), nullable=False),
    sa.Column('linked_record_id', sa.Integer(), nullable=True),
    sa.Column('document_sha256', sa.String(length=64), nullable=False),
    sa.Column('state', sa.Enum('queued', 'sent', 'failed', 'cancelled', 'expired', name='outbox_state', native_enum=False, length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('queued_at', sa.DateTime(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('last_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('claimed_until', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('last_error_code', sa.String(length=60), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('answer', sa.JSON(), nullable=False),
    sa.Column('records_after', sa.Integer(), nullable=False),
    sa.Column('last_sync_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_outbox_entries_order_id_orders')),
    sa.ForeignKeyConstraint(['linked_record_id'], ['linked_records.id'], name=op.f('fk_outbox_entries_linked_record_id_linked_records')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_entries')),
    sa.UniqueConstraint('order_id', 'purpose', name='uq_outbox_entries_order_purpose')
    )
    with op.batch_alter_table('outbox_entries', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_entries_state_next', ['state', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_entries_state_next')
    op.drop_table('outbox_entries')
