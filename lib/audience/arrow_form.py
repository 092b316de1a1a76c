"""The filter as a pyarrow compute expression: for Python code that reads Parquet itself.

``pyarrow.dataset`` takes it as ``filter=``: row groups whose statistics cannot match are
skipped, and the rest is filtered in Arrow, with no JVM and no SQL text involved. The
comparisons follow the stored column types exactly as the Spark and Ibis forms do
(:mod:`lib.audience.stored`); NaN in a floating-point column is NULL.

Filter in memory (``Table.filter``) when a float column is involved: Parquet statistics
leave NaN out, so a scan that prunes or simplifies by them (``dataset.to_table(filter=)``)
can read a row group of 9.0 and NaN as all 9.0 (:mod:`lib.parquet_source` prunes only on
other columns).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lib.audience.stored import arrow_stored_type, for_stored
from lib.audience.tree import AudienceFilter, build

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc

__all__ = ["to_arrow_expression"]


def to_arrow_expression(audience: AudienceFilter | None, schema: pa.Schema) -> pc.Expression:
    """The filter over data of ``schema`` (a Parquet dataset's, or a table's)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if audience is None:
        return pc.scalar(True)
    types = {name: schema.field(name).type for name in audience.columns}
    stored = {name: arrow_stored_type(typ) for name, typ in types.items()}
    typed = for_stored(audience, stored)

    def column(name: str) -> _Expr:
        field = pc.field(name)
        if pa.types.is_dictionary(types[name]):  # categoricals compare by their values
            field = field.cast(types[name].value_type)
        if name in typed.float_columns:  # compare in double; NaN is NULL
            as_double = field.cast(pa.float64())
            nan_as_null = pc.if_else(pc.is_nan(as_double), pa.scalar(None, pa.float64()), as_double)
            return _Expr(nan_as_null)
        return _Expr(field)

    def literal(name: str, value: Any) -> Any:
        typ = types[name]
        if pa.types.is_dictionary(typ):
            typ = typ.value_type
        if name in typed.float_columns:
            typ = pa.float64()
        return pa.scalar(value, type=typ)  # of the column's own type: no implicit casts

    result = build(typed.condition, column, lambda col: col.is_null(), literal)
    return result.e


class _Expr:
    """A pyarrow expression with the operator protocol of :func:`~lib.audience.tree.build`
    (the protocol PySpark Columns and Ibis expressions share)."""

    def __init__(self, e: Any) -> None:
        self.e = e

    def __eq__(self, other: object) -> _Expr:  # type: ignore[override]
        return _Expr(self.e == other)

    def __ne__(self, other: object) -> _Expr:  # type: ignore[override]
        return _Expr(self.e != other)

    def __lt__(self, other: Any) -> _Expr:
        return _Expr(self.e < other)

    def __le__(self, other: Any) -> _Expr:
        return _Expr(self.e <= other)

    def __gt__(self, other: Any) -> _Expr:
        return _Expr(self.e > other)

    def __ge__(self, other: Any) -> _Expr:
        return _Expr(self.e >= other)

    def __and__(self, other: _Expr) -> _Expr:
        return _Expr(self.e & other.e)  # Kleene logic: NULL AND FALSE is FALSE

    def __or__(self, other: _Expr) -> _Expr:
        return _Expr(self.e | other.e)

    def __invert__(self) -> _Expr:
        return _Expr(~self.e)

    def isin(self, values: list[Any]) -> _Expr:
        import pyarrow as pa
        import pyarrow.compute as pc

        # is_in is TRUE or FALSE, never NULL: a NULL value must stay NULL, as in SQL. It
        # also looks values up by their bits, so -0.0 would not find 0.0: list both zeros.
        plain = [v.as_py() for v in values]
        if pa.types.is_floating(values[0].type) and 0.0 in plain:
            plain += [0.0, -0.0]
        listed = pa.array(plain, type=values[0].type)
        return _Expr(pc.if_else(self.e.is_null(), pa.scalar(None, pa.bool_()), self.e.isin(listed)))

    def between(self, low: Any, high: Any) -> _Expr:
        return _Expr((self.e >= low) & (self.e <= high))

    def like(self, pattern: str) -> _Expr:
        import pyarrow.compute as pc

        # Arrow's LIKE: % and _, case-sensitive; its backslash escape never applies (the
        # filter language refuses backslashes).
        return _Expr(pc.match_like(self.e, pattern))

    def is_null(self) -> _Expr:
        return _Expr(self.e.is_null(nan_is_null=True))

    __hash__ = None  # type: ignore[assignment]
