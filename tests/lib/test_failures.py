"""Failures of the storage or of Spark a user can meet become one line and an exit code."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from lib.errors import InvalidInputError, SparkFailureError, StorageError
from lib.failures import known_failure

JVM_TRACE = "\n\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(...)\n"


class Py4JJavaError(Exception):
    """Stands in for py4j's error: its text carries the JVM's exception and stack trace."""


Py4JJavaError.__module__ = "py4j.protocol"  # where py4j defines it: Spark's words count there


@pytest.mark.parametrize(
    ("error", "kind", "what"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), StorageError, "no space left"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), StorageError, "quota"),
        (PermissionError(errno.EACCES, "Permission denied"), StorageError, "permission denied"),
        (
            Py4JJavaError(
                "An error occurred while calling o123.parquet.\n: org.apache.spark."
                "SparkException: Job aborted. Caused by: java.io.IOException: No space left "
                "on device" + JVM_TRACE
            ),
            StorageError,
            "no space left",
        ),
        (
            Py4JJavaError(
                "org.apache.hadoop.security.AccessControlException: Permission denied: "
                "user=job, access=WRITE" + JVM_TRACE
            ),
            StorageError,
            "permission denied",
        ),
        (
            Py4JJavaError(
                "ExecutorLostFailure (executor 3 exited caused by one of the running "
                "tasks) Reason: Container killed" + JVM_TRACE
            ),
            SparkFailureError,
            "lost an executor",
        ),
        (
            Py4JJavaError("<_InactiveRpcError: StatusCode.UNAVAILABLE, failed to connect>"),
            SparkFailureError,
            "session ended",
        ),
        (
            Py4JJavaError("java.lang.OutOfMemoryError: Java heap space" + JVM_TRACE),
            SparkFailureError,
            "out of memory",
        ),
        (
            Py4JJavaError("[FAILED_READ_FILE.FILE_NOT_EXIST] File does not exist." + JVM_TRACE),
            InvalidInputError,
            "disappeared",
        ),
    ],
)
def test_known_failures_are_one_line_naming_a_log_with_the_details(
    tmp_path: Path, error: Exception, kind: type, what: str
) -> None:
    try:
        raise error
    except Exception as raised:
        failure = known_failure(raised, doing="writing the predictions", log_dir=tmp_path)
    assert isinstance(failure, kind)
    message = str(failure)
    assert message.startswith("writing the predictions failed: ") and what in message
    assert "\n" not in message and "\tat " not in message
    log = Path(message.split("details in ", 1)[1].rstrip(")"))
    assert log.parent == tmp_path and str(error).splitlines()[0] in log.read_text()


def test_a_cause_deep_in_the_chain_is_found(tmp_path: Path) -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("publishing failed") from inner
    except RuntimeError as outer:
        assert isinstance(known_failure(outer, doing="x", log_dir=tmp_path), StorageError)


def test_anything_else_stays_a_bug_with_its_traceback(tmp_path: Path) -> None:
    assert known_failure(ValueError("a bug"), doing="x", log_dir=tmp_path) is None
    # Spark's words in a message of our own code are not Spark's failure.
    flag = ValueError("FileNotFoundException_flag: Permission denied")
    assert known_failure(flag, doing="x", log_dir=tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_a_bug_while_handling_a_known_failure_stays_a_bug(tmp_path: Path) -> None:
    try:
        try:
            raise PermissionError(errno.EACCES, "Permission denied")
        except PermissionError:
            raise KeyError("a bug in the handler") from None
    except KeyError as bug:
        assert known_failure(bug, doing="x", log_dir=tmp_path) is None


def test_the_line_says_so_when_the_log_cannot_be_written(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the log folder should be
    failure = known_failure(
        OSError(errno.ENOSPC, "No space left on device"), doing="x", log_dir=blocked / "logs"
    )
    assert failure is not None and "log file could not be written" in str(failure)


def test_file_errors_of_the_storage_are_exit_8_and_others_exit_2() -> None:
    from lib.failures import storage_or_input_error

    full = storage_or_input_error(OSError(errno.ENOSPC, "full"), "cannot create the lock")
    assert isinstance(full, StorageError) and full.exit_code == 8
    odd = storage_or_input_error(OSError(errno.ENOTDIR, "not a dir"), "cannot create the lock")
    assert isinstance(odd, InvalidInputError) and odd.exit_code == 2


def test_the_runner_knows_every_errors_exit_code_by_name() -> None:
    # The runner maps a notebook's error to the job's exit code by its class name, in a
    # process that imported only what the runner imports: an error class defined where the
    # runner never looks exited 1 (found with SparkUnreachableError, now in lib.errors).
    import importlib
    import pkgutil
    import subprocess
    import sys

    import lib
    from lib.errors import PipelineError

    for module in pkgutil.walk_packages(lib.__path__, "lib."):
        if module.name not in ("lib.connect_driver", "lib.warm_up"):  # scripts, not libraries
            importlib.import_module(module.name)
    pending, codes = [PipelineError], {}
    while pending:
        cls = pending.pop()
        codes[cls.__name__] = cls.exit_code
        pending.extend(cls.__subclasses__())
    probe = (
        "import json, sys, lib.runner\n"
        "from lib.errors import exit_code_for\n"
        "print(json.dumps({n: exit_code_for(n) for n in json.loads(sys.argv[1])}))"
    )
    import json

    out = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(sorted(codes))],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == codes
