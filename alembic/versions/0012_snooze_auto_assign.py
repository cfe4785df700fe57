"""snooze and auto-assign: conversation.snoozed_until, adminuser.online_at

A snoozed conversation has status "snoozed" and the time it wakes; the
leader's job finds those due through (status, snoozed_until). An agent's
conversations page renews `online_at` while it is open: auto-assign gives new
conversations to the members seen lately (services/auto_assign.py).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 07:05:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversation") as batch:
        batch.add_column(sa.Column("snoozed_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch.create_index("ix_conversation_status_snoozed", ["status", "snoozed_until"])
    with op.batch_alter_table("adminuser") as batch:
        batch.add_column(sa.Column("online_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.execute("UPDATE conversation SET status = 'open' WHERE status = 'snoozed'")
    with op.batch_alter_table("adminuser") as batch:
        batch.drop_column("online_at")
    with op.batch_alter_table("conversation") as batch:
        batch.drop_index("ix_conversation_status_snoozed")
        batch.drop_column("snoozed_until")
