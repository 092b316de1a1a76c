from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from lib import audience
from lib.audience import parse_filter
from lib.data import generate_users
from lib.errors import AudienceFilterError

HOSTILE_FILTERS = [
    ("reflect('java.lang.Runtime', 'getRuntime')", "function calls"),
    ("java_method('java.lang.System', 'exit', 0)", "function calls"),
    ("try_reflect('java.lang.Thread', 'sleep', 100)", "function calls"),
    ("country rlike '^U'", "function calls"),
    ("country regexp '^U'", "function calls"),
    ("upper(country) = 'US'", "function calls"),
    ("age > (SELECT max(age) FROM users)", "subqueries"),
    ("EXISTS (SELECT 1)", "subqueries"),
    ("age IN (SELECT age FROM parquet.`/etc/passwd`)", "subqueries"),
    (
        "1=1 AND EXISTS (SELECT TRANSFORM(age) USING 'cat /etc/passwd' AS (x) FROM users)",
        "subqueries",
    ),
    ("TRANSFORM(age) USING 'id'", "expected a condition"),
    ("age > 1; DROP TABLE campaigns", "one condition"),
    ("country = 'US'; SELECT 1", "one condition"),
    ("salary > 100", "unknown column 'salary'"),
    ("users.age > 3", "qualified column"),
    ("age = age", "one column and one literal"),
    ("1 = 1", "one column and one literal"),
    ("age + 1 > 3", "one column and one literal"),
    ("age > '25'", "is a number"),
    ("country = 5", "is text"),
    ("age LIKE '2%'", "needs a text column"),
    ("country LIKE 'U\\%'", "backslashes"),
    ("country = 'US' OR", "could not be parsed"),
    ("TRUE", "expected a condition"),
    ("age", "expected a condition"),
    ("age > 1e400", "finite"),
    ("age > 99999999999999999999", "out of range"),
    ("age IS 5", "IS NULL"),
    ("country = X'5553'", "literal value"),
    ("age > CAST('1' AS INT)", "function calls"),
    ("country = 'O' 'Brien'", "function calls"),  # adjacent strings concatenate in Spark
    ("age > INTERVAL 1 DAY", "literal value"),
    ("country IN ()", "empty"),
    ("age = 1 " + "OR age = 1 " * 120, "too complex"),
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
        ("country = 'O\\'Brien'", "country = 'O\\'Brien'"),
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
