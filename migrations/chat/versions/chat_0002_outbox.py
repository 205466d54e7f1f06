"""chat schema: the outbox of calls to other services that must survive a restart

Revision ID: chat_0002
Revises: chat_0001
Create Date: 2026-12-02 17:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "chat_0002"
down_revision = "chat_0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="chat",
    )
    op.create_index("ix_chat_outbox_due", "outbox", ["next_attempt_at"], unique=False, schema="chat")


def downgrade():
    op.drop_index("ix_chat_outbox_due", table_name="outbox", schema="chat")
    op.drop_table("outbox", schema="chat")
