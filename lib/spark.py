"""The one place a SparkSession is built. Everything else receives the session as an argument.

Defaults suit a laptop and CI: local master, loopback networking, Arrow on, the UI off when
asked, few shuffle partitions, quiet logs. Restricted SQL mode is on as a second line of
defence behind :mod:`lib.audience`: even if user text reached Spark SQL, ``reflect``,
``java_method`` and ``TRANSFORM ... USING`` would be refused.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from lib.settings import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "SECURITY_CONF",
    "build_spark",
    "connect_spark",
    "is_remote",
    "resolve_master",
    "server_conf",
]

LOG4J2_CONFIG = Path(__file__).with_name("log4j2.properties")

# Static confs: they only take effect when the session (JVM) is created.
SECURITY_CONF: dict[str, str] = {
    "spark.sql.restrictedMode.enabled": "true",  # no reflect/java_method/TRANSFORM
    "spark.sql.runSQLOnFiles": "false",  # no parquet.`/any/path` table references
}


def class_cache_options(settings: Settings) -> str:
    """JVM flags for class-data sharing (CDS) in the local driver: about 5 s off a cold start.

    Starting Spark loads some 20,000 classes; a CDS archive maps them ready-made. The first
    local run claims the recording (an exclusive ``.claim`` file) and the JVM writes the
    archive under a temporary name when it exits; a later start publishes it with an atomic
    rename once the writer is gone, and every start after that uses it. The archive is keyed
    by interpreter and pyspark; a JVM that cannot use it (another JDK, say) ignores it.
    """
    import pyspark

    if not settings.spark_class_cache:
        return ""
    key = hashlib.sha256(
        f"{sys.executable}|{pyspark.__file__}|{pyspark.__version__}".encode()
    ).hexdigest()[:16]
    archive = settings.cache_dir / f"spark-driver-{key}.jsa"
    claim = archive.with_name(archive.name + ".claim")
    quiet = "-Xlog:cds=off -Xlog:cds+dynamic=off"  # no warnings in notebooks and job logs
    try:
        if not archive.exists() and claim.exists():
            writer = int(claim.read_text() or 0)
            recorded = archive.with_name(f"{archive.name}.{writer}.tmp")
            idle = time.time() - (recorded if recorded.exists() else claim).stat().st_mtime
            if _alive(writer) or idle < 10:
                return ""  # a run is recording (or its JVM is still writing)
            if recorded.exists() and recorded.stat().st_size:
                os.replace(recorded, archive)
            claim.unlink()
        if archive.exists():
            return f"-XX:SharedArchiveFile={archive} {quiet}"
        archive.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except (OSError, ValueError):
        return ""  # another run claimed it first, or the cache is not writable
    with os.fdopen(fd, "w") as handle:
        handle.write(str(os.getpid()))
    return f"-XX:ArchiveClassesAtExit={archive}.{os.getpid()}.tmp {quiet}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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

    Set where the JVM starts (server-side for Connect), so a client cannot opt out of them.
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


def connect_spark(url: str | None = None) -> SparkSession:
    """A Spark Connect session (``url`` defaults to SPARK_REMOTE).

    The token is pyspark's SPARK_CONNECT_AUTHENTICATE_TOKEN; for the project's local server
    (``make up``) it is read from the server's token file when that variable is not set.
    """
    from pyspark.sql import SparkSession

    from lib.connect_server import TOKEN_ENV, ConnectServer

    settings = get_settings()
    url = url or settings.spark_remote
    if not url:
        raise ValueError("no Spark Connect URL: set SPARK_REMOTE=sc://host:port")
    if TOKEN_ENV not in os.environ and ";token=" not in url:
        token = ConnectServer(settings=settings).token()
        if token is not None:
            os.environ[TOKEN_ENV] = token
    return SparkSession.builder.remote(url).getOrCreate()


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
    if remote is None:
        remote = bool(settings.spark_remote) and master is None
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

    conf = {**server_conf(settings, ui=ui), **(extra_conf or {})}
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
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
