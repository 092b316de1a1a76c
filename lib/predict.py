"""The batch scoring job: campaign config -> checks -> filter -> score -> atomic write.

    python -m lib.predict --campaign-id 1 [--config-api-url URL] [--input PATH]
                          [--output PATH] [--master URL]
    spark-submit --master 'local[*]' lib/predict.py --campaign-id 1

Notebook 04 calls :func:`run_job` (papermill runs that notebook as the production job).
Every failure a user can cause ends with one line and its own exit code (lib.errors), and
is recorded on the campaign's run when the config API is reachable.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in (None, ""):  # run as a file (spark-submit lib/predict.py): find `lib`
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from lib import schema
from lib.api_client import Campaign, ConfigApiClient
from lib.audience import AudienceFilter, parse_filter, to_spark_column
from lib.errors import (
    CampaignInactiveError,
    InvalidInputError,
    JobInterruptedError,
    ModelError,
    PipelineError,
    run_cli,
)
from lib.output import LocalTarget
from lib.settings import get_settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["JobResult", "check_output_target", "main", "run_job"]

BIGQUERY_PREFIX = "bigquery:"
BIGQUERY_TABLE = re.compile(r"^bigquery:([\w-]+\.)?\w+\.[\w$-]+$")
BIGQUERY_CLASS = "com.google.cloud.spark.bigquery.BigQueryRelationProvider"
QUANTILE_ACCURACY = 10_000  # percentile_approx: rank error at most 1/10,000 of the audience
HEARTBEAT_SECONDS = 30.0  # how often a running job tells the config API it is alive
Echo = Callable[[str], None]


@dataclass
class JobResult:
    """What a run did; JSON-friendly (notebook 04 and the run record read it)."""

    campaign_id: int
    campaign_name: str
    run_id: int | None
    input_path: str
    output_path: str
    model_path: str
    model_sha256: str
    audience_filter: str | None
    input_rows: int
    audience_size: int
    mean_score: float | None
    decile_cut_points: list[float]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def audience_share(self) -> float:
        return self.audience_size / self.input_rows if self.input_rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "audience_share": self.audience_share}


class _Timer:
    """Wall-clock seconds per stage, for the notebook's "where did the time go"."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - started, 3)


# ---- checks ------------------------------------------------------------------------------------
# Column kinds, the same for Arrow (local footers) and Spark schemas: "int" (signed, or
# unsigned up to 32 bits), "float", "decimal", "string"; anything else is its type's name.
_NUMBER_KINDS = ("int", "float", "decimal")


def _check_columns(kinds: dict[str, str], needed: Sequence[str]) -> None:
    """Every needed column present, of the kind the contract says; ``user_id`` whole numbers."""
    missing = [c for c in needed if c not in kinds]
    if missing:
        raise InvalidInputError(f"input lacks columns {missing} (has {sorted(kinds)})")
    for name in needed:
        kind = kinds[name]
        if name == schema.USER_ID:
            if kind != "int":
                raise InvalidInputError(
                    f"input column '{name}' must hold whole numbers that fit a signed 64-bit "
                    f"integer (int64), is {kind}"
                )
            continue
        expected = schema.AUDIENCE_COLUMNS.get(name)
        if expected in ("int", "float") and kind not in _NUMBER_KINDS:
            raise InvalidInputError(f"input column '{name}' must be numeric, is {kind}")
        if expected == "string" and kind != "string":
            raise InvalidInputError(f"input column '{name}' must be text, is {kind}")


def _arrow_kind(typ: Any) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(typ):  # pandas categoricals: Spark reads the values
        return _arrow_kind(typ.value_type)
    if pa.types.is_signed_integer(typ) or (
        pa.types.is_unsigned_integer(typ) and typ.bit_width <= 32
    ):
        return "int"
    if pa.types.is_floating(typ):
        return "float"
    if pa.types.is_decimal(typ):
        return "decimal"
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        return "string"
    return str(typ)


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
    _check_columns({f.name: _spark_kind(f.dataType) for f in users.schema.fields}, needed)


def check_local_input(path: str, needed: Sequence[str]) -> int | None:
    """Fail fast, before Spark starts, when a local input is missing, unreadable or wrong.

    Reads only Parquet footers: every part file's own schema (parts that disagree on a
    needed column's type are refused: Spark would fail half-way through) and the row
    count. Returns the number of rows, or ``None`` for remote storage, which Spark checks.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    if "://" in path:
        return None
    if not Path(path).exists():
        raise InvalidInputError(f"input not found: {path} (run `python -m lib.data` first)")
    try:
        dataset = ds.dataset(path, format="parquet")
        fragments = list(dataset.get_fragments())
        if not fragments:
            raise InvalidInputError(f"input {path} holds no Parquet files")
        first_types: dict[str, tuple[Any, str]] = {}
        for fragment in fragments:
            physical = fragment.physical_schema
            for name in needed:
                if name not in physical.names:
                    continue
                typ = physical.field(name).type
                seen = first_types.setdefault(name, (typ, fragment.path))
                if not seen[0].equals(typ):
                    raise InvalidInputError(
                        f"input parts disagree on column '{name}': {seen[0]} in "
                        f"{Path(seen[1]).name}, {typ} in {Path(fragment.path).name}"
                    )
        rows = dataset.count_rows()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InvalidInputError(f"cannot read input {path}: {first}") from None
    kinds = {field.name: _arrow_kind(field.type) for field in dataset.schema}
    kinds.update({name: _arrow_kind(typ) for name, (typ, _) in first_types.items()})
    _check_columns(kinds, needed)
    return int(rows)


def _read_users(spark: SparkSession, path: str) -> DataFrame:
    from pyspark.errors import AnalysisException

    try:
        return spark.read.parquet(path)
    except AnalysisException as err:
        first = str(err).strip().splitlines()[0]
        raise InvalidInputError(f"cannot read input {path}: {first}") from None


# Spark's words for "the input files are damaged" (error classes and Parquet reader errors).
_READ_FAILURES = (
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
    try:
        yield
    except PipelineError:
        raise
    except Exception as err:
        text = str(err)
        if not any(marker in text for marker in _READ_FAILURES):
            raise
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        cause = next((line for line in lines if "Exception:" in line), lines[0] if lines else "")
        raise InvalidInputError(
            f"cannot read input {source}: its data is damaged ({cause[:300]})"
        ) from None


# ---- the job -------------------------------------------------------------------------------------
def run_job(
    campaign_id: int,
    *,
    config_api_url: str | None = None,
    input_path: str | os.PathLike[str] | None = None,
    output_path: str | os.PathLike[str] | None = None,
    spark: SparkSession | None = None,
    master: str | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    echo: Echo = print,
) -> JobResult:
    """Score one campaign's audience and write its predictions; see the module docstring."""
    settings = get_settings()
    timer = _Timer()
    api_url = config_api_url or settings.config_api_url
    source = str(input_path or settings.users_path)
    target = str(output_path or settings.prediction_path(campaign_id))
    check_output_target(target)
    local = LocalTarget(target) if _is_local(target) else None
    if local is not None:
        local.check(source)  # someone else's data, or the input itself: refuse before any work

    # One run per local target at a time, for the whole job: the lock is taken before the
    # run record exists, so a refused second run leaves no trace but its one-line error.
    lock: AbstractContextManager[None] = local.lock() if local is not None else nullcontext()
    with lock:
        echo("🚀 SPARK PREDICTION JOB STARTING")
        echo(f"📡 Fetching campaign config from: {api_url.rstrip('/')}/campaigns/{campaign_id}")
        with ConfigApiClient(api_url) as api, timer.stage("fetch campaign"):
            campaign = api.get_campaign(campaign_id)
            echo(f"✅ Loaded campaign: {campaign.name}")
            run = api.create_run(campaign_id, status="running", started_at=_now())
        try:
            with _Heartbeat(api_url, campaign_id, run.id):
                result = _score_campaign(
                    campaign, run.id, source, target, local, spark, master, model_dir, echo, timer
                )
        except BaseException as err:
            message = str(err) if isinstance(err, PipelineError) else f"{type(err).__name__}: {err}"
            _record(
                api_url,
                campaign_id,
                run.id,
                status="failed",
                finished_at=_now(),
                error_message=message[:10_000],
            )
            raise
    _record(
        api_url,
        campaign_id,
        run.id,
        status="succeeded",
        finished_at=_now(),
        input_rows=result.input_rows,
        audience_size=result.audience_size,
        scored_rows=result.audience_size,
        output_path=str(target),
        model_sha256=result.model_sha256,
    )
    echo("✅ JOB COMPLETED SUCCESSFULLY")
    return result


class _Heartbeat:
    """Tells the config API every HEARTBEAT_SECONDS that the run is alive.

    A job killed without warning (OOM killer, ``kill -9``, a lost node) cannot record its
    failure; its run then stops beating and the API shows it as stale instead of running
    forever. A missed beat is not an error: the job's own outcome is what matters.
    """

    def __init__(self, api_url: str, campaign_id: int, run_id: int) -> None:
        self.api_url, self.campaign_id, self.run_id = api_url, campaign_id, run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-run-{run_id}")
        self._thread.daemon = True  # never keeps a dying process alive

    def _beat(self) -> None:
        with ConfigApiClient(self.api_url, retries=0, timeout=5.0) as api:
            while not self._stop.wait(HEARTBEAT_SECONDS):
                try:
                    api.update_run(self.campaign_id, self.run_id, heartbeat_at=_now())
                except PipelineError:
                    continue

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _score_campaign(
    campaign: Campaign,
    run_id: int,
    source: str,
    target: str,
    local: LocalTarget | None,
    spark: SparkSession | None,
    master: str | None,
    model_dir: str | os.PathLike[str] | None,
    echo: Echo,
    timer: _Timer,
) -> JobResult:
    from pyspark.sql import functions as F
    from pyspark.storagelevel import StorageLevel

    from lib.model import model_from_bytes, read_verified_bytes, resolve_artifact
    from lib.scoring import decile_column, score_spark

    if not campaign.is_active:
        raise CampaignInactiveError(
            f"campaign {campaign.id} ({campaign.name}) is inactive; activate it to score"
        )
    # The stored text is checked again: it may have been written to the database directly.
    audience: AudienceFilter | None = parse_filter(campaign.audience_filter)

    echo(f"📦 Loading model from: {campaign.model_path}")
    with timer.stage("load model"):
        # The registry check, then one read of the bytes that are hashed, shipped to the
        # workers and deserialised here first, so a broken model fails before Spark starts.
        artifact = resolve_artifact(campaign.model_path, model_dir, verify=False)
        model_bytes = read_verified_bytes(artifact)
        model_from_bytes(model_bytes, artifact.format)
    if sorted(campaign.features) != sorted(artifact.features):
        raise ModelError(
            f"campaign features {campaign.features} are not the model's {artifact.features}"
        )

    echo(f"📊 Reading user data from: {source}")
    filter_columns = sorted(audience.columns) if audience else []
    needed = list(dict.fromkeys([schema.USER_ID, *artifact.features, *filter_columns]))
    known_rows = check_local_input(source, needed)

    with timer.stage("start spark"):
        spark = spark or _start_spark(master)
    if target.startswith(BIGQUERY_PREFIX):
        _check_bigquery_connector(spark)
    with timer.stage("read"), _input_errors(source):
        users = _read_users(spark, source)
        check_input_columns(users, needed)
        # Local Parquet footers already gave the row count; remote inputs take one job.
        input_rows = known_rows if known_rows is not None else users.count()
    echo(f"✅ Loaded {input_rows:,} users")
    echo(f"🎯 Applying audience filter: {campaign.audience_filter or '(none: every user)'}")

    scored_at = datetime.now(UTC)
    with timer.stage("filter + score"), _input_errors(source):
        # Scores are computed once, in one Spark job that also yields the audience size,
        # the mean, the decile boundaries and the id checks; they stay cached for the write.
        scored = score_spark(
            spark,
            users.filter(to_spark_column(audience)),
            model_bytes,
            artifact.format,
            artifact.sha256,
            artifact.features,
        ).persist(StorageLevel.MEMORY_AND_DISK)
        stats = scored.agg(
            F.count(F.lit(1)).alias("n"),
            F.count(schema.USER_ID).alias("ids"),
            F.count_distinct(schema.USER_ID).alias("distinct_ids"),
            F.avg(schema.SCORE).alias("mean"),
            F.percentile_approx(
                schema.SCORE, [i / 10 for i in range(1, 10)], QUANTILE_ACCURACY
            ).alias("cuts"),
        ).first()
    audience_size = int(stats["n"])
    _check_ids(audience_size, int(stats["ids"]), int(stats["distinct_ids"]), scored)
    mean_score = float(stats["mean"]) if audience_size else None
    cut_points = [float(c) for c in stats["cuts"]] if audience_size else []
    share = audience_size / input_rows if input_rows else 0.0
    echo(f"✅ Filtered to {audience_size:,} users ({share:.1%})")
    echo("🤖 Generating predictions...")
    predictions = scored.select(
        F.col(schema.USER_ID).cast("long"),
        F.lit(campaign.id).cast("long").alias(schema.CAMPAIGN_ID),
        F.col(schema.SCORE).cast("double"),
        decile_column(F.col(schema.SCORE), cut_points).alias(schema.DECILE),
        F.lit(artifact.sha256).alias("model_sha256"),
        F.lit(run_id).cast("long").alias("run_id"),
        F.lit(scored_at).cast("timestamp").alias("scored_at"),
    )

    echo(f"💾 Writing predictions to: {target}")
    with timer.stage("write"), _input_errors(source):
        _write(predictions, target, local, run_id, campaign.id)
    scored.unpersist()
    return JobResult(
        campaign_id=campaign.id,
        campaign_name=campaign.name,
        run_id=run_id,
        input_path=source,
        output_path=str(target),
        model_path=campaign.model_path,
        model_sha256=artifact.sha256,
        audience_filter=campaign.audience_filter,
        input_rows=input_rows,
        audience_size=audience_size,
        mean_score=mean_score,
        decile_cut_points=cut_points,
        timings=timer.timings,
    )


def check_output_target(target: str) -> None:
    """A local path, a storage URI (gs://, s3a://, hdfs://) or bigquery:[project.]dataset.table."""
    if target.startswith(BIGQUERY_PREFIX) and not BIGQUERY_TABLE.match(target):
        raise InvalidInputError(
            f"BigQuery output must look like bigquery:project.dataset.table, not {target!r}"
        )


def _check_bigquery_connector(spark: SparkSession) -> None:
    """Fail before any work when the spark-bigquery connector is not on the classpath."""
    try:
        spark.sparkContext._jvm.java.lang.Class.forName(BIGQUERY_CLASS)  # type: ignore[union-attr]
    except Exception:
        raise InvalidInputError(
            "BigQuery output needs the spark-bigquery connector on the classpath "
            "(Dataproc runtimes ship it; elsewhere add it with --packages)"
        ) from None


def _check_ids(rows: int, ids: int, distinct_ids: int, scored: DataFrame) -> None:
    """Every scored user has an id, and each id once: the output is keyed by user_id."""
    if ids < rows:
        scored.unpersist()
        raise InvalidInputError(
            f"input has {rows - ids:,} users without a user_id in the audience; "
            "fix the input (every user needs an id)"
        )
    if distinct_ids < ids:
        scored.unpersist()
        raise InvalidInputError(
            f"input has {ids - distinct_ids:,} duplicate user_id rows in the audience; "
            "each user must appear once (deduplicate the input)"
        )


def _is_local(target: str) -> bool:
    return not target.startswith(BIGQUERY_PREFIX) and "://" not in target


def _write(
    predictions: DataFrame, target: str, local: LocalTarget | None, run_id: int, campaign_id: int
) -> None:
    """Write the predictions; to a local path atomically (staging folder, then publish)."""
    if target.startswith(BIGQUERY_PREFIX):
        # The connector loads into BigQuery in one job: the table changes all at once.
        table = target.removeprefix(BIGQUERY_PREFIX)
        predictions.write.format("bigquery").option("table", table).option(
            "writeMethod", "direct"
        ).mode("overwrite").save()
        return
    if local is None:
        # Object stores have no atomic rename; Spark's committer marks completion with
        # _SUCCESS, which downstream readers should wait for.
        predictions.write.mode("overwrite").parquet(target)
        return
    staging = local.new_staging(f"run{run_id}")
    try:
        predictions.write.mode("errorifexists").parquet(str(staging))
        local.publish(staging, marker={"campaign_id": campaign_id, "run_id": run_id})
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _start_spark(master: str | None) -> SparkSession:
    from lib.spark import build_spark

    try:
        return build_spark("campaign-scoring", master)
    except Exception as err:  # the JVM did not start: say what users can fix
        if "JAVA_GATEWAY_EXITED" in str(err) or "Java gateway" in str(err):
            message = "Spark could not start: is Java 17+ installed (java -version)?"
            raise PipelineError(message) from None
        raise


def _record(api_url: str, campaign_id: int, run_id: int, **fields: Any) -> None:
    """Update the run record; a failure to record must not hide the job's own outcome."""
    try:
        with ConfigApiClient(api_url, retries=2) as api:
            api.update_run(campaign_id, run_id, **fields)
    except PipelineError as err:
        print(f"⚠️ could not record run {run_id}: {err}", file=sys.stderr)


def _now() -> str:
    return datetime.now(UTC).isoformat()


# ---- command line ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lib.predict",
        description="Score a campaign's audience with its CatBoost model on Spark.",
    )
    parser.add_argument("--campaign-id", type=int, required=True, help="campaign to score")
    parser.add_argument(
        "--config-api-url", default=None, help="config API base URL (default: CONFIG_API_URL)"
    )
    parser.add_argument(
        "--input", default=None, help="users Parquet (default: DATA_DIR/sample_users.parquet)"
    )
    parser.add_argument(
        "--output",
        default=None,
        help="a Parquet path or URI (gs://, s3a://), or bigquery:project.dataset.table "
        "(default: OUTPUT_DIR/predictions_campaign_<id>.parquet)",
    )
    parser.add_argument("--master", default=None, help="Spark master (default: SPARK_MASTER)")
    parser.add_argument("--model-dir", default=None, help="registered models (default: MODEL_DIR)")
    return parser


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise JobInterruptedError(f"stopped by signal {signal.Signals(signum).name}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A stopped job (kubectl delete, a scheduler's timeout) records its run as failed.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_on_sigterm)
    if not 1 <= args.campaign_id <= 2**31 - 1:
        raise InvalidInputError(f"--campaign-id must be a positive id, got {args.campaign_id}")
    try:
        result = run_job(
            args.campaign_id,
            config_api_url=args.config_api_url,
            input_path=args.input,
            output_path=args.output,
            master=args.master,
            model_dir=args.model_dir,
        )
    finally:
        _stop_spark()
    mean = f"{result.mean_score:.3f}" if result.mean_score is not None else "n/a"
    print(
        f"📈 Users: {result.input_rows:,} | audience: {result.audience_size:,} "
        f"({result.audience_share:.1%}) | mean score: {mean} | run id: {result.run_id}"
    )
    return 0


def _stop_spark() -> None:
    if "pyspark" in sys.modules:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()


if __name__ == "__main__":
    run_cli(main)
