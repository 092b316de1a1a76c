"""The driver of the project's local Spark Connect server: spark-submit runs this file.

    spark-submit --conf spark.plugins=org.apache.spark.sql.connect.SparkConnectPlugin \\
        --conf spark.sql.artifact.isolation.enabled=false ... lib/connect_driver.py

Why not Spark's own ``SparkConnectServer`` class: it forces artifact isolation on, and with
it every Connect session gets Python workers of its own (Spark keys its worker pools by the
session's artifact id). Each `make score` is a new kernel and so a new session: it paid
about 1.5 s to start a Python daemon and workers, and left them running on the server for
good. Started from this driver, the same Connect service (the plugin) serves sessions that
share one pool of Python workers. The server is one user's, on loopback, behind a token, and
the project's clients add no artifacts (jars, files) to their sessions, so isolating them
from each other protects nothing here. A server shared by several people (k8s/) keeps
Spark's own class and its isolation.

Run by spark-submit only (the JVM is this process's parent and owns the gRPC port); it
exits when the JVM does, and on Ctrl-C.
"""

from __future__ import annotations

import os
import time

READY_LINE = "Spark Connect service started"  # lib.connect_server.start waits for it


def main() -> int:
    from pyspark.sql import SparkSession

    jvm = os.getppid()
    # The settings came with spark-submit (--conf): this only starts the context, and with
    # it the plugin's gRPC service.
    SparkSession.builder.getOrCreate()
    print(f"{READY_LINE} (shared Python workers)", flush=True)
    try:
        while os.getppid() == jvm:  # the JVM stopped (make down): nothing left to serve
            time.sleep(0.5)
    except KeyboardInterrupt:  # Ctrl-C in the terminal of `make spark`
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
