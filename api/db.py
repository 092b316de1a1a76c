"""The database engine and session factory, built from ``DATABASE_URL`` (lib.settings)."""

from __future__ import annotations

import threading
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
        # Up to one connection per anyio worker thread (40) running a sync endpoint.
        pool_size=10,
        max_overflow=30,
        pool_timeout=10,
        # Sessions in UTC: timestamps near year 1 or 9999 then read back without overflow.
        connect_args={"connect_timeout": 5, "options": "-c timezone=UTC"}
        if parsed.get_backend_name() == "postgresql"
        else {},
    )


_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_sessionmakers: dict[str, sessionmaker[Session]] = {}


def get_engine() -> Engine:
    """The engine of the configured database (one per URL per process)."""
    url = get_settings().effective_database_url
    with _lock:
        if url not in _engines:
            _engines[url] = build_engine(url)
        return _engines[url]


def get_sessionmaker() -> sessionmaker[Session]:
    engine = get_engine()
    url = get_settings().effective_database_url
    with _lock:
        if url not in _sessionmakers:
            _sessionmakers[url] = sessionmaker(bind=engine, expire_on_commit=False)
        return _sessionmakers[url]


def dispose_engines() -> None:
    """Close every pooled connection and forget the engines (shutdown, tests)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _sessionmakers.clear()
