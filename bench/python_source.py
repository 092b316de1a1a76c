"""A candidate for the Python-reads path, kept as a benchmark row: a Spark Python data source.

Spark 4's Python data source API (SPARK-48493) runs a reader in Python workers that yields
Arrow batches. Its reader here does exactly what :func:`lib.parquet_source.scored_users`'s
tasks do (the same plan, the same :func:`lib.parquet_source.score_row_groups`), so the two
differ only in how Spark starts the tasks: the data source plans its partitions in an extra
Python process for every query, the winner runs ``mapInArrow`` over a DataFrame of share
descriptors. ``bench.scoring --variants`` shows both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from lib.parquet_source import plan_row_groups, score_row_groups
from lib.scoring import SCORE_SCHEMA_DDL
from lib.spark import task_slots

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from lib.audience import AudienceFilter
    from lib.registry import VerifiedModel

SOURCE_NAME = "campaign_scores"


def data_source_scores(
    spark: SparkSession, path: str, audience: AudienceFilter | None, model: VerifiedModel
) -> DataFrame:
    """``user_id, prediction_score`` of the audience, read and scored by a data source."""
    from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition

    plan = plan_row_groups(path, audience, task_slots(spark))
    model_bytes, model_format, model_sha256 = model.data, model.format, model.sha256
    features = list(model.features)
    audience_text = audience.text if audience else None

    class Reader(DataSourceReader):
        def partitions(self) -> Sequence[InputPartition]:
            return [InputPartition(share) for share in plan]

        def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
            if partition.value is None:  # nothing can match: pyspark plans one empty task
                return
            from lib.audience import parse_filter
            from lib.scoring import worker_model

            loaded = worker_model(model_sha256, model_format, lambda: model_bytes)
            yield from score_row_groups(
                partition.value, loaded, features, parse_filter(audience_text), 1
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
