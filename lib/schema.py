"""The column contract shared by data generation, training, the API's checks and the job.

One place names every column and its type, so a rename or a new feature is one edit here
(plus retraining: see FEATURE_FIELDS).
Types are pyarrow types: Parquet, pandas and Spark (via Arrow) all map from them exactly.
"""

from __future__ import annotations

from typing import Final, Literal

import pyarrow as pa

USER_ID: Final = "user_id"
CAMPAIGN_ID: Final = "campaign_id"
LABEL: Final = "converted"
SCORE: Final = "prediction_score"
DECILE: Final = "score_decile"
GROUP: Final = "group"  # the user's holdout group: "treatment" or "control" (lib.holdout)

# The model's inputs, in the order the model is trained on: one line each. Adding a feature
# is one line here plus retraining (`make train`): data generation gives a new column a
# neutral synthetic distribution (lib.data), training, the seed campaign, the API's checks,
# the job and the notebooks all read this list.
FEATURE_FIELDS: Final[tuple[pa.Field, ...]] = (
    pa.field("recency", pa.int64(), nullable=False),  # days since the last site visit
    pa.field("frequency", pa.int64(), nullable=False),  # purchases in the last 12 months
    pa.field("monetary", pa.float64(), nullable=False),  # spend in the last 12 months
    pa.field("engagement_score", pa.float64(), nullable=False),  # 0..1, email/app activity
    pa.field("days_since_last_purchase", pa.int64(), nullable=False),
)
FEATURES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURE_FIELDS)

# Attributes a marketer targets with, but that the model does not see.
ATTRIBUTES: Final[tuple[str, ...]] = ("country", "age")

USER_SCHEMA: Final = pa.schema(
    [
        pa.field(USER_ID, pa.int64(), nullable=False),
        pa.field("country", pa.string(), nullable=False),
        pa.field("age", pa.int64(), nullable=False),
        *FEATURE_FIELDS,
    ]
)

TRAINING_SCHEMA: Final = USER_SCHEMA.append(pa.field(LABEL, pa.int64(), nullable=False))

PREDICTION_SCHEMA: Final = pa.schema(
    [
        pa.field(USER_ID, pa.int64(), nullable=False),
        pa.field(CAMPAIGN_ID, pa.int64(), nullable=False),
        pa.field(SCORE, pa.float64(), nullable=False),
        pa.field(DECILE, pa.int32(), nullable=False),
        pa.field(GROUP, pa.string(), nullable=False),  # treatment or control (lib.holdout)
        pa.field("model_sha256", pa.string(), nullable=False),
        pa.field("run_id", pa.int64(), nullable=True),
        pa.field("scored_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)

ColumnKind = Literal["int", "float", "string"]


def column_kind(name: str) -> ColumnKind:
    """The kind of a user column, for the audience filter's type checks."""
    typ = USER_SCHEMA.field(name).type
    if pa.types.is_integer(typ):
        return "int"
    if pa.types.is_floating(typ):
        return "float"
    return "string"


AUDIENCE_COLUMNS: Final[dict[str, ColumnKind]] = {
    name: column_kind(name) for name in USER_SCHEMA.names
}
