"""Scoring: a plain pandas function, and the one place it is wrapped for Spark.

:func:`score_pandas` is what a data scientist would write: take a batch of users, return the
probability of conversion. It knows nothing about Spark and is tested on its own.
:func:`score_spark` runs it on every partition with ``mapInPandas``: Arrow moves the
batches between the JVM and Python, and each Python worker rebuilds the model once from
verified bytes shipped in a broadcast variable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lib import schema

if TYPE_CHECKING:
    from catboost import CatBoostClassifier
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = ["SCORE_SCHEMA_DDL", "decile_column", "score_pandas", "score_spark"]

SCORE_SCHEMA_DDL = f"{schema.USER_ID} long, {schema.SCORE} double"

# One model per Python worker process and model checksum (workers are reused across tasks).
_WORKER_MODELS: dict[str, Any] = {}


def score_pandas(
    users: pd.DataFrame, model: CatBoostClassifier, features: Sequence[str], thread_count: int = 1
) -> pd.DataFrame:
    """``user_id`` and ``prediction_score`` (probability of the positive class) for a batch."""
    if users.empty:
        return pd.DataFrame(
            {schema.USER_ID: pd.Series(dtype="int64"), schema.SCORE: pd.Series(dtype="float64")}
        )
    proba = model.predict_proba(users[list(features)], thread_count=thread_count)[:, 1]
    return pd.DataFrame(
        {
            schema.USER_ID: users[schema.USER_ID].to_numpy(dtype=np.int64),
            schema.SCORE: proba.astype(np.float64),
        }
    )


def score_spark(
    spark: SparkSession,
    users: DataFrame,
    model_bytes: bytes,
    model_format: str,
    model_sha256: str,
    features: Sequence[str],
) -> DataFrame:
    """Score a DataFrame of users on the executors; returns ``user_id, prediction_score``.

    The model travels as bytes already checked against the registry's sha256; workers
    rebuild it once (``_WORKER_MODELS``) instead of per batch. CatBoost gets as many threads
    as one Spark task has cores, so concurrent tasks do not fight over the CPU.
    """
    broadcast = spark.sparkContext.broadcast(model_bytes)
    feature_list = list(features)
    threads = int(spark.conf.get("spark.task.cpus", "1"))

    def score_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = _WORKER_MODELS.get(model_sha256)
        if model is None:
            from lib.model import model_from_bytes

            model = _WORKER_MODELS[model_sha256] = model_from_bytes(broadcast.value, model_format)
        for batch in batches:
            yield score_pandas(batch, model, feature_list, thread_count=threads)

    return users.select(schema.USER_ID, *feature_list).mapInPandas(
        score_partition, SCORE_SCHEMA_DDL
    )


def decile_column(score: Column, cut_points: Sequence[float]) -> Column:
    """Decile 1..10 from the score's 10%..90% quantiles; 1 holds the highest scores.

    ``decile = 10 - (number of cut points strictly below the score)``: built from plain
    comparisons, so no window function has to pull every row into one partition.
    """
    from pyspark.sql import functions as F

    above = sum((score > F.lit(float(c))).cast("int") for c in cut_points)
    return (F.lit(10) - above).cast("int") if cut_points else F.lit(1).cast("int")
