"""quota schema: daily free-request counters (per user, global) and reservations

Revision ID: quota_0001
Revises:
Create Date: 2026-11-27 03:43:20.490731
"""
from alembic import op
import sqlalchemy as sa


revision = 'quota_0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('user_daily_free_usage',
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.CheckConstraint('count >= 0', name='ck_user_daily_free_usage_count_not_negative'),
    sa.PrimaryKeyConstraint('user_id', 'day'),
    schema='quota'
    )
    op.create_table('global_daily_free_usage',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.CheckConstraint('count >= 0', name='ck_global_daily_free_usage_count_not_negative'),
    sa.PrimaryKeyConstraint('day'),
    schema='quota'
    )
    op.create_table('reservations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('released_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    schema='quota'
    )


def downgrade():
    op.drop_table('reservations', schema='quota')
    op.drop_table('global_daily_free_usage', schema='quota')
    op.drop_table('user_daily_free_usage', schema='quota')
