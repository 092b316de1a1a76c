"""Alembic, driven from Python: upgrade to head, and check that a database is at head.

``python -m api.migrate`` (``make migrate``) upgrades the database at DATABASE_URL. A
migration that cannot run (stored rows that break a new constraint, a database that is
down) is reported in one line with a non-zero exit, here and when the API starts.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from lib.settings import get_settings

HERE = Path(__file__).resolve().parent


class SchemaNotReadyError(RuntimeError):
    """The database is not at the migration head, and the API will not guess."""


# What a migration or the schema check raises for a reason a user can act on: the
# migrations' own refusals (CommandError), an unmigrated database, a database error.
SCHEMA_ERRORS: tuple[type[Exception], ...] = (CommandError, SchemaNotReadyError, SQLAlchemyError)


def first_line(err: BaseException) -> str:
    """The first line of what went wrong (the driver's message for database errors)."""
    origin = getattr(err, "orig", None) or err
    lines = str(origin).strip().splitlines()
    return lines[0] if lines else type(origin).__name__


def shown_url(url: str | None = None) -> str:
    """``url`` (default: the configured database) as it may be printed: no password."""
    url = url or get_settings().effective_database_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # unparseable: do not echo it, it may hold a password
        return "DATABASE_URL (not a valid database URL)"


def alembic_config(url: str | None = None) -> Config:
    """Alembic's config for ``url`` (default: the configured database)."""
    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE / "alembic"))
    # Passed as an attribute, not an ini option: URLs may contain '%' (escaped passwords).
    config.attributes["url"] = url or get_settings().effective_database_url
    return config


def upgrade(url: str | None = None) -> None:
    config = alembic_config(url)
    with _migration_lock(config.attributes["url"]):
        command.upgrade(config, "head")


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """One migrator at a time for a SQLite file (two API processes starting together, two
    test workers): SQLite runs DDL outside the migration's transaction, so two concurrent
    upgrades could both add a column, or both move the version. An exclusive ``flock`` on a
    file beside the database, released by the kernel if the process dies; the second
    migrator then finds the schema at head and does nothing. Servers lock their own schema.
    """
    parsed = make_url(url)
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ensure_schema(engine: Engine) -> None:
    """Make sure the schema is current before serving.

    The embedded SQLite database is migrated automatically (a learner's first run just
    works). Any other database must have been migrated beforehand (``make migrate``, the
    compose service, the Kubernetes init container): several API replicas must never race
    to alter a shared schema.
    """
    if engine.dialect.name == "sqlite":
        upgrade(engine.url.render_as_string(hide_password=False))
        return
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaNotReadyError(
            f"database schema is at revision {current or 'none'} but the API needs {head}: "
            "run `make migrate` (alembic upgrade head) first"
        )


def main() -> int:
    url = get_settings().effective_database_url
    try:
        upgrade(url)
    except SCHEMA_ERRORS as err:
        print(
            f"❌ error: cannot migrate {shown_url(url)}: {first_line(err)}",
            file=sys.stderr,
        )
        return 1
    print(f"✅ Database at {shown_url(url)} is at revision {head_revision()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
