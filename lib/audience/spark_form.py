"""The filter as a PySpark Column, built from expression objects: no SQL text involved."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lib.audience.stored import StoredType, for_stored, spark_stored_type
from lib.audience.tree import AudienceFilter, build

if TYPE_CHECKING:
    from pyspark.sql import Column
    from pyspark.sql.types import StructType

__all__ = ["to_spark_column"]


def to_spark_column(
    audience: AudienceFilter | None, functions: Any = None, schema: StructType | None = None
) -> Column:
    """The filter as a Column over data of ``schema`` (default: the contract's types).

    ``functions`` is the pyspark functions module to build with (lib.spark.functions_for:
    classic or Spark Connect); by default pyspark's own choice for this process.
    """
    if functions is None:
        from pyspark.sql import functions
    F = functions

    if audience is None:
        return F.lit(True)
    stored: Mapping[str, StoredType] = {}
    if schema is not None:
        stored = {
            f.name: spark_stored_type(f.dataType)
            for f in schema.fields
            if f.name in audience.columns
        }
    typed = for_stored(audience, stored)

    def column(name: str) -> Column:
        if name in typed.float_columns:  # the NaN policy: NaN is NULL (and compare in double)
            return F.nanvl(F.col(name).cast("double"), F.lit(None).cast("double"))
        return F.col(name)

    def literal(name: str, value: Any) -> Any:
        typ = stored.get(name)
        if typ is not None and typ.kind == "exact" and not typ.is_integer:
            # In the column's own decimal type: Spark Connect types a bare Decimal as
            # DECIMAL(10, 0) (rounding it) and refuses an int beyond a long.
            return F.lit(str(value)).cast(typ.name)
        return value

    return build(typed.condition, column, lambda col: col.isNull(), literal)
