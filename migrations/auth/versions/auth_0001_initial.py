"""auth schema: users, sessions, password reset tokens

Revision ID: auth_0001
Revises: 
Create Date: 2026-11-27 03:38:17.344167
"""
from alembic import op
import sqlalchemy as sa


revision = 'auth_0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('password_reset_tokens',
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
    op.create_index(op.f('ix_auth_password_reset_tokens_user_id'), 'password_reset_tokens', ['user_id'], unique=False, schema='auth')
    op.create_table('sessions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    schema='auth'
    )
    op.create_index(op.f('ix_auth_sessions_user_id'), 'sessions', ['user_id'], unique=False, schema='auth')
    op.create_table('users',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email'),
    schema='auth'
    )


def downgrade():
    op.drop_table('users', schema='auth')
    op.drop_index(op.f('ix_auth_sessions_user_id'), table_name='sessions', schema='auth')
    op.drop_table('sessions', schema='auth')
    op.drop_index(op.f('ix_auth_password_reset_tokens_user_id'), table_name='password_reset_tokens', schema='auth')
    op.drop_table('password_reset_tokens', schema='auth')
