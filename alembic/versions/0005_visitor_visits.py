"""one current visit per browser (a unique constraint), and browsers merged into a customer

`visit.open_for` holds the browser's visitor id while the visit is its current
one: the unique index makes a second current visit for one browser impossible,
whatever races. Each shopper's latest visit becomes its browser's current one.
`shopper.merged_into_id` points a browser that identified as a store customer
known under another shopper at that shopper.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 04:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch copy: re-creating `visit` on SQLite would
    # null every store event's visit_id through the foreign key.
    op.add_column("shopper", sa.Column("merged_into_id", sa.Integer(), nullable=True))
    op.create_index("ix_shopper_merged_into_id", "shopper", ["merged_into_id"])
    op.add_column("visit", sa.Column("open_for", sa.String(length=64), nullable=True))
    op.execute("""
        UPDATE visit SET open_for = (SELECT shopper.visitor_id FROM shopper WHERE shopper.id = visit.shopper_id)
        WHERE visit.id = (SELECT v.id FROM visit v WHERE v.shopper_id = visit.shopper_id
                          ORDER BY v.last_seen_at DESC, v.id DESC LIMIT 1)
    """)
    op.create_index("ix_visit_open_for", "visit", ["open_for"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_visit_open_for", table_name="visit")
    op.drop_column("visit", "open_for")
    op.drop_index("ix_shopper_merged_into_id", table_name="shopper")
    op.drop_column("shopper", "merged_into_id")
