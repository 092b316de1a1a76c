"""The filter as an Ibis boolean expression (DuckDB for previews, PySpark at scale)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lib.audience.stored import arrow_stored_type, for_stored
from lib.audience.tree import AudienceFilter, build

__all__ = ["to_ibis"]


def to_ibis(audience: AudienceFilter | None, table: Any) -> Any:
    """The filter over ``table``, comparing as Spark SQL would with its stored column types."""
    import ibis

    if audience is None:
        return ibis.literal(True)
    table_schema = table.schema()
    stored = {
        name: arrow_stored_type(table_schema[name].to_pyarrow())
        for name in audience.columns
        if name in table_schema
    }
    typed = for_stored(audience, stored)

    def column(name: str) -> Any:
        if name in typed.float_columns:  # the NaN policy: NaN is NULL (and compare in double)
            value = table[name].cast("float64")
            return value.isnan().ifelse(ibis.null("float64"), value)
        return table[name]

    def literal(name: str, value: Any) -> Any:
        typ = stored.get(name)
        if typ is not None and typ.kind == "exact":
            # In the column's own type. Decimals go as text, cast by the engine: Ibis renders
            # a Decimal with Python's 28-digit context; a bare int past int64 has no type.
            if not typ.is_integer:
                return ibis.literal(str(Decimal(value))).cast(typ.name)
            return ibis.literal(int(value), type=table_schema[name])
        return value

    return build(typed.condition, column, lambda col: col.isnull(), literal)
