"""The JVM's stderr: the JDK's incubator line is dropped, everything else passes through."""

from __future__ import annotations

import io
import os
from pathlib import Path

from lib.spark import LOG4J2_CONFIG, forward_jvm_stderr


def test_only_the_incubator_line_is_dropped(tmp_path: Path) -> None:
    jvm_stderr = io.BytesIO(
        b"WARNING: Using incubator modules: jdk.incubator.vector\n"
        b"10:00:01 ERROR SparkContext: Error initializing SparkContext.\n"
        b"WARNING: Using incubator modules: jdk.incubator.vector, jdk.incubator.other\n"
        b'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space\r\n'
        b"no newline at the end"
    )
    target = tmp_path / "stderr"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        forward_jvm_stderr(jvm_stderr, fd)
    finally:
        os.close(fd)
    assert target.read_bytes() == (
        b"10:00:01 ERROR SparkContext: Error initializing SparkContext.\n"
        b"WARNING: Using incubator modules: jdk.incubator.vector, jdk.incubator.other\n"
        b'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space\r\n'
        b"no newline at the end"
    )


def test_a_closed_stderr_does_not_stop_the_draining(tmp_path: Path) -> None:
    """`make score 2>&1 | head`: once our stderr is gone, the JVM's pipe is still read to
    the end (a JVM whose stderr pipe fills up blocks in its next log line)."""
    lines = [f"line {i}\n".encode() for i in range(50_000)]  # far more than a pipe holds
    jvm_stderr = io.BytesIO(b"".join(lines))
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads our stderr any more: writes fail with EPIPE
    try:
        forward_jvm_stderr(jvm_stderr, write_end)  # returns instead of raising or stopping
    finally:
        os.close(write_end)
    assert jvm_stderr.closed


def test_log4j_config_quiets_the_log_level_banner_without_hiding_errors() -> None:
    """pyspark's driver sets up logging like a shell: without a level of its own for
    PythonGatewayServer, Spark prints "Setting default log level to "WARN"" on each start."""
    settings = dict(
        line.split(" = ", 1)
        for line in LOG4J2_CONFIG.read_text().splitlines()
        if " = " in line and not line.startswith("#")
    )
    pyspark_logger = next(
        key.rsplit(".", 1)[0]
        for key, value in settings.items()
        if value == "org.apache.spark.api.python.PythonGatewayServer"
    )
    assert settings[f"{pyspark_logger}.level"] == settings["rootLogger.level"] == "error"


def test_papermill_kernels_talk_over_ipc_not_tcp() -> None:
    """ipykernel warns "Kernel is running over TCP without encryption" on TCP only."""
    from lib.runner import _kernel_config

    assert _kernel_config().KernelManager.transport == "ipc"


def test_each_run_gets_its_own_ipc_sockets_in_the_runtime_folder() -> None:
    """Not "kernel-ipc-<n>" in notebooks/ (the kernel's working folder), where two runs at
    once would take each other's sockets and a killed run would leave files behind."""
    from jupyter_core.paths import jupyter_runtime_dir

    from lib.runner import _kernel_config

    first, second = _kernel_config().KernelManager.ip, _kernel_config().KernelManager.ip
    assert Path(first).is_absolute() and Path(first).parent == Path(jupyter_runtime_dir())
    assert first != second
