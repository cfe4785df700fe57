"""conversation.last_shopper_message_id: the bell's count without a join over messages

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 19:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_shopper_message_id", sa.Integer(), nullable=False,
                                      server_default="0"))
    op.execute(
        "UPDATE conversation SET last_shopper_message_id = COALESCE(("
        " SELECT MAX(message.id) FROM message"
        " WHERE message.conversation_id = conversation.id AND message.sender = 'shopper'), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_column("last_shopper_message_id")
