"""card attribution: where each product card came from, and when the shopper clicked it

`message.card_source` (search, recommended, bought_also, same_order,
viewed_together) and `message.clicked_at` (first click in the widget), plus a
partial index over product cards covering what attribution reads of them
(one card per conversation and product, in index order).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 07:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRODUCT_CARDS = sa.text("kind = 'product'")


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): SQLite's FTS triggers on `message` stay as they are.
    op.add_column("message", sa.Column("card_source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
    op.add_column("message", sa.Column("clicked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.create_index("ix_message_product_card", "message", ["conversation_id", "product_id", "created_at", "clicked_at"],
                    sqlite_where=PRODUCT_CARDS, postgresql_where=PRODUCT_CARDS)


def downgrade() -> None:
    op.drop_index("ix_message_product_card", table_name="message")
    op.drop_column("message", "clicked_at")
    op.drop_column("message", "card_source")
