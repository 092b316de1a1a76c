from __future__ import annotations

import pandas as pd
import pytest

from lib.data import write_users
from lib.settings import Settings
from tests.notebooks.conftest import executed_notebook

pytestmark = [pytest.mark.notebooks, pytest.mark.spark]


def test_ibis_notebook_runs_the_same_audience_on_duckdb_and_pyspark(
    isolated_settings: Settings,
) -> None:
    write_users(isolated_settings.users_path, 800, seed=3)
    users = pd.read_parquet(isolated_settings.users_path)
    expected = int(((users.country == "US") & (users.age > 25)).sum())
    with executed_notebook("05_ibis_audiences.ipynb") as tb:
        assert tb.value("duck_count") == expected
        assert tb.value("spark_count") == expected
        assert tb.value("backends_agree") is True
        assert tb.value("int(audience_sizes.to_numpy().sum())") > 0
        assert "WHERE" in tb.value('ibis.to_sql(audience_duck, dialect="duckdb")')
