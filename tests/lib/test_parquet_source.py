"""Python reads the users itself: plan, read, filter and score by row group, and the Spark
tasks that run it (and the data source candidate of bench.scoring); scores are CatBoost's own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

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
from lib.spark import task_slots

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

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
    assert [share.rows for share in everyone] == [1_000, 1_000]
    assert 0 < sum(share.rows for share in audience) < 2_000  # younger row groups never read


@pytest.mark.parametrize("tasks", [1, 2, 3, 7, 10, 64])
def test_shares_cover_every_row_once_with_equal_counts(users_file: Path, tasks: int) -> None:
    plan = plan_row_groups(str(users_file), None, tasks)
    rows = [(p.group, p.start + i) for share in plan for p in share.parts for i in range(p.rows)]
    assert sorted(rows) == [(g, i) for g in range(10) for i in range(200)]
    assert len(plan) == tasks and max(s.rows for s in plan) - min(s.rows for s in plan) <= 1


def test_five_row_groups_on_two_cores_split_a_group_between_the_tasks(tmp_path: Path) -> None:
    # Whole row groups would give one task three and the other two: the job waits for three.
    pq.write_table(
        pa.table({schema.USER_ID: range(500)}), tmp_path / "u.parquet", row_group_size=100
    )
    plan = plan_row_groups(str(tmp_path / "u.parquet"), None, tasks=2)
    assert [share.rows for share in plan] == [250, 250]
    assert (plan[1].parts[0].group, plan[1].parts[0].start, plan[1].parts[0].rows) == (2, 50, 50)


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
def test_python_reads_score_like_catboost_over_both_transports(
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
    assert len(list((tmp_path / "out.parquet").glob("part-*"))) == 2  # one task per share


@pytest.mark.spark
def test_the_data_source_candidate_scores_like_catboost(
    spark: SparkSession, users_file: Path, trained_model_dir: Path, tmp_path: Path
) -> None:
    from bench.python_source import data_source_scores

    model = load_verified("campaign_model_v1.cbm", trained_model_dir)
    scored = data_source_scores(spark, str(users_file), parse_filter(FILTER), model)
    scored.write.parquet(str(tmp_path / "out.parquet"))
    got = pd.read_parquet(tmp_path / "out.parquet").sort_values(schema.USER_ID)
    expected = expected_scores(users_file, trained_model_dir, FILTER)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)


@pytest.mark.spark
@pytest.mark.parametrize("transport", ["classic", "connect"])
def test_task_slots_are_the_local_cores(request: pytest.FixtureRequest, transport: str) -> None:
    spark = request.getfixturevalue("spark" if transport == "classic" else "connect_session")
    master = spark.conf.get("spark.master")
    expected = os.cpu_count() if master == "local[*]" else int(master[len("local[") : -1])
    assert task_slots(spark) == expected


def test_row_groups_are_never_pruned_on_a_float_column(tmp_path: Path) -> None:
    # Parquet statistics leave NaN out: a row group of 9.0 and NaN has min = max = 9.0, and
    # Arrow would read it as all 9.0, so `monetary IS NULL` would skip the NaN user.
    table = pa.table({schema.USER_ID: [1, 2, 3, 4], "monetary": [1.0, 2.0, float("nan"), 9.0]})
    pq.write_table(table, tmp_path / "u.parquet", row_group_size=2)
    plan = plan_row_groups(str(tmp_path / "u.parquet"), parse_filter("monetary IS NULL"), 2)
    assert sum(share.rows for share in plan) == 4


def test_a_filter_that_matches_no_row_group_plans_nothing(users_file: Path) -> None:
    assert plan_row_groups(str(users_file), parse_filter("age > 1000"), tasks=2) == []


def test_a_share_of_many_files_holds_one_open_at_a_time(
    tmp_path: Path, trained_model_dir: Path
) -> None:
    import resource

    users = generate_users(300, seed=3)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(300):  # Spark-written inputs often have thousands of part files
        row = pa.Table.from_pandas(users.iloc[i : i + 1], preserve_index=False)
        pq.write_table(row, folder / f"part-{i:05d}.parquet")
    model = load_model("campaign_model_v1.cbm", trained_model_dir)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))
    try:
        (share,) = plan_row_groups(str(folder), None, tasks=1)
        scored = [b for b in score_row_groups(share, model, list(schema.FEATURES), None)]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert sum(batch.num_rows for batch in scored) == 300
