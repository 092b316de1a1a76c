"""Scoring where Python reads the users itself; Spark schedules the tasks and writes.

The older path (:func:`lib.scoring.score_spark`) has Spark decode Parquet in the JVM and ship
every feature column to Python over Arrow: that hop alone cost more than the scoring. Here
the driver plans the input's row groups with pyarrow (:func:`plan_row_groups`: row groups
whose statistics cannot match the audience filter are never read, and every task gets the
same number of rows), and Spark runs one task per share over a tiny DataFrame of share
descriptors (``mapInArrow``). Each task opens its row groups with pyarrow (only the id, the
features and the filter's columns), filters in memory (:func:`lib.audience.to_arrow_expression`),
scores with CatBoost and yields ``user_id, prediction_score``: only the scores cross to the
JVM, which writes them with its own committer (atomic publish, object stores and BigQuery
stay as they are).

Measured against a Spark Python data source that does the same in its reader
(``bench.scoring --variants``): the data source plans its partitions in an extra Python
process on every query, which cost more than it saved. :func:`scored_users` works over
both transports (the model's verified bytes travel in the function's closure) and on a
cluster, as long as the workers see the input path; remote inputs (``gs://``, ``s3a://``) and
Hive-style partition folders keep the older path (:func:`lib.spark_engine.scoring_path_for`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING, Any

from lib import schema
from lib.scoring import SCORE_SCHEMA_DDL, SCORED_SCHEMA_DDL, RunColumns

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from lib.audience import AudienceFilter
    from lib.drift import ProfileCounter
    from lib.registry import VerifiedModel

__all__ = ["partition_columns", "plan_row_groups", "score_row_groups", "scored_users"]

BATCH_ROWS = 100_000


@dataclass(frozen=True)
class Slice:
    """Rows ``[start, start + rows)`` of one row group of one Parquet file."""

    path: str
    group: int
    start: int
    rows: int


@dataclass(frozen=True)
class RowGroups:
    """One task's share of the input: slices of row groups, in file order."""

    parts: tuple[Slice, ...]

    @property
    def rows(self) -> int:
        return sum(part.rows for part in self.parts)


def partition_columns(path: str) -> list[str]:
    """Columns a local input holds in Hive-style folder names (``country=US/``), if any."""
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    names: dict[str, None] = {}
    for fragment in dataset.get_fragments():
        names.update(dict.fromkeys(ds.get_partition_keys(fragment.partition_expression)))
    return list(names)


def plan_row_groups(path: str, audience: AudienceFilter | None, tasks: int) -> list[RowGroups]:
    """The input's row groups that may hold audience users, cut into at most ``tasks`` shares
    of equal row counts.

    Shares are cut by rows, not by whole row groups: five row groups over two cores would
    otherwise give one task three and the other two, and the job waits for the larger one.
    A row group split between two tasks is decoded by both (each keeps its slice); decoding is
    cheap next to scoring.
    """
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    groups: list[tuple[str, int, int]] = []  # (file path, row group id, rows)
    for fragment in dataset.get_fragments():
        expression = _pruning_expression(audience, fragment.physical_schema)
        for piece in fragment.split_by_row_group(filter=expression):  # statistics prune here
            groups += [(piece.path, group.id, group.num_rows) for group in piece.row_groups]
    total = sum(rows for _, _, rows in groups)
    count = max(1, min(tasks, total))
    bounds = [total * (i + 1) // count for i in range(count)]  # each share's last row, exclusive
    shares: list[list[Slice]] = [[] for _ in range(count)]
    share, offset = 0, 0  # offset: the input's rows before the current row group
    for file_path, group_id, rows in groups:
        start = 0
        while start < rows:
            while bounds[share] <= offset + start:  # this share is full: the next one
                share += 1
            stop = min(rows, bounds[share] - offset)
            shares[share].append(Slice(file_path, group_id, start, stop - start))
            start = stop
        offset += rows
    return [RowGroups(tuple(parts)) for parts in shares if parts]


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
    run: RunColumns | None = None,
    counter: ProfileCounter | None = None,
) -> Iterator[pa.RecordBatch]:
    """Read, filter and score one share: Arrow batches of ``user_id, prediction_score``,
    plus ``group`` with ``run`` (the audience counted into ``counter``).

    A plain function over files (no Spark): the data source's tasks call it, and so can a
    test or a single process.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lib.audience import to_arrow_expression
    from lib.scoring import add_run_columns, score_arrow

    columns = list(
        dict.fromkeys([schema.USER_ID, *features, *(audience.columns if audience else [])])
    )
    opened: tuple[str, pq.ParquetFile] | None = None
    for part in share.parts:  # in file order: one file open at a time (thousands of parts)
        if opened is None or opened[0] != part.path:
            if opened is not None:
                opened[1].close()
            opened = (part.path, pq.ParquetFile(part.path))
        group = opened[1].read_row_group(part.group, columns=columns)
        table = group.slice(part.start, part.rows)
        if audience is not None:
            table = table.filter(to_arrow_expression(audience, table.schema))
        for name in features:  # decimals and integers become the model's float input
            field = table.schema.field(name)
            if pa.types.is_decimal(field.type):
                index = table.schema.get_field_index(name)
                table = table.set_column(index, name, table.column(name).cast(pa.float64()))
        for batch in table.to_batches(max_chunksize=BATCH_ROWS):
            scored = score_arrow(batch, model, features, thread_count=thread_count)
            yield scored if run is None else add_run_columns(scored, batch, run, counter)
    if opened is not None:
        opened[1].close()


def scored_users(
    spark: SparkSession,
    path: str,
    audience: AudienceFilter | None,
    model: VerifiedModel,
    tasks: int | None = None,
    run: RunColumns | None = None,
) -> DataFrame:
    """The audience of ``path`` scored by Python tasks: ``user_id, prediction_score``
    (and with ``run``, ``group`` and a summary row per task: lib.scoring.SCORED_SCHEMA_DDL).

    One task per share of :func:`plan_row_groups` (``tasks`` shares, default: the session's
    task slots, :func:`lib.spark.task_slots`).
    """
    import json
    import os

    from lib.spark import task_slots

    # Absolute: the tasks' working folder (a Connect server's, a worker's) is not ours.
    plan = plan_row_groups(os.path.abspath(path), audience, tasks or task_slots(spark))
    shares = [(json.dumps([[p.path, p.group, p.start, p.rows] for p in s.parts]),) for s in plan]
    model_bytes, model_format, model_sha256 = model.data, model.format, model.sha256
    features = list(model.features)
    audience_text = audience.text if audience else None
    run_values = astuple(run) if run is not None else None  # plain values cross to the tasks

    def score_shares(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # Imported in the worker, after forget_if_edited() (see lib.scoring.score_spark).
        import json

        import lib

        lib.forget_if_edited()
        from lib.audience import parse_filter
        from lib.parquet_source import RowGroups, Slice, score_row_groups
        from lib.scoring import RunColumns, profile_batch, worker_model

        loaded = worker_model(model_sha256, model_format, lambda: model_bytes)
        task_audience = parse_filter(audience_text)
        columns = RunColumns(*run_values) if run_values is not None else None
        counter = columns.counter() if columns is not None else None
        for batch in batches:
            for text in batch.column(0).to_pylist():
                share = RowGroups(tuple(Slice(*part) for part in json.loads(text)))
                # One CatBoost thread: each task has one core, and tasks run side by side.
                yield from score_row_groups(
                    share, loaded, features, task_audience, 1, columns, counter
                )
        if counter is not None:
            yield profile_batch(counter)

    # A local relation of n rows runs as n tasks (up to the default parallelism): one each.
    descriptors = spark.createDataFrame(shares, "share string")
    return descriptors.mapInArrow(
        score_shares, SCORE_SCHEMA_DDL if run is None else SCORED_SCHEMA_DDL
    )
