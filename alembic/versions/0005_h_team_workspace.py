"""agent workspace: staff roles and invites, conversation assignment, who is viewing

Every admin that existed before roles becomes an owner (there was only one
kind of account, and it could do everything).

Revision ID: 0005_h_team
Revises: 0004
Create Date: 2026-12-03 04:05:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0005_h_team"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("adminuser") as batch:
        batch.add_column(sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
                                   server_default="agent"))
    op.execute("UPDATE adminuser SET role = 'owner'")
    with op.batch_alter_table("conversation") as batch:
        batch.add_column(sa.Column("assignee_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_conversation_assignee", "adminuser", ["assignee_id"], ["id"],
                                 ondelete="SET NULL")
        batch.create_index("ix_conversation_assignee_status", ["assignee_id", "status", "last_message_at"])
    op.create_table(
        "admininvite",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("admin_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["admin_id"], ["adminuser.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_admininvite_token_hash", "admininvite", ["token_hash"], unique=True)
    op.create_index("ix_admininvite_admin_id", "admininvite", ["admin_id"])
    op.create_table(
        "conversationviewer",
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("admin_id", sa.Integer(), nullable=False),
        sa.Column("seen_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversation.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["admin_id"], ["adminuser.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("conversation_id", "admin_id"),
    )


def downgrade() -> None:
    op.drop_table("conversationviewer")
    op.drop_index("ix_admininvite_admin_id", table_name="admininvite")
    op.drop_index("ix_admininvite_token_hash", table_name="admininvite")
    op.drop_table("admininvite")
    with op.batch_alter_table("conversation") as batch:
        batch.drop_index("ix_conversation_assignee_status")
        batch.drop_constraint("fk_conversation_assignee", type_="foreignkey")
        batch.drop_column("assignee_id")
    with op.batch_alter_table("adminuser") as batch:
        batch.drop_column("role")
