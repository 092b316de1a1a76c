"""Python reads the users itself (issue 17 groundwork): plan, read, filter and score by row
group, and the Spark data source that runs it; scores are CatBoost's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib import schema
from lib.audience import parse_filter
from lib.data import generate_users
from lib.parquet_source import plan_row_groups, score_row_groups, scored_users
from lib.registry import load_model, load_verified

FILTER = "country = 'US' AND age > 30"


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 users sorted by age, in row groups of 200: the filter's statistics prune some."""
    users = generate_users(2_000, seed=11).sort_values("age")
    path = tmp_path_factory.mktemp("source") / "users.parquet"
    pq.write_table(pa.Table.from_pandas(users, preserve_index=False), path, row_group_size=200)
    return path


def expected_scores(users_file: Path, models: Path, text: str | None) -> pd.DataFrame:
    """CatBoost's own predictions for the users pandas selects."""
    users = pd.read_parquet(users_file)
    if text is not None:
        users = users[(users.country == "US") & (users.age > 30)]
    model = load_model("campaign_model_v1.cbm", models)
    proba = model.predict_proba(users[list(schema.FEATURES)].to_numpy(np.float32))[:, 1]
    frame = pd.DataFrame({schema.USER_ID: users[schema.USER_ID].to_numpy(), schema.SCORE: proba})
    return frame.sort_values(schema.USER_ID).reset_index(drop=True)


def test_the_plan_skips_row_groups_the_filter_cannot_match(users_file: Path) -> None:
    everyone = plan_row_groups(str(users_file), None, tasks=2)
    audience = plan_row_groups(str(users_file), parse_filter("age > 60"), tasks=2)
    assert sum(share.rows for share in everyone) == 2_000
    assert len(everyone) == 2 and abs(everyone[0].rows - everyone[1].rows) <= 200
    assert 0 < sum(share.rows for share in audience) < 2_000  # younger row groups never read


def test_row_groups_are_read_filtered_and_scored_like_catboost(
    users_file: Path, trained_model_dir: Path
) -> None:
    model = load_model("campaign_model_v1.cbm", trained_model_dir)
    features = list(schema.FEATURES)
    audience = parse_filter(FILTER)
    batches = [
        batch
        for share in plan_row_groups(str(users_file), audience, tasks=3)
        for batch in score_row_groups(share, model, features, audience)
    ]
    got = pa.Table.from_batches(batches).to_pandas().sort_values(schema.USER_ID)
    expected = expected_scores(users_file, trained_model_dir, FILTER)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)  # bit for bit


@pytest.mark.spark
@pytest.mark.parametrize("transport", ["classic", "connect"])
def test_the_data_source_scores_like_catboost_over_both_transports(
    request: pytest.FixtureRequest,
    users_file: Path,
    trained_model_dir: Path,
    tmp_path: Path,
    transport: str,
) -> None:
    spark = request.getfixturevalue("spark" if transport == "classic" else "connect_session")
    model = load_verified("campaign_model_v1.cbm", trained_model_dir)
    scored = scored_users(spark, str(users_file), parse_filter(FILTER), model, tasks=2)
    scored.write.parquet(str(tmp_path / "out.parquet"))  # Spark's own writer and committer
    got = pd.read_parquet(tmp_path / "out.parquet").sort_values(schema.USER_ID)
    expected = expected_scores(users_file, trained_model_dir, FILTER)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)


def test_row_groups_are_never_pruned_on_a_float_column(tmp_path: Path) -> None:
    # Parquet statistics leave NaN out: a row group of 9.0 and NaN has min = max = 9.0, and
    # Arrow would read it as all 9.0, so `monetary IS NULL` would skip the NaN user.
    table = pa.table({schema.USER_ID: [1, 2, 3, 4], "monetary": [1.0, 2.0, float("nan"), 9.0]})
    pq.write_table(table, tmp_path / "u.parquet", row_group_size=2)
    plan = plan_row_groups(str(tmp_path / "u.parquet"), parse_filter("monetary IS NULL"), 2)
    assert sum(share.rows for share in plan) == 4


def test_a_filter_that_matches_no_row_group_plans_nothing(users_file: Path) -> None:
    assert plan_row_groups(str(users_file), parse_filter("age > 1000"), tasks=2) == []
