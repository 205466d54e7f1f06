"""auth schema: email confirmation (users.email_verified_at, email_verification_tokens)

Revision ID: auth_0002
Revises: auth_0001
Create Date: 2026-12-02 16:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = 'auth_0002'
down_revision = 'auth_0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema='auth') as batch_op:
        batch_op.add_column(sa.Column('email_verified_at', sa.DateTime(), nullable=True))
    op.create_table('email_verification_tokens',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash'),
    schema='auth'
    )
    op.create_index(op.f('ix_auth_email_verification_tokens_user_id'), 'email_verification_tokens', ['user_id'], unique=False, schema='auth')


def downgrade():
    op.drop_index(op.f('ix_auth_email_verification_tokens_user_id'), table_name='email_verification_tokens', schema='auth')
    op.drop_table('email_verification_tokens', schema='auth')
    with op.batch_alter_table('users', schema='auth') as batch_op:
        batch_op.drop_column('email_verified_at')
