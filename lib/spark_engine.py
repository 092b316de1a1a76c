"""The Spark engine of the scoring job: read, check, filter, score, measure, write.

Used by :func:`lib.job.run_job` through the :class:`lib.job.Engine` protocol. The session
is passed in (notebook 04, tests) or started once, lazily, by :func:`lib.spark.build_spark`.
The output projection is a pure DataFrame → DataFrame function (:func:`prediction_frame`).

Two ways to read the users (:func:`scoring_path_for`): ``python-reads`` for local or mounted
Parquet (:mod:`lib.parquet_source`: Python tasks read, filter and score; only the scores
cross to the JVM) and ``spark-reads`` for remote inputs, which Spark's connectors read
(:func:`lib.scoring.score_spark`). Both compute the same scores; the job says which ran.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lib import schema
from lib.audience import to_spark_column
from lib.contract import ScoringPath
from lib.drift import merge_profiles
from lib.errors import InvalidInputError, PipelineError
from lib.files import local_path
from lib.holdout import CONTROL
from lib.inputs import check_columns, check_ids
from lib.job import Echo, EngineStats, ScoringTask, Timer
from lib.scoring import is_user_row
from lib.settings import get_settings
from lib.sinks import BigQuerySink, ObjectStoreSink, Sink

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SparkEngine", "check_input_columns", "prediction_frame", "scoring_path_for"]

QUANTILE_ACCURACY = 10_000  # percentile_approx: rank error at most 1/10,000 of the audience


class SparkEngine:
    """Scores with PySpark; starts its own session only when none is given."""

    def __init__(
        self,
        spark: SparkSession | None = None,
        master: str | None = None,
        scoring_path: str | None = None,
    ) -> None:
        self._spark = spark
        self._master = master
        self._scoring_path = scoring_path  # None: the SCORING_PATH setting (default auto)

    def session(self, timer: Timer) -> SparkSession:
        if self._spark is None:
            with timer.stage("start spark"):
                self._spark = _start_spark(self._master)
        return self._spark

    def check_sink(self, sink: Sink, timer: Timer) -> None:
        if isinstance(sink, BigQuerySink):
            _check_bigquery_connector(self.session(timer))
        if isinstance(sink, ObjectStoreSink):
            sink.check_owned(self.session(timer))

    def score(self, task: ScoringTask, echo: Echo, timer: Timer) -> EngineStats:
        from pyspark.storagelevel import StorageLevel

        from lib.scoring import score_spark
        from lib.spark import functions_for

        path, why = scoring_path_for(task.input_path, self._scoring_path)
        spark = self.session(timer)
        F = functions_for(spark)
        local = local_path(task.input_path)
        if path == "python-reads" and local is not None and task.known_input_rows is not None:
            # The footers (lib.inputs) already gave the columns and the row count: no Spark
            # job before the scoring one.
            input_rows = task.known_input_rows
        else:
            with timer.stage("read"), _input_errors(task.input_path):
                users = _read_users(spark, task.input_path)
                check_input_columns(users, task.needed_columns)
                # Local Parquet footers already gave the row count; remote inputs take a job.
                known = task.known_input_rows
                input_rows = known if known is not None else users.count()
        echo(f"✅ Loaded {input_rows:,} users")
        echo(f"⚙️ Scoring path: {path}: {why}")
        text = task.campaign.audience_filter
        echo(f"🎯 Applying audience filter: {text or '(none: every user)'}")

        with timer.stage("filter + score"), _input_errors(task.input_path):
            # Scores are computed once, in one Spark job that also yields the audience size,
            # the mean, the decile boundaries and the id checks; cached for the write.
            # Compared as Spark SQL compares with the columns' stored types (lib.audience).
            run = task.run_columns()
            if path == "python-reads" and local is not None:
                from lib.parquet_source import scored_users

                scored = scored_users(spark, local, task.audience, task.model, run=run)
            else:
                audience = to_spark_column(task.audience, F, users.schema)
                scored = score_spark(users.filter(audience), task.model, run=run)
            scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
            is_user = is_user_row(F)  # each task adds a summary row of drift counts
            stats = scored.agg(
                F.sum(is_user.cast("long")).alias("n"),
                F.count(schema.USER_ID).alias("ids"),
                F.count_distinct(schema.USER_ID).alias("distinct_ids"),
                F.avg(schema.SCORE).alias("mean"),
                F.percentile_approx(
                    schema.SCORE, [i / 10 for i in range(1, 10)], QUANTILE_ACCURACY
                ).alias("cuts"),
                F.sum((F.col(schema.GROUP) == F.lit(CONTROL)).cast("long")).alias("control"),
                F.collect_list(F.when(~is_user, F.col(schema.GROUP))).alias("profiles"),
            ).first()
        assert stats is not None  # a global aggregate always yields one row
        try:
            audience_size = int(stats["n"] or 0)
            check_ids(audience_size, int(stats["ids"]), int(stats["distinct_ids"]))
            profile = merge_profiles(stats["profiles"]) if run.reference else None
            range_warnings = task.check_ranges(profile, echo)  # refused: nothing is written
            cut_points = [float(c) for c in stats["cuts"]] if audience_size else []
            share = audience_size / input_rows if input_rows else 0.0
            echo(f"✅ Filtered to {audience_size:,} users ({share:.1%})")
            echo("🤖 Generating predictions...")
            predictions = prediction_frame(
                scored.filter(is_user),
                campaign_id=task.campaign.id,
                run_id=task.run_id,
                model_sha256=task.model.sha256,
                scored_at=task.scored_at,
                cut_points=cut_points,
            )
            echo(f"💾 Writing predictions to: {task.sink.target}")
            with timer.stage("write"), _input_errors(task.input_path):
                task.sink.write(predictions, campaign_id=task.campaign.id, run_id=task.run_id)
        finally:
            scored.unpersist()
        return EngineStats(
            input_rows=input_rows,
            audience_size=audience_size,
            mean_score=float(stats["mean"]) if audience_size else None,
            decile_cut_points=cut_points,
            scoring_path=path,
            control_size=int(stats["control"] or 0),
            profile=profile,
            range_warnings=range_warnings,
        )


PYTHON_READS = "Python tasks read the Parquet row groups, only the scores cross to Spark"
SPARK_READS = "Spark reads the input and ships the features to Python over Arrow"


def scoring_path_for(input_path: str, setting: str | None = None) -> tuple[ScoringPath, str]:
    """How to read the users, and why in a few words (the job's one line).

    ``python-reads`` for local or mounted Parquet; ``spark-reads`` for remote inputs
    (``gs://``, ``s3a://``, ``hdfs://``: Spark's connectors hold the credentials) and for
    Hive-style partition folders (``country=US/``: Spark gives their values its own types).
    ``setting`` (default: SCORING_PATH) may force one; ``python-reads`` where it cannot read
    is refused.
    """
    from lib.parquet_source import partition_columns

    setting = setting or get_settings().scoring_path
    if setting not in ("auto", "python-reads", "spark-reads"):
        raise InvalidInputError(
            f"scoring path must be auto, python-reads or spark-reads, got {setting!r}"
        )
    if setting == "spark-reads":
        return "spark-reads", f"{SPARK_READS} (SCORING_PATH=spark-reads)"
    local = local_path(input_path)
    partitions = partition_columns(local) if local is not None else []
    if local is not None and not partitions:
        return "python-reads", PYTHON_READS
    reason = (
        "the input is remote"
        if local is None
        else f"the input is partitioned by folder ({', '.join(partitions)})"
    )
    if setting == "python-reads":
        raise InvalidInputError(
            f"SCORING_PATH=python-reads cannot read {input_path}: {reason} (unset "
            "SCORING_PATH: such inputs are read by Spark)"
        )
    return "spark-reads", f"{SPARK_READS} ({reason})"


def prediction_frame(
    scored: DataFrame,
    *,
    campaign_id: int,
    run_id: int,
    model_sha256: str,
    scored_at: datetime,
    cut_points: Sequence[float],
) -> DataFrame:
    """The output contract (lib.schema.PREDICTION_SCHEMA) from the tasks' scores and groups."""
    from lib.scoring import decile_column
    from lib.spark import functions_for

    F = functions_for(scored.sparkSession)

    return scored.select(
        F.col(schema.USER_ID).cast("long"),
        F.lit(campaign_id).cast("long").alias(schema.CAMPAIGN_ID),
        F.col(schema.SCORE).cast("double"),
        decile_column(F.col(schema.SCORE), cut_points, F).alias(schema.DECILE),
        F.col(schema.GROUP),
        F.lit(model_sha256).alias("model_sha256"),
        F.lit(run_id).cast("long").alias("run_id"),
        F.lit(scored_at).cast("timestamp").alias("scored_at"),
    )


def _spark_kind(typ: Any) -> str:
    from pyspark.sql.types import (
        ByteType,
        CharType,
        DecimalType,
        DoubleType,
        FloatType,
        IntegerType,
        LongType,
        ShortType,
        StringType,
        VarcharType,
    )

    if isinstance(typ, ByteType | ShortType | IntegerType | LongType):
        return "int"
    if isinstance(typ, FloatType | DoubleType):
        return "float"
    if isinstance(typ, DecimalType):
        return "decimal"
    if isinstance(typ, StringType | VarcharType | CharType):
        return "string"
    return str(typ.simpleString())


def check_input_columns(users: DataFrame, needed: Sequence[str]) -> None:
    """The Spark input must have every needed column, of the kind the contract says."""
    check_columns({f.name: _spark_kind(f.dataType) for f in users.schema.fields}, needed)


def _read_users(spark: SparkSession, path: str) -> DataFrame:
    from pyspark.errors import AnalysisException

    try:
        return spark.read.parquet(path)
    except AnalysisException as err:
        first = str(err).strip().splitlines()[0]
        raise InvalidInputError(f"cannot read input {path}: {first}") from None


# Spark's words for "the input files are damaged" (error classes and Parquet reader errors),
# and pyarrow's reader in a python-reads task (its frames show in the Python traceback).
_READ_FAILURES = (
    "pyarrow/parquet/core.py",
    "pyarrow/_parquet.pyx",
    "FAILED_READ_FILE",
    "ParquetDecodingException",
    "CANNOT_READ_FILE_FOOTER",
    "is not a Parquet file",
    "Can not read value",
    "Could not read footer",
    "CorruptedFile",
)


@contextmanager
def _input_errors(source: str) -> Iterator[None]:
    """Turn Spark's failure to read damaged input files into one line and exit code 2."""
    from pyarrow import ArrowInvalid  # the driver plans python-reads' row groups with pyarrow

    try:
        yield
    except PipelineError:
        raise
    except Exception as err:
        text = str(err)
        gone = ("FILE_NOT_EXIST", "FileNotFoundException", "FileNotFoundError")
        if isinstance(err, FileNotFoundError) or any(m in text for m in gone):
            raise InvalidInputError(
                f"cannot read input {source}: it changed or disappeared while the job read it "
                "(a file Spark listed is gone: run the job again once the input is complete)"
            ) from None
        damaged = isinstance(err, ArrowInvalid) or "not a parquet file" in text.lower()
        if not damaged and not any(marker in text for marker in _READ_FAILURES):
            raise
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        cause = next(
            (line for line in lines if "Exception:" in line or "Error:" in line),
            lines[0] if lines else "",
        )
        raise InvalidInputError(
            f"cannot read input {source}: its data is damaged ({cause[:300]})"
        ) from None


def _check_bigquery_connector(spark: SparkSession) -> None:
    """Fail before any work when the spark-bigquery connector is not on the classpath.

    Asks the data source API (works over Spark Connect too, where there is no ``_jvm``): a
    missing connector is DATA_SOURCE_NOT_FOUND; with the connector, ``load()`` without a table
    fails for another reason, which is fine here.
    """
    try:
        spark.read.format("bigquery").load().schema  # noqa: B018 - analysis forces the lookup
    except Exception as err:  # the error class, not the exception type, says which case
        if "DATA_SOURCE_NOT_FOUND" in str(err) or "Failed to find data source" in str(err):
            raise InvalidInputError(
                "BigQuery output needs the spark-bigquery connector on the classpath "
                "(Dataproc runtimes ship it; elsewhere add it with --packages)"
            ) from None


def _start_spark(master: str | None) -> SparkSession:
    from lib.spark import build_spark

    try:
        return build_spark("campaign-scoring", master)
    except Exception as err:  # the JVM did not start: say what users can fix
        if "JAVA_GATEWAY_EXITED" in str(err) or "Java gateway" in str(err):
            message = "Spark could not start: is Java 17+ installed (java -version)?"
            raise PipelineError(message) from None
        raise
