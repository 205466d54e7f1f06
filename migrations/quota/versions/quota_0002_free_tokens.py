"""quota schema: a daily token budget per user, and each reservation's estimated and settled tokens

Revision ID: quota_0002
Revises: quota_0001
Create Date: 2026-12-02 16:40:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = 'quota_0002'
down_revision = 'quota_0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user_daily_free_usage', schema='quota') as batch_op:
        batch_op.add_column(sa.Column('tokens', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_check_constraint('ck_user_daily_free_usage_tokens_not_negative', 'tokens >= 0')
    with op.batch_alter_table('reservations', schema='quota') as batch_op:
        batch_op.add_column(sa.Column('estimated_tokens', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('settled_tokens', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('reservations', schema='quota') as batch_op:
        batch_op.drop_column('settled_tokens')
        batch_op.drop_column('estimated_tokens')
    with op.batch_alter_table('user_daily_free_usage', schema='quota') as batch_op:
        batch_op.drop_constraint('ck_user_daily_free_usage_tokens_not_negative', type_='check')
        batch_op.drop_column('tokens')
