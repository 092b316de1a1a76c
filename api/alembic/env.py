"""Alembic environment: the URL from api.migrate (or DATABASE_URL), the ORM's metadata."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from api.models import Base
from lib.settings import get_settings

config = context.config
url = config.attributes.get("url") or get_settings().effective_database_url
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Batch mode lets ALTER-style migrations run on SQLite (it rebuilds the table).
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
