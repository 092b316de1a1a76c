"""A checked filter adapted to how the data is stored: each compiled form compares as Spark SQL
reads the same text against the same column types.

The contract's types (int64 ``age``, float64 ``monetary``, ...) are what the data usually
holds, but the job also accepts any numeric type for a numeric column: ``monetary`` stored as
int64 or decimal(12,2), ``engagement_score`` as float32. Spark SQL (ANSI mode, Spark 4)
compares a literal with a column of those types in one of two ways:

- **exactly**, when both are exact: an integer or decimal column against a whole number or a
  decimal literal (``monetary = 9007199254740993`` selects 2^53+1, not 2^53);
- **in double**, when either side is floating point: a float32/float64 column against any
  literal, or any column against a DOUBLE literal (``1e3``).

:func:`for_stored` rewrites every comparison on a numeric column so that the compiled forms
never need a cast or a literal type of their own choosing: on an exact column each
comparison becomes one against a value *of the column's own type* (``age > 1.5`` on an
integer column is ``age >= 2``, ``monetary < 1e300`` on an int64 column is "any value"),
found exactly, also for DOUBLE literals (the column's cast to double is monotone, so the
values it maps below a bound form a range whose end is found by bisection); on a float column
each literal becomes the double Spark converts it to. What Spark SQL cannot compare at all (a
decimal comparison needing over 38 digits, which Spark rounds or fails on) is refused.

NaN policy: in a floating-point column NaN is NULL in every compiled form.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any, Literal

from lib import schema
from lib.audience.messages import filter_error
from lib.audience.tree import (
    And,
    AudienceFilter,
    Between,
    Compare,
    ComparisonOp,
    Condition,
    InList,
    IsNull,
    Like,
    Not,
    Or,
    Value,
)

__all__ = [
    "NOMINAL_TYPES",
    "StoredFilter",
    "StoredType",
    "arrow_stored_type",
    "for_stored",
    "spark_stored_type",
]

MAX_SPARK_DECIMAL_DIGITS = 38
# Scaling by 10**scale must be exact: Python's default context keeps 28 digits, fewer than a
# decimal(38, s) holds (and than a 38-digit literal times 10**38).
_EXACT = Context(prec=200)


@dataclass(frozen=True)
class StoredType:
    """How a column is stored, as far as comparisons care.

    ``exact`` columns (integers, decimals) hold the values ``k / 10**scale`` for whole ``k``
    in ``[low, high]``; ``digits`` is the precision Spark gives the type as a decimal (an
    INT is DECIMAL(10, 0), a BIGINT DECIMAL(20, 0)).
    """

    kind: Literal["exact", "float", "string"]
    name: str  # for messages: int64, decimal(12,2), float32
    scale: int = 0
    digits: int = 0
    low: int = 0  # bounds of k
    high: int = 0

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def is_integer(self) -> bool:
        return self.kind == "exact" and not self.name.startswith("decimal")


def _integer(name: str, low: int, high: int, spark_digits: int) -> StoredType:
    return StoredType("exact", name, 0, spark_digits, low, high)


def _decimal(precision: int, scale: int) -> StoredType:
    bound = 10**precision - 1
    return StoredType("exact", f"decimal({precision},{scale})", scale, precision, -bound, bound)


STRING = StoredType("string", "string")
FLOAT64 = StoredType("float", "float64")
FLOAT32 = StoredType("float", "float32")
INT8, INT16 = _integer("int8", -(2**7), 2**7 - 1, 3), _integer("int16", -(2**15), 2**15 - 1, 5)
INT32 = _integer("int32", -(2**31), 2**31 - 1, 10)
INT64 = _integer("int64", -(2**63), 2**63 - 1, 20)
# Spark reads unsigned Parquet integers as the next wider signed type.
UINT8, UINT16 = _integer("uint8", 0, 2**8 - 1, 5), _integer("uint16", 0, 2**16 - 1, 10)
UINT32 = _integer("uint32", 0, 2**32 - 1, 20)
UINT64 = _integer("uint64", 0, 2**64 - 1, 20)  # Spark reads it as DECIMAL(20, 0)


def arrow_stored_type(typ: Any) -> StoredType:
    """The stored type of a pyarrow column type (DuckDB, pyarrow readers, the fuzzer)."""
    import pyarrow as pa

    if pa.types.is_dictionary(typ):  # pandas categoricals: engines read the values
        return arrow_stored_type(typ.value_type)
    if pa.types.is_integer(typ):
        signed = {8: INT8, 16: INT16, 32: INT32, 64: INT64}
        unsigned = {8: UINT8, 16: UINT16, 32: UINT32, 64: UINT64}
        table = signed if pa.types.is_signed_integer(typ) else unsigned
        if typ.bit_width in table:
            return table[typ.bit_width]
    if pa.types.is_floating(typ):
        return FLOAT32 if typ.bit_width <= 32 else FLOAT64
    if pa.types.is_decimal(typ):
        return _decimal(typ.precision, typ.scale)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        return STRING
    raise filter_error(
        f"the users data stores a column the filter uses as {typ}, which a filter cannot compare"
    )


def spark_stored_type(typ: Any) -> StoredType:
    """The stored type of a Spark SQL column type (classic or Spark Connect)."""
    name = typ.typeName()
    integers = {"byte": INT8, "short": INT16, "integer": INT32, "long": INT64}
    if name in integers:
        return integers[name]
    if name in ("float", "double"):
        return FLOAT32 if name == "float" else FLOAT64
    if name == "decimal":
        return _decimal(typ.precision, typ.scale)
    if name in ("string", "varchar", "char"):
        return STRING
    raise filter_error(
        f"the users data stores a column the filter uses as {typ.simpleString()}, which a "
        "filter cannot compare"
    )


NOMINAL_TYPES: Mapping[str, StoredType] = {
    field.name: arrow_stored_type(field.type) for field in schema.USER_SCHEMA
}


@dataclass(frozen=True)
class StoredFilter:
    """A filter to compile for one stored schema: every numeric literal already has the type
    it is compared in (see the module doc), and the float columns whose NaN reads as NULL."""

    condition: Condition
    float_columns: frozenset[str]


def for_stored(
    audience: AudienceFilter, stored: Mapping[str, StoredType] | None = None
) -> StoredFilter:
    """``audience`` for data stored as ``stored`` (default: the contract's types)."""
    types = {**NOMINAL_TYPES, **(stored or {})}
    used = {name: types[name] for name in audience.columns}
    condition = _adapt(audience.condition, used)
    return StoredFilter(condition, frozenset(n for n, t in used.items() if t.is_float))


# ---- rewriting ------------------------------------------------------------------------------
# Conditions that hold for no value, or for every value, of an exact column, yet are NULL
# for NULL (as the comparison they replace): a bound beyond the type's range.
def _never(column: str, typ: StoredType) -> Condition:
    return Compare(column, "<", _value(typ.low, typ))


def _always(column: str, typ: StoredType) -> Condition:
    return Compare(column, ">=", _value(typ.low, typ))


def _adapt(condition: Condition, types: Mapping[str, StoredType]) -> Condition:
    match condition:
        case Compare(name, op, value) if not isinstance(value, str):
            return _compare(name, op, value, types[name])
        case InList(name, values) if not isinstance(values[0], str):
            return _in_list(name, values, types[name])
        case Between(name, low, high) if not isinstance(low, str):
            # Spark SQL reads BETWEEN as `x >= low AND x <= high`, each compared on its own.
            typ = types[name]
            return And((_compare(name, ">=", low, typ), _compare(name, "<=", high, typ)))
        case And(operands):
            return And(tuple(_adapt(o, types) for o in operands))
        case Or(operands):
            return Or(tuple(_adapt(o, types) for o in operands))
        case Not(operand):
            return Not(_adapt(operand, types))
        case Compare() | InList() | Between() | Like() | IsNull():
            return condition  # text, or no literal
    raise TypeError(f"not a condition: {condition!r}")  # pragma: no cover


def _compare(name: str, op: ComparisonOp, value: Value, typ: StoredType) -> Condition:
    if typ.is_float:
        return Compare(name, op, _as_double(value))
    if isinstance(value, float):  # a DOUBLE literal: the column is cast to double
        return _on_grid(name, op, _double_bounds(value, typ), typ)
    _check_decimal_digits(name, typ, [value])
    return _on_grid(name, op, _exact_bounds(Decimal(value), typ), typ)


def _in_list(name: str, values: tuple[Value, ...], typ: StoredType) -> Condition:
    # Spark SQL compares every element in the list's common type: one DOUBLE (or a float
    # column) makes it double for all.
    if typ.is_float:
        return InList(name, tuple(dict.fromkeys(_as_double(v) for v in values)))
    in_double = any(isinstance(v, float) for v in values)
    if not in_double:
        _check_decimal_digits(name, typ, values)
    parts: list[Condition] = []
    for value in values:
        number = float(value) if in_double else value
        bounds = (
            _double_bounds(number, typ)
            if isinstance(number, float)
            else _exact_bounds(Decimal(number), typ)
        )
        low, high = bounds[0], bounds[1]  # the k with value(k) == literal, if any
        if low is not None and high is not None and low <= high:
            parts.append(
                Compare(name, "=", _value(low, typ))
                if low == high
                else Between(name, _value(low, typ), _value(high, typ))
            )
    if not parts:
        return _never(name, typ)
    singles = [p for p in parts if isinstance(p, Compare)]
    ranges = [p for p in parts if not isinstance(p, Compare)]
    listed: list[Condition] = []
    if singles:
        values_in = tuple(dict.fromkeys(p.value for p in singles))
        listed.append(InList(name, values_in))
    listed.extend(ranges)
    return listed[0] if len(listed) == 1 else Or(tuple(listed))


# Bounds on k for "value(k) == literal": (first k with value >= literal, last k with
# value <= literal); the comparisons are read off them.
Bounds = tuple[int | None, int | None]


def _on_grid(name: str, op: ComparisonOp, bounds: Bounds, typ: StoredType) -> Condition:
    """``column op literal`` as a comparison with values of the column's type.

    ``bounds`` = (first, last): ``first`` is the smallest k whose value is >= the literal
    (None: none is), ``last`` the largest k whose value is <= it (None: none is).
    """
    first, last = bounds

    def ge(k: int | None) -> Condition:  # value(x) >= value(k); None: beyond the top
        if k is None:
            return _never(name, typ)
        return _always(name, typ) if k <= typ.low else Compare(name, ">=", _value(k, typ))

    def le(k: int | None) -> Condition:  # value(x) <= value(k); None: below the bottom
        if k is None:
            return _never(name, typ)
        return _always(name, typ) if k >= typ.high else Compare(name, "<=", _value(k, typ))

    match op:
        case ">=":
            return ge(first)
        case "<=":
            return le(last)
        case ">":  # the values above the last one <= literal
            return ge(typ.low if last is None else (None if last >= typ.high else last + 1))
        case "<":
            return le(typ.high if first is None else (None if first <= typ.low else first - 1))
        case "=":
            if first is None or last is None or first > last:
                return _never(name, typ)
            if first == last:
                return Compare(name, "=", _value(first, typ))
            return Between(name, _value(first, typ), _value(last, typ))
        case "!=":
            return Not(_on_grid(name, "=", bounds, typ))
    raise ValueError(op)  # pragma: no cover


def _exact_bounds(literal: Decimal, typ: StoredType) -> Bounds:
    """(first, last) for an exact literal: the grid points around ``literal * 10**scale``."""
    scaled = literal.scaleb(typ.scale, _EXACT)
    first = math.ceil(scaled)
    last = math.floor(scaled)
    return _clip(first, last, typ)


def _double_bounds(literal: float, typ: StoredType) -> Bounds:
    """(first, last) when the column is cast to double (Spark: correctly rounded)."""
    as_double = _to_double(typ)
    first = _first(lambda k: as_double(k) >= literal, typ)
    after = _first(lambda k: as_double(k) > literal, typ)  # the first k past the literal
    if after is None:
        return first, typ.high
    return first, (after - 1 if after > typ.low else None)


def _clip(first: int, last: int, typ: StoredType) -> Bounds:
    first_k = first if first <= typ.high else None
    last_k = last if last >= typ.low else None
    if first_k is not None:
        first_k = max(first_k, typ.low)
    if last_k is not None:
        last_k = min(last_k, typ.high)
    return first_k, last_k


def _first(holds: Callable[[int], bool], typ: StoredType) -> int | None:
    """The smallest k in the type's range for which the monotone ``holds`` is true."""
    low, high = typ.low, typ.high
    if not holds(high):
        return None
    while low < high:
        middle = (low + high) // 2
        if holds(middle):
            high = middle
        else:
            low = middle + 1
    return low


def _to_double(typ: StoredType) -> Callable[[int], float]:
    if typ.scale == 0:
        return float  # int -> double, correctly rounded (Java's (double) long too)
    return lambda k: float(Decimal(k).scaleb(-typ.scale, _EXACT))  # BigDecimal.doubleValue


def _value(k: int, typ: StoredType) -> int | Decimal:
    """The literal for grid point ``k``: an int for an integer column, a Decimal (compiled
    in the column's own decimal type) for a decimal one, whatever its scale."""
    return k if typ.is_integer else Decimal(k).scaleb(-typ.scale, _EXACT)


def _as_double(value: Value) -> float:
    """The double Spark converts a literal to (correctly rounded), +0.0 for -0.0."""
    return float(value) + 0.0


def _check_decimal_digits(name: str, typ: StoredType, literals: Any) -> None:
    """Refuse exact comparisons Spark SQL cannot do in 38 decimal digits.

    Spark compares a decimal with an exact literal in their common decimal type (integer
    digits of the wider, fraction digits of the finer); past 38 digits it cuts the fraction
    and may overflow, so the text would not mean what it says.
    """
    whole, fraction = typ.digits - typ.scale, typ.scale
    for literal in literals:
        digits, scale = _literal_digits(literal)
        whole, fraction = max(whole, digits - scale), max(fraction, scale)
    if whole + fraction > MAX_SPARK_DECIMAL_DIGITS:
        raise filter_error(
            f"{name} is stored as {typ.name}: comparing it with a value of "
            f"{fraction} decimal places needs over {MAX_SPARK_DECIMAL_DIGITS} digits in "
            "Spark SQL; use fewer decimal places"
        )


def _literal_digits(literal: Value) -> tuple[int, int]:
    """(precision, scale) of the decimal type Spark SQL gives an exact literal."""
    if isinstance(literal, int):
        # Against a decimal, Spark types an integral literal by its own digits
        # (DecimalType.fromLiteral: spark.sql.legacy.literal.pickMinimumPrecision).
        return len(str(abs(literal))), 0
    assert isinstance(literal, Decimal)
    _, digits, exponent = literal.as_tuple()
    scale = max(-int(exponent), 0)
    return max(len(digits), scale), scale
