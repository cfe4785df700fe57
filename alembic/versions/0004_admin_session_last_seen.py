"""admin sessions remember their last use, for the idle timeout

Every session is ended: the earlier ones lived in a cookie page scripts could
read; the next login sets the HttpOnly one.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 23:15:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("adminsession") as batch:
        batch.add_column(sa.Column("last_seen_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.execute("DELETE FROM adminsession")


def downgrade() -> None:
    with op.batch_alter_table("adminsession") as batch:
        batch.drop_column("last_seen_at")
