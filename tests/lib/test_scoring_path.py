"""Which way the job reads the users: Python for local Parquet, Spark where it must."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lib.errors import InvalidInputError
from lib.spark_engine import scoring_path_for


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    path = tmp_path / "users.parquet"
    pd.DataFrame({"user_id": [1, 2], "country": ["US", "GB"]}).to_parquet(path)
    return path


@pytest.fixture
def by_country(tmp_path: Path) -> Path:
    path = tmp_path / "by_country"
    pd.DataFrame({"user_id": [1, 2], "country": ["US", "GB"]}).to_parquet(
        path, partition_cols=["country"]
    )
    return path


def test_a_local_file_is_read_by_python(flat: Path) -> None:
    assert scoring_path_for(str(flat), "auto")[0] == "python-reads"
    assert scoring_path_for(flat.as_uri(), "auto")[0] == "python-reads"


@pytest.mark.parametrize("url", ["gs://bucket/users", "s3a://bucket/users", "hdfs://nn/users"])
def test_a_remote_input_is_read_by_spark_and_the_line_says_why(url: str) -> None:
    path, why = scoring_path_for(url, "auto")
    assert path == "spark-reads" and "remote" in why


def test_partition_folders_are_read_by_spark_naming_the_columns(by_country: Path) -> None:
    path, why = scoring_path_for(str(by_country), "auto")
    assert path == "spark-reads" and "partitioned by folder (country)" in why


def test_the_setting_can_force_spark_reads(flat: Path) -> None:
    assert scoring_path_for(str(flat), "spark-reads")[0] == "spark-reads"


@pytest.mark.parametrize("where", ["remote", "partitioned"])
def test_forcing_python_reads_where_it_cannot_read_is_one_line(
    by_country: Path, where: str
) -> None:
    target = "gs://bucket/users" if where == "remote" else str(by_country)
    with pytest.raises(InvalidInputError, match="SCORING_PATH=python-reads cannot read") as err:
        scoring_path_for(target, "python-reads")
    assert "\n" not in str(err.value)


def test_the_default_comes_from_the_setting(flat: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lib.settings import get_settings

    monkeypatch.setenv("SCORING_PATH", "spark-reads")
    get_settings.cache_clear()
    try:
        assert scoring_path_for(str(flat))[0] == "spark-reads"
    finally:
        monkeypatch.delenv("SCORING_PATH")
        get_settings.cache_clear()


def test_a_misspelt_scoring_path_is_refused(flat: Path) -> None:
    with pytest.raises(InvalidInputError, match="got 'spark_reads'"):
        scoring_path_for(str(flat), "spark_reads")
