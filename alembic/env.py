"""Alembic environment: the schema is chatdash.models, the URL is chatdash settings."""

from sqlmodel import SQLModel

import chatdash.models  # noqa: F401  (registers the tables)
from alembic import context
from chatdash.db import get_engine

target_metadata = SQLModel.metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    with get_engine().begin() as connection:
        _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
