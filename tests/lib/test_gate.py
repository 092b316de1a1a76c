"""lib.gate: the input is refused (exit 10) or warned about against the training reference."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib import schema
from lib.data import generate_users
from lib.drift import Reference, range_key, reference_profile
from lib.errors import InputGateError
from lib.gate import check_input, check_ranges

FEATURES = list(schema.FEATURES)


@pytest.fixture(scope="module")
def reference() -> Reference:
    users = generate_users(5_000, seed=7)
    return reference_profile(users, FEATURES, np.zeros(len(users)))


def write(path: Path, users: pd.DataFrame) -> str:
    pq.write_table(pa.Table.from_pandas(users, preserve_index=False), path)
    return str(path)


def test_an_input_like_the_training_data_passes(reference: Reference, tmp_path: Path) -> None:
    path = write(tmp_path / "u.parquet", generate_users(1_000, seed=8))
    assert check_input(path, reference, 0.05).warnings == []


def test_fractions_where_the_model_learned_whole_numbers_are_refused(
    reference: Reference, tmp_path: Path
) -> None:
    users = generate_users(100, seed=8).astype({"frequency": "float64"})
    with pytest.raises(InputGateError, match="frequency holds fractions"):
        check_input(write(tmp_path / "u.parquet", users), reference, 1.0)  # even at tolerance 1


def test_a_text_feature_is_refused(reference: Reference, tmp_path: Path) -> None:
    users = generate_users(100, seed=8).astype({"monetary": "str"})
    with pytest.raises(InputGateError, match="monetary is string"):
        check_input(write(tmp_path / "u.parquet", users), reference, 1.0)


def test_decimals_are_numbers(reference: Reference, tmp_path: Path) -> None:
    users = generate_users(100, seed=8)
    users["monetary"] = [Decimal(f"{v:.2f}") for v in users["monetary"]]
    assert check_input(write(tmp_path / "u.parquet", users), reference, 0.05).warnings == []


@pytest.mark.parametrize(
    ("missing", "tolerance", "refused"), [(0.5, 0.05, True), (0.03, 0.05, False)]
)
def test_missing_values_beyond_the_tolerance_are_refused_within_it_warned(
    reference: Reference, tmp_path: Path, missing: float, tolerance: float, refused: bool
) -> None:
    users = generate_users(1_000, seed=8)
    users["engagement_score"] = users["engagement_score"].mask(np.arange(1_000) < missing * 1_000)
    path = write(tmp_path / "u.parquet", users)
    if refused:
        with pytest.raises(InputGateError, match=r"engagement_score: 50.0% of values missing"):
            check_input(path, reference, tolerance)
    else:
        assert check_input(path, reference, tolerance).warnings == [
            "engagement_score: 3.0% of values missing (training: 0.0%)"
        ]


def test_values_outside_the_training_range(reference: Reference) -> None:
    profile = {range_key("recency"): [0, 20, 1_000, 0]}  # 2% above the training maximum
    warned = check_ranges(reference, profile, 0.05)
    assert len(warned.warnings) == 1 and "2.0% of values outside" in warned.warnings[0]
    with pytest.raises(InputGateError, match=r"recency: 2.0% of values outside"):
        check_ranges(reference, profile, 0.01)
    assert check_ranges(reference, {range_key("recency"): [0, 0, 1_000, 0]}, 0.0).warnings == []
