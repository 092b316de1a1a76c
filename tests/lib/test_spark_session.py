"""lib.spark.build_spark: which session a caller gets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lib.spark import build_spark, is_remote


@pytest.mark.spark
def test_a_classic_session_is_built_even_when_spark_remote_is_set(
    spark, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Notebook 05 under `make lab` (which exports SPARK_REMOTE): Ibis needs a classic session,
    and pyspark's builder would otherwise go to Spark Connect or refuse the master."""
    monkeypatch.setenv("SPARK_REMOTE", "sc://localhost:1")  # nothing listens there
    session = build_spark(remote=False)
    assert not is_remote(session)
    assert session.sparkContext is spark.sparkContext
    assert os.environ["SPARK_REMOTE"] == "sc://localhost:1"  # restored for Connect callers


def test_a_cluster_session_keeps_the_clusters_addresses_and_its_own_secret(
    tmp_path: Path,
) -> None:
    from lib.settings import Settings
    from lib.spark import classic_conf

    settings = Settings(output_dir=tmp_path / "output", cache_dir=tmp_path / "cache")
    cluster = classic_conf("spark://10.0.0.5:7077", settings)
    for key in ("spark.driver.host", "spark.driver.bindAddress", "spark.authenticate"):
        assert key not in cluster, key  # remote executors must reach the driver
    local = classic_conf("local[2]", settings)
    assert local["spark.driver.bindAddress"] == "127.0.0.1"
    assert local["spark.authenticate"] == "true"
    assert "-Dspark_ml_pipeline.jvm_log=" in local["spark.driver.extraJavaOptions"]
