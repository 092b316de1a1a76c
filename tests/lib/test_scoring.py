from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib import schema
from lib.data import generate_users
from lib.registry import load_model, load_verified
from lib.scoring import decile_column, score_arrow, score_pandas, score_spark


@pytest.fixture(scope="module")
def users() -> pd.DataFrame:
    return generate_users(2_000, seed=42)


@pytest.fixture(scope="module")
def model(trained_model_dir: Path):
    return load_model("campaign_model_v1.cbm", trained_model_dir)


def test_pandas_scores_are_catboosts_positive_class_probability(users, model) -> None:
    scored = score_pandas(users, model, schema.FEATURES)
    expected = model.predict_proba(users[list(schema.FEATURES)])[:, 1]
    np.testing.assert_array_equal(scored[schema.SCORE].to_numpy(), expected)
    assert scored[schema.USER_ID].tolist() == users[schema.USER_ID].tolist()
    assert scored.dtypes.to_dict() == {schema.USER_ID: np.int64, schema.SCORE: np.float64}


def test_pandas_scoring_uses_the_models_feature_order(users, model) -> None:
    shuffled = users[["age", *reversed(schema.FEATURES), "country", schema.USER_ID]]
    np.testing.assert_array_equal(
        score_pandas(shuffled, model, schema.FEATURES)[schema.SCORE],
        score_pandas(users, model, schema.FEATURES)[schema.SCORE],
    )


def test_empty_batch_gives_empty_typed_frame(users, model) -> None:
    scored = score_pandas(users.head(0), model, schema.FEATURES)
    assert scored.empty
    assert list(scored.columns) == [schema.USER_ID, schema.SCORE]
    assert scored.dtypes.to_dict() == {schema.USER_ID: np.int64, schema.SCORE: np.float64}


@pytest.mark.spark
@pytest.mark.parametrize("model_file", ["campaign_model_v1.cbm", "campaign_model_v1.pkl"])
def test_spark_wrapper_matches_catboost_exactly(
    spark, users, model, trained_model_dir: Path, model_file: str
) -> None:
    frame = spark.createDataFrame(users).repartition(4)  # several batches and workers
    scored = score_spark(frame, load_verified(model_file, trained_model_dir)).toPandas()
    merged = users.merge(scored, on=schema.USER_ID)
    assert len(merged) == len(users)
    expected = model.predict_proba(merged[list(schema.FEATURES)])[:, 1]
    assert np.max(np.abs(merged[schema.SCORE].to_numpy() - expected)) <= 1e-9


@pytest.mark.spark
def test_decile_column_puts_the_best_scores_in_decile_one(spark) -> None:
    from pyspark.sql import functions as F

    scores = pd.DataFrame({"s": np.linspace(0.01, 1.0, 100)})
    cuts = np.quantile(scores["s"], np.arange(1, 10) / 10).tolist()
    out = (
        spark.createDataFrame(scores)
        .select("s", decile_column(F.col("s"), cuts).alias("d"))
        .toPandas()
        .sort_values("s", ascending=False)
    )
    assert out["d"].tolist() == [d for d in range(1, 11) for _ in range(10)]


@pytest.mark.spark
def test_decile_column_without_cut_points_is_one(spark) -> None:
    from pyspark.sql import functions as F

    out = spark.range(3).select(decile_column(F.col("id"), []).alias("d")).toPandas()
    assert out["d"].tolist() == [1, 1, 1]


def test_arrow_and_pandas_scoring_agree_bit_for_bit(users, model) -> None:
    import pyarrow as pa

    batch = pa.RecordBatch.from_pandas(users, preserve_index=False)
    arrow = score_arrow(batch, model, schema.FEATURES)
    pandas = score_pandas(users, model, schema.FEATURES)
    assert arrow.schema.names == [schema.USER_ID, schema.SCORE]
    np.testing.assert_array_equal(arrow.column(schema.SCORE).to_numpy(), pandas[schema.SCORE])
    np.testing.assert_array_equal(arrow.column(schema.USER_ID).to_numpy(), pandas[schema.USER_ID])


def test_arrow_scoring_of_an_empty_batch(users, model) -> None:
    import pyarrow as pa

    batch = pa.RecordBatch.from_pandas(users.head(0), preserve_index=False)
    scored = score_arrow(batch, model, schema.FEATURES)
    assert scored.num_rows == 0
    assert scored.schema.field(schema.SCORE).type == pa.float64()
