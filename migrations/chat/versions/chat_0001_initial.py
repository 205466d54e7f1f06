"""chat schema: threads, messages, model cache

Revision ID: chat_0001
Revises: 
Create Date: 2026-11-27 03:43:30.629889
"""
from alembic import op
import sqlalchemy as sa


revision = 'chat_0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('provider_model_cache',
    sa.Column('key_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('models', sa.JSON(), nullable=False),
    sa.Column('fetched_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key_id'),
    schema='chat'
    )
    op.create_index(op.f('ix_chat_provider_model_cache_user_id'), 'provider_model_cache', ['user_id'], unique=False, schema='chat')
    op.create_table('threads',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('key_id', sa.String(length=36), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('system_prompt', sa.Text(), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('output_tokens', sa.Integer(), nullable=False),
    sa.Column('total_tokens', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    schema='chat'
    )
    op.create_index('ix_chat_threads_user_updated', 'threads', ['user_id', 'updated_at', 'id'], unique=False, schema='chat')
    op.create_table('messages',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('thread_id', sa.String(length=36), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.Column('client_request_id', sa.String(length=128), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['thread_id'], ['chat.threads.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('thread_id', 'role', 'client_request_id', name='uq_chat_messages_request'),
    schema='chat'
    )
    op.create_index('ix_chat_messages_thread_created', 'messages', ['thread_id', 'created_at'], unique=False, schema='chat')


def downgrade():
    op.drop_index('ix_chat_messages_thread_created', table_name='messages', schema='chat')
    op.drop_table('messages', schema='chat')
    op.drop_index('ix_chat_threads_user_updated', table_name='threads', schema='chat')
    op.drop_table('threads', schema='chat')
    op.drop_index(op.f('ix_chat_provider_model_cache_user_id'), table_name='provider_model_cache', schema='chat')
    op.drop_table('provider_model_cache', schema='chat')
