"""Warm a fresh Spark Connect server: one tiny scoring job down the path every run takes.

    python -m lib.warm_up        # the server of SPARK_CONNECT_PORT (make up runs it)

A JVM's first scoring job loads and compiles the classes of the Connect planner, Arrow,
mapInArrow, the aggregates, the Parquet writer and the output committer, and the server's
first Python workers import pyarrow, CatBoost and ``lib``: about 10 s that the learner's
first `make score` after `make up` used to pay. `make up` pays them instead, on 500
synthetic users and a five-tree model built here, in a throwaway folder: it needs no data,
no trained model and no config API, and it leaves nothing behind.

The JVM stays warm while the server runs. Spark stops Python workers idle for a minute; the
daemon they fork from stays, so a later run pays their imports again (about a second), not
the daemon's start.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession

__all__ = ["warm_up"]

WARM_UP_USERS = 500
WARM_UP_FILTER = "recency < 300 AND engagement_score >= 0.05"  # every compiled form runs


def warm_up(spark: SparkSession, folder: Path) -> int:
    """Score synthetic users on ``spark`` as a run does, then summarise as the report does.

    Returns the audience size. Everything is written under ``folder``.
    """
    from catboost import CatBoostClassifier

    from lib import schema
    from lib.api_client import Campaign
    from lib.audience import parse_filter
    from lib.data import generate_users, write_users
    from lib.job import ScoringTask, Timer
    from lib.registry import ModelArtifact, VerifiedModel
    from lib.sinks import LocalParquetSink
    from lib.spark import functions_for
    from lib.spark_engine import SparkEngine

    features = list(schema.FEATURES)
    labelled = generate_users(WARM_UP_USERS, seed=7, labelled=True)
    model = CatBoostClassifier(iterations=5, depth=2, verbose=False, thread_count=1)
    model.fit(labelled[features], labelled[schema.LABEL])
    model_path = folder / "warm-up.cbm"
    model.save_model(str(model_path))
    data = model_path.read_bytes()
    artifact = ModelArtifact(
        name=model_path.name,
        path=model_path,
        sha256=hashlib.sha256(data).hexdigest(),
        format="catboost",
        features=features,
        metadata={},
        size=len(data),
    )
    users = write_users(folder / "users.parquet", WARM_UP_USERS, seed=8)
    now = datetime.now(UTC)
    campaign = Campaign(
        id=1,
        name="warm-up",
        model_path=model_path.name,
        audience_filter=WARM_UP_FILTER,
        features=features,
        is_active=True,
        created_at=now,
        updated_at=now,
    )
    output = folder / "predictions.parquet"
    task = ScoringTask(
        campaign=campaign,
        run_id=1,
        audience=parse_filter(WARM_UP_FILTER),
        model=VerifiedModel(artifact, data),
        input_path=str(users),
        needed_columns=(schema.USER_ID, *features),
        known_input_rows=WARM_UP_USERS,
        sink=LocalParquetSink(str(output), campaign_id=campaign.id),
        scored_at=now,
    )
    stats = SparkEngine(spark).score(task, echo=lambda _line: None, timer=Timer())
    # What notebook 04's report cells ask of the predictions: a grouped aggregate and a top-N.
    F = functions_for(spark)
    predictions = spark.read.parquet(str(output))
    predictions.groupBy(schema.DECILE).agg(
        F.count(F.lit(1)).alias("users"), F.avg(schema.SCORE).alias("mean")
    ).collect()
    predictions.orderBy(F.desc(schema.SCORE)).limit(10).toPandas()
    return stats.audience_size


def main(argv: Sequence[str] | None = None) -> int:
    from lib.connect_server import connect_url
    from lib.settings import get_settings
    from lib.spark import connect_spark

    argparse.ArgumentParser(prog="python -m lib.warm_up", description=__doc__).parse_args(argv)
    settings = get_settings()
    spark = connect_spark(connect_url(settings.spark_connect_port))
    try:
        with tempfile.TemporaryDirectory(prefix="warm-up-", dir=settings.cache_dir) as folder:
            warm_up(spark, Path(folder))
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    from lib.errors import run_cli

    run_cli(main)
