"""proactive chat: an agent's first message opens the shopper's widget once

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 07:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversation") as batch:
        batch.add_column(sa.Column("proactive_message_id", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("proactive_shown_id", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("conversation") as batch:
        batch.drop_column("proactive_shown_id")
        batch.drop_column("proactive_message_id")
