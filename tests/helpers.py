"""What test files share: project environments, subprocess runners, the seed campaign body,
temporary PostgreSQL databases."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lib.contract import seed_campaign
from lib.settings import PROJECT_ROOT, Settings, directory_env, get_settings

__all__ = [
    "SEED_BODY",
    "configure_env",
    "create_postgres_database",
    "emoji_in",
    "project_env",
    "python_module",
    "run_cmd",
    "seed_body",
    "temporary_postgres_database",
]

# The seed's "Black Friday Campaign" as a request body (read-only: copy it to change it).
SEED_BODY: Final[Mapping[str, Any]] = seed_campaign()


# Pictographs (most emoji), the BMP's symbol and dingbat blocks (check marks, warning signs)
# and the emoji presentation selector: what renders as a box where a font lacks it.
EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f]")


def emoji_in(text: str) -> list[str]:
    """The emoji in ``text`` (plain words are wanted where a font may lack them)."""
    return EMOJI.findall(text)


def seed_body(**overrides: Any) -> dict[str, Any]:
    """A fresh copy of the seed campaign body with ``overrides`` applied."""
    return {**seed_campaign(), **overrides}


def project_env(root: Path, **extra: str) -> dict[str, str]:
    """DATA_DIR, MODEL_DIR and OUTPUT_DIR under ``root`` (plus ``extra`` variables)."""
    return {**directory_env(root), **extra}


def configure_env(monkeypatch: pytest.MonkeyPatch, root: Path, **extra: str) -> Settings:
    """Point DATA_DIR/MODEL_DIR/OUTPUT_DIR (and ``extra`` variables) at ``root``."""
    for name in ("data", "models", "output"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for key, value in project_env(root, **extra).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return get_settings()


def run_cmd(
    args: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 600,
    cwd: Path = PROJECT_ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in the project folder with this environment plus ``env``; capture text."""
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def python_module(
    module: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    cwd: Path = PROJECT_ROOT,
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` with this interpreter (see :func:`run_cmd`)."""
    return run_cmd([sys.executable, "-m", module, *args], env, timeout=timeout, cwd=cwd)


def create_postgres_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """A new, empty database on the test server; returns its URL and a function dropping it."""
    name = f"sparkml_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@contextmanager
def temporary_postgres_database(server_url: str, *, migrated: bool = False) -> Iterator[str]:
    """A new database on the test server (migrated if asked), dropped on the way out."""
    from api.migrate import upgrade

    url, drop = create_postgres_database(server_url)
    try:
        if migrated:
            upgrade(url)
        yield url
    finally:
        drop()
