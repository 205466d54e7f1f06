"""keys schema: provider keys (encrypted), audit logs

Revision ID: keys_0001
Revises:
Create Date: 2026-11-27 03:43:34.312618
"""
from alembic import op
import sqlalchemy as sa


revision = 'keys_0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'provider_keys',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('user_id', sa.String(length=36), nullable=False),
        sa.Column('provider', sa.String(length=20), nullable=False),
        sa.Column('label', sa.String(length=100), nullable=True),
        # NULL once revoked: revocation destroys the ciphertext.
        sa.Column('key_ciphertext', sa.Text(), nullable=True),
        sa.Column('key_mask', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('last_validated_at', sa.DateTime(), nullable=True),
        sa.Column('last_used_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.CheckConstraint("status IN ('active', 'invalid', 'revoked')", name='ck_provider_keys_status'),
        sa.CheckConstraint(
            "(status = 'revoked' AND key_ciphertext IS NULL)"
            " OR (status <> 'revoked' AND key_ciphertext IS NOT NULL)",
            name='ck_provider_keys_ciphertext_iff_not_revoked',
        ),
        schema='keys',
    )
    op.create_index(
        'ix_keys_provider_keys_user_id_provider', 'provider_keys', ['user_id', 'provider'], schema='keys'
    )

    op.create_table(
        'audit_logs',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('user_id', sa.String(length=36), nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('provider', sa.String(length=20), nullable=True),
        sa.Column('key_id', sa.String(length=36), nullable=True),
        sa.Column('metadata', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        schema='keys',
    )
    op.create_index(op.f('ix_keys_audit_logs_user_id'), 'audit_logs', ['user_id'], schema='keys')
    op.create_index(op.f('ix_keys_audit_logs_key_id'), 'audit_logs', ['key_id'], schema='keys')


def downgrade():
    op.drop_index(op.f('ix_keys_audit_logs_key_id'), table_name='audit_logs', schema='keys')
    op.drop_index(op.f('ix_keys_audit_logs_user_id'), table_name='audit_logs', schema='keys')
    op.drop_table('audit_logs', schema='keys')
    op.drop_index('ix_keys_provider_keys_user_id_provider', table_name='provider_keys', schema='keys')
    op.drop_table('provider_keys', schema='keys')
