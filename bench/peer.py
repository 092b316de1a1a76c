"""The peer a user would reach for: MLflow-style batch inference with a ``pandas_udf``.

What ``mlflow.pyfunc.spark_udf`` does for a CatBoost model, without MLflow: a scalar
``pandas_udf`` (Series -> Series) over the feature columns, the model loaded once per Python
worker (a module-level cache keyed by sha256) from verified bytes in a broadcast variable.
Classic Spark only (a broadcast needs a sparkContext).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd  # at run time: pandas_udf reads the type hints to pick Series -> Series

from lib import schema

if TYPE_CHECKING:
    from catboost import CatBoostClassifier
    from pyspark.sql import DataFrame

    from lib.registry import VerifiedModel

__all__ = ["peer_scores"]

# One model per Python worker process. The UDF reaches it through an import at call time:
# a global captured by cloudpickle would travel (and be rebuilt) with every task's function.
PEER_MODELS: dict[str, CatBoostClassifier] = {}


def peer_model(sha256: str, data: bytes, model_format: str) -> CatBoostClassifier:
    """The worker's model for ``sha256``, rebuilt from ``data`` on first use."""
    model = PEER_MODELS.get(sha256)
    if model is None:
        from lib.registry import model_from_bytes

        model = PEER_MODELS[sha256] = model_from_bytes(data, model_format)
    return model


def peer_scores(users: DataFrame, model: VerifiedModel, thread_count: int = 1) -> DataFrame:
    """``user_id, prediction_score`` through a scalar pandas_udf over the feature columns."""
    from pyspark.sql.functions import pandas_udf
    from pyspark.sql.types import DoubleType

    broadcast = users.sparkSession.sparkContext.broadcast(model.data)
    sha256, model_format = model.sha256, model.format
    features = list(model.features)

    def predict(*columns: pd.Series) -> pd.Series:
        from bench.peer import peer_model  # the worker's module, so its cache is per process

        if len(columns[0]) == 0:
            return pd.Series([], dtype=np.float64)
        matrix = np.column_stack([c.to_numpy(dtype=np.float32) for c in columns])
        cat = peer_model(sha256, broadcast.value, model_format)
        proba = cat.predict_proba(matrix, thread_count=thread_count)[:, 1]
        return pd.Series(proba.astype(np.float64))

    udf = pandas_udf(predict, DoubleType())  # type: ignore[call-overload]
    return users.select(schema.USER_ID, udf(*features).alias(schema.SCORE))
