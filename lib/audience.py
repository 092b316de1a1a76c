"""Audience filters: parse a marketer's condition, check it against an allowlist, compile it.

A campaign's ``audience_filter`` is a SQL-like condition such as ``country='US' AND age > 25``.
Handing that text to ``DataFrame.filter(str)``, ``expr()`` or ``spark.sql()`` would let anyone
who can create a campaign run any Spark SQL, up to OS commands via ``TRANSFORM ... USING``.
So the text is parsed with sqlglot (Spark dialect) and every node is checked against a small
allowlist: known user columns, literals, comparisons, ``IN``, ``BETWEEN``, ``LIKE``,
``IS [NOT] NULL`` and ``AND/OR/NOT``. What passes becomes a tiny typed tree of our own
(:class:`Condition`), which is compiled to a PySpark ``Column`` or an Ibis expression by
building the expression objects directly: the user's text never reaches a SQL parser again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lib import schema
from lib.errors import AudienceFilterError

if TYPE_CHECKING:
    from pyspark.sql import Column

__all__ = [
    "MAX_FILTER_LENGTH",
    "AudienceFilter",
    "AudiencePreview",
    "Condition",
    "parse_filter",
    "preview_audience",
    "preview_parquet",
    "to_ibis",
    "to_spark_column",
]

MAX_FILTER_LENGTH = 2_000  # characters
MAX_NODES = 300  # sqlglot nodes in one filter
MAX_IN_VALUES = 200  # literals in one IN (...) list
MAX_DEPTH = 40  # nesting of AND/OR/NOT/parentheses
INT64 = (-(2**63), 2**63 - 1)

Value = int | float | str
ComparisonOp = Literal["=", "!=", "<", "<=", ">", ">="]


# ---- the checked condition tree -------------------------------------------------------------
@dataclass(frozen=True)
class Compare:
    column: str
    op: ComparisonOp
    value: Value


@dataclass(frozen=True)
class InList:
    column: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Between:
    column: str
    low: Value
    high: Value


@dataclass(frozen=True)
class Like:
    column: str
    pattern: str


@dataclass(frozen=True)
class IsNull:
    column: str


@dataclass(frozen=True)
class And:
    left: Condition
    right: Condition


@dataclass(frozen=True)
class Or:
    left: Condition
    right: Condition


@dataclass(frozen=True)
class Not:
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
        return _render(self.condition)


# ---- parsing and checking ------------------------------------------------------------------
def parse_filter(
    text: str | None, columns: Mapping[str, schema.ColumnKind] = schema.AUDIENCE_COLUMNS
) -> AudienceFilter | None:
    """Validate ``text``; ``None`` or blank means "every user". Raises AudienceFilterError."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    if text is None or not text.strip():
        return None
    if not isinstance(text, str):
        raise AudienceFilterError("audience filter must be text")
    if len(text) > MAX_FILTER_LENGTH:
        raise AudienceFilterError(
            f"audience filter is too long ({len(text)} characters, at most {MAX_FILTER_LENGTH})"
        )
    if "\x00" in text:
        raise AudienceFilterError("audience filter contains a NUL byte")
    try:
        trees = [tree for tree in sqlglot.parse(text, read="spark") if tree is not None]
    except RecursionError:
        raise AudienceFilterError(
            f"audience filter is nested too deeply (over {MAX_DEPTH})"
        ) from None
    except (SqlglotError, ValueError) as err:
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AudienceFilterError(f"audience filter could not be parsed: {first_line}") from err
    if len(trees) != 1:
        raise AudienceFilterError(
            f"audience filter must be one condition, found {len(trees)} statements"
        )
    tree = trees[0]
    size = sum(1 for _ in tree.walk())
    if size > MAX_NODES:
        raise AudienceFilterError(
            f"audience filter is too complex ({size} parts, at most {MAX_NODES})"
        )
    # Subqueries first: wherever one hides, it is the reason to refuse (and the most serious).
    if any(isinstance(node, exp.Query | exp.Subquery | exp.Exists) for node in tree.walk()):
        raise AudienceFilterError("subqueries are not allowed in an audience filter")
    checker = _Checker(columns)
    condition = checker.condition(tree, depth=0)
    return AudienceFilter(text=text, condition=condition, columns=frozenset(checker.used))


class _Checker:
    """Walks a sqlglot tree and rebuilds it as a :data:`Condition`, refusing anything else."""

    def __init__(self, columns: Mapping[str, schema.ColumnKind]) -> None:
        self.columns = {name.lower(): (name, kind) for name, kind in columns.items()}
        self.used: set[str] = set()

    def condition(self, node: Any, depth: int) -> Condition:
        from sqlglot import exp

        if depth > MAX_DEPTH:
            raise AudienceFilterError(f"audience filter is nested too deeply (over {MAX_DEPTH})")
        if isinstance(node, exp.Paren):
            return self.condition(node.this, depth + 1)
        if isinstance(node, exp.And):
            return And(
                self.condition(node.this, depth + 1), self.condition(node.expression, depth + 1)
            )
        if isinstance(node, exp.Or):
            return Or(
                self.condition(node.this, depth + 1), self.condition(node.expression, depth + 1)
            )
        if isinstance(node, exp.Not):
            return Not(self.condition(node.this, depth + 1))
        comparisons: dict[type, ComparisonOp] = {
            exp.EQ: "=",
            exp.NEQ: "!=",
            exp.LT: "<",
            exp.LTE: "<=",
            exp.GT: ">",
            exp.GTE: ">=",
        }
        if type(node) in comparisons:
            return self.comparison(node, comparisons[type(node)])
        if isinstance(node, exp.In):
            if node.args.get("query") is not None or node.args.get("unnest") is not None:
                raise AudienceFilterError("subqueries are not allowed in an audience filter")
            name, kind = self.column(node.this)
            values = node.expressions
            if not values:
                raise AudienceFilterError(f"IN list for '{name}' is empty")
            if len(values) > MAX_IN_VALUES:
                raise AudienceFilterError(f"IN list for '{name}' has over {MAX_IN_VALUES} values")
            return InList(name, tuple(self.literal(v, name, kind) for v in values))
        if isinstance(node, exp.Between):
            name, kind = self.column(node.this)
            low = self.literal(node.args["low"], name, kind)
            high = self.literal(node.args["high"], name, kind)
            return Between(name, low, high)
        if isinstance(node, exp.Like):
            if node.args.get("escape") is not None:
                raise AudienceFilterError("LIKE ... ESCAPE is not supported")
            name, kind = self.column(node.this)
            if kind != "string":
                raise AudienceFilterError(f"LIKE needs a text column, '{name}' is a number")
            pattern = self.literal(node.expression, name, kind)
            if "\\" in str(pattern):
                raise AudienceFilterError("LIKE patterns may not contain backslashes")
            like = Like(name, str(pattern))
            return Not(like) if node.args.get("negate") else like
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, exp.Null):
                raise AudienceFilterError("only IS NULL and IS NOT NULL are allowed")
            name, _ = self.column(node.this)
            return IsNull(name)
        raise AudienceFilterError(_refusal(node))

    def comparison(self, node: Any, op: ComparisonOp) -> Compare:
        from sqlglot import exp

        left, right = node.this, node.expression
        flipped: dict[ComparisonOp, ComparisonOp] = {
            "=": "=",
            "!=": "!=",
            "<": ">",
            "<=": ">=",
            ">": "<",
            ">=": "<=",
        }
        if isinstance(left, exp.Column) and not isinstance(right, exp.Column):
            name, kind = self.column(left)
            return Compare(name, op, self.literal(right, name, kind))
        if isinstance(right, exp.Column) and not isinstance(left, exp.Column):
            name, kind = self.column(right)
            return Compare(name, flipped[op], self.literal(left, name, kind))
        for side in (left, right):  # name a function or subquery when that is the problem
            if isinstance(side, exp.Func | exp.Anonymous | exp.Subquery | exp.Select):
                raise AudienceFilterError(_refusal(side))
        raise AudienceFilterError(
            f"each comparison needs one column and one literal value: {node.sql(dialect='spark')}"
        )

    def column(self, node: Any) -> tuple[str, schema.ColumnKind]:
        from sqlglot import exp

        if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
            raise AudienceFilterError(_refusal(node, expected="a column"))
        if node.args.get("table") is not None or node.args.get("db") is not None:
            raise AudienceFilterError(f"qualified column names are not allowed: {node.sql()}")
        raw = node.this.name
        known = self.columns.get(raw.lower())
        if known is None:
            allowed = ", ".join(sorted(name for name, _ in self.columns.values()))
            raise AudienceFilterError(f"unknown column '{raw}' (known columns: {allowed})")
        self.used.add(known[0])
        return known

    def literal(self, node: Any, column: str, kind: schema.ColumnKind) -> Value:
        from sqlglot import exp

        negative = False
        if isinstance(node, exp.Neg):
            negative, node = True, node.this
        if isinstance(node, exp.Paren):
            return self.literal(node.this, column, kind)
        if not isinstance(node, exp.Literal):
            raise AudienceFilterError(_refusal(node, expected=f"a literal value for '{column}'"))
        if node.is_string:
            if negative or kind != "string":
                raise AudienceFilterError(
                    f"'{column}' is a number: compare it with a number, not '{node.this}'"
                )
            return str(node.this)
        if kind == "string":
            raise AudienceFilterError(
                f"'{column}' is text: compare it with a quoted value, not {node.this}"
            )
        text = str(node.this)
        try:
            number: int | float = int(text) if text.isdigit() else float(text)
        except ValueError as err:
            raise AudienceFilterError(f"'{text}' is not a number") from err
        number = -number if negative else number
        if isinstance(number, float) and not math.isfinite(number):
            raise AudienceFilterError(f"'{text}' is not a finite number")
        if isinstance(number, int) and not INT64[0] <= number <= INT64[1]:
            raise AudienceFilterError(f"{number} is out of range for '{column}'")
        return number


def _refusal(node: Any, expected: str = "a condition") -> str:
    """A message that names what was found where a condition (or column, literal) was expected."""
    from sqlglot import exp

    snippet = node.sql(dialect="spark")
    snippet = snippet if len(snippet) <= 60 else snippet[:57] + "..."
    if isinstance(node, exp.Subquery | exp.Select | exp.Exists | exp.Query):
        return "subqueries are not allowed in an audience filter"
    if isinstance(node, exp.Func | exp.Anonymous):
        name = node.sql_name() if not isinstance(node, exp.Anonymous) else node.name
        return f"function calls are not allowed in an audience filter (found {name.lower()}(...))"
    if isinstance(node, exp.Binary):
        return f"operator not allowed in an audience filter: {snippet}"
    return f"expected {expected} in the audience filter, found: {snippet}"


def _render(condition: Condition) -> str:
    def value(v: Value) -> str:
        if isinstance(v, str):  # Spark SQL escapes with backslashes ('a' 'b' concatenates)
            return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return repr(v)

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
        case And(left, right):
            return f"({_render(left)} AND {_render(right)})"
        case Or(left, right):
            return f"({_render(left)} OR {_render(right)})"
        case Not(operand):
            return f"NOT ({_render(operand)})"
    raise TypeError(f"not a condition: {condition!r}")  # pragma: no cover


# ---- compilers -----------------------------------------------------------------------------
def _build(
    condition: Condition, column: Callable[[str], Any], is_null: Callable[[Any], Any]
) -> Any:
    """Build ``condition`` from a backend's column objects, which share the operator protocol
    (==, <, ``isin``, ``between``, ``like``, &, |, ~); only column lookup and the null test
    differ between PySpark and Ibis."""
    match condition:
        case Compare(name, op, value):
            col = column(name)
            return {
                "=": col == value,
                "!=": col != value,
                "<": col < value,
                "<=": col <= value,
                ">": col > value,
                ">=": col >= value,
            }[op]
        case InList(name, values):
            return column(name).isin(list(values))
        case Between(name, low, high):
            return column(name).between(low, high)
        case Like(name, pattern):
            return column(name).like(pattern)
        case IsNull(name):
            return is_null(column(name))
        case And(left, right):
            return _build(left, column, is_null) & _build(right, column, is_null)
        case Or(left, right):
            return _build(left, column, is_null) | _build(right, column, is_null)
        case Not(operand):
            return ~_build(operand, column, is_null)
    raise TypeError(f"not a condition: {condition!r}")  # pragma: no cover


def to_spark_column(audience: AudienceFilter | None) -> Column:
    """Build the filter as a PySpark Column from expression objects (no SQL text involved)."""
    from pyspark.sql import functions as F

    if audience is None:
        return F.lit(True)
    return _build(audience.condition, F.col, lambda col: col.isNull())


def to_ibis(audience: AudienceFilter | None, table: Any) -> Any:
    """Build the filter as an Ibis boolean expression over ``table`` (DuckDB, PySpark, ...)."""
    import ibis

    if audience is None:
        return ibis.literal(True)
    return _build(audience.condition, lambda name: table[name], lambda col: col.isnull())


# ---- audience preview (Ibis) ---------------------------------------------------------------------
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


def preview_parquet(
    audience: AudienceFilter | None, users_path: str | Any, sample_size: int = 5
) -> AudiencePreview:
    """:func:`preview_audience` with DuckDB over a users Parquet file (fast, no Spark)."""
    import ibis

    con = ibis.duckdb.connect()
    try:
        return preview_audience(audience, con.read_parquet(str(users_path)), sample_size)
    finally:
        con.disconnect()
