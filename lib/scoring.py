"""Scoring: plain batch functions, and the one place they are wrapped for Spark.

:func:`score_pandas` is what a data scientist would write: take a batch of users, return the
probability of conversion. :func:`score_arrow` is the same on an Arrow record batch, the
form in which Spark hands data to Python: no pandas round trip. Neither knows about Spark;
both are tested on their own and give identical scores.

:func:`score_spark` runs :func:`score_arrow` on every partition with ``mapInArrow``: Arrow
moves the batches between the JVM and Python, and each Python worker rebuilds the model once
from verified bytes (a broadcast variable on classic Spark, the function's closure over Spark
Connect).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from lib import schema
from lib.holdout import with_groups

if TYPE_CHECKING:
    import pandas as pd
    from catboost import CatBoostClassifier
    from pyspark.sql import Column, DataFrame

    from lib.drift import ProfileCounter
    from lib.registry import VerifiedModel

__all__ = [
    "SCORED_SCHEMA_DDL",
    "SCORE_SCHEMA_DDL",
    "RunColumns",
    "add_run_columns",
    "decile_column",
    "is_user_row",
    "profile_batch",
    "score_arrow",
    "score_pandas",
    "score_spark",
]

SCORE_SCHEMA_DDL = f"{schema.USER_ID} long, {schema.SCORE} double"
# What the job's Python tasks yield: the scores and each user's holdout group, and one
# summary row per task, without a user or a score, whose `group` holds the task's drift
# counts as JSON (lib.drift). A row per task, not a column per row: a column of nulls on
# every user's row cost about 0.4 s per 5M users in Arrow transfer and JVM work (measured).
SCORED_SCHEMA_DDL = f"{SCORE_SCHEMA_DDL}, `{schema.GROUP}` string"


@dataclass(frozen=True)
class RunColumns:
    """What the tasks add to the scores for one run: plain values, pickled into the tasks."""

    campaign_id: int = 0
    holdout_share: float = 0.0  # 0: everybody is in treatment
    reference: str | None = None  # the model's drift reference (JSON); None: no counts

    @classmethod
    def for_model(cls, campaign_id: int, holdout_share: float, model: VerifiedModel) -> RunColumns:
        """The run's columns for ``model``: drift counts when it has a training reference."""
        reference = model.artifact.reference
        text = json.dumps(reference.to_json()) if reference is not None else None
        return cls(campaign_id, holdout_share, text)

    def counter(self) -> ProfileCounter | None:
        from lib.drift import ProfileCounter, Reference

        if self.reference is None:
            return None
        return ProfileCounter(Reference.from_json(json.loads(self.reference)))


def add_run_columns(
    scored: pa.RecordBatch,
    inputs: pa.RecordBatch | pa.Table,
    columns: RunColumns,
    counter: ProfileCounter | None,
) -> pa.RecordBatch:
    """``scored`` plus ``group``; ``inputs`` (the same rows, with their features) are
    counted into ``counter``."""
    if counter is not None:
        counter.add(inputs, scored.column(schema.SCORE).to_numpy())
    return with_groups(scored, columns.campaign_id, columns.holdout_share)


def profile_batch(counter: ProfileCounter) -> pa.RecordBatch:
    """The summary row a task adds: no user, no score, its drift counts in ``group``."""
    return pa.RecordBatch.from_arrays(
        [
            pa.nulls(1, pa.int64()),
            pa.nulls(1, pa.float64()),
            pa.array([counter.to_json()], pa.string()),
        ],
        names=[schema.USER_ID, schema.SCORE, schema.GROUP],
    )


def is_user_row(F: Any) -> Any:
    """The Spark condition that keeps users' rows (every user has a score; a task's
    summary row from :func:`profile_batch` has none)."""
    return F.col(schema.SCORE).isNotNull()


# Models a Python worker process keeps, by checksum: workers are reused across tasks and,
# on the local Connect server, across sessions; the oldest goes when a new one would exceed.
_WORKER_MODELS: OrderedDict[str, Any] = OrderedDict()
WORKER_MODELS_KEPT = 4


def worker_model(sha256: str, fmt: str, data: Callable[[], bytes]) -> CatBoostClassifier:
    """The model with checksum ``sha256`` in this worker: built from ``data()`` (verified
    bytes) the first time, then kept for the worker's next tasks."""
    model = _WORKER_MODELS.get(sha256)
    if model is None:
        from lib.registry import model_from_bytes

        model = _WORKER_MODELS[sha256] = model_from_bytes(data(), fmt)
        while len(_WORKER_MODELS) > WORKER_MODELS_KEPT:
            _WORKER_MODELS.popitem(last=False)
    _WORKER_MODELS.move_to_end(sha256)
    return model


def _positive_proba(model: CatBoostClassifier, matrix: np.ndarray, thread_count: int) -> np.ndarray:
    """CatBoost's probability of class 1 for a float32 feature matrix (its native dtype)."""
    if len(matrix) == 0:
        return np.empty(0, dtype=np.float64)
    return model.predict_proba(matrix, thread_count=thread_count)[:, 1].astype(np.float64)


def score_pandas(
    users: pd.DataFrame, model: CatBoostClassifier, features: Sequence[str], thread_count: int = 1
) -> pd.DataFrame:
    """``user_id`` and ``prediction_score`` (probability of the positive class) for a batch."""
    import pandas as pd  # lazily: Spark's Python workers use score_arrow and never need it

    matrix = users[list(features)].to_numpy(dtype=np.float32)  # columns in the model's order
    return pd.DataFrame(
        {
            schema.USER_ID: users[schema.USER_ID].to_numpy(dtype=np.int64),
            schema.SCORE: _positive_proba(model, matrix, thread_count),
        }
    )


def score_arrow(
    batch: pa.RecordBatch, model: CatBoostClassifier, features: Sequence[str], thread_count: int = 1
) -> pa.RecordBatch:
    """:func:`score_pandas` for an Arrow record batch, without building a pandas frame."""
    matrix = np.empty((batch.num_rows, len(features)), dtype=np.float32)
    for i, name in enumerate(features):  # fill column by column, in the model's order
        matrix[:, i] = batch.column(name).to_numpy(zero_copy_only=False)
    return pa.RecordBatch.from_arrays(
        [
            batch.column(schema.USER_ID).cast(pa.int64()),
            pa.array(_positive_proba(model, matrix, thread_count), type=pa.float64()),
        ],
        names=[schema.USER_ID, schema.SCORE],
    )


def score_spark(
    users: DataFrame,
    model: VerifiedModel,
    thread_count: int | None = None,
    run: RunColumns | None = None,
) -> DataFrame:
    """Score a DataFrame of users on the executors; returns ``user_id, prediction_score``,
    and with ``run`` also ``group`` and a summary row per task (:data:`SCORED_SCHEMA_DDL`).

    The model travels as bytes already checked against the registry's sha256; workers
    rebuild it once (``_WORKER_MODELS``) instead of per batch. CatBoost gets as many threads
    as one Spark task has cores (unless ``thread_count`` says otherwise), so concurrent
    tasks do not fight over the CPU.
    """
    from lib.spark import is_remote

    spark = users.sparkSession
    # Classic Spark ships the verified bytes once per executor (a broadcast variable); Spark
    # Connect has no sparkContext, so the bytes travel inside the function's closure. Either
    # way workers deserialise exactly the bytes whose sha256 the job checked.
    model_bytes: bytes | None = model.data if is_remote(spark) else None
    broadcast = None if is_remote(spark) else spark.sparkContext.broadcast(model.data)
    model_sha256, model_format = model.sha256, model.format
    feature_list = list(model.features)
    threads = thread_count or int(spark.conf.get("spark.task.cpus", "1") or "1")
    run_values = astuple(run) if run is not None else None  # plain values cross to the tasks

    def score_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # Everything from lib is imported here, in the worker, after forget_if_edited(): a
        # lib function captured by this closure would be the worker's copy from its first
        # task (it may predate an edit), and a captured module global would be pickled by
        # value (a fresh, empty model cache per task).
        import lib

        lib.forget_if_edited()
        from lib.scoring import (
            RunColumns,
            add_run_columns,
            profile_batch,
            score_arrow,
            worker_model,
        )

        def data() -> bytes:
            value = broadcast.value if broadcast is not None else model_bytes
            assert value is not None
            return value

        model = worker_model(model_sha256, model_format, data)
        columns = RunColumns(*run_values) if run_values is not None else None
        counter = columns.counter() if columns is not None else None
        for batch in batches:
            scored = score_arrow(batch, model, feature_list, thread_count=threads)
            yield scored if columns is None else add_run_columns(scored, batch, columns, counter)
        if counter is not None:
            yield profile_batch(counter)

    from pyspark.sql.types import DecimalType

    from lib.spark import functions_for

    F = functions_for(spark)

    # Only the id and the features cross to Python; Spark prunes the other columns at the scan.
    # Decimal features become doubles here: Arrow would hand Python objects, not numbers.
    decimals = {f.name for f in users.schema.fields if isinstance(f.dataType, DecimalType)}
    columns = [
        F.col(name).cast("double").alias(name) if name in decimals else F.col(name)
        for name in feature_list
    ]
    ddl = SCORE_SCHEMA_DDL if run is None else SCORED_SCHEMA_DDL
    return users.select(schema.USER_ID, *columns).mapInArrow(score_partition, ddl)


def decile_column(score: Column, cut_points: Sequence[float], functions: Any = None) -> Column:
    """Decile 1..10 from the score's 10%..90% quantiles; 1 holds the highest scores.

    ``decile = 10 - (number of cut points strictly below the score)``: built from plain
    comparisons, so no window function has to pull every row into one partition.
    """
    if functions is None:
        from pyspark.sql import functions
    F = functions
    above = sum((score > F.lit(float(c))).cast("int") for c in cut_points)
    return (F.lit(10) - above).cast("int") if cut_points else F.lit(1).cast("int")
