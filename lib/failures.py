"""Failures a user can meet while Spark works, as one line, an exit code and a log file.

A full disk, an exceeded quota, a denied permission, a lost executor or Connect server, an
input deleted while the job reads it: none is a bug, and none should end in a Python
traceback wrapped around a JVM stack trace (on the terminal, and in the run record's
``error_message``). :func:`known_failure` recognises them by the exception (an OSError's
errno) or by Spark's own words in its message and its causes, keeps the whole traceback in a
log file, and returns the :class:`~lib.errors.PipelineError` to raise instead: one line that
says what happened and where the details are. Anything else stays a bug, with its traceback.
"""

from __future__ import annotations

import errno
import os
import traceback
from datetime import UTC, datetime
from pathlib import Path

from lib.errors import InvalidInputError, PipelineError, SparkFailureError, StorageError

__all__ = ["known_failure", "storage_or_input_error"]

# (what the user reads, the error class, words from Spark's or the OS's message).
_KNOWN: tuple[tuple[str, type[PipelineError], tuple[str, ...]], ...] = (
    ("no space left on the device", StorageError, ("No space left on device",)),
    ("the disk quota is exceeded", StorageError, ("Disk quota exceeded",)),
    ("the file system is read-only", StorageError, ("Read-only file system",)),
    (
        "permission denied",
        StorageError,
        ("Permission denied", "AccessDeniedException", "AccessControlException"),
    ),
    (
        "the input changed or disappeared while the job read it",
        InvalidInputError,
        ("FileNotFoundException", "FILE_NOT_EXIST", "NoSuchFileException"),
    ),
    (
        "Spark lost an executor",
        SparkFailureError,
        ("ExecutorLostFailure", "Lost executor", "executor lost"),
    ),
    ("Spark ran out of memory", SparkFailureError, ("java.lang.OutOfMemoryError",)),
    (
        "the Spark session ended while the job ran (the JVM or the Connect server stopped)",
        SparkFailureError,
        (
            "SparkContext was shut down",
            "Cannot call methods on a stopped SparkContext",
            "Py4JNetworkError",
            "Answer from Java side is empty",
            "StatusCode.UNAVAILABLE",
            "RETRIES_EXCEEDED",
            "NO_ACTIVE_SESSION",
        ),
    ),
)
_ERRNOS = {
    errno.ENOSPC: 0,
    errno.EDQUOT: 1,
    errno.EROFS: 2,
    errno.EACCES: 3,
    errno.EPERM: 3,
}


def _chain(err: BaseException) -> list[BaseException]:
    """The exception and what caused it: ``raise ... from`` always, the exception being
    handled only when not suppressed (``from None``), as a traceback shows them."""
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and len(chain) < 20:
        chain.append(current)
        suppressed = current.__suppress_context__
        current = current.__cause__ or (None if suppressed else current.__context__)
    return chain


def _from_spark(err: BaseException) -> bool:
    """Raised by Spark's Python side (py4j for a classic JVM, gRPC for Spark Connect):
    only those messages carry the JVM's words that _KNOWN looks for."""
    module = type(err).__module__ or ""
    return module.startswith(("py4j", "pyspark", "grpc"))


def _classify(err: BaseException) -> tuple[str, type[PipelineError]] | None:
    chain = _chain(err)
    for link in chain:
        if isinstance(link, OSError) and link.errno in _ERRNOS:
            what, cls, _ = _KNOWN[_ERRNOS[link.errno]]
            return what, cls
    text = "\n".join(str(link) for link in chain if _from_spark(link))
    for what, cls, markers in _KNOWN:
        if any(marker in text for marker in markers):
            return what, cls
    return None


def known_failure(err: BaseException, *, doing: str, log_dir: Path) -> PipelineError | None:
    """The one-line error for ``err`` (raised while ``doing``), or None if it is not one.

    The full traceback (with the JVM's stack trace that Spark's exception carries) goes to a
    new file under ``log_dir``; if that cannot be written (the full disk may hold it too),
    the line says so instead of pointing to it.
    """
    found = _classify(err)
    if found is None:
        return None
    what, cls = found
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    log = log_dir / f"job-failure-{stamp}-{os.getpid()}.log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log, "x", encoding="utf-8", errors="backslashreplace") as out:
            out.write("".join(traceback.format_exception(err)))
        details = f"details in {log}"
    except OSError as log_err:
        details = f"no details: the log file could not be written ({log_err.strerror})"
    return cls(f"{doing} failed: {what} ({details})")


def storage_or_input_error(err: OSError, message: str) -> PipelineError:
    """``message`` as the error a file operation's OSError deserves: a full disk, a quota, a
    read-only file system or a denied permission is the storage's (exit 8); anything else
    (a path that is a file, a missing folder) is the input's or the output's (exit 2)."""
    return StorageError(message) if err.errno in _ERRNOS else InvalidInputError(message)
