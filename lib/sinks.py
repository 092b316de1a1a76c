"""Where the job's predictions go: a local folder (atomic, locked), an object store, BigQuery.

A sink knows its target and how to write a finished predictions DataFrame there; the
engine that computed the DataFrame does not. For local folders, the rules (README,
"Output safety"):

* The job writes only to a target that does not exist yet or that is **its own earlier
  output**: a symlink to a version folder in the target's ``.<name>.versions/`` sibling,
  holding the job's marker file. An existing folder or file of anything else is refused,
  never moved or deleted.
* Never to or inside its input, and never with its input inside the target.
* One run at a time per target: an exclusive lock beside the target (``flock``, released
  by the kernel when the process dies, so a killed run never blocks the next one). A
  second run for the same target refuses at once with a clear line.
* Publishing is one ``os.replace`` of the symlink (atomic on POSIX): readers see the old
  dataset or the new one. Cleanup never removes the version the link points to.

Spark writes the data itself; this module owns the folders around it. Object stores and
BigQuery have no atomic rename and no lock: Spark's committer marks a finished folder with
``_SUCCESS``, and the BigQuery connector loads a table in one job.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

from lib.errors import InvalidInputError
from lib.files import atomic_write_bytes

__all__ = [
    "MARKER_NAME",
    "BigQuerySink",
    "LocalParquetSink",
    "LocalTarget",
    "ObjectStoreSink",
    "OutputBusyError",
    "Sink",
    "sink_for",
]

MARKER_NAME = "_PREDICTIONS.json"  # a leading "_" hides it from Spark, pyarrow and DuckDB
MARKER_KIND = "spark-ml-pipeline predictions"
# What Spark's Parquet writer puts in a folder; a version folder of an older release of this
# job holds only these (it had no marker yet), so it still counts as the job's own output.
_SPARK_OUTPUT_FILES = ("part-", "_SUCCESS", ".part-", "._SUCCESS")


class OutputBusyError(InvalidInputError):
    """Another run holds the target's lock."""


class LocalTarget:
    """A local output path and the hidden siblings the job keeps beside it."""

    def __init__(self, path: str | os.PathLike[str], keep: int = 2) -> None:
        given = Path(path).expanduser()
        # Resolve the folder, not the link itself: the target is usually a symlink.
        self.path = given.parent.resolve() / given.name
        self.keep = max(1, keep)
        parent, name = self.path.parent, self.path.name
        self.versions = parent / f".{name}.versions"
        self.staging_root = parent / f".{name}.staging"
        self.lock_path = parent / f".{name}.lock"

    # ---- checks ------------------------------------------------------------------------
    def is_own_output(self) -> bool:
        """True when the target is a link into our versions folder, to a version we wrote."""
        if not self.path.is_symlink():
            return False
        live = self.path.resolve()
        if live.parent != self.versions.resolve() or not live.is_dir():
            return False
        if (live / MARKER_NAME).is_file():
            try:
                marker = json.loads((live / MARKER_NAME).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return False
            return isinstance(marker, dict) and marker.get("kind") == MARKER_KIND
        return all(entry.name.startswith(_SPARK_OUTPUT_FILES) for entry in live.iterdir())

    def check(self, source: str | None) -> None:
        """Refuse a target that is someone else's data, or the input, or inside it."""
        if (self.path.is_symlink() or self.path.exists()) and not self.is_own_output():
            kind = "folder" if self.path.is_dir() else "file"
            raise InvalidInputError(
                f"output {self.path} already exists and is not this job's output (a {kind} "
                "of other data); choose another --output or move it away yourself"
            )
        if source is None or "://" in source:
            return
        source_path = Path(source).expanduser().resolve()
        written = {self.path, self.versions, self.staging_root}
        if self.path.is_symlink():
            written.add(self.path.resolve())
        if source_path in written:
            raise InvalidInputError(
                f"output {self.path} is the input {source_path} itself; "
                "write the predictions elsewhere"
            )
        for place in written:
            if place.is_relative_to(source_path):
                raise InvalidInputError(
                    f"output {self.path} would be written inside the input {source_path}; "
                    "choose an output outside the input"
                )
            if source_path.is_relative_to(place):
                raise InvalidInputError(
                    f"the input {source_path} lies inside the output {self.path}; "
                    "score a copy, or write the output elsewhere"
                )

    # ---- one run at a time ---------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the target's exclusive lock; refuse at once when another run holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.lock_path, "a+")  # noqa: SIM115 - held for the whole block
        except OSError as err:
            raise InvalidInputError(f"cannot write to {self.path}: {err.strerror or err}") from None
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(handle)
                raise OutputBusyError(
                    f"another run{holder} is writing {self.path} right now; "
                    "wait for it to finish and run again"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            self._remove_debris()
            yield
        finally:
            handle.close()  # closing the descriptor releases the lock

    def _remove_debris(self) -> None:
        """With the lock held, anything in staging or a stray link is a dead run's leftover."""
        if self.staging_root.is_dir():
            for leftover in self.staging_root.iterdir():
                _remove(leftover)
        for stray in self.path.parent.glob(f".{self.path.name}.link-*"):
            stray.unlink(missing_ok=True)

    # ---- writing -------------------------------------------------------------------------
    def new_staging(self, label: str) -> Path:
        """A fresh folder path beside the target (same filesystem: the rename is atomic)."""
        try:
            self.staging_root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InvalidInputError(f"cannot write to {self.path}: {err.strerror or err}") from None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        return self.staging_root / f"{stamp}-{label}-{uuid.uuid4().hex[:8]}"

    def publish(self, written: Path, marker: dict[str, Any] | None = None) -> Path:
        """Make the finished folder ``written`` the target, atomically; returns its version.

        Call with :meth:`lock` held. A crash before the final ``os.replace`` leaves the old
        output in place; after it, the new one is live and nothing can undo that, so later
        cleanup problems are reported as warnings, never as a failed publish.
        """
        present = self.path.exists() or self.path.is_symlink()
        if present and not self.is_own_output():  # someone put data there since the check
            raise InvalidInputError(
                f"output {self.path} appeared while the job ran and is not its output; "
                "nothing was replaced"
            )
        stamp = {"kind": MARKER_KIND, "published_at": datetime.now(UTC).isoformat()}
        atomic_write_bytes(written / MARKER_NAME, json.dumps({**stamp, **(marker or {})}).encode())
        self.versions.mkdir(exist_ok=True)
        final = self.versions / written.name
        written.rename(final)
        link = self.path.parent / f".{self.path.name}.link-{uuid.uuid4().hex[:8]}"
        link.symlink_to(os.path.relpath(final, self.path.parent))
        os.replace(link, self.path)  # the one atomic step readers can observe
        self._prune(live=final)
        return final

    def _prune(self, live: Path) -> None:
        """Keep the live version and the newest others up to ``keep``; never the live one."""
        try:
            current = self.path.resolve()
            others = [
                p for p in self.versions.iterdir() if p.resolve() not in (current, live.resolve())
            ]
            others.sort(key=lambda p: p.stat().st_mtime, reverse=True)
            for stale in others[self.keep - 1 :]:
                _remove(stale)
        except OSError as err:
            print(f"⚠️ could not clean old versions of {self.path}: {err}", file=sys.stderr)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _read_holder(handle: Any) -> str:
    try:
        handle.seek(0)
        pid = handle.read().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


# ---- sinks: what the job writes through ------------------------------------------------------
BIGQUERY_PREFIX = "bigquery:"
BIGQUERY_TABLE = re.compile(r"^bigquery:([\w-]+\.)?\w+\.[\w$-]+$")


class Sink(Protocol):
    """A place predictions are written to; engines hand it a finished DataFrame."""

    target: str

    def check(self, input_path: str) -> None:
        """Refuse before any work when the target cannot or must not be written."""

    def hold(self) -> AbstractContextManager[None]:
        """Held for the whole job (a lock, where the target has one)."""

    def write(self, predictions: DataFrame, *, campaign_id: int, run_id: int) -> None:
        """Write the predictions; readers see the old output or the new one."""


class LocalParquetSink:
    """A local (or mounted) folder: staging, then one atomic publish; one run at a time."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.local = LocalTarget(target)

    def check(self, input_path: str) -> None:
        self.local.check(input_path)

    def hold(self) -> AbstractContextManager[None]:
        return self.local.lock()

    def write(self, predictions: DataFrame, *, campaign_id: int, run_id: int) -> None:
        staging = self.local.new_staging(f"run{run_id}")
        try:
            predictions.write.mode("errorifexists").parquet(str(staging))
            self.local.publish(staging, marker={"campaign_id": campaign_id, "run_id": run_id})
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class ObjectStoreSink:
    """``gs://``, ``s3a://``, ``hdfs://``: no atomic rename; ``_SUCCESS`` marks completion."""

    def __init__(self, target: str) -> None:
        self.target = target

    def check(self, input_path: str) -> None:
        if input_path.rstrip("/") == self.target.rstrip("/"):
            raise InvalidInputError(f"output {self.target} is the input itself")

    def hold(self) -> AbstractContextManager[None]:
        return nullcontext()

    def write(self, predictions: DataFrame, *, campaign_id: int, run_id: int) -> None:
        predictions.write.mode("overwrite").parquet(self.target)


class BigQuerySink:
    """``bigquery:[project.]dataset.table`` through the spark-bigquery connector."""

    def __init__(self, target: str) -> None:
        if not BIGQUERY_TABLE.match(target):
            raise InvalidInputError(
                f"BigQuery output must look like bigquery:project.dataset.table, not {target!r}"
            )
        self.target = target
        self.table = target.removeprefix(BIGQUERY_PREFIX)

    def check(self, input_path: str) -> None:
        return None

    def hold(self) -> AbstractContextManager[None]:
        return nullcontext()

    def write(self, predictions: DataFrame, *, campaign_id: int, run_id: int) -> None:
        # The connector loads into BigQuery in one job: the table changes all at once.
        predictions.write.format("bigquery").option("table", self.table).option(
            "writeMethod", "direct"
        ).mode("overwrite").save()


def sink_for(target: str) -> LocalParquetSink | ObjectStoreSink | BigQuerySink:
    """The sink a ``--output`` value names (raises InvalidInputError for a malformed one)."""
    if target.startswith(BIGQUERY_PREFIX):
        return BigQuerySink(target)
    if "://" in target:
        return ObjectStoreSink(target)
    return LocalParquetSink(target)
