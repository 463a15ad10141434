"""initial order book

Revision ID: 0001
Revises: 
Create Date: 2026-11-30 11:39:17.814769
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('products',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ndc', sa.String(length=11), nullable=False),
    sa.Column('product_ndc', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('generic_name', sa.String(length=500), nullable=False),
    sa.Column('strength', sa.String(length=300), nullable=False),
    sa.Column('dosage_form', sa.String(length=100), nullable=False),
    sa.Column('labeler', sa.String(length=200), nullable=False),
    sa.Column('package_description', sa.String(length=500), nullable=False),
    sa.Column('package_quantity', sa.Numeric(precision=12, scale=3), nullable=False),
    sa.Column('unit', sa.String(length=2), nullable=False),
    sa.Column('schedule', sa.String(length=4), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_products')),
    sa.UniqueConstraint('ndc', name=op.f('uq_products_ndc'))
    )
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_products_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_products_product_ndc'), ['product_ndc'], unique=False)
        batch_op.create_index('ix_products_name_lower', [sa.text('lower(name)')], unique=False)
        batch_op.create_index('ix_products_generic_name_lower', [sa.text('lower(generic_name)')], unique=False)

    op.create_table('registrations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dea_number', sa.String(length=9), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address_lines', sa.JSON(), nullable=False),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=2), nullable=False),
    sa.Column('postal_code', sa.String(length=10), nullable=False),
    sa.Column('business_activity', sa.String(length=100), nullable=False),
    sa.Column('schedules', sa.String(length=40), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registrations')),
    sa.UniqueConstraint('dea_number', name=op.f('uq_registrations_dea_number'))
    )
    op.create_table('suppliers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('dea_number', sa.String(length=9), nullable=True),
    sa.Column('address_lines', sa.JSON(), nullable=False),
    sa.Column('city', sa.String(length=100), nullable=True),
    sa.Column('state', sa.String(length=2), nullable=True),
    sa.Column('postal_code', sa.String(length=10), nullable=True),
    sa.Column('connector', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppliers')),
    sa.UniqueConstraint('name', name=op.f('uq_suppliers_name'))
    )
    op.create_table('certificates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=True),
    sa.Column('subscriber_name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=True),
    sa.Column('certificate_der', sa.LargeBinary(), nullable=True),
    sa.Column('chain_pem', sa.Text(), nullable=False),
    sa.Column('schedules', sa.String(length=40), nullable=False),
    sa.Column('not_before', sa.DateTime(), nullable=True),
    sa.Column('not_after', sa.DateTime(), nullable=True),
    sa.Column('key_ref', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'active', 'expired', 'revoked', 'superseded', name='certificate_status', native_enum=False, length=32), nullable=False),
    sa.Column('superseded_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], name=op.f('fk_certificates_registration_id_registrations')),
    sa.ForeignKeyConstraint(['superseded_by_id'], ['certificates.id'], name=op.f('fk_certificates_superseded_by_id_certificates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificates')),
    sa.UniqueConstraint('fingerprint', name=op.f('uq_certificates_fingerprint'))
    )
    op.create_table('order_number_counters',
    sa.Column('registration_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('next_value', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], name=op.f('fk_order_number_counters_registration_id_registrations')),
    sa.PrimaryKeyConstraint('registration_id', 'year', name=op.f('pk_order_number_counters'))
    )
    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_number', sa.String(length=9), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=False),
    sa.Column('supplier_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('draft', 'signed', 'queued', 'transmitted', 'accepted', 'partially_accepted', 'not_accepted', 'partially_received', 'received', 'voided', 'partially_voided', 'cancelled', 'lost', 'expired', name='order_status', native_enum=False, length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('signed_at', sa.DateTime(), nullable=True),
    sa.Column('signer_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('signed_document', sa.LargeBinary(), nullable=True),
    sa.Column('payload_sha256', sa.String(length=64), nullable=True),
    sa.Column('transmitted_at', sa.DateTime(), nullable=True),
    sa.Column('replaces_order_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], name=op.f('fk_orders_registration_id_registrations')),
    sa.ForeignKeyConstraint(['replaces_order_id'], ['orders.id'], name=op.f('fk_orders_replaces_order_id_orders')),
    sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id'], name=op.f('fk_orders_supplier_id_suppliers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('registration_id', 'order_number', name='uq_orders_registration_order_number')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_created_id', ['created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_order_number'), ['order_number'], unique=False)
        batch_op.create_index('ix_orders_status_id', ['status', 'id'], unique=False)
        batch_op.create_index('ix_orders_supplier_id', ['supplier_id', 'id'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('previous_hash', sa.String(length=64), nullable=False),
    sa.Column('event_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_audit_events_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    sa.UniqueConstraint('event_hash', name=op.f('uq_audit_events_event_hash')),
    sa.UniqueConstraint('previous_hash', name=op.f('uq_audit_events_previous_hash'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_order_id'), ['order_id'], unique=False)

    op.create_table('linked_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('acknowledgement', 'non_acceptance', 'void', 'partial_void', 'shipment', 'receipt', 'lost_statement', 'replacement', 'cancellation', 'expiry', 'note', name='linked_record_kind', native_enum=False, length=32), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('media_type', sa.String(length=100), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('raw_sha256', sa.String(length=64), nullable=False),
    sa.Column('parsed', sa.JSON(), nullable=False),
    sa.Column('related_order_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_linked_records_order_id_orders')),
    sa.ForeignKeyConstraint(['related_order_id'], ['orders.id'], name=op.f('fk_linked_records_related_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_linked_records'))
    )
    with op.batch_alter_table('linked_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_linked_records_order_id'), ['order_id'], unique=False)

    op.create_table('order_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('line_number', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=True),
    sa.Column('ndc', sa.String(length=11), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('schedule', sa.String(length=4), nullable=False),
    sa.Column('packages', sa.Integer(), nullable=False),
    sa.Column('package_quantity', sa.Numeric(precision=12, scale=3), nullable=False),
    sa.Column('unit', sa.String(length=2), nullable=False),
    sa.Column('line_status', sa.Enum('open', 'accepted', 'rejected', 'backordered', 'quantity_changed', 'voided', name='line_status', native_enum=False, length=32), nullable=False),
    sa.Column('packages_confirmed', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_lines_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_order_lines_product_id_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_lines')),
    sa.UniqueConstraint('order_id', 'line_number', name='uq_order_lines_order_line_number')
    )
    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.create_index('ix_order_lines_ndc', ['ndc'], unique=False)

    op.create_table('receipts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_line_id', sa.Integer(), nullable=False),
    sa.Column('packages_received', sa.Integer(), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('recorded_by', sa.String(length=100), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['order_line_id'], ['order_lines.id'], name=op.f('fk_receipts_order_line_id_order_lines')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_receipts'))
    )
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_receipts_order_line_id'), ['order_line_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_receipts_order_line_id'))

    op.drop_table('receipts')
    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_order_lines_ndc')

    op.drop_table('order_lines')
    with op.batch_alter_table('linked_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_linked_records_order_id'))

    op.drop_table('linked_records')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_order_id'))

    op.drop_table('audit_events')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_supplier_id')
        batch_op.drop_index('ix_orders_status_id')
        batch_op.drop_index(batch_op.f('ix_orders_order_number'))
        batch_op.drop_index('ix_orders_created_id')

    op.drop_table('orders')
    op.drop_table('order_number_counters')
    op.drop_table('certificates')
    op.drop_table('suppliers')
    op.drop_table('registrations')
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_products_product_ndc'))
        batch_op.drop_index(batch_op.f('ix_products_name'))

    op.drop_table('products')

