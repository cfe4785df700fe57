"""trained recommender versions in the database, for workers without a shared disk

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 04:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_artifact",
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_index("ix_model_artifact_created_at", "model_artifact", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_model_artifact_created_at", table_name="model_artifact")
    op.drop_table("model_artifact")
