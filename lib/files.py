"""Small filesystem helpers shared by everything that writes files: atomic, default modes.

``tempfile.mkstemp`` creates files readable by their owner only (0600). Renamed into place
as they are, generated files would end up with mixed modes (0600 beside Spark's 0644), and
a colleague or a container running as another user could read some but not others. Every
file we publish therefore gets the mode an ordinary ``open()`` would have given it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

__all__ = [
    "atomic_write_bytes",
    "atomic_writer",
    "default_file_mode",
    "local_path",
    "publish_file_mode",
    "same_file",
]


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file under the current umask (usually 0644)."""
    umask = os.umask(0)
    os.umask(umask)  # reading the umask means setting it: put it straight back
    return 0o666 & ~umask


def publish_file_mode(path: str | os.PathLike[str]) -> None:
    """Give a temporary file the default mode before it is renamed into place."""
    os.chmod(path, default_file_mode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling, so readers never see half a file."""
    with atomic_writer(path) as handle:
        handle.write(data)


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through, streamed: a temporary sibling that replaces
    ``path`` when the block ends, and is removed, leaving ``path`` as it was, when it raises."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        publish_file_mode(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def local_path(target: str) -> str | None:
    """The filesystem path of a local target (a plain path or a ``file:`` URI), else None.

    ``file:///data/out`` is a local folder like ``/data/out``, and gets the same checks and
    the same atomic publish; ``gs://``, ``s3a://``, ``hdfs://`` and ``bigquery:`` are not.
    """
    from lib.errors import InvalidInputError

    if target.startswith("file:"):
        parsed = urlparse(target)
        if parsed.netloc not in ("", "localhost"):
            raise InvalidInputError(f"file: URI must name a local path, not host {parsed.netloc!r}")
        return unquote(parsed.path)
    if target.startswith("bigquery:") or "://" in target:
        return None
    return target


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same file or folder (symlinks, `..`, bind mounts and
    relative spellings included: the file's identity, not its text); False if either is gone."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
