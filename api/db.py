"""The database engine and session factory, built from ``DATABASE_URL`` (lib.settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from lib.settings import get_settings


def build_engine(url: str) -> Engine:
    """An engine with pre-ping (survives database restarts) and SQLite made safe for threads."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=True
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")  # SQLite ignores FKs unless asked
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cursor.close()

        return engine
    return create_engine(
        url,
        pool_pre_ping=True,  # test each pooled connection: recovers after a PostgreSQL restart
        pool_size=10,
        max_overflow=20,
        pool_timeout=10,
        connect_args={"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {},
    )


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return build_engine(url)


@lru_cache(maxsize=8)
def _sessionmaker_for(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=_engine_for(url), expire_on_commit=False)


def get_engine() -> Engine:
    """The engine of the configured database (one per URL per process)."""
    return _engine_for(get_settings().effective_database_url)


def get_sessionmaker() -> sessionmaker[Session]:
    return _sessionmaker_for(get_settings().effective_database_url)
