from __future__ import annotations

import re
import sys
from collections.abc import Callable
from decimal import Decimal

import pandas as pd
import pytest

from lib import audience
from lib.audience import AudienceFilter, parse_filter
from lib.data import generate_users
from lib.errors import AudienceFilterError

HOSTILE_FILTERS = [
    ("reflect('java.lang.Runtime', 'getRuntime')", "function calls"),
    ("java_method('java.lang.System', 'exit', 0)", "function calls"),
    ("try_reflect('java.lang.Thread', 'sleep', 100)", "function calls"),
    ("country rlike '^U'", "regular expressions are not supported"),
    ("country regexp '^U'", "regular expressions are not supported"),
    ("upper(country) = 'US'", "function calls"),
    ("age > (SELECT max(age) FROM users)", "subqueries"),
    ("EXISTS (SELECT 1)", "subqueries"),
    ("age IN (SELECT age FROM parquet.`/etc/passwd`)", "subqueries"),
    (
        "1=1 AND EXISTS (SELECT TRANSFORM(age) USING 'cat /etc/passwd' AS (x) FROM users)",
        "subqueries",
    ),
    ("TRANSFORM(age) USING 'id'", "function calls"),
    ("age > 1; DROP TABLE campaigns", "one condition"),
    ("country = 'US'; SELECT 1", "one condition"),
    ("salary > 100", "unknown column 'salary'"),
    ("users.age > 3", "qualified column"),
    ("age = age", "one column and one value"),
    ("1 = 1", "one column and one value"),
    ("age + 1 > 3", "arithmetic is not allowed"),
    ("age > '25'", "is a number"),
    ("country = 5", "is text"),
    ("age LIKE '2%'", "needs a text column"),
    ("country LIKE 'U\\%'", "backslashes"),
    ("country = 'O\\'Brien'", "backslashes"),
    ("country = 'US' OR", "the filter ends with OR"),
    ("TRUE", "TRUE and FALSE are not conditions"),
    ("age", "the filter ends after the column age"),
    ("monetary > 1e400", "finite"),
    ("monetary > -1e9999999", "finite"),  # negating it raised decimal.Overflow
    ("age > 1e3", "whole number"),
    ("age > 99999999999999999999", "out of range"),
    ("age IS 5", "IS NULL"),
    ("country = X'5553'", "needs a value after it"),
    ("age > CAST('1' AS INT)", "function calls"),
    ("country = 'O' 'Brien'", "adjacent quoted strings"),  # Spark concatenates them
    ("age > INTERVAL 1 DAY", "needs a value after it"),
    ("country IN ()", "empty"),
    ("age=1" + " OR age=1" * 220, "too complex"),  # 1,985 characters, 1,104 parts
    ("(" * 60 + "age > 1" + ")" * 60, "nested too deeply"),
    ("x" * 2001, "too long"),
    ("country = 'US'\x00", "NUL"),
]


@pytest.mark.parametrize(("text", "message"), HOSTILE_FILTERS)
def test_hostile_filters_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(AudienceFilterError, match=message):
        parse_filter(text)


@pytest.mark.parametrize("text", [None, "", "   "])
def test_empty_filter_means_every_user(text: str | None) -> None:
    assert parse_filter(text) is None


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("country='US' AND age > 25", "(country = 'US' AND age > 25)"),
        ('country = "US"', "country = 'US'"),  # Spark reads double quotes as a string
        ("25 < age", "age > 25"),
        ("AGE >= 30", "age >= 30"),
        ("`age` != 3", "age != 3"),
        ("age <> 3", "age != 3"),
        ("age > -5", "age > -5"),
        ("engagement_score >= 0.5", "engagement_score >= 0.5"),
        ("country NOT IN ('US', 'GB')", "NOT (country IN ('US', 'GB'))"),
        ("age NOT BETWEEN 20 AND 30", "NOT (age BETWEEN 20 AND 30)"),
        ("country NOT LIKE 'U%'", "NOT (country LIKE 'U%')"),
        ("age IS NOT NULL", "NOT (age IS NULL)"),
        ('country = "O\'Brien"', 'country = "O\'Brien"'),
        ("country = 'US' -- a comment", "country = 'US'"),
    ],
)
def test_valid_filters_parse_to_a_canonical_condition(text: str, canonical: str) -> None:
    parsed = parse_filter(text)
    assert parsed is not None
    assert parsed.sql == canonical


def test_parsed_filter_records_the_columns_it_reads() -> None:
    parsed = parse_filter("country = 'US' AND (age > 25 OR recency < 30)")
    assert parsed is not None
    assert parsed.columns == {"country", "age", "recency"}


# Each filter with the same condition written independently in pandas.
EQUIVALENT_FILTERS: list[tuple[str, Callable[[pd.DataFrame], pd.Series]]] = [
    ("country='US' AND age > 25", lambda d: (d.country == "US") & (d.age > 25)),
    (
        "country IN ('DE', 'FR') OR engagement_score >= 0.7",
        lambda d: d.country.isin(["DE", "FR"]) | (d.engagement_score >= 0.7),
    ),
    ("age BETWEEN 30 AND 40", lambda d: d.age.between(30, 40)),
    (
        "NOT (frequency = 0) AND monetary < 150.5",
        lambda d: (d.frequency != 0) & (d.monetary < 150.5),
    ),
    ("country LIKE 'G%'", lambda d: d.country.str.startswith("G")),
    ("country LIKE '_S'", lambda d: d.country.str.fullmatch(".S")),
    ("country NOT LIKE '%E'", lambda d: ~d.country.str.endswith("E")),
    (
        "days_since_last_purchase <> 0 AND recency <= 30",
        lambda d: (d.days_since_last_purchase != 0) & (d.recency <= 30),
    ),
    ("age IS NULL", lambda d: d.age.isna()),
    ("user_id IS NOT NULL AND user_id > 990", lambda d: d.user_id > 990),
    ("country = 'XX'", lambda d: d.country == "XX"),
]


@pytest.fixture(scope="module")
def users() -> pd.DataFrame:
    return generate_users(1_000, seed=42)


@pytest.mark.spark
@pytest.mark.parametrize(("text", "expected"), EQUIVALENT_FILTERS)
def test_spark_column_selects_what_pandas_selects(
    spark, users: pd.DataFrame, text: str, expected: Callable[[pd.DataFrame], pd.Series]
) -> None:
    frame = spark.createDataFrame(users)
    selected = frame.filter(audience.to_spark_column(parse_filter(text)))
    got = sorted(row.user_id for row in selected.select("user_id").collect())
    assert got == sorted(users.loc[expected(users), "user_id"].tolist())


@pytest.mark.spark
def test_no_filter_selects_every_user(spark, users: pd.DataFrame) -> None:
    frame = spark.createDataFrame(users)
    assert frame.filter(audience.to_spark_column(None)).count() == len(users)


@pytest.mark.parametrize(("text", "expected"), EQUIVALENT_FILTERS)
def test_ibis_expression_selects_what_pandas_selects(
    users: pd.DataFrame, text: str, expected: Callable[[pd.DataFrame], pd.Series]
) -> None:
    import ibis

    con = ibis.duckdb.connect()
    table = con.create_table("users", users)
    selected = table.filter(audience.to_ibis(parse_filter(text), table)).to_pandas()
    assert sorted(selected.user_id) == sorted(users.loc[expected(users), "user_id"])


@pytest.mark.parametrize(("text", "expected"), EQUIVALENT_FILTERS)
def test_arrow_expression_selects_what_pandas_selects(
    users: pd.DataFrame, users_parquet: str, text: str, expected
) -> None:
    import pyarrow.dataset as ds

    dataset = ds.dataset(users_parquet, format="parquet")
    expression = audience.to_arrow_expression(parse_filter(text), dataset.schema)
    selected = dataset.to_table(columns=["user_id"], filter=expression).column("user_id")
    assert sorted(selected.to_pylist()) == sorted(users.loc[expected(users), "user_id"])


def test_arrow_expression_skips_row_groups_by_their_statistics(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    ages = pa.table({"age": pa.array(range(1000), pa.int64())})
    pq.write_table(ages, tmp_path / "u.parquet", row_group_size=100)  # ten sorted row groups
    fragment = next(ds.dataset(tmp_path / "u.parquet", format="parquet").get_fragments())
    expression = audience.to_arrow_expression(parse_filter("age >= 950"), ages.schema)
    kept = fragment.split_by_row_group(filter=expression)
    assert [f.row_groups[0].id for f in kept] == [9]  # nine of ten never read


@pytest.fixture(scope="module")
def users_parquet(users: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("preview") / "users.parquet"
    users.to_parquet(path)
    return str(path)


@pytest.mark.parametrize(("text", "expected"), EQUIVALENT_FILTERS)
def test_duckdb_preview_counts_what_pandas_selects(
    users: pd.DataFrame, users_parquet: str, text: str, expected
) -> None:
    preview = audience.preview_parquet(parse_filter(text), users_parquet, sample_size=2)
    assert preview.total_users == len(users)
    assert preview.matching_users == int(expected(users).sum())
    assert [row["user_id"] for row in preview.sample] == sorted(
        users.loc[expected(users), "user_id"]
    )[:2]


@pytest.mark.spark
def test_duckdb_and_pyspark_backends_agree(spark, users_parquet: str) -> None:
    import ibis

    spark_users = ibis.pyspark.connect(spark).read_parquet(users_parquet)
    for text, _ in EQUIVALENT_FILTERS:
        checked = parse_filter(text)
        on_spark = audience.preview_audience(checked, spark_users, sample_size=3)
        on_duckdb = audience.preview_parquet(checked, users_parquet, sample_size=3)
        assert on_spark == on_duckdb, text


# ---- represented faithfully, or refused: the bugs found end to end, one test each ----------
def checked(text: str) -> audience.Condition:
    parsed = parse_filter(text)
    assert parsed is not None
    return parsed.condition


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("age > -(30)", -30),  # the sign on a parenthesised literal was dropped
        ("age > -(-30)", 30),
        ("age > -(-(30))", 30),
        ("age > +(30)", 30),
        ("age > -(+30)", -30),
        ("age > +-+-30", 30),
        ("age > - -30", 30),
        ("age > -((30))", -30),
        ("monetary > -(0.5)", Decimal("-0.5")),  # an exact DECIMAL, as Spark SQL types it
        ("monetary > -(-(2.5e-1))", 0.25),  # a DOUBLE
        ("monetary > -(9007199254740993)", -9007199254740993),  # a whole number, exactly
    ],
)
def test_signs_and_parentheses_fold_into_the_literal_exactly(text: str, value: object) -> None:
    condition = checked(text)
    assert isinstance(condition, audience.Compare)
    assert (condition.op, condition.value) == (">", value)
    assert type(condition.value) is type(value)


@pytest.mark.parametrize(
    "text", ["country = -('US')", "country = +'US'", "country = -'US'", "+age > 3", "-age > 3"]
)
def test_signs_on_text_or_columns_are_refused(text: str) -> None:
    with pytest.raises(AudienceFilterError, match=r"sign \(\+ or -\)|needs a value after it"):
        parse_filter(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("age BETWEEN SYMMETRIC 40 AND 30", "SYMMETRIC"),  # ran as BETWEEN 40 AND 30
        ("age BETWEEN ASYMMETRIC 30 AND 40", "ASYMMETRIC"),  # Spark SQL cannot read it
        ("country LIKE 'U!%' ESCAPE '!'", "ESCAPE"),
        ("country ILIKE 'us'", "ILIKE is not supported"),
        ("country LIKE ANY ('U%', 'G%')", "needs a value after it"),
        ("age IS UNKNOWN", "UNKNOWN"),  # sqlglot reads it as IS NULL
        ("age IS NOT UNKNOWN", "UNKNOWN"),
        ("age ISNULL", "ISNULL"),
        ("age NOT NULL", "IS NULL and IS NOT NULL"),  # sqlglot reads it as IS NOT NULL
        ("age IS TRUE", "IS works only as IS NULL or IS NOT NULL"),
        ("age IS DISTINCT FROM 3", "IS works only as IS NULL or IS NOT NULL"),
        ("age <=> 3", "<=> is not supported"),
        ("age = NULL", "IS NULL"),
        ("age > 10L", "typed numbers"),
        ("monetary > .5", "'.'"),
        ("age > -(-2147483648)", "overflows"),  # Spark SQL: ARITHMETIC_OVERFLOW
        ("age > - -9223372036854775808", "overflows"),
        ("monetary > 1" + "0" * 38, "too many digits"),  # Spark SQL: precision over 38
        ("monetary > 0.1" + "0" * 38, "too many digits"),
        ("age > 30.5", "whole number"),  # Spark compares exactly; refused rather than folded
        ("age = 9007199254740992e0", "whole number"),  # Spark would compare in double
    ],
)
def test_forms_sqlglot_reads_but_we_cannot_represent_are_refused(text: str, message: str) -> None:
    with pytest.raises(AudienceFilterError, match=re.escape(message)):
        parse_filter(text)


@pytest.mark.parametrize(
    "text",
    [
        "country = '\\u0055S'",  # Spark SQL reads all three as US
        "country = '\\125S'",
        "country = 'U\\S'",
        'country = "U\\S"',
        "country LIKE 'U\\_'",
        "age > 1 -- note \\\nOR age < 100",  # Spark continues the comment onto the next line
    ],
)
def test_backslashes_are_refused_anywhere(text: str) -> None:
    with pytest.raises(AudienceFilterError, match="backslashes are not allowed"):
        parse_filter(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("country = 'it''s'", "adjacent quoted strings"),  # Spark: it's, sqlglot: its
        ("country = 'it' 's'", "adjacent quoted strings"),
        ('country = "it""s"', "adjacent quoted strings"),
        ("country = N'US'", "needs a value after it"),
        ("country = r'US'", "needs a value after it"),
        ("age > 1 /* /* */ OR age < 100 */", "block comments"),  # Spark nests them
        ("age > 1 /* note */", "block comments"),
        ("age ! IN (30)", "use NOT"),  # Spark 4 reads ! as NOT only before a condition
        ("age ! BETWEEN 1 AND 30", "use NOT"),
        ("age IS ! NULL", "use NOT"),
        ("country ! LIKE 'U%'", "use NOT"),
        ("age IN (30,)", "end with a comma"),  # sqlglot drops the comma, Spark refuses it
        ("age IN (,25,,30)", "between every two commas"),  # sqlglot: IN (25, 30)
        ("monetary BETWEEN -1  2.5", "BETWEEN low AND high"),  # sqlglot fills in the AND
        ("age BETWEEN 1 2", "BETWEEN low AND high"),
        ("AND (age = 3)", "the filter starts with AND"),  # sqlglot: age = 3
        ("age > 1 OR AND (age < 5)", "OR at character 9 needs a condition after it"),
        ("age = OR (3)", "= at character 5 needs a value after it, not 'OR'"),
        ("NOT AND (age = 3)", "AND at character 5 needs a condition before it"),
        ("age NOT IS NULL", "right after a column name"),  # Spark: only IS NOT NULL
        ("age IN (25,,30)", "between every two commas"),
        ("country IN (, 'US')", "start or end with a comma"),
        ("age\u00a0> 1", "unexpected character"),
        ("age > 1\f", "unexpected character"),
    ],
)
def test_text_read_differently_by_spark_sql_is_refused(text: str, message: str) -> None:
    with pytest.raises(AudienceFilterError, match=re.escape(message)):
        parse_filter(text)


def test_double_quotes_are_a_string_as_in_spark_sql() -> None:
    assert checked('country = "US"') == checked("country = 'US'")
    assert checked('country = "it\'s"') == audience.Compare("country", "=", "it's")


@pytest.mark.parametrize("count", [2, 41, 200])
def test_flat_and_chains_are_not_nesting(count: int) -> None:
    condition = checked(" AND ".join(["age>1"] * count))  # 200: 1,995 characters, 999 parts
    assert isinstance(condition, audience.And)
    assert len(condition.operands) == count


def test_chains_flatten_through_parentheses_but_keep_or_inside_and() -> None:
    condition = checked("(age > 1 AND (age > 2 AND age > 3)) AND (age > 4 OR age > 5)")
    assert condition == audience.And(
        (
            audience.Compare("age", ">", 1),
            audience.Compare("age", ">", 2),
            audience.Compare("age", ">", 3),
            audience.Or((audience.Compare("age", ">", 4), audience.Compare("age", ">", 5))),
        )
    )


@pytest.mark.parametrize(
    "text",
    [
        "(" * 31 + "age > 1" + ")" * 31,
        "(" * 500 + "age > 1" + ")" * 500,
        "NOT " * 31 + "age > 1",
        "age > " + "-(" * 31 + "1" + ")" * 31,
        "age > " + "-" * 40 + "1",  # `--` starts a comment: a parse error either way
        "age > " + "- " * 40 + "1",
    ],
)
def test_deep_nesting_is_refused_cleanly(text: str) -> None:
    with pytest.raises(AudienceFilterError, match=r"nested too deeply|-- starts a comment"):
        parse_filter(text)


def test_recursion_error_never_escapes_even_on_a_deep_stack() -> None:
    """Whatever the caller's stack depth, deep input ends in AudienceFilterError."""

    def at_depth(frames: int) -> AudienceFilter | None:
        if frames:
            return at_depth(frames - 1)
        return parse_filter("(" * 30 + "age > 1" + ")" * 30)

    try:
        at_depth(sys.getrecursionlimit() - 200)
    except AudienceFilterError as err:
        assert "nested too deeply" in str(err)


def test_every_argument_sqlglot_may_set_is_represented_or_refused() -> None:
    """Fails when sqlglot adds an argument to a node class the checker accepts: decide it."""
    from sqlglot import exp

    for name, (represented, refused) in audience.NODE_ARGS.items():
        node_class = getattr(exp, name)
        assert isinstance(node_class, type) and issubclass(node_class, exp.Expression), name
        arg_types = set(node_class.arg_types)
        unknown = arg_types - represented - set(refused)
        assert not unknown, f"sqlglot's {name} has arguments the checker does not decide: {unknown}"
        stale = (represented | set(refused)) - arg_types
        assert not stale, f"sqlglot's {name} no longer has {stale}"
        assert not represented & set(refused), name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("age > 1 AND age IN (1) AND age BETWEEN 1 AND 2", ""),
        ("age = 1" + " OR age = 1" * 250, "too many conditions|too complex|too long"),
    ],
)
def test_limits_count_conditions_and_parts(text: str, message: str) -> None:
    if not message:
        assert parse_filter(text) is not None
        return
    with pytest.raises(AudienceFilterError, match=message):
        parse_filter(text)


@pytest.mark.spark
def test_nan_is_null_in_every_engine(spark, tmp_path) -> None:
    """`monetary < 100000` counted NaN rows in the DuckDB preview (Parquet statistics ignore
    NaN) but not in the Spark job: now NaN is NULL everywhere."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monetary = [1.0, float("nan"), 5.0, float("nan"), None, 7.5, float("inf"), -0.0]
    path = tmp_path / "users.parquet"
    table = pa.table({"user_id": list(range(len(monetary))), "monetary": monetary})
    pq.write_table(table, path, row_group_size=2)
    frame = spark.read.parquet(str(path))
    for text, expected in [
        ("monetary < 100000", {0, 2, 5, 7}),
        ("monetary IS NULL", {1, 3, 4}),
        ("NOT monetary < 100000", {6}),
        ("monetary = 0", {7}),
        ("monetary IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)", {0, 2, 7}),
    ]:
        parsed = parse_filter(text)
        on_spark = frame.filter(audience.to_spark_column(parsed)).select("user_id").collect()
        assert {row.user_id for row in on_spark} == expected, text
        preview = audience.preview_parquet(parsed, path, sample_size=10)
        assert {row["user_id"] for row in preview.sample} == expected, text
        assert preview.matching_users == len(expected), text


@pytest.mark.parametrize(
    "text",
    [
        "25 < age AND age < 30",  # the column second, then AND (a regression once)
        "'US' = country OR age > 1",
        "1 < `age` AND age < 3",
        "(1) < age OR age < 2",
        "(age > 1) AND (age < 5)",
        "NOT (age > 1) OR country = 'US'",
        "`age` IS NULL OR age IS NOT NULL AND country IN ('US')",
        "age > 1 -- a note\nAND age < 9",
        "!(age > 1) AND ! (age < 0)",
    ],
)
def test_the_documented_language_is_accepted(text: str) -> None:
    assert parse_filter(text) is not None
