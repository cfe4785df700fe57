"""agent workspace: staff roles and invites, conversation assignment, who is viewing, search, saved replies

Search is indexed: SQLite keeps two FTS5 tables (message text; shopper name,
email and customer id) in step with triggers; PostgreSQL has GIN indexes on
the same text as `to_tsvector('simple', …)` (see services/search.py).

Every admin that existed before roles becomes an owner (there was only one
kind of account, and it could do everything).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 04:05:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
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


    op.create_table(
        "savedreply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shortcut", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_savedreply_shortcut", "savedreply", ["shortcut"], unique=True)
    _create_search()


SQLITE_SEARCH = [
    "CREATE VIRTUAL TABLE message_fts USING fts5(body, content='message', content_rowid='id')",
    "CREATE VIRTUAL TABLE shopper_fts USING fts5(name, email, customer_id, content='shopper', content_rowid='id')",
    """CREATE TRIGGER message_fts_ai AFTER INSERT ON message BEGIN
         INSERT INTO message_fts(rowid, body) VALUES (new.id, new.body); END""",
    """CREATE TRIGGER message_fts_ad AFTER DELETE ON message BEGIN
         INSERT INTO message_fts(message_fts, rowid, body) VALUES ('delete', old.id, old.body); END""",
    """CREATE TRIGGER message_fts_au AFTER UPDATE OF body ON message BEGIN
         INSERT INTO message_fts(message_fts, rowid, body) VALUES ('delete', old.id, old.body);
         INSERT INTO message_fts(rowid, body) VALUES (new.id, new.body); END""",
    """CREATE TRIGGER shopper_fts_ai AFTER INSERT ON shopper BEGIN
         INSERT INTO shopper_fts(rowid, name, email, customer_id)
         VALUES (new.id, new.name, new.email, new.customer_id); END""",
    """CREATE TRIGGER shopper_fts_ad AFTER DELETE ON shopper BEGIN
         INSERT INTO shopper_fts(shopper_fts, rowid, name, email, customer_id)
         VALUES ('delete', old.id, old.name, old.email, old.customer_id); END""",
    """CREATE TRIGGER shopper_fts_au AFTER UPDATE OF name, email, customer_id ON shopper BEGIN
         INSERT INTO shopper_fts(shopper_fts, rowid, name, email, customer_id)
         VALUES ('delete', old.id, old.name, old.email, old.customer_id);
         INSERT INTO shopper_fts(rowid, name, email, customer_id)
         VALUES (new.id, new.name, new.email, new.customer_id); END""",
    "INSERT INTO message_fts(message_fts) VALUES ('rebuild')",
    "INSERT INTO shopper_fts(shopper_fts) VALUES ('rebuild')",
]
# As services/search.py spells them (separators as spaces, so "CUST-4711" is two words).
SEPARATORS = "translate({}, '-_.@+/:#', '        ')"
SHOPPER_TEXT = SEPARATORS.format(
    "coalesce(name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(customer_id, '')")
BODY_TEXT = SEPARATORS.format("body")
POSTGRES_SEARCH = [
    f"CREATE INDEX ix_message_body_search ON message USING gin (to_tsvector('simple', {BODY_TEXT}))",
    f"CREATE INDEX ix_shopper_search ON shopper USING gin (to_tsvector('simple', {SHOPPER_TEXT}))",
]


def _create_search() -> None:
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_SEARCH if dialect == "sqlite" else POSTGRES_SEARCH:
        op.execute(statement)


def _drop_search() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("message_fts_ai", "message_fts_ad", "message_fts_au",
                        "shopper_fts_ai", "shopper_fts_ad", "shopper_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS message_fts")
        op.execute("DROP TABLE IF EXISTS shopper_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_message_body_search")
        op.execute("DROP INDEX IF EXISTS ix_shopper_search")


def downgrade() -> None:
    _drop_search()
    op.drop_index("ix_savedreply_shortcut", table_name="savedreply")
    op.drop_table("savedreply")
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
