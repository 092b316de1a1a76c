"""Audience previews: how many users a filter selects, on any Ibis table of users."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lib import schema
from lib.audience.ibis_form import to_ibis
from lib.audience.tree import AudienceFilter

__all__ = ["AudiencePreview", "duckdb_connection", "preview_audience", "preview_parquet"]


@dataclass(frozen=True)
class AudiencePreview:
    """How many users a filter selects, their share, and a few of them."""

    total_users: int
    matching_users: int
    share: float
    sample: list[dict[str, Any]]


def preview_audience(
    audience: AudienceFilter | None, users: Any, sample_size: int = 5
) -> AudiencePreview:
    """Count (and sample) the users a filter selects, on any Ibis table of users.

    ``users`` is an Ibis table: DuckDB over the Parquet file for the API's instant preview,
    or the PySpark backend over the same data at scale. The expression is the same one the
    scoring job builds for Spark, so the counts agree.
    """
    import ibis

    if audience is None:
        matching = users
        total = hits = int(users.count().execute())
    else:
        condition = to_ibis(audience, users)
        matching = users.filter(condition)
        # Both counts in one scan: a conditional sum rather than a second query.
        counts = users.aggregate(total=users.count(), hits=condition.ifelse(1, 0).sum()).execute()
        total = int(counts["total"].iloc[0])
        hits = int(counts["hits"].fillna(0).iloc[0])
    sample: list[dict[str, Any]] = []
    if sample_size > 0 and hits:
        rows = matching.order_by(ibis.asc(schema.USER_ID)).limit(sample_size).to_pyarrow()
        sample = rows.to_pylist()
    return AudiencePreview(total, hits, hits / total if total else 0.0, sample)


def duckdb_connection() -> Any:
    """An Ibis DuckDB connection on which the NaN policy holds.

    DuckDB 2.0 folds ``isnan(x)`` to false from Parquet statistics, which leave NaN out
    (seen with a NaN in a file of one row group): NaN rows then compare as the largest value
    and ``monetary > 0`` selects them. Statistics propagation is off on this connection.
    """
    import ibis

    con = ibis.duckdb.connect()
    con.raw_sql("SET disabled_optimizers = 'statistics_propagation'")
    return con


def preview_parquet(
    audience: AudienceFilter | None, users_path: str | Any, sample_size: int = 5
) -> AudiencePreview:
    """:func:`preview_audience` with DuckDB over a users Parquet file (fast, no Spark)."""
    con = duckdb_connection()
    try:
        return preview_audience(audience, con.read_parquet(str(users_path)), sample_size)
    finally:
        con.disconnect()
