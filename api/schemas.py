"""Request and response bodies (Base / Create / Update / Public, as in the FastAPI template).

Types are strict where lax coercion would surprise: ``is_active`` accepts only true/false,
not 0/1 or "yes"; counts are bounded so no number can overflow a database column. The
audience filter is checked here with :mod:`lib.audience`; the model path and the features
need the model registry and are checked in :mod:`api.validation`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

from lib.audience import MAX_FILTER_LENGTH, parse_filter
from lib.errors import AudienceFilterError

MAX_ID = 2**31 - 1  # ids are INTEGER columns on both databases
MAX_COUNT = 2**62  # row counts fit a BIGINT with room to spare

Name = Annotated[StrictStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ModelPath = Annotated[StrictStr, StringConstraints(min_length=1, max_length=500)]
FeatureName = Annotated[StrictStr, StringConstraints(min_length=1, max_length=100)]
Features = Annotated[list[FeatureName], Field(min_length=1, max_length=50)]
AudienceText = Annotated[StrictStr, StringConstraints(max_length=MAX_FILTER_LENGTH)]
Count = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
RunStatus = Literal["queued", "running", "succeeded", "failed"]
Sha256 = Annotated[StrictStr, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Message(BaseModel):
    """An error answer: what went wrong, in one sentence."""

    detail: str


def _check_filter(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_filter(value)
    except AudienceFilterError as err:
        # A custom error type: the message reads as written, without "Value error, ".
        raise PydanticCustomError("audience_filter", str(err)) from None
    return value


def _check_features(value: list[str] | None) -> list[str] | None:
    if value is not None and len(set(value)) != len(value):
        duplicates = sorted({f for f in value if value.count(f) > 1})
        raise ValueError(f"features are listed twice: {duplicates}")
    return value


class CampaignBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(examples=["Black Friday Campaign"])
    model_path: ModelPath = Field(
        examples=["models/campaign_model_v1.pkl"],
        description="A registered artifact in the model directory (see models/registry.json).",
    )
    audience_filter: AudienceText | None = Field(
        default=None,
        examples=["country='US' AND age > 25"],
        description="Condition on user columns; empty or null targets every user.",
    )
    features: Features = Field(
        examples=[
            ["recency", "frequency", "monetary", "engagement_score", "days_since_last_purchase"]
        ],
        description="The model's input features (the same set the model was trained on).",
    )
    is_active: StrictBool = True

    _filter = field_validator("audience_filter")(_check_filter)
    _features = field_validator("features")(_check_features)


class CampaignCreate(CampaignBase):
    pass


class CampaignUpdate(BaseModel):
    """Fields to change; omitted fields keep their value. Only the filter may be null."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    model_path: ModelPath | None = None
    audience_filter: AudienceText | None = None
    features: Features | None = None
    is_active: StrictBool | None = None

    _filter = field_validator("audience_filter")(_check_filter)
    _features = field_validator("features")(_check_features)

    @field_validator("name", "model_path", "features", "is_active")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null (omit the field to keep its value)")
        return value


class CampaignPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    model_path: str
    audience_filter: str | None
    features: list[str]
    is_active: bool
    created_at: datetime
    updated_at: datetime


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: RunStatus = "running"
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    input_rows: Count | None = None
    audience_size: Count | None = None
    scored_rows: Count | None = None
    output_path: Annotated[StrictStr, StringConstraints(max_length=1000)] | None = None
    model_sha256: Sha256 | None = None
    error_message: Annotated[StrictStr, StringConstraints(max_length=10_000)] | None = None


class RunUpdate(RunCreate):
    status: RunStatus | None = None  # type: ignore[assignment]


class RunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    campaign_id: int
    status: RunStatus
    started_at: datetime | None
    finished_at: datetime | None
    input_rows: int | None
    audience_size: int | None
    scored_rows: int | None
    output_path: str | None
    model_sha256: str | None
    error_message: str | None
    created_at: datetime


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: str


class AudiencePreviewRequest(BaseModel):
    """A filter to try before saving it on a campaign."""

    model_config = ConfigDict(extra="forbid")

    audience_filter: AudienceText | None = Field(
        default=None, examples=["country='US' AND age > 25"]
    )
    sample_size: Annotated[StrictInt, Field(ge=0, le=50)] = 5

    _filter = field_validator("audience_filter")(_check_filter)


class AudiencePreviewPublic(BaseModel):
    """How many users match (counted with Ibis on DuckDB over the users Parquet)."""

    total_users: int
    matching_users: int
    share: float
    sample: list[dict[str, int | float | str | None]]
