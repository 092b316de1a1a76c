"""Notebook 05: one checked audience filter on Ibis's DuckDB and PySpark backends."""

from __future__ import annotations

import pandas as pd
import pytest

from lib.data import write_users
from lib.settings import Settings
from tests.notebooks.conftest import assert_no_noise, executed_notebook, output_text, outputs

pytestmark = [pytest.mark.notebooks, pytest.mark.spark]


def test_ibis_notebook_runs_the_same_audience_on_duckdb_and_pyspark(
    isolated_settings: Settings, connect_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As under `make lab`: SPARK_REMOTE is set, and Ibis still gets the classic session it
    # needs (pyspark's builder refuses a master while SPARK_REMOTE is set).
    for name, value in connect_env.items():
        monkeypatch.setenv(name, value)
    write_users(isolated_settings.users_path, 800, seed=3)
    users = pd.read_parquet(isolated_settings.users_path)
    # The default filter: five countries, an age range and a threshold (many groups to compare).
    default = (
        users.country.isin(["US", "GB", "DE", "FR", "CA"])
        & users.age.between(25, 60)
        & (users.engagement_score >= 0.3)
    )
    expected = int(default.sum())
    with executed_notebook("05_ibis_audiences.ipynb") as tb:
        assert tb.value("duck_count") == expected
        assert tb.value("spark_count") == expected
        assert tb.value("backends_agree") is True
        by_country = users[default].groupby("country").size()
        assert len(by_country) >= 4  # the comparison has many groups, not one
        assert tb.value("n_groups") == len(by_country)
        assert tb.value("duck_by_country.set_index('country')['users'].to_dict()") == (
            by_country.to_dict()
        )
        # The bar chart's audiences, each counted by pandas on the same users.
        engaged = users.country.isin(["GB", "DE", "FR"]) & (users.engagement_score >= 0.5)
        lapsed = (users.days_since_last_purchase > 180) & (users.frequency > 0)
        seed = int(((users.country == "US") & (users.age > 25)).sum())
        assert tb.value("audience_sizes.sum().to_dict()") == {
            "seed: US, over 25": seed,
            "engaged Europeans": int(engaged.sum()),
            "lapsed buyers": int(lapsed.sum()),
        }
        assert "WHERE" in tb.value('ibis.to_sql(audience_duck, dialect="duckdb")')
        # The classic session's JVM start leaves no red lines under the cell.
        assert_no_noise(output_text(tb))
        assert not [o for o in outputs(tb, "stream") if o.name == "stderr"]
