"""Differential fuzzing of audience filters: represented faithfully, or refused.

Hypothesis writes filters from the accepted grammar plus mutations (signs, parentheses,
escapes, quotes, every kind of literal, keywords sqlglot knows but the checker must refuse).
Each one is either refused with :class:`AudienceFilterError` (any other exception fails), or
all of these select exactly the same rows of a small users table full of edge values:

(a) the PySpark Column from :func:`lib.audience.to_spark_column`, over Parquet;
(b) the Ibis expression from :func:`lib.audience.to_ibis` on DuckDB, over the same Parquet
    files (small row groups with statistics, so min/max pruning is in play);
(b') the pyarrow compute expression from :func:`lib.audience.to_arrow_expression`, filtering
    the same files' rows in Arrow;
(c) :func:`reference`, SQL three-valued logic on the checked tree, written here;
(d) Spark SQL's own reading of the original text (``DataFrame.filter(text)``), in the test
    session (restricted SQL, no SQL on files), over an in-memory copy where NaN is NULL (the
    policy).

Every filter runs over two tables: one stored with the contract's types, one with every
numeric column stored otherwise (ints as float64, int32 and decimal(20,0), floats as int64,
float32 and decimal(12,2)), so each engine must compare as Spark SQL compares with the
stored type (:mod:`lib.audience.stored`).

``make test`` runs a fixed, derandomised budget; ``make fuzz`` sets FUZZ_EXAMPLES for more.
Each example is a list of filters evaluated in one Spark job, which keeps the budget cheap.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lib import audience, schema
from lib.audience import (
    And,
    AudienceFilter,
    Between,
    Compare,
    Condition,
    InList,
    IsNull,
    Like,
    Not,
    Or,
    parse_filter,
)
from lib.audience.preview import duckdb_connection
from lib.audience.stored import StoredType, arrow_stored_type, for_stored
from lib.errors import AudienceFilterError

pytestmark = pytest.mark.spark

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 60)  # make test; make fuzz: 2,000
FILTERS_PER_EXAMPLE = 12
ROW_GROUP_ROWS = 4

# ---- the users table: every column of USER_SCHEMA, nullable, full of edge values ---------
NAN, INF = math.nan, math.inf
INT_POOL: list[int | None] = [
    None,
    0,
    1,
    -1,
    25,
    30,
    31,
    100,
    2**31 - 1,
    2**31,
    -(2**31),
    -(2**31) - 1,
    2**53 - 1,
    2**53,
    2**53 + 1,
    -(2**53) - 1,
    2**63 - 1,
    -(2**63),
    2**63 - 2,
    -(2**63) + 1,
    1000,
]
FLOAT_POOL: list[float | None] = [
    None,
    NAN,
    INF,
    -INF,
    0.0,
    -0.0,
    0.1,
    0.5,
    1.0,
    -1.0,
    25.0,
    30.5,
    1e-300,
    5e-324,
    -5e-324,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    2.0**53,
    2.0**53 + 2,
    9.223372036854776e18,
    100000.0,
    99999.99,
    NAN,
]
STRING_POOL: list[str | None] = [
    None,
    "",
    "US",
    "us",
    "U",
    "USA",
    "GB",
    "DE",
    "it's",
    "its",
    'a"b',
    "é",
    "e\u0301",
    "😀",
    "U\\S",
    "%",
    "_",
    "a%b",
    "a\nb",
    " US",
    "US ",
    "ß",
    "İ",
    "Ω",
    "a_b",
    "\u00a0",
]
POOLS: dict[schema.ColumnKind, list[Any]] = {
    "int": INT_POOL,
    "float": FLOAT_POOL,
    "string": STRING_POOL,
}
COLUMNS: dict[str, schema.ColumnKind] = dict(schema.AUDIENCE_COLUMNS)
N_ROWS = 60


def user_rows() -> list[dict[str, Any]]:
    """Rows mixing the pools: column j of row i takes pool[(i * step_j + j) % len(pool)]."""
    steps = [1, 7, 5, 11, 13, 3, 17, 19]
    rows = []
    for i in range(N_ROWS):
        row: dict[str, Any] = {"_row": i}
        for j, (name, kind) in enumerate(COLUMNS.items()):
            pool = POOLS[kind]
            row[name] = pool[(i * steps[j % len(steps)] + j) % len(pool)]
        rows.append(row)
    return rows


ROWS = user_rows()
TABLE_SCHEMA = pa.schema(
    [pa.field("_row", pa.int64(), nullable=False)]
    + [pa.field(f.name, f.type, nullable=True) for f in schema.USER_SCHEMA]
)

# The same users with each numeric column stored in another type, as the job accepts them.
DECIMAL_POOL: list[Decimal | None] = [
    None,
    *(Decimal(v) for v in ["0", "1", "-1", "0.50", "25.00", "30.50", "99999.99", "-0.01"]),
    *(Decimal(v) for v in ["9999999999.99", "-9999999999.99", "1234.56", "0.01", "2.25"]),
]
STORED_TYPES: dict[str, pa.DataType] = {
    "age": pa.float64(),
    "recency": pa.int32(),
    "frequency": pa.decimal128(20, 0),
    "monetary": pa.int64(),
    "engagement_score": pa.float32(),
    "days_since_last_purchase": pa.decimal128(12, 2),
}


def _float32(value: float | None) -> float | None:
    """The float32 nearest ``value`` (NaN and infinities kept), as a Python float."""
    import numpy as np

    with np.errstate(over="ignore"):
        return None if value is None else float(np.float32(value))


def stored_rows() -> list[dict[str, Any]]:
    """ROWS with the numeric columns converted to STORED_TYPES."""
    rows = []
    for i, row in enumerate(ROWS):
        typed = dict(row)
        age = row["age"]
        typed["age"] = None if age is None else float(age)
        recency = row["recency"]
        typed["recency"] = recency if recency is None or abs(recency) < 2**31 else None
        frequency = row["frequency"]
        typed["frequency"] = None if frequency is None else Decimal(frequency)
        typed["monetary"] = INT_POOL[(i * 5 + 3) % len(INT_POOL)]
        typed["engagement_score"] = _float32(row["engagement_score"])
        typed["days_since_last_purchase"] = DECIMAL_POOL[(i * 7 + 1) % len(DECIMAL_POOL)]
        rows.append(typed)
    return rows


STORED_ROWS = stored_rows()
STORED_SCHEMA = pa.schema(
    [pa.field(f.name, STORED_TYPES.get(f.name, f.type), nullable=f.nullable) for f in TABLE_SCHEMA]
)


def _without_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _sort_key(column: str) -> Any:
    def key(row: dict[str, Any]) -> tuple[int, Any]:
        value = _without_nan(row[column])
        return (0, value) if value is not None else (1, 0)

    return key


def write_users(directory: Path, rows: list[dict[str, Any]], table_schema: pa.Schema) -> Path:
    """Three Parquet files, each sorted by another column, in row groups of four rows."""
    directory.mkdir(parents=True, exist_ok=True)
    for part, column in enumerate(("monetary", "age", "country")):
        chunk = sorted(rows[part::3], key=_sort_key(column))
        table = pa.Table.from_pylist(chunk, schema=table_schema)
        pq.write_table(table, directory / f"part-{part}.parquet", row_group_size=ROW_GROUP_ROWS)
    return directory


# ---- (c) the reference: SQL three-valued logic on the checked tree -----------------------
def like_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE without escapes: % is any run, _ is one character (newlines included)."""
    parts = (".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def truth(condition: Condition, row: dict[str, Any]) -> bool | None:
    """TRUE, FALSE or NULL (None) for one row; NaN in a float column is NULL."""
    match condition:
        case Compare(name, op, value):
            x = _without_nan(row[name])
            if x is None:
                return None
            return {
                "=": x == value,
                "!=": x != value,
                "<": x < value,
                "<=": x <= value,
                ">": x > value,
                ">=": x >= value,
            }[op]
        case InList(name, values):
            x = _without_nan(row[name])
            return None if x is None else any(x == v for v in values)
        case Between(name, low, high):
            x = _without_nan(row[name])
            return None if x is None else low <= x <= high
        case Like(name, pattern):
            x = row[name]
            return None if x is None else like_regex(pattern).fullmatch(x) is not None
        case IsNull(name):
            return _without_nan(row[name]) is None
        case And(operands):
            values = [truth(o, row) for o in operands]
            return False if False in values else None if None in values else True
        case Or(operands):
            values = [truth(o, row) for o in operands]
            return True if True in values else None if None in values else False
        case Not(operand):
            value = truth(operand, row)
            return None if value is None else not value
    raise TypeError(condition)


def reference(checked: AudienceFilter, table: Table) -> list[int]:
    """SQL three-valued logic over ``table`` on the filter adapted to its stored types."""
    stored = for_stored(checked, table.stored)
    return sorted(row["_row"] for row in table.rows if truth(stored.condition, row) is True)


def test_reference_follows_three_valued_logic() -> None:
    row = {"age": None, "monetary": NAN, "country": "a\nb"}
    assert truth(Compare("age", ">", 1), row) is None
    assert truth(Not(Compare("age", ">", 1)), row) is None
    assert truth(Or((Compare("age", ">", 1), IsNull("age"))), row) is True
    assert truth(And((Compare("age", ">", 1), IsNull("age"))), row) is None
    assert truth(IsNull("monetary"), row) is True  # NaN is NULL
    assert truth(Like("country", "a_b"), row) is True


# ---- the engines ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    """A users table under test: its rows, how they are stored, and where."""

    name: str
    rows: list[dict[str, Any]]
    arrow_schema: pa.Schema

    @property
    def stored(self) -> dict[str, StoredType]:
        return {f.name: arrow_stored_type(f.type) for f in self.arrow_schema if f.name != "_row"}


TABLES = {
    "contract types": Table("contract types", ROWS, TABLE_SCHEMA),
    "other stored types": Table("other stored types", STORED_ROWS, STORED_SCHEMA),
}


def _spark_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    names = {pa.int32(): "int", pa.int64(): "bigint", pa.float32(): "float"}
    return names.get(arrow_type, "double" if pa.types.is_floating(arrow_type) else "string")


class Engines:
    """Runs checked filters on DuckDB (Ibis) and Spark (Column and SQL text) over one table."""

    def __init__(self, spark: Any, users_dir: Path, table: Table) -> None:
        self.spark = spark
        self.table = table
        self.duck = duckdb_connection()
        self.duck_users = self.duck.read_parquet(str(users_dir / "*.parquet"))
        self.arrow_users = ds.dataset(users_dir, format="parquet").to_table()
        self.spark_users = spark.read.parquet(str(users_dir))
        # The oracle reads the text's *meaning*, so in memory rather than from Parquet: Spark's
        # Parquet filter pushdown drops -0.0 rows from `x = 0` and 0.0 rows from
        # `x IN (-0e0)` (dictionary filtering; seen here with pushdown on, not off).
        policy = [{k: _without_nan(v) for k, v in row.items()} for row in table.rows]
        self.spark_policy = spark.createDataFrame(
            [tuple(row[name] for name in table.arrow_schema.names) for row in policy],
            schema=", ".join(f"{f.name} {_spark_type(f.type)}" for f in table.arrow_schema),
        ).cache()

    def arrow_rows(self, checked: AudienceFilter) -> list[int]:
        # In memory, as lib.parquet_source filters: a scan would simplify by statistics that
        # leave NaN out (its row-group pruning is tested in test_parquet_source.py).
        expression = audience.to_arrow_expression(checked, self.arrow_users.schema)
        selected = self.arrow_users.filter(expression).column("_row")
        return sorted(selected.to_pylist())

    def duckdb_rows(self, checked: AudienceFilter) -> list[int]:
        users = self.duck_users
        selected = users.filter(audience.to_ibis(checked, users)).select("_row").to_pyarrow()
        return sorted(selected.column("_row").to_pylist())

    def spark_rows(self, filters: list[AudienceFilter]) -> tuple[list[list[int]], list[Any]]:
        """Rows per filter for the compiled Column and for Spark SQL, in one Spark job."""
        from functools import reduce

        from pyspark.sql import functions as F

        parts, sql_errors = [], []
        for i, checked in enumerate(filters):
            column = audience.to_spark_column(checked, schema=self.spark_users.schema)
            parts.append(self.spark_users.filter(column).select(F.lit(i).alias("q"), "_row"))
            try:  # analysis errors are raised here, eagerly
                by_sql = self.spark_policy.filter(checked.text)
            except Exception as err:  # reported as a failure below
                sql_errors.append(err)
                by_sql = self.spark_policy.limit(0)
            else:
                sql_errors.append(None)
            parts.append(by_sql.select(F.lit(len(filters) + i).alias("q"), "_row"))
        try:
            rows = reduce(lambda a, b: a.unionByName(b), parts).collect()
        except Exception:  # a run-time error: find which filter raised it
            return self._one_by_one(parts, filters, sql_errors)
        found: list[list[int]] = [[] for _ in range(2 * len(filters))]
        for row in rows:
            found[row.q].append(row._row)
        return [sorted(r) for r in found], sql_errors

    def _one_by_one(
        self, parts: list[Any], filters: list[AudienceFilter], sql_errors: list[Any]
    ) -> tuple[list[list[int]], list[Any]]:
        found: list[list[int]] = [[] for _ in range(2 * len(filters))]
        for index, part in enumerate(parts):
            q, i = (index % 2) * len(filters) + index // 2, index // 2
            try:
                found[q] = sorted(row._row for row in part.collect())
            except Exception as err:
                if index % 2 == 0:
                    message = f"compiled Spark Column raised for {filters[i].text!r}"
                    raise AssertionError(message) from err
                sql_errors[i] = err
        return found, sql_errors


@pytest.fixture(scope="module", params=list(TABLES), ids=list(TABLES))
def engines(
    request: pytest.FixtureRequest, spark: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engines]:
    table = TABLES[request.param]
    users_dir = tmp_path_factory.mktemp("audience-fuzz") / "users"
    write_users(users_dir, table.rows, table.arrow_schema)
    running = Engines(spark, users_dir, table)
    yield running
    running.duck.disconnect()


def check_filters(engines: Engines, texts: list[str]) -> None:
    """Refused, or the same rows in all four engines (and a canonical text that round-trips)."""
    accepted: list[AudienceFilter] = []
    for text in texts:
        try:
            checked = parse_filter(text)
            if checked is not None:  # refused for these stored types: also a refusal
                for_stored(checked, engines.table.stored)
        except AudienceFilterError:
            continue
        if checked is None:
            continue
        if len(checked.sql) <= audience.MAX_FILTER_LENGTH:  # the canonical text round-trips
            again = parse_filter(checked.sql)
            assert again is not None and again.condition == checked.condition, checked.sql
        accepted.append(checked)
    if not accepted:
        return
    spark_rows, sql_errors = engines.spark_rows(accepted)
    for i, checked in enumerate(accepted):
        expected = reference(checked, engines.table)
        context = f"filter {checked.text!r} (checked: {checked.sql})"
        assert sql_errors[i] is None, f"Spark SQL cannot read accepted {context}: {sql_errors[i]}"
        assert spark_rows[i] == expected, f"Spark Column differs for {context}"
        assert engines.duckdb_rows(checked) == expected, f"DuckDB differs for {context}"
        assert engines.arrow_rows(checked) == expected, f"pyarrow differs for {context}"
        assert spark_rows[len(accepted) + i] == expected, f"Spark SQL differs for {context}"


# ---- the filter grammar, with mutations ---------------------------------------------------
# Each predicate is either clean (from the accepted grammar, so most filters pass and reach the
# engines) or, about one in eight, wild: any mutation, most of which must be refused.
CLEAN_SPACES = [" "] * 12 + ["  ", "\n", "\t", " -- note\n", "\r\n"]
WILD_SPACES = [" /* c */ ", "/* /* */ */", "\u00a0", "\u2003", "\f", "\v", " --\\\n"]

INT_TEXTS = [str(v) for v in INT_POOL if v is not None] + ["00030", "0", "2147483648"]
FLOAT_TEXTS = [repr(v) for v in FLOAT_POOL if v is not None and math.isfinite(v)] + [
    "0.1000000000000000000000000000000000001",
    "1e-400",
    "1E3",
    "1e+3",
    "2.5e-1",
    "5.",
    "30.0",
    "30.000000000000000000000000000000000000",
    "9007199254740993",
    "9007199254740993.0",
    "99999999999999999999",
    "1" + "0" * 37,
    "0e0",
    "-0e0",
    "1.7976931348623157e308",
    "4.9e-324",
    "2.4703282292062328e-324",  # just above half of the smallest double: rounds up
]
WILD_NUMBERS = [
    "9223372036854775808",
    "1" + "0" * 38,
    "1" + "0" * 40,
    "0.10000000000000000000000000000000000000001",
    "1e400",
    "1e9999999",
    "1e-9999999",
    "1e99999999999999999999",
    "1.7976931348623159e308",
    ".5",
    "1_000",
    "0x10",
    "10L",
    "1.5D",
    "2BD",
    "10Y",
    "10S",
    "1.5F",
    "NaN",
    "inf",
    "1e",
    "'30'",
    "NULL",
    "TRUE",
    "X'1F'",
    "INTERVAL 1 DAY",
    "age",
]
CLEAN_STRINGS = [s for s in STRING_POOL if s is not None and "\\" not in s] + ["x", "😀😀"]
WILD_STRINGS = ["\\u0055S", "\\125S", "U\\S", "it''s", "\\'", "\\\\", "a' 'b", "\\%", "a\\_b"]


@st.composite
def number_text(draw: st.DrawFn, kind: schema.ColumnKind, wild: bool) -> str:
    """A numeric literal: mostly the column's kind, random digits, signs and parentheses."""
    choice = draw(st.integers(0, 9))
    if wild and choice <= 2:
        text = draw(st.sampled_from(WILD_NUMBERS))
    elif kind == "int" or choice <= 3:
        text = draw(
            st.one_of(st.sampled_from(INT_TEXTS), st.integers(-(2**63), 2**63 - 1).map(str))
        )
    elif choice <= 6:
        text = draw(st.sampled_from(FLOAT_TEXTS))
    elif choice <= 8:
        whole = draw(st.integers(0, 10**17))
        fraction = draw(st.text(alphabet="0123456789", min_size=1, max_size=20))
        text = f"{whole}.{fraction}"
    else:
        mantissa = draw(st.integers(0, 10**17))
        text = f"{mantissa}e{draw(st.integers(-340, 320))}"
    if kind == "int" and wild and choice == 9:
        text = draw(st.sampled_from(FLOAT_TEXTS))  # a fraction or exponent for a whole number
    return draw(signed(text))


@st.composite
def signed(draw: st.DrawFn, literal: str) -> str:
    """Wrap a literal in signs and parentheses: -(30), +(-30), - -30, ((30)), -(+(-(30)))."""
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        literal = draw(
            st.sampled_from(
                [f"-{literal}", f"+{literal}", f"- {literal}", f"({literal})", f"-({literal})"]
            )
        )
    return literal


@st.composite
def string_text(draw: st.DrawFn, wild: bool) -> str:
    """A quoted string; wild ones have escapes, doubled or adjacent quotes, prefixes, signs."""
    if not wild:
        content = draw(
            st.one_of(
                st.sampled_from(CLEAN_STRINGS),
                st.text(alphabet="US%_'\" é😀\nab", max_size=6),
            ).filter(lambda c: "'" not in c or '"' not in c)
        )
        quote = '"' if "'" in content else draw(st.sampled_from(["'", "'", '"']))
        if quote == '"' and '"' in content:
            quote = "'"
        return f"{quote}{content}{quote}"
    content = draw(st.sampled_from(WILD_STRINGS + CLEAN_STRINGS))
    quote = draw(st.sampled_from(["'", '"']))
    prefix = draw(st.sampled_from(["", "", "r", "N", "X", "E", "-", "+", "-("]))
    literal = f"{prefix}{quote}{content}{quote}" + (")" if prefix == "-(" else "")
    if draw(st.booleans()):  # adjacent literals: concatenated by Spark SQL
        literal += draw(st.sampled_from(["", " "])) + f"'{draw(st.sampled_from(CLEAN_STRINGS))}'"
    return literal


@st.composite
def literal_for(draw: st.DrawFn, kind: schema.ColumnKind, wild: bool) -> str:
    """A literal of the column's kind (wild: sometimes of another kind)."""
    if wild and draw(st.integers(0, 3)) == 0:
        kind = draw(st.sampled_from(["int", "float", "string"]))
    if kind == "string":
        return draw(string_text(wild))
    return draw(number_text(kind, wild))


@st.composite
def column_name(draw: st.DrawFn, name: str, wild: bool) -> str:
    """A column as a marketer might write it: any case, sometimes `quoted`."""
    forms = [name, name, name.upper(), name.title(), f"`{name}`"]
    if wild:
        forms += [f"users.{name}", f"{name}x", f"`{name} `", f"({name})", f"+{name}", "*"]
    return draw(st.sampled_from(forms))


@st.composite
def predicate(draw: st.DrawFn) -> str:
    wild = draw(st.integers(0, 7)) == 0
    name, kind = draw(st.sampled_from(sorted(COLUMNS.items())))
    column = draw(column_name(name, wild))
    sp = draw(st.sampled_from(CLEAN_SPACES + (WILD_SPACES if wild else [])))
    not_ = draw(st.sampled_from(["", "", "", "NOT ", "! "]))

    def value() -> str:
        return draw(literal_for(kind, wild))

    form = draw(st.integers(0, 10 if wild else 7))
    if form <= 2:
        ops = ["=", "==", "!=", "<>", "<", "<=", ">", ">="] + (["<=>", "=>", "=<"] if wild else [])
        op = draw(st.sampled_from(ops))
        if draw(st.booleans()):
            return f"{value()}{sp}{op}{sp}{column}"
        return f"{column}{sp}{op}{sp}{value()}"
    if form == 3:
        values = [value() for _ in range(draw(st.sampled_from([1, 1, 2, 3, 5, 11, 14])))]
        listed = ", ".join(values)
        if wild:  # sqlglot drops empty elements; Spark's parser refuses them
            listed = draw(
                st.sampled_from(
                    [
                        *(f"{listed},", f"({listed})", f"{listed}, NULL", ""),
                        *(f",{listed}", f"{listed},,{value()}", f", {listed}, ,"),
                    ]
                )
            )
        return f"{column}{sp}{not_}IN ({listed})"
    if form == 4:
        symmetric = draw(st.sampled_from(["SYMMETRIC ", "ASYMMETRIC "])) if wild else ""
        return f"{column} {not_}BETWEEN {symmetric}{value()}{sp}AND {value()}"
    if form == 5:
        op = draw(st.sampled_from(["ILIKE", "RLIKE", "LIKE ANY", "LIKE ALL"])) if wild else "LIKE"
        pattern = draw(
            st.one_of(
                string_text(wild),
                st.text(alphabet="US%_ab\n😀é", max_size=5).map(lambda p: f"'{p}'"),
            )
        )
        if op in ("LIKE ANY", "LIKE ALL"):
            pattern = f"({pattern})"
        escape = " ESCAPE '!'" if wild and draw(st.booleans()) else ""
        return f"{column} {not_}{op} {pattern}{escape}"
    if form in (6, 7):
        return f"{column} IS {draw(st.sampled_from(['', 'NOT ', '! ']))}NULL"
    tail = draw(
        st.sampled_from(
            [
                *("IS TRUE", "IS NOT FALSE", "IS UNKNOWN", "IS NOT UNKNOWN", "ISNULL"),
                *("NOTNULL", "NOT NULL", "IS DISTINCT FROM 1", "IS NOT DISTINCT FROM 'US'"),
                *("= NULL", "IN (SELECT 1)", "= age", "IS NULL IS NULL", "BETWEEN 1 AND 2 AND 3"),
            ]
        )
    )
    return f"{column} {tail}"


def combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"NOT {c}"),
        children.map(lambda c: f"!({c})"),
        children.map(lambda c: f"NOT({c})"),
        st.tuples(children, children).map(lambda t: f"{t[0]} AND {t[1]}"),
        st.tuples(children, children).map(lambda t: f"{t[0]}\nOR {t[1]}"),
        st.lists(children, min_size=3, max_size=8).map(" AND ".join),  # flat chains
        st.lists(children, min_size=3, max_size=6).map(" or ".join),
    )


FILTERS = st.recursive(predicate(), combine, max_leaves=5)


# ---- the properties -----------------------------------------------------------------------
@settings(
    derandomize=True,
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # No shrinking: each example costs a Spark job, and the failure message already names the
    # one filter that differs, with its checked form.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(texts=st.lists(FILTERS, min_size=1, max_size=FILTERS_PER_EXAMPLE))
def test_engines_agree_or_the_filter_is_refused(engines: Engines, texts: list[str]) -> None:
    check_filters(engines, texts)


# Filters found by hand or by the fuzzer, kept so they run on every `make test`.
KNOWN_FILTERS = [
    "age IN (25, 30)",  # and never `age IN (,25,,30)`: see test_audience.py
    "monetary < 100000",
    "monetary >= 100000",
    "monetary IS NULL",
    "NOT monetary IS NOT NULL",
    "monetary > 0 OR monetary <= 0",
    "monetary = 0",
    "monetary = -0.0",
    "NOT(age IS NULL\nOR engagement_score NOT IN (-0e0))",  # pushdown drops 0.0 rows in Spark
    "monetary IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -0e0)",  # Spark's InSet: over 10
    "monetary > 1.7976931348623157e308 OR monetary < -1.7976931348623157e308",
    "monetary BETWEEN 5e-324 AND 1e-300",
    "monetary = 9007199254740993",
    "age = 9007199254740993",
    "age > -(30)",
    "age < -(-30)",
    "age >= -(-(30)) AND age <= +(30)",
    "age > -9223372036854775808",
    "25 < age AND age < 30",  # literal first, then AND: a column ends the comparison
    "'US' = country OR 1 < `age` AND age < 3",
    "age IN (2147483648, -2147483648, 9223372036854775807)",
    "country = 'US'",
    'country = "it\'s"',
    "country < 'U' OR country >= 'é'",
    "country LIKE 'a_b' OR country LIKE '%😀%' OR country LIKE '_'",
    "country LIKE '%' AND NOT country LIKE ''",
    "country IN ('US', 'GB', 'DE', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', '')",
    " AND ".join(["age > -1"] * 41),
    " AND ".join(["age>1"] * 200),  # a flat chain: 1,995 characters, 999 parts
    " OR ".join(f"age={n}" for n in range(150)),
]


def token_mutations(text: str) -> list[str]:
    """``text`` with one token dropped, doubled, or an AND put before it: typos."""
    from sqlglot.dialects.spark import Spark

    spans = [(t.start, t.end + 1) for t in Spark().tokenize(text)]
    dropped = [text[:start] + text[end:] for start, end in spans]
    doubled = [text[:end] + " " + text[start:end] + text[end:] for start, end in spans]
    connected = [text[:start] + "AND " + text[start:] for start, _ in spans[::2]]
    return dropped + doubled + connected


MUTATED = [
    "age IN (25, 30) AND country = 'US'",
    "NOT (monetary BETWEEN -1 AND 2.5) OR age IS NOT NULL",
    "country NOT LIKE 'U%' AND age > -(1)",
    "country IN ('US', 'GB') OR engagement_score != 0.5",
]


def test_token_mutations_are_refused_or_read_as_spark_sql_reads_them(engines: Engines) -> None:
    # Acceptance compared with Spark SQL's own parser: whatever a typo leaves that the
    # checker accepts (sqlglot fills in or drops what Spark's parser refuses, like the empty
    # elements of `age IN (,25,,30)`) must parse in Spark and select the same users.
    texts = [mutated for text in MUTATED for mutated in token_mutations(text)]
    assert len(texts) > 60
    check_filters(engines, texts)


def test_known_filters_agree_across_engines(engines: Engines) -> None:
    for text in KNOWN_FILTERS:
        assert parse_filter(text) is not None, text
    check_filters(engines, KNOWN_FILTERS)
