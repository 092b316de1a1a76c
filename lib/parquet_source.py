"""Scoring where Python reads the users itself: a Spark Python data source (Spark 4).

The classic path (:func:`lib.scoring.score_spark`) has Spark decode Parquet in the JVM and
ship every feature column to Python over Arrow; that hop alone costs more than the scoring.
Here Spark only plans the tasks and takes the result: each task opens its share of the
Parquet row groups with pyarrow (only the id and the features the model and the filter need;
row groups whose statistics cannot match the audience filter are never read), applies the
filter (:func:`lib.audience.to_arrow_expression`), scores with CatBoost and yields Arrow
batches of ``user_id, prediction_score``: only the scores cross to the JVM, which writes them
with its own committer (atomic publish, object stores, BigQuery stay as they are).

:func:`scored_users` works over both transports: the data source is registered on the
session (classic or Spark Connect), and its class carries the verified model bytes, so
workers deserialise exactly the bytes whose sha256 the job checked. Inputs must be readable
by pyarrow from the workers (a local or mounted path); :func:`readable_by_pyarrow` says so.

Status (issue 17): measured in ``bench.scoring --variants``; the job itself still scores with
:func:`lib.scoring.score_spark`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lib import schema
from lib.scoring import SCORE_SCHEMA_DDL

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from lib.audience import AudienceFilter
    from lib.registry import VerifiedModel

__all__ = ["SOURCE_NAME", "plan_row_groups", "readable_by_pyarrow", "scored_users"]

SOURCE_NAME = "campaign_scores"
BATCH_ROWS = 100_000


@dataclass(frozen=True)
class RowGroups:
    """One task's share of the input: row groups of Parquet files."""

    parts: tuple[tuple[str, tuple[int, ...]], ...]  # (file path, row group ids)
    rows: int


def readable_by_pyarrow(path: str) -> bool:
    """Whether workers can open ``path`` with pyarrow as a local file (else: classic path)."""
    from lib.files import local_path

    return local_path(path) is not None


def plan_row_groups(path: str, audience: AudienceFilter | None, tasks: int) -> list[RowGroups]:
    """The input's row groups that may hold audience users, in at most ``tasks`` shares of
    about equal row counts (largest first into the lightest share)."""
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    groups: list[tuple[int, str, int]] = []
    for fragment in dataset.get_fragments():
        expression = _pruning_expression(audience, fragment.physical_schema)
        for piece in fragment.split_by_row_group(filter=expression):  # statistics prune here
            for group in piece.row_groups:
                groups.append((group.num_rows, piece.path, group.id))
    shares: list[list[tuple[int, str, int]]] = [[] for _ in range(max(1, min(tasks, len(groups))))]
    for group in sorted(groups, reverse=True):
        min(shares, key=lambda share: sum(g[0] for g in share)).append(group)
    plan = []
    for share in shares:
        by_file: dict[str, list[int]] = {}
        for _, file_path, group_id in sorted(share, key=lambda g: (g[1], g[2])):
            by_file.setdefault(file_path, []).append(group_id)
        parts = tuple((p, tuple(ids)) for p, ids in by_file.items())
        plan.append(RowGroups(parts, sum(g[0] for g in share)))
    return [share for share in plan if share.parts]


def _pruning_expression(audience: AudienceFilter | None, file_schema: pa.Schema) -> Any:
    """The filter for skipping row groups by their statistics, or None: never on a float
    column, whose statistics leave NaN out (a row group of 9.0 and NaN has min = max = 9.0,
    and Arrow then reads every value as 9.0, so `IS NULL` would skip the NaN)."""
    import pyarrow as pa

    from lib.audience import to_arrow_expression

    if audience is None:
        return None
    types = [file_schema.field(name).type for name in audience.columns]
    if any(pa.types.is_floating(t) or pa.types.is_dictionary(t) for t in types):
        return None
    return to_arrow_expression(audience, file_schema)


def score_row_groups(
    share: RowGroups,
    model: Any,
    features: Sequence[str],
    audience: AudienceFilter | None,
    thread_count: int = 1,
) -> Iterator[pa.RecordBatch]:
    """Read, filter and score one share: Arrow batches of ``user_id, prediction_score``.

    A plain function over files (no Spark): the data source's tasks call it, and so can a
    test or a single process.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lib.audience import to_arrow_expression
    from lib.scoring import score_arrow

    columns = list(
        dict.fromkeys([schema.USER_ID, *features, *(audience.columns if audience else [])])
    )
    for file_path, group_ids in share.parts:
        table = pq.ParquetFile(file_path).read_row_groups(list(group_ids), columns=columns)
        if audience is not None:
            table = table.filter(to_arrow_expression(audience, table.schema))
        for name in features:  # decimals and integers become the model's float input
            field = table.schema.field(name)
            if pa.types.is_decimal(field.type):
                index = table.schema.get_field_index(name)
                table = table.set_column(index, name, table.column(name).cast(pa.float64()))
        for batch in table.to_batches(max_chunksize=BATCH_ROWS):
            yield score_arrow(batch, model, features, thread_count=thread_count)


def scored_users(
    spark: SparkSession,
    path: str,
    audience: AudienceFilter | None,
    model: VerifiedModel,
    tasks: int | None = None,
) -> DataFrame:
    """The audience of ``path`` scored by Python tasks: ``user_id, prediction_score``."""
    from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition

    tasks = tasks or int(spark.conf.get("spark.sql.shuffle.partitions", "2") or "2")
    plan = plan_row_groups(path, audience, tasks)
    model_bytes, model_format, model_sha256 = model.data, model.format, model.sha256
    features = list(model.features)
    audience_text = audience.text if audience else None
    threads = 1  # one core per task: measured, more threads per task only contend

    class Reader(DataSourceReader):
        def partitions(self) -> Sequence[InputPartition]:
            return [InputPartition(share) for share in plan]

        def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
            if partition.value is None:  # no row group can match: pyspark plans one empty task
                return
            from lib.audience import parse_filter
            from lib.registry import model_from_bytes
            from lib.scoring import _WORKER_MODELS as models

            loaded = models.get(model_sha256)
            if loaded is None:
                loaded = models[model_sha256] = model_from_bytes(model_bytes, model_format)
            yield from score_row_groups(
                partition.value, loaded, features, parse_filter(audience_text), threads
            )

    class CampaignScores(DataSource):
        @classmethod
        def name(cls) -> str:
            return SOURCE_NAME

        def schema(self) -> str:
            return SCORE_SCHEMA_DDL

        def reader(self, schema: Any) -> DataSourceReader:
            return Reader()

    spark.dataSource.register(CampaignScores)
    return spark.read.format(SOURCE_NAME).load()
