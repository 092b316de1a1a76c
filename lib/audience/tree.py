"""The checked condition tree: what a filter means, independent of any engine.

:func:`lib.audience.check.parse_filter` builds it from the marketer's text;
:mod:`lib.audience.stored` adapts it to the types the data is stored in; each compiled form
(:mod:`~lib.audience.spark_form`, :mod:`~lib.audience.ibis_form`) builds engine expressions
from it with :func:`build`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "And",
    "AudienceFilter",
    "Between",
    "Compare",
    "ComparisonOp",
    "Condition",
    "InList",
    "IsNull",
    "Like",
    "Not",
    "Or",
    "Value",
    "build",
    "literal",
    "render",
]

# A literal as Spark SQL types it: int (a whole number: INT, BIGINT or DECIMAL(n, 0)),
# Decimal (an exact decimal such as 1.5), float (a DOUBLE: written with an exponent, or
# converted for a floating-point column), str (text).
Value = int | Decimal | float | str
ComparisonOp = Literal["=", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True)
class Compare:
    """``column op value``."""

    column: str
    op: ComparisonOp
    value: Value


@dataclass(frozen=True)
class InList:
    """``column IN (values...)``."""

    column: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Between:
    """``column BETWEEN low AND high`` (inclusive; empty when low > high)."""

    column: str
    low: Value
    high: Value


@dataclass(frozen=True)
class Like:
    """``column LIKE pattern`` (``%`` any run, ``_`` one character; no escapes)."""

    column: str
    pattern: str


@dataclass(frozen=True)
class IsNull:
    """``column IS NULL`` (NaN counts as NULL in a float column)."""

    column: str


@dataclass(frozen=True)
class And:
    """All operands hold (a flat chain: ``a AND b AND c`` is one node)."""

    operands: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    """Any operand holds (a flat chain)."""

    operands: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """The operand does not hold (SQL three-valued: NOT NULL is NULL)."""

    operand: Condition


Condition = Compare | InList | Between | Like | IsNull | And | Or | Not


@dataclass(frozen=True)
class AudienceFilter:
    """A validated filter: the original text, the checked tree and the columns it reads."""

    text: str
    condition: Condition
    columns: frozenset[str]

    @property
    def sql(self) -> str:
        """A canonical rendering of the condition (for logs and documentation)."""
        return render(self.condition)


def literal(v: Value) -> str:
    """A value as a filter writes it (it parses back to the same value)."""
    if isinstance(v, str):  # no escapes exist: quote with the quote the text lacks
        return f'"{v}"' if "'" in v else f"'{v}'"
    if isinstance(v, Decimal):
        return format(v, "f")  # never an exponent: that would read as a DOUBLE
    return repr(v)


def render(condition: Condition) -> str:
    """Canonical text, which parses back to the same condition."""
    value = literal

    match condition:
        case Compare(column, op, v):
            return f"{column} {op} {value(v)}"
        case InList(column, values):
            return f"{column} IN ({', '.join(value(v) for v in values)})"
        case Between(column, low, high):
            return f"{column} BETWEEN {value(low)} AND {value(high)}"
        case Like(column, pattern):
            return f"{column} LIKE {value(pattern)}"
        case IsNull(column):
            return f"{column} IS NULL"
        case And(operands):
            return "(" + " AND ".join(render(o) for o in operands) + ")"
        case Or(operands):
            return "(" + " OR ".join(render(o) for o in operands) + ")"
        case Not(operand):
            return f"NOT ({render(operand)})"
    raise TypeError(f"not a condition: {condition!r}")  # pragma: no cover


def balanced(items: Sequence[Any], combine: Callable[[Any, Any], Any]) -> Any:
    """Combine ``items`` pairwise as a balanced tree: depth log2(n), not n (engines recurse)."""
    if len(items) == 1:
        return items[0]
    middle = len(items) // 2
    return combine(balanced(items[:middle], combine), balanced(items[middle:], combine))


def build(
    condition: Condition,
    column: Callable[[str], Any],
    is_null: Callable[[Any], Any],
    literal: Callable[[str, Value], Any] = lambda name, value: value,
) -> Any:
    """Build ``condition`` from a backend's column objects, which share the operator protocol
    (==, <, ``isin``, ``between``, ``like``, &, |, ~); column lookup, the null test and the
    literals (a decimal needs its exact type) are the backend's."""

    def part(node: Condition) -> Any:
        match node:
            case Compare(name, op, value):
                col, lit = column(name), literal(name, value)
                return {
                    "=": lambda: col == lit,
                    "!=": lambda: col != lit,
                    "<": lambda: col < lit,
                    "<=": lambda: col <= lit,
                    ">": lambda: col > lit,
                    ">=": lambda: col >= lit,
                }[op]()
            case InList(name, values):
                return column(name).isin([literal(name, v) for v in values])
            case Between(name, low, high):
                return column(name).between(literal(name, low), literal(name, high))
            case Like(name, pattern):
                return column(name).like(pattern)
            case IsNull(name):
                return is_null(column(name))
            case And(operands):
                return balanced([part(o) for o in operands], lambda a, b: a & b)
            case Or(operands):
                return balanced([part(o) for o in operands], lambda a, b: a | b)
            case Not(operand):
                return ~part(operand)
        raise TypeError(f"not a condition: {node!r}")  # pragma: no cover

    return part(condition)
