"""lib.spark.build_spark: which session a caller gets."""

from __future__ import annotations

import os

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
