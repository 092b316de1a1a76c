from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lib import data, schema
from lib.errors import InvalidInputError


def test_same_seed_gives_identical_users() -> None:
    pd.testing.assert_frame_equal(
        data.generate_users(500, seed=3), data.generate_users(500, seed=3)
    )


def test_different_seeds_give_different_users() -> None:
    first, second = data.generate_users(500, seed=3), data.generate_users(500, seed=4)
    assert not first["monetary"].equals(second["monetary"])


def test_user_ids_are_unique_and_start_at_one() -> None:
    users = data.generate_users(70_000)  # crosses a block boundary
    assert users[schema.USER_ID].tolist() == list(range(1, 70_001))


def test_columns_and_dtypes_follow_the_schema(tmp_path: Path) -> None:
    path = data.write_users(tmp_path / "u.parquet", 100)
    assert pq.read_schema(path).remove_metadata() == schema.USER_SCHEMA.remove_metadata()


def test_training_data_adds_a_binary_label(tmp_path: Path) -> None:
    path = data.write_users(tmp_path / "t.parquet", 2_000, labelled=True)
    table = pd.read_parquet(path)
    assert pq.read_schema(path).names == schema.TRAINING_SCHEMA.names
    assert set(table[schema.LABEL].unique()) == {0, 1}
    assert 0.1 < table[schema.LABEL].mean() < 0.5


def test_values_stay_in_their_ranges() -> None:
    users = data.generate_users(20_000)
    assert users["age"].between(18, 80).all()
    assert users["recency"].between(0, 365).all()
    assert (users["frequency"] >= 0).all()
    assert (users["monetary"] >= 0).all()
    assert users["engagement_score"].between(0, 1).all()
    assert users["days_since_last_purchase"].between(0, 730).all()
    assert set(users["country"]) == set(data.COUNTRY_WEIGHTS)


def test_us_is_the_largest_country() -> None:
    shares = data.generate_users(20_000)["country"].value_counts(normalize=True)
    assert shares.idxmax() == "US"
    assert shares["US"] == pytest.approx(data.COUNTRY_WEIGHTS["US"], abs=0.02)


def test_label_follows_the_known_conversion_function() -> None:
    users = data.generate_users(30_000, seed=11, labelled=True)
    truth = data.conversion_probability(users)
    high, low = users[truth > 0.5], users[truth < 0.1]
    assert high[schema.LABEL].mean() > 0.5 > low[schema.LABEL].mean()


def test_chunked_write_equals_in_memory_table(tmp_path: Path) -> None:
    n = 200_000
    path = data.write_users(tmp_path / "big.parquet", n, seed=5, chunk_rows=65_536)
    assert pq.ParquetFile(path).num_row_groups > 1
    pd.testing.assert_frame_equal(pd.read_parquet(path), data.generate_users(n, seed=5))


@pytest.mark.parametrize("n_users", [0, -5])
def test_non_positive_user_count_is_refused(n_users: int) -> None:
    with pytest.raises(InvalidInputError, match="positive"):
        data.generate_users(n_users)


def test_cli_writes_the_default_sample(isolated_settings) -> None:
    assert data.main([]) == 0
    users = pd.read_parquet(isolated_settings.users_path)
    assert len(users) == 1_000


def test_output_under_a_file_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(InvalidInputError, match="cannot write"):
        data.write_users(blocker / "u.parquet", 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-dir"]


def test_failed_write_keeps_previous_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = data.write_users(tmp_path / "u.parquet", 100, seed=1)
    before = target.read_bytes()
    first_chunk = data.generate_users(10)

    def exploding_batches(*args, **kwargs):
        yield first_chunk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data, "iter_user_batches", exploding_batches)
    with pytest.raises(InvalidInputError, match="No space left"):
        data.write_users(target, 100, seed=2)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["u.parquet"]


def test_conversion_probability_is_a_probability() -> None:
    p = data.conversion_probability(data.generate_users(5_000))
    assert np.all((p > 0) & (p < 1))


def test_written_users_file_has_the_default_mode_not_mkstemps_0600(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = data.write_users(tmp_path / "users.parquet", 50, seed=1)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
