"""Warnings for compared text values no user has: advice about the data, never a refusal."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib.audience import parse_filter, text_values, value_warnings
from lib.audience.values import MAX_DISTINCT, MAX_SHOWN


def users_file(path: Path, countries: list[str | None], **columns: pa.Array) -> Path:
    table = pa.table(
        {
            "user_id": pa.array(range(len(countries)), pa.int64()),
            "country": pa.array(countries, pa.string()),
            "age": pa.array([30] * len(countries), pa.int64()),
            **columns,
        }
    )
    pq.write_table(table, path)
    return path


@pytest.fixture
def users(tmp_path: Path) -> Path:
    return users_file(tmp_path / "users.parquet", ["DE", "FR", "GB", "US", "US", None])


def warnings_for(text: str, path: Path) -> list[str]:
    return value_warnings(parse_filter(text), path)


def test_a_value_no_user_has_is_named_with_the_values_the_data_has(users: Path) -> None:
    assert warnings_for("country = 'UK'", users) == [
        "country = 'UK' matches no user: the data has 'DE', 'FR', 'GB', 'US'"
    ]


def test_in_lists_and_not_equal_are_checked_value_by_value(users: Path) -> None:
    found = warnings_for("country IN ('DE', 'XX') OR NOT (country != 'GBR')", users)
    assert found == [
        "'XX' in country IN (...) matches no user: the data has 'DE', 'FR', 'GB', 'US'",
        "country != 'GBR' leaves out no user: the data has 'DE', 'FR', 'GB', 'US' "
        "(did you mean 'GB'?)",
    ]


def test_values_that_differ_only_by_case_are_explained(users: Path) -> None:
    (warning,) = warnings_for("country = 'gb'", users)
    assert "text is compared case-sensitively" in warning
    assert warning.endswith("(did you mean 'GB'?)")


def test_values_that_occur_and_other_comparisons_are_never_warned(users: Path) -> None:
    for text in [
        "country = 'DE' AND country IN ('FR', 'US')",
        "age = 99 AND age IN (1, 2)",  # numbers are never checked
        "country < 'ZZ' OR country BETWEEN 'A' AND 'B'",  # ranges say nothing about values
        "country LIKE 'X%'",
        "country IS NULL",
    ]:
        assert warnings_for(text, users) == [], text
    assert value_warnings(None, users) == []


def test_without_users_data_there_are_no_warnings(tmp_path: Path) -> None:
    assert warnings_for("country = 'UK'", tmp_path / "missing.parquet") == []
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"not parquet")
    assert warnings_for("country = 'UK'", damaged) == []


def test_a_column_that_is_not_text_in_the_data_is_not_checked(tmp_path: Path) -> None:
    path = tmp_path / "users.parquet"
    pq.write_table(pa.table({"country": pa.array([1, 2], pa.int64())}), path)
    assert text_values(path) == {}
    assert warnings_for("country = 'UK'", path) == []


def test_a_column_with_too_many_values_is_not_checked(tmp_path: Path) -> None:
    path = users_file(tmp_path / "users.parquet", [f"c{i}" for i in range(MAX_DISTINCT + 1)])
    assert text_values(path) == {}
    assert warnings_for("country = 'UK'", path) == []


def test_long_lists_are_cut_and_dictionary_columns_read(tmp_path: Path) -> None:
    countries = [f"C{i:02d}" for i in range(MAX_SHOWN + 3)]
    path = tmp_path / "users.parquet"
    pq.write_table(pa.table({"country": pa.array(countries).dictionary_encode()}), path)
    (warning,) = warnings_for("country = 'UK'", path)
    assert warning.endswith("'C11' and 3 more")


def test_the_cache_follows_the_file(users: Path) -> None:
    assert warnings_for("country = 'UK'", users)
    stat = users.stat()
    users_file(users, ["UK", "DE"])
    os.utime(users, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later write
    assert text_values(users) == {"country": ("DE", "UK")}
    assert warnings_for("country = 'UK'", users) == []
