"""offline follow-up (email ask, coalesced reply emails, resume links) and each member's notification choices

Plain ADD COLUMNs (no table rebuild): `shopper` carries the FTS5 triggers of
0007 on SQLite, which a batch rebuild would drop.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 07:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.add_column("shopper", sa.Column("followup_unsubscribed_at", WHEN(), nullable=True))
    for name in ("awaiting_reply_since", "email_asked_at", "email_ask_dismissed_at", "followup_due_at",
                 "followup_sent_at"):
        op.add_column("conversation", sa.Column(name, WHEN(), nullable=True))
    op.add_column("conversation", sa.Column("followup_sent_message_id", sa.Integer(), nullable=False,
                                            server_default="0"))
    op.create_index("ix_conversation_awaiting_reply", "conversation", ["awaiting_reply_since"])
    op.create_index("ix_conversation_followup_due", "conversation", ["followup_due_at"])
    op.add_column("adminuser", sa.Column("notify_sound", sa.Boolean(), nullable=False,
                                         server_default=sa.true()))
    op.add_column("adminuser", sa.Column("notify_new_conversation", sa.Boolean(), nullable=False,
                                         server_default=sa.false()))
    op.add_column("adminuser", sa.Column("notify_assigned_message", sa.Boolean(), nullable=False,
                                         server_default=sa.false()))
    op.create_table(
        "followup_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("shopper_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN(), nullable=False),
        sa.Column("expires_at", WHEN(), nullable=False),
        sa.ForeignKeyConstraint(["shopper_id"], ["shopper.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversation.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_followup_link_token_hash", "followup_link", ["token_hash"], unique=True)
    op.create_index("ix_followup_link_shopper_id", "followup_link", ["shopper_id"])


def downgrade() -> None:
    op.drop_index("ix_followup_link_shopper_id", table_name="followup_link")
    op.drop_index("ix_followup_link_token_hash", table_name="followup_link")
    op.drop_table("followup_link")
    op.drop_index("ix_conversation_followup_due", table_name="conversation")
    op.drop_index("ix_conversation_awaiting_reply", table_name="conversation")
    with op.batch_alter_table("adminuser") as batch:
        for name in ("notify_sound", "notify_new_conversation", "notify_assigned_message"):
            batch.drop_column(name)
    with op.batch_alter_table("conversation") as batch:
        for name in ("awaiting_reply_since", "email_asked_at", "email_ask_dismissed_at", "followup_due_at",
                     "followup_sent_at", "followup_sent_message_id"):
            batch.drop_column(name)
    op.drop_column("shopper", "followup_unsubscribed_at")
