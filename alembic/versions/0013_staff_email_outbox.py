"""staff emails coalesced in the database: staff_email_item, staff_email_window

The new-conversation digest and the assignees' message emails were coalesced
in each worker's memory (N workers: up to N emails per window). Now the
writer queues a `staff_email_item` in its own transaction and a sender claims
the channel's `staff_email_window` row with one conditional UPDATE: one email
per channel per window, whichever worker sends it (services/staff_emails.py).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 10:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sqlmodel.sql.sqltypes.UTCDateTime
TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "staff_email_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", TEXT(length=32), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_staff_email_item_channel", "staff_email_item", ["channel"])
    op.create_table(
        "staff_email_window",
        sa.Column("channel", TEXT(length=32), nullable=False),
        sa.Column("last_sent_at", WHEN(), nullable=True),
        sa.Column("claim", TEXT(length=32), nullable=True),
        sa.Column("claimed_until", WHEN(), nullable=True),
        sa.PrimaryKeyConstraint("channel"),
    )


def downgrade() -> None:
    op.drop_table("staff_email_window")
    op.drop_index("ix_staff_email_item_channel", table_name="staff_email_item")
    op.drop_table("staff_email_item")
