"""Where the job's predictions go: a local folder (atomic, locked), an object store, BigQuery.

A sink knows its target and how to write a finished predictions DataFrame there; the
engine that computed the DataFrame does not. For local folders, the rules (docs/security.md,
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
import stat
import sys
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, DataFrameWriter

from lib import schema
from lib.errors import InvalidInputError
from lib.failures import storage_or_input_error
from lib.files import atomic_write_bytes, local_path
from lib.text import escape_controls

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
# The names the job gives its own folders: "<UTC stamp>-<label>-<8 hex>". Cleanup touches
# nothing else, so files a user put beside or inside the hidden folders are never removed.
_OWN_NAME = re.compile(r"^\d{8}T\d{6}-[\w.-]+-[0-9a-f]{8}$")
# What Spark's Parquet writer puts in a folder; a version folder of an older release of this
# job holds only these (it had no marker yet), so it still counts as the job's own output.
_SPARK_OUTPUT_FILES = ("part-", "_SUCCESS", ".part-", "._SUCCESS")


# Parquet's writer tries a dictionary for every column until it outgrows its page and falls
# back to plain values; for columns whose every value is new (each user's id and score) that
# try never pays and cost about 0.25 s per 5M users (measured). The constant and
# low-cardinality columns (campaign, run, model, group, decile) keep their dictionaries.
UNIQUE_PER_USER: tuple[str, ...] = (schema.USER_ID, schema.SCORE)


def parquet_writer(predictions: DataFrame) -> DataFrameWriter:
    """``predictions.write`` with plain encoding for :data:`UNIQUE_PER_USER` columns."""
    writer = predictions.write
    for column in UNIQUE_PER_USER:
        writer = writer.option(f"parquet.enable.dictionary#{column}", "false")
    return writer


class OutputBusyError(InvalidInputError):
    """Another run holds the target's lock."""


class LocalTarget:
    """A local output path and the hidden siblings the job keeps beside it."""

    def __init__(
        self, path: str | os.PathLike[str], keep: int = 2, campaign_id: int | None = None
    ) -> None:
        given = Path(path).expanduser()
        # Resolve the folder, not the link itself: the target is usually a symlink.
        self.path = given.parent.resolve() / given.name
        self.keep = max(1, keep)
        self.campaign_id = campaign_id
        parent, name = self.path.parent, self.path.name
        self.versions = parent / f".{name}.versions"
        self.staging_root = parent / f".{name}.staging"
        self.lock_path = parent / f".{name}.lock"
        self._link_name = re.compile(rf"^\.{re.escape(name)}\.link-[0-9a-f]{{8}}$")

    # ---- what is ours ----------------------------------------------------------------------
    def _own_version(self, folder: Path) -> dict[str, Any] | None:
        """The marker of a version folder this job wrote, or None for anything else."""
        try:
            if not stat.S_ISDIR(folder.lstat().st_mode) or not _OWN_NAME.match(folder.name):
                return None
            marker_path = folder / MARKER_NAME
            if marker_path.is_file() and not marker_path.is_symlink():
                marker = json.loads(marker_path.read_text(encoding="utf-8"))
                ok = isinstance(marker, dict) and marker.get("kind") == MARKER_KIND
                return marker if ok else None
            names = [entry.name for entry in folder.iterdir()]
        except (OSError, ValueError):
            return None
        spark_only = all(n.startswith(_SPARK_OUTPUT_FILES) for n in names)
        return {} if spark_only and any(n.startswith("part-") for n in names) else None

    def _live_version(self) -> Path | None:
        """The version folder the target links to, when it is one of ours."""
        if not self.path.is_symlink() or self.versions.is_symlink():
            return None
        try:
            live = self.path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if live.parent != self.versions or self._own_version(live) is None:
            return None
        return live

    def is_own_output(self) -> bool:
        """True when the target is a link into our versions folder, to a version we wrote."""
        return self._live_version() is not None

    def _owner_problem(self) -> str | None:
        """Why the existing target may not be replaced, or None when it may."""
        if not (self.path.is_symlink() or self.path.exists()):
            return None
        live = self._live_version()
        if live is None:
            if self.path.is_symlink():
                what = f"a link to {os.readlink(self.path)}"
            else:
                what = "a folder of other data" if self.path.is_dir() else "a file of other data"
            return f"output {self.path} already exists and is not this job's output ({what})"
        owner = (self._own_version(live) or {}).get("campaign_id")
        if self.campaign_id is not None and owner is not None and owner != self.campaign_id:
            return f"output {self.path} holds campaign {owner}'s predictions, not campaign " + (
                f"{self.campaign_id}'s"
            )
        return None

    # ---- checks ------------------------------------------------------------------------
    def check(self, source: str | None) -> None:
        """Refuse a target that is someone else's data, or the input, or inside it."""
        for folder in (self.versions, self.staging_root):
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                raise InvalidInputError(
                    f"{folder} must be a folder the job created, not a link or a file; "
                    "move it away or choose another --output"
                )
        if self.lock_path.is_symlink() or (
            self.lock_path.exists() and not self.lock_path.is_file()
        ):
            raise InvalidInputError(
                f"lock file {self.lock_path} must be a plain file, not a link or a folder"
            )
        if (problem := self._owner_problem()) is not None:
            raise InvalidInputError(f"{problem}; choose another --output or move it away yourself")
        source_local = local_path(source) if source is not None else None
        if source_local is None:
            return
        source_path = Path(source_local).expanduser().resolve()
        written = {self.path, self.versions, self.staging_root}
        if (live := self._live_version()) is not None:
            written.add(live)
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
            # O_NOFOLLOW: a link planted at the lock's name must not make us write elsewhere.
            fd = os.open(
                self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
            )
        except OSError as err:
            raise storage_or_input_error(
                err, f"cannot create the lock file {self.lock_path}: {err.strerror or err}"
            ) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InvalidInputError(f"lock file {self.lock_path} must be a plain file")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputBusyError(
                    f"another run{_read_holder(fd)} is writing {self.path} right now; "
                    "wait for it to finish and run again"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self._remove_debris()
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _remove_debris(self) -> None:
        """With the lock held, our staging folders and link files are dead runs' leftovers."""
        if self.staging_root.is_dir() and not self.staging_root.is_symlink():
            for leftover in self.staging_root.iterdir():
                if _OWN_NAME.match(leftover.name) and stat.S_ISDIR(leftover.lstat().st_mode):
                    shutil.rmtree(leftover, ignore_errors=True)
        for stray in self.path.parent.iterdir():
            if self._link_name.match(stray.name) and stray.is_symlink():
                stray.unlink(missing_ok=True)

    # ---- writing -------------------------------------------------------------------------
    def new_staging(self, label: str) -> Path:
        """A fresh folder path beside the target (same filesystem: the rename is atomic)."""
        try:
            if self.staging_root.is_symlink():
                raise InvalidInputError(f"{self.staging_root} must not be a link")
            self.staging_root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            message = f"cannot write to {self.path}: {err.strerror or err}"
            raise storage_or_input_error(err, message) from None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        return self.staging_root / f"{stamp}-{label}-{uuid.uuid4().hex[:8]}"

    def publish(self, written: Path, marker: dict[str, Any] | None = None) -> Path:
        """Make the finished folder ``written`` the target, atomically; returns its version.

        Call with :meth:`lock` held. A crash before the final ``os.replace`` leaves the old
        output in place; after it, the new one is live and nothing can undo that, so later
        cleanup problems are reported as warnings, never as a failed publish.
        """
        if (problem := self._owner_problem()) is not None:  # changed since the check?
            raise InvalidInputError(f"{problem}; nothing was replaced")
        stamp = {"kind": MARKER_KIND, "published_at": datetime.now(UTC).isoformat()}
        fields = {**stamp, **({"campaign_id": self.campaign_id} if self.campaign_id else {})}
        try:
            atomic_write_bytes(
                written / MARKER_NAME, json.dumps({**fields, **(marker or {})}).encode()
            )
            if self.versions.is_symlink():
                raise InvalidInputError(f"{self.versions} must not be a link; nothing was replaced")
            self.versions.mkdir(exist_ok=True)
            final = self.versions / written.name
            written.rename(final)
            link = self.path.parent / f".{self.path.name}.link-{uuid.uuid4().hex[:8]}"
            link.symlink_to(os.path.relpath(final, self.path.parent))
            os.replace(link, self.path)  # the one atomic step readers can observe
        except OSError as err:
            raise InvalidInputError(
                f"cannot publish to {self.path}: {err.strerror or err}; the previous output "
                "is unchanged"
            ) from None
        self._prune(live=final)
        return final

    def _prune(self, live: Path) -> None:
        """Keep the live version and the newest others up to ``keep``; only ever our own."""
        try:
            current = self.path.resolve()
            others = [
                p
                for p in self.versions.iterdir()
                if p not in (current, live) and self._own_version(p) is not None
            ]
            others.sort(key=lambda p: p.lstat().st_mtime, reverse=True)
            for stale in others[self.keep - 1 :]:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError as err:
            shown = escape_controls(f"{self.path}: {err}")
            print(f"⚠️ could not clean old versions of {shown}", file=sys.stderr)


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isascii() and pid.isdigit() else ""


# ---- sinks: what the job writes through ------------------------------------------------------
BIGQUERY_PREFIX = "bigquery:"
BIGQUERY_TABLE = re.compile(r"^bigquery:([\w-]+\.)?\w+\.[\w$-]+$")


class Sink(Protocol):
    """A place predictions are written to; engines hand it a finished DataFrame."""

    target: str

    @property
    def location(self) -> str:
        """Where the predictions are, as recorded on the run (absolute for local folders)."""

    def check(self, input_path: str) -> None:
        """Refuse before any work when the target cannot or must not be written."""

    def hold(self) -> AbstractContextManager[None]:
        """Held for the whole job (a lock, where the target has one)."""

    def write(self, predictions: DataFrame, *, campaign_id: int, run_id: int) -> None:
        """Write the predictions; readers see the old output or the new one."""


class LocalParquetSink:
    """A local (or mounted) folder: staging, then one atomic publish; one run at a time."""

    def __init__(self, target: str, campaign_id: int | None = None) -> None:
        self.target = target
        self.local = LocalTarget(local_path(target) or target, campaign_id=campaign_id)

    @property
    def location(self) -> str:
        return str(self.local.path)

    def check(self, input_path: str) -> None:
        self.local.check(input_path)

    def hold(self) -> AbstractContextManager[None]:
        return self.local.lock()

    def write(self, predictions: DataFrame, *, campaign_id: int, run_id: int) -> None:
        staging = self.local.new_staging(f"run{run_id}")
        try:
            # Connect knows "error" only.
            parquet_writer(predictions).mode("error").parquet(str(staging))
            self.local.publish(staging, marker={"campaign_id": campaign_id, "run_id": run_id})
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def write_table(self, predictions: pa.Table, *, campaign_id: int, run_id: int) -> None:
        """:meth:`write` for an Arrow table written in this process (lib.local_engine)."""
        import pyarrow.parquet as pq

        staging = self.local.new_staging(f"run{run_id}")
        try:
            staging.mkdir()
            pq.write_table(predictions, staging / "part-00000.parquet")
            self.local.publish(staging, marker={"campaign_id": campaign_id, "run_id": run_id})
        except OSError as err:
            message = f"cannot write to {self.local.path}: {err.strerror or err}"
            raise storage_or_input_error(err, message) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class ObjectStoreSink:
    """``gs://``, ``s3a://``, ``hdfs://``: no atomic rename; ``_SUCCESS`` marks completion.

    The job still never replaces what it did not write: a target that exists must hold
    the job's marker (``_PREDICTIONS.json/``, a one-line text dataset written after the
    data); the check reads through the engine's own filesystem, so it works wherever the
    engine can write.
    """

    def __init__(self, target: str, campaign_id: int | None = None) -> None:
        self.target = target.rstrip("/")
        self.campaign_id = campaign_id

    @property
    def location(self) -> str:
        return self.target

    def check(self, input_path: str) -> None:
        source = input_path.rstrip("/")
        if source == self.target or source.startswith(self.target + "/"):
            raise InvalidInputError(f"the input {input_path} lies inside the output {self.target}")
        if self.target.startswith(source + "/"):
            raise InvalidInputError(f"output {self.target} would be written inside the input")

    def check_owned(self, spark: Any) -> None:
        """Refuse an existing target without the job's marker (needs the engine's session)."""
        from pyspark.errors import AnalysisException

        try:
            rows = spark.read.text(f"{self.target}/{MARKER_NAME}").limit(1).collect()
        except AnalysisException:
            rows = []
        if rows:
            try:
                owner = json.loads(rows[0][0]).get("campaign_id")
            except (ValueError, AttributeError):
                owner = None
            if self.campaign_id is not None and owner not in (None, self.campaign_id):
                raise InvalidInputError(
                    f"output {self.target} holds campaign {owner}'s predictions, not "
                    f"campaign {self.campaign_id}'s"
                )
            return
        try:
            spark.read.format("binaryFile").load(self.target).limit(1).collect()
        except AnalysisException as err:
            if "PATH_NOT_FOUND" in str(err) or "Path does not exist" in str(err):
                return  # a new target
            raise InvalidInputError(f"cannot check output {self.target}: {err}") from None
        raise InvalidInputError(
            f"output {self.target} already exists and is not this job's output (no "
            f"{MARKER_NAME}); choose another --output or remove it yourself"
        )

    def hold(self) -> AbstractContextManager[None]:
        return nullcontext()

    def write(self, predictions: DataFrame, *, campaign_id: int, run_id: int) -> None:
        parquet_writer(predictions).mode("overwrite").parquet(self.target)
        marker = {"kind": MARKER_KIND, "campaign_id": campaign_id, "run_id": run_id}
        spark = predictions.sparkSession
        spark.createDataFrame([(json.dumps(marker),)], "value string").coalesce(1).write.mode(
            "overwrite"
        ).text(f"{self.target}/{MARKER_NAME}")


class BigQuerySink:
    """``bigquery:[project.]dataset.table`` through the spark-bigquery connector."""

    def __init__(self, target: str, campaign_id: int | None = None) -> None:
        if not BIGQUERY_TABLE.match(target):
            raise InvalidInputError(
                f"BigQuery output must look like bigquery:project.dataset.table, not {target!r}"
            )
        self.target = target
        self.table = target.removeprefix(BIGQUERY_PREFIX)

    @property
    def location(self) -> str:
        return self.target

    def check(self, input_path: str) -> None:
        return None

    def hold(self) -> AbstractContextManager[None]:
        return nullcontext()

    def write(self, predictions: DataFrame, *, campaign_id: int, run_id: int) -> None:
        # The connector loads into BigQuery in one job: the table changes all at once.
        predictions.write.format("bigquery").option("table", self.table).option(
            "writeMethod", "direct"
        ).mode("overwrite").save()


def sink_for(
    target: str, campaign_id: int | None = None
) -> LocalParquetSink | ObjectStoreSink | BigQuerySink:
    """The sink a ``--output`` value names (raises InvalidInputError for a malformed one)."""
    if target.startswith(BIGQUERY_PREFIX):
        return BigQuerySink(target, campaign_id)
    if local_path(target) is None:
        return ObjectStoreSink(target, campaign_id)
    return LocalParquetSink(target, campaign_id)
