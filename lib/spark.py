"""The one place a SparkSession is built. Everything else receives the session as an argument.

Defaults suit a laptop and CI: local master, loopback networking, Arrow on, the UI off when
asked, few shuffle partitions, quiet logs. Restricted SQL mode is on as a second line of
defence behind :mod:`lib.audience`: even if user text reached Spark SQL, ``reflect``,
``java_method`` and ``TRANSFORM ... USING`` would be refused.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any, cast

from lib.errors import InvalidInputError, SparkUnreachableError
from lib.settings import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "LOCAL_AUTH_CONF",
    "SECURITY_CONF",
    "SparkUnreachableError",
    "build_spark",
    "class_cache_options",
    "classic_conf",
    "connect_spark",
    "functions_for",
    "is_local_master",
    "is_remote",
    "record_class_cache",
    "resolve_master",
    "server_conf",
    "task_slots",
    "wait_until_answering",
]

LOG4J2_CONFIG = Path(__file__).with_name("log4j2.properties")

# Static confs: they only take effect when the session (JVM) is created.
SECURITY_CONF: dict[str, str] = {
    "spark.sql.restrictedMode.enabled": "true",  # no reflect/java_method/TRANSFORM
    "spark.sql.runSQLOnFiles": "false",  # no parquet.`/any/path` table references
}


# Spark's own ports (the driver's RPC and block manager) also listen on 127.0.0.1 and answer
# any local user unless authenticated: the Connect token protects one door of several. With
# a local master Spark generates a fresh secret in the JVM at every start (SecurityManager:
# never on a command line, never in a file) and refuses a peer that cannot prove it (SASL).
# RPC encryption (spark.network.crypto.enabled) is left off: in Spark 4.3 it breaks the
# Connect server's tasks (RemoteClassLoaderError when an executor loads a class from the
# driver), and in local mode nothing but refused peers crosses those channels. A cluster
# master (standalone, Kubernetes, YARN) needs a secret its deployment hands out to every
# node, so this is set for local masters only.
LOCAL_AUTH_CONF: dict[str, str] = {"spark.authenticate": "true"}


def is_local_master(master: str | None) -> bool:
    """``local``, ``local[N]``, ``local[*]``, ``local[N, F]``: one JVM on this machine."""
    return master is not None and (master == "local" or master.startswith("local["))


def _java_version() -> str:
    """The JVM that local Spark will start (an archive only fits the JVM that wrote it)."""
    java = Path(os.environ["JAVA_HOME"]) / "bin" / "java" if "JAVA_HOME" in os.environ else "java"
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stderr.strip().splitlines()[0] if out.stderr.strip() else "unknown"


def class_cache_archive(settings: Settings) -> Path:
    """One class-data archive per pyspark and Java version, under CACHE_DIR."""
    import pyspark

    key = hashlib.sha256(f"{pyspark.__version__}|{_java_version()}".encode()).hexdigest()[:16]
    return settings.cache_dir / f"spark-driver-{key}.jsa"


def class_cache_options(settings: Settings) -> str:
    """JVM flags that *use* the class-data archive (CDS) for a classic local driver.

    Starting Spark loads some 20,000 classes; a CDS archive maps them ready-made, a few
    seconds off each cold classic start (bench.teaching_run measures it). Sessions only
    read the archive; :func:`record_class_cache` writes it, in a JVM it waits for.
    """
    if not settings.spark_class_cache:
        return ""
    archive = class_cache_archive(settings)
    return f"-XX:SharedArchiveFile={archive} {_QUIET_CDS}" if archive.is_file() else ""


_QUIET_CDS = "-Xlog:cds=off -Xlog:cds+dynamic=off"  # no warnings in notebooks and job logs

_RECORDER = """
import sys
from lib.spark import build_spark
spark = build_spark("record-class-cache", "local[1]", extra_conf={
    "spark.driver.extraJavaOptions": sys.argv[1]})
proc = spark.sparkContext._gateway.proc
spark.range(100).mapInArrow(lambda batches: batches, "id long").count()
spark.stop()
proc.stdin.close()  # the JVM exits when its stdin closes, and writes the archive then
sys.exit(proc.wait(timeout=300))
"""


def record_class_cache(settings: Settings | None = None) -> Path | None:
    """Write the class-data archive once (``make setup``), in a JVM this call waits for.

    The archive is written under a temporary name by a JVM that has fully exited before it
    is renamed into place, so an incomplete archive is never published, no JVM outlives
    the command, and temporary files never stay behind.
    """
    settings = settings or get_settings()
    if not settings.spark_class_cache:
        return None
    archive = class_cache_archive(settings)
    if archive.is_file():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    for stale in archive.parent.glob(f".{archive.name}.*.tmp"):  # a recorder that was killed
        stale.unlink(missing_ok=True)
    tmp = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
    options = f"-Dlog4j2.configurationFile=file:{LOG4J2_CONFIG} -XX:ArchiveClassesAtExit={tmp}"
    env = {**os.environ, "SPARK_CLASS_CACHE": "false"}
    env.pop("SPARK_REMOTE", None)  # the recording needs a JVM of its own
    try:
        done = subprocess.run(
            [sys.executable, "-c", _RECORDER, f"{options} {_QUIET_CDS}"],
            env=env,
            capture_output=True,
            timeout=600,
            check=False,
        )
        if done.returncode == 0 and tmp.is_file() and tmp.stat().st_size > 0:
            os.replace(tmp, archive)
            return archive
        return None
    finally:
        tmp.unlink(missing_ok=True)


def resolve_master(master: str | None, settings: Settings) -> str | None:
    """The master to set: the argument, else SPARK_MASTER, else local[*].

    ``None`` under spark-submit (Kubernetes operator, Dataproc, YARN): the master is chosen
    there already and must not be overridden.
    """
    if master or settings.spark_master:
        return master or settings.spark_master
    return None if settings.pyspark_gateway_port is not None else "local[*]"


def server_conf(settings: Settings, *, ui: bool = False) -> dict[str, str]:
    """The project's Spark settings: for our own local JVM and for the Spark Connect server.

    Set where the JVM starts (server-side for Connect). Restricted SQL is static: no client
    can turn it off; runSQLOnFiles and the time zone are session settings, which
    :func:`connect_spark` sets again on every Connect session the project opens.
    """
    return {
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "100000",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "true" if ui else "false",
        "spark.ui.showConsoleProgress": "false",
        # Quiet JVM logs (the file is shipped inside lib/); errors still show.
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{LOG4J2_CONFIG}",
        # Write timestamps as UTC-adjusted INT64 micros: pandas/pyarrow read them as
        # timezone-aware UTC (Spark's legacy INT96 comes back naive).
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.shuffle.partitions": "8",  # 200 tiny tasks cost more than they give
        **SECURITY_CONF,
    }


def is_remote(spark: object) -> bool:
    """Is ``spark`` a Spark Connect session (no sparkContext, no JVM in this process)?"""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def functions_for(spark: object) -> ModuleType:
    """``pyspark.sql.functions`` for a classic session, its Spark Connect twin for a remote one.

    pyspark picks the flavour from the process (SPARK_REMOTE); a process holding both kinds
    of session (the test suite, a benchmark) needs the one matching the DataFrame at hand.
    """
    if is_remote(spark):
        from pyspark.sql.connect import functions as connect_functions

        return connect_functions
    from pyspark.sql import functions as classic_functions

    return classic_functions


def task_slots(spark: SparkSession) -> int:
    """How many tasks the session runs at once (the Python-reads path plans one share each).

    Classic sessions know (``defaultParallelism``). A Spark Connect client asks the server's
    conf: ``spark.default.parallelism`` when set, else the cores of a local master (the
    project's server runs on this machine), else executors × cores, else the shuffle
    partitions.
    """
    import re

    if not is_remote(spark):
        return max(1, int(spark.sparkContext.defaultParallelism))
    conf = spark.conf
    explicit = conf.get("spark.default.parallelism", None)
    if explicit:
        return max(1, int(explicit))
    local = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", conf.get("spark.master", "") or "")
    if local:
        cores = local.group(1)
        return 1 if cores is None else (os.cpu_count() or 1) if cores == "*" else max(1, int(cores))
    executors, cores = (conf.get(f"spark.executor.{k}", None) for k in ("instances", "cores"))
    if executors and cores:
        return max(1, int(executors) * int(cores))
    return max(1, int(conf.get("spark.sql.shuffle.partitions", "2") or "2"))


def connect_spark(url: str | None = None) -> SparkSession:
    """A Spark Connect session (``url`` defaults to SPARK_REMOTE).

    For the project's own local server (``make up``: ``sc://localhost:<port>`` where this
    project's server owns the port) the token is read from the server's token file and the
    client dials 127.0.0.1 itself: ``localhost`` may resolve to ``::1`` first, where any
    local user could listen and collect the token. For any other server the token comes
    from pyspark's SPARK_CONNECT_AUTHENTICATE_TOKEN or the URL; the local token file is
    never sent elsewhere.
    """
    from urllib.parse import urlparse

    from pyspark.sql import SparkSession

    from lib.connect_server import TOKEN_ENV, ConnectServer

    settings = get_settings()
    url = url or settings.spark_remote
    if not url:
        raise ValueError("no Spark Connect URL: set SPARK_REMOTE=sc://host:port")
    from pyspark.sql.connect.client import DefaultChannelBuilder

    shown = url.split(";", 1)[0]  # a message never shows the token
    try:
        parsed = urlparse(shown.rstrip("/"))
        host, port = parsed.hostname, parsed.port
        default = DefaultChannelBuilder(url)  # pyspark's own checks of the whole URL
    except Exception:  # pyspark's messages quote the URL, token included
        raise InvalidInputError(
            f"SPARK_REMOTE is not a Spark Connect URL: {shown} (expected sc://host:port, "
            "options after ';')"
        ) from None
    local = host in ("localhost", "127.0.0.1") and port is not None
    server = ConnectServer(port, settings=settings) if local else None
    if server is not None and ";token=" not in url and _is_ours(server):
        token = os.environ.get(TOKEN_ENV) or server.token()
        if token is not None:
            from pyspark.sql.connect.session import SparkSession as ConnectSession

            cached = _LOOPBACK_SESSIONS.get((server.port, token))
            if cached is not None and not cached.is_stopped:
                return cast("SparkSession", cached)
            builder = _loopback_channel_builder(server.port, token)
            wait_until_answering(builder, url, "127.0.0.1", server.port, CONNECT_TIMEOUT_SECONDS)
            # create(), not getOrCreate(): another default session must not stand in for it.
            session = _quick_retries(ConnectSession.builder.channelBuilder(builder).create())
            # What pyspark's own remote builder does: pyspark.sql.functions and friends
            # then build Spark Connect expressions in this process (notebook code uses F).
            os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
            _LOOPBACK_SESSIONS[(server.port, token)] = _session_defaults(session)
            return cast("SparkSession", session)
    wait_until_answering(default, url, host or "localhost", port or 15002, CONNECT_TIMEOUT_SECONDS)
    session = _quick_retries(SparkSession.builder.remote(url).getOrCreate())
    return cast("SparkSession", _session_defaults(session))


def _is_ours(server: Any) -> bool:
    """Whether this project's local server owns the port. Another listener is refused,
    unless the user gave a token for it (docker-compose's notebooks: its Spark Connect
    shares their network namespace): then it is pyspark's to dial, with that token; the
    local token file is never sent to it."""
    from lib.connect_server import TOKEN_ENV, ConnectServerError

    try:
        return bool(server.owns_port())
    except ConnectServerError:
        if os.environ.get(TOKEN_ENV):
            return False
        raise


# How long a client waits for a Spark Connect server before it gives up with one line.
# pyspark's own policy retries for more than 10 minutes (it waits out a server restart);
# a learner whose server is down, or a scheduled job, is better told at once.
CONNECT_TIMEOUT_SECONDS = 5.0
# Then, for the session's calls: a few quick retries (about 6 s in all), not 10 minutes.
QUICK_RETRIES: dict[str, Any] = {
    "max_retries": 5,
    "initial_backoff": 200,
    "backoff_multiplier": 2.0,
    "max_backoff": 2000,
    "max_server_retry_delay": 2000,  # a server's "retry later" is capped as well
}


def wait_until_answering(
    builder: Any, url: str, host: str, port: int, timeout: float = CONNECT_TIMEOUT_SECONDS
) -> None:
    """Return when the Connect server behind ``builder`` (pyspark's channel builder for
    ``url``) completes a gRPC handshake; else raise :class:`SparkUnreachableError` within
    ``timeout`` seconds. A closed port is refused at once (a TCP connect); a port that
    accepts but never answers (not a Connect server, a hung one) waits out ``timeout``.
    Signals (Ctrl-C, SIGTERM) interrupt the wait: it is a plain timed wait in this thread.
    """
    import socket

    import grpc

    shown = url.split(";", 1)[0]  # never the token
    hint = "start the project's server with `make up`, or unset SPARK_REMOTE to run Spark here"
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        reason = "nothing listens there" if isinstance(err, ConnectionRefusedError) else err
        raise SparkUnreachableError(
            f"no Spark Connect server at {shown} ({reason}): {hint}"
        ) from None
    channel = builder.toChannel()
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise SparkUnreachableError(
            f"the server at {shown} accepted the connection but did not answer as Spark "
            f"Connect within {timeout:g} s (not a Spark Connect server, or a stuck one): {hint}"
        ) from None
    finally:
        channel.close()


def _quick_retries(session: Any) -> Any:
    """``session`` with :data:`QUICK_RETRIES` instead of pyspark's 10-minute policy."""
    from pyspark.sql.connect.client.retries import DefaultPolicy

    session.client.set_retry_policies([DefaultPolicy(**QUICK_RETRIES)])
    return session


_LOOPBACK_SESSIONS: dict[tuple[int, str], Any] = {}  # one per local server and process


def _loopback_channel_builder(port: int, token: str) -> Any:
    """A pyspark channel builder that sends ``token`` only to 127.0.0.1:``port``."""
    import grpc
    from pyspark.sql.connect.client import DefaultChannelBuilder

    class LoopbackChannelBuilder(DefaultChannelBuilder):
        def toChannel(self) -> grpc.Channel:
            credentials = grpc.composite_channel_credentials(
                grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
                grpc.access_token_call_credentials(token),
            )
            return self._secure_channel(f"127.0.0.1:{port}", credentials)

    return LoopbackChannelBuilder(f"sc://localhost:{port}")


def _session_defaults(session: Any) -> Any:
    """Session settings a Connect client must set itself (the server cannot make them
    static): no SQL on files, UTC. Restricted SQL is static, set by the server."""
    session.conf.set("spark.sql.runSQLOnFiles", "false")
    session.conf.set("spark.sql.session.timeZone", "UTC")
    return session


# What the JVM prints that nobody can act on. Spark's launcher always adds
# `--add-modules=jdk.incubator.vector` (org.apache.spark.launcher.JavaModuleOptions), and the
# JDK then prints this line before any Java code runs: no JVM flag turns it off, and Spark
# offers no setting to drop the module. The line is dropped from the JVM's stderr; every
# other line (log4j errors, a JVM crash, spark-submit's own messages) passes through.
JVM_NOISE: tuple[bytes, ...] = (b"WARNING: Using incubator modules: jdk.incubator.vector",)


def forward_jvm_stderr(stream: IO[bytes], fd: int = 2) -> None:
    """Copy the JVM's stderr to ``fd`` line by line, without the :data:`JVM_NOISE` lines.

    Writing to the file descriptor (not ``sys.stderr``) keeps what a Jupyter kernel does
    with the JVM's output: it shows under the running cell, as before. The pipe is drained
    until the JVM closes it, even when ``fd`` can no longer be written (a closed terminal
    or pipe): a JVM whose stderr pipe fills up would block in its next log line.
    """
    writable = True
    try:
        for line in iter(stream.readline, b""):
            if not writable or line.rstrip(b"\r\n") in JVM_NOISE:
                continue
            view = memoryview(line)
            try:
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                writable = False  # keep reading, throw the rest away
    finally:
        stream.close()


def _launch_quiet_gateway(options: Mapping[str, Any]) -> None:
    """Start the local driver JVM the way pyspark does, with its stderr filtered.

    pyspark starts the JVM (spark-submit) in ``SparkSession.builder.getOrCreate()`` with the
    same ``--conf`` options; doing it here first, with the JVM's stderr on a pipe that
    :func:`forward_jvm_stderr` drains, lets pyspark reuse that gateway. The reader starts
    before the JVM, so what a JVM that fails to start prints (a bad memory setting, a broken
    JAVA_HOME) is shown, and a chatty start cannot fill the pipe before pyspark gets its
    port. Nothing to do when a gateway exists (a second session, spark-submit's own JVM).
    """
    from pyspark import SparkConf
    from pyspark.core.context import SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None or "PYSPARK_GATEWAY_PORT" in os.environ:
        return
    conf = SparkConf()
    for key, value in options.items():
        conf.set(key, str(value))
    read_end, write_end = os.pipe()
    threading.Thread(
        target=forward_jvm_stderr,
        args=(os.fdopen(read_end, "rb"),),
        name="spark-jvm-stderr",
        daemon=True,
    ).start()
    try:
        gateway = launch_gateway(conf, popen_kwargs={"stderr": write_end})
    finally:
        os.close(write_end)  # the JVM holds its own copy; EOF comes when it exits
    SparkContext._ensure_initialized(gateway=gateway)


@contextmanager
def _without_spark_remote() -> Iterator[None]:
    """Hide SPARK_REMOTE while a classic session is built (notebook 05 under `make lab`):
    pyspark's builder would otherwise make a Spark Connect session, or refuse the master."""
    saved = os.environ.pop("SPARK_REMOTE", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["SPARK_REMOTE"] = saved


def classic_conf(
    master: str | None,
    settings: Settings,
    *,
    ui: bool = False,
    extra_conf: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The settings of a classic session on ``master`` (None: spark-submit's own)."""
    local = master is not None and master.startswith("local")
    conf = {**server_conf(settings, ui=ui), **(extra_conf or {})}
    if is_local_master(master):
        conf = {**LOCAL_AUTH_CONF, **conf}
    if local:
        options = class_cache_options(settings)
        if options:
            conf["spark.driver.extraJavaOptions"] += f" {options}"
    else:  # a cluster: its own addresses and partitioning
        for key in (
            "spark.driver.host",
            "spark.driver.bindAddress",
            "spark.sql.shuffle.partitions",
        ):
            conf.pop(key, None)
    if "spark.driver.extraJavaOptions" in conf and settings.pyspark_gateway_port is None:
        # The JVM's error log in a file (lib/log4j2.properties); a job's one-line error
        # points there. Not under spark-submit: that JVM is already running.
        jvm_log = settings.logs_dir / "spark-jvm.log"
        jvm_log.parent.mkdir(parents=True, exist_ok=True)
        conf["spark.driver.extraJavaOptions"] += f" -Dspark_ml_pipeline.jvm_log={jvm_log}"
    return conf


def build_spark(
    app_name: str = "spark-ml-pipeline",
    master: str | None = None,
    *,
    ui: bool = False,
    extra_conf: Mapping[str, str] | None = None,
    remote: bool | None = None,
) -> SparkSession:
    """The session to use: Spark Connect when SPARK_REMOTE says so, else a local JVM.

    ``remote=False`` forces a classic session (Ibis's PySpark backend needs one); an explicit
    ``master`` also means classic. Classic sessions get the project's settings
    (:func:`server_conf`); a Connect server has them set server-side already.
    """
    from pyspark.sql import SparkSession

    settings = get_settings()
    master = master or None  # notebooks pass "" for "the default"
    if remote is None:  # spark-submit (a cluster job) keeps the session it was given
        remote = bool(settings.spark_remote) and master is None
        remote = remote and settings.pyspark_gateway_port is None
    if remote:
        return connect_spark()
    master = resolve_master(master, settings)
    local = master is not None and master.startswith("local")
    if local:
        # Bind to loopback, and run Python workers with *this* interpreter (the venv's);
        # otherwise workers start whatever `python3` is on PATH and cannot import lib.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

    conf = classic_conf(master, settings, ui=ui, extra_conf=extra_conf)
    with _without_spark_remote():  # pyspark checks it in master(), config() and getOrCreate()
        builder = SparkSession.builder.appName(app_name)
        if master is not None:
            builder = builder.master(master)
        for key, value in conf.items():
            builder = builder.config(key, value)
        _launch_quiet_gateway(
            {"spark.app.name": app_name, **({"spark.master": master} if master else {}), **conf}
        )
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


if __name__ == "__main__":  # python -m lib.spark record-class-cache (make setup)
    if sys.argv[1:] != ["record-class-cache"]:
        sys.exit("usage: python -m lib.spark record-class-cache")
    recorded = record_class_cache()
    print(f"Spark class-data archive: {recorded or 'not recorded (Java missing, or opted out)'}")
