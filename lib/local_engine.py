"""The job without Spark: read, filter and score in this process (pyarrow + CatBoost).

The floor of the learner's run (``bench.teaching_run``'s ``floor`` regime): the same runner,
notebook, checks, run record and report, with nothing but the work itself. Notebook 04 runs
it with ``engine="local"``; the job then says "Scoring path: in-process". It reads local
Parquet only (no partition folders), writes local Parquet only, and computes the decile
boundaries as Spark's ``percentile_approx`` does for audiences up to its accuracy (10,000
users); beyond that Spark's are approximate and these exact. Production keeps Spark: it
distributes, and writes to object stores and BigQuery.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lib import schema
from lib.errors import InvalidInputError
from lib.files import local_path
from lib.holdout import CONTROL
from lib.inputs import check_ids
from lib.job import Echo, EngineStats, ScoringTask, Timer
from lib.parquet_source import partition_columns, plan_row_groups, score_row_groups
from lib.sinks import LocalParquetSink, Sink

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["LocalEngine", "cut_points", "deciles"]

IN_PROCESS: Final = "in-process"


class LocalEngine:
    """Scores in this process on every core; no Spark session, no JVM."""

    def check_sink(self, sink: Sink, timer: Timer) -> None:
        if not isinstance(sink, LocalParquetSink):
            raise InvalidInputError(
                "engine=local writes local Parquet only; use the Spark engine for object "
                "stores and BigQuery"
            )

    def score(self, task: ScoringTask, echo: Echo, timer: Timer) -> EngineStats:
        local = local_path(task.input_path)
        if local is None or task.known_input_rows is None or partition_columns(local):
            raise InvalidInputError(
                f"engine=local reads one local Parquet file or flat folder; {task.input_path} "
                "is remote or partitioned by folder (use the Spark engine)"
            )
        input_rows = task.known_input_rows
        echo(f"✅ Loaded {input_rows:,} users")
        echo(f"⚙️ Scoring path: {IN_PROCESS}: pyarrow and CatBoost in this process, no Spark")
        text = task.campaign.audience_filter
        echo(f"🎯 Applying audience filter: {text or '(none: every user)'}")
        model, features = task.model.load(), list(task.model.features)
        run = task.run_columns()
        counter = run.counter()
        with timer.stage("filter + score"):
            batches = [
                batch
                for share in plan_row_groups(local, task.audience, tasks=1)
                for batch in score_row_groups(
                    share, model, features, task.audience, -1, run, counter
                )
            ]
            empty = pa.schema(
                [
                    (schema.USER_ID, pa.int64()),
                    (schema.SCORE, pa.float64()),
                    (schema.GROUP, pa.string()),
                ]
            )
            scored = (
                pa.Table.from_batches(batches).select(empty.names)
                if batches
                else empty.empty_table()  # no rows in the input, or none in the audience
            )
        ids = scored.column(schema.USER_ID)
        check_ids(len(ids), len(ids) - ids.null_count, pc.count_distinct(ids).as_py())
        profile = (
            {name: counts.tolist() for name, counts in counter.counts.items()}
            if counter is not None
            else None
        )
        range_warnings = task.check_ranges(profile, echo)  # refused: nothing is written
        scores = scored.column(schema.SCORE).to_numpy()
        cuts = cut_points(scores)
        audience_size = len(scores)
        share = audience_size / input_rows if input_rows else 0.0
        echo(f"✅ Filtered to {audience_size:,} users ({share:.1%})")
        echo("🤖 Generating predictions...")
        n = audience_size
        table = pa.table(
            {
                schema.USER_ID: scored.column(schema.USER_ID),
                schema.CAMPAIGN_ID: pa.array(np.full(n, task.campaign.id, np.int64)),
                schema.SCORE: pa.array(scores, pa.float64()),
                schema.DECILE: pa.array(deciles(scores, cuts), pa.int32()),
                schema.GROUP: scored.column(schema.GROUP),
                "model_sha256": pa.repeat(pa.scalar(task.model.sha256, pa.string()), n),
                "run_id": pa.array(np.full(n, task.run_id, np.int64)),
                "scored_at": pa.repeat(pa.scalar(task.scored_at, pa.timestamp("us", tz="UTC")), n),
            },
            schema=schema.PREDICTION_SCHEMA,
        )
        echo(f"💾 Writing predictions to: {task.sink.target}")
        assert isinstance(task.sink, LocalParquetSink)  # check_sink refused the others
        with timer.stage("write"):
            task.sink.write_table(table, campaign_id=task.campaign.id, run_id=task.run_id)
        return EngineStats(
            input_rows=input_rows,
            audience_size=audience_size,
            mean_score=float(scores.mean()) if n else None,
            decile_cut_points=cuts,
            scoring_path=IN_PROCESS,
            control_size=int(pc.sum(pc.equal(scored.column(schema.GROUP), CONTROL)).as_py() or 0),
            profile=profile,
            range_warnings=range_warnings,
        )


def cut_points(scores: np.ndarray) -> list[float]:
    """The 10%..90% quantiles as Spark's ``percentile_approx`` defines them when exact: the
    smallest score with at least that share of the audience at or below it."""
    if len(scores) == 0:
        return []
    ordered = np.sort(scores)
    n = len(ordered)
    return [float(ordered[max(math.ceil(n * i / 10) - 1, 0)]) for i in range(1, 10)]


def deciles(scores: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    """Decile 1..10 as :func:`lib.scoring.decile_column` computes it: 10 - cuts below."""
    if not cuts:
        return np.ones(len(scores), dtype=np.int32)
    above = sum((scores > c).astype(np.int32) for c in cuts)
    return (10 - np.asarray(above)).astype(np.int32)
