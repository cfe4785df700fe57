"""indexes for the inbox's hot queries: the bell's count and each shopper's latest visit

Measured by bench/bench_admin_page.py at 10,000 conversations / 2M events: the
unseen count 7.5 -> 1.6 ms, list_conversations 28 -> 18 ms of CPU.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 20:35:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSEEN = sa.text("last_shopper_message_id > admin_seen_message_id")


def upgrade() -> None:
    op.create_index("ix_conversation_unseen", "conversation", ["status"],
                    sqlite_where=UNSEEN, postgresql_where=UNSEEN)
    op.create_index("ix_visit_shopper_seen", "visit", ["shopper_id", "last_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_visit_shopper_seen", table_name="visit")
    op.drop_index("ix_conversation_unseen", table_name="conversation")
