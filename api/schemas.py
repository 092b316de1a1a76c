"""Request and response bodies (Base / Create / Update / Public, as in the FastAPI template).

Types are strict where lax coercion would surprise: ``is_active`` accepts only true/false,
not 0/1 or "yes"; counts are bounded so no number can overflow a database column; text
holds no NUL characters or unpaired surrogates (no database stores them faithfully);
datetimes must carry an offset and are stored in UTC. The audience filter is checked here
with :mod:`lib.audience`; the model path and the features need the model registry and are
checked in :mod:`api.validation`. Stored rows are read back through :func:`from_stored`,
which says what is wrong with a row written around the API instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    computed_field,
    field_validator,
)
from pydantic_core import PydanticCustomError

from api.limits import excerpt
from api.models import Malformed
from lib.audience import LANGUAGE_PAGE, MAX_FILTER_LENGTH, parse_filter
from lib.contract import (
    ACTIVE_RUN_STATUSES,
    AS_OF_DESCRIPTION,
    CONTROL_SIZE_DESCRIPTION,
    DEFAULT_HOLDOUT_SHARE,
    DEFAULT_INPUT_TOLERANCE,
    HEARTBEAT_DESCRIPTION,
    HOLDOUT_DESCRIPTION,
    INPUT_TOLERANCE_DESCRIPTION,
    MAX_HOLDOUT_SHARE,
    MAX_PSI_DESCRIPTION,
    NON_NEGATIVE_DIGITS,
    POSITIVE_DIGITS,
    SCORE_BINS,
    SCORE_SHARES_DESCRIPTION,
    SCORING_PATH_DESCRIPTION,
    CampaignFields,
    RunFields,
    RunStatus,
    ScoringPath,
)
from lib.errors import AudienceFilterError
from lib.settings import get_settings
from lib.text import first_invisible, without_ignorable

MAX_COUNT = 2**62  # row counts fit a BIGINT with room to spare

_UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")


def _safe_text(value: str) -> str:
    """Refuse NUL (PostgreSQL cannot store it) and unpaired surrogates (not encodable)."""
    if (found := _UNSAFE_TEXT.search(value)) is not None:
        what = "a NUL character" if found.group() == "\x00" else "an unpaired UTF-16 surrogate"
        raise PydanticCustomError(
            "text_unsafe",
            "must not contain {what} (found at index {index})",
            {"what": what, "index": found.start()},
        )
    return value


def _to_utc(value: datetime) -> datetime:
    """Store what the client meant, in UTC; refuse instants UTC cannot represent."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_range", "is outside years 1-9999 once converted to UTC"
        ) from None


def _iso_date(value: object) -> object:
    """A date as JSON text ``YYYY-MM-DD`` only (no numbers, no datetimes, no other forms)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise PydanticCustomError("date_format", "must be a date written YYYY-MM-DD")
    return value


def _visible_text(value: str) -> str:
    """Refuse what a reader cannot see: controls, format characters (BOM, zero-width space,
    bidi overrides), line and paragraph separators. A name is shown in lists, terminals and
    logs, where such characters hide a difference or rewrite the screen."""
    if (found := first_invisible(value)) is not None:
        index, escaped = found
        raise PydanticCustomError(
            "text_invisible",
            "must not contain control or invisible characters (found {char} at index {index})",
            {"char": escaped, "index": index},
        )
    if not without_ignorable(value).strip():  # e.g. only emoji presentation selectors
        raise PydanticCustomError("text_invisible", "must contain a visible character")
    return value


# StringConstraints come before the safety check, so pydantic applies them as string
# constraints (with string messages) rather than as generic length checks.
SAFE = AfterValidator(_safe_text)
Name = Annotated[
    StrictStr,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    SAFE,
    AfterValidator(_visible_text),
    Field(
        description="Unique ignoring case, letter width and runs of spaces (`Dup` and `DUP` "
        "are the same name); no control or invisible characters."
    ),
]
ModelPath = Annotated[StrictStr, StringConstraints(min_length=1, max_length=500), SAFE]
FeatureName = Annotated[StrictStr, StringConstraints(min_length=1, max_length=100), SAFE]
Features = Annotated[list[FeatureName], Field(min_length=1, max_length=50)]
AudienceText = Annotated[StrictStr, StringConstraints(max_length=MAX_FILTER_LENGTH), SAFE]
OutputPath = Annotated[StrictStr, StringConstraints(max_length=1000), SAFE]
ErrorMessage = Annotated[StrictStr, StringConstraints(max_length=10_000), SAFE]
Count = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
Sha256 = Annotated[StrictStr, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
# JSON numbers only (an int is a number too), never text: strict, finite, bounded.
HoldoutShare = Annotated[float, Field(strict=True, ge=0, le=MAX_HOLDOUT_SHARE, allow_inf_nan=False)]
Tolerance = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]
Psi = Annotated[float, Field(strict=True, ge=0, le=1e6, allow_inf_nan=False)]
Share = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]


def _add_up_to_one(shares: list[float]) -> list[float]:
    if abs(sum(shares) - 1) > 1e-6:
        raise PydanticCustomError("shares_sum", "the shares must add up to 1")
    return shares


ScoreShares = Annotated[
    list[Share], Field(min_length=SCORE_BINS, max_length=SCORE_BINS), AfterValidator(_add_up_to_one)
]
StrictDate = Annotated[date, Field(strict=False), BeforeValidator(_iso_date)]


# Path and query integers: plain decimal digits only (lib.contract's patterns, which the
# command lines share). Python's int() also reads "+1", " 1", "1_0": /campaigns/1_0 was 10.
def _decimal(pattern: re.Pattern[str], what: str) -> Any:
    def check(value: object) -> object:
        if isinstance(value, str) and not pattern.fullmatch(value):
            raise PydanticCustomError(
                "int_decimal", f"must be {what} written in plain decimal digits"
            )
        return value

    return BeforeValidator(check)


StrictPositive = _decimal(POSITIVE_DIGITS, "a positive integer")
StrictNonNegative = _decimal(NON_NEGATIVE_DIGITS, "a non-negative integer")


def _strict_bool_text(value: object) -> object:
    if isinstance(value, str) and value not in ("true", "false"):
        raise PydanticCustomError("bool_text", "must be true or false")
    return value


StrictBoolText = BeforeValidator(_strict_bool_text)


class Message(BaseModel):
    """An error answer: what went wrong, in one sentence."""

    detail: str


FILTER_DESCRIPTION = (
    "A condition on user columns, such as `country = 'DE' AND age >= 30`; empty or null "
    f"targets every user. The filter language (columns, operators, examples): "
    f"GET {LANGUAGE_PAGE} (JSON: {LANGUAGE_PAGE}.json). A refused filter's message says what "
    "to change and points there too."
)
WARNINGS_DESCRIPTION = (
    "Advice that never blocks: one sentence per text value the filter compares with "
    "(`=`, `!=`, `IN`) that no user in the server's users data has, such as `country = 'UK'` "
    "where the data says `GB`, with the values the data holds. Empty when every value occurs "
    "or there is no users data. Answered, never stored."
)


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

    # Not the demo's campaign ("Black Friday Campaign"): Swagger's "Try it out" sends this
    # example as is, and after `make demo` the seed's name would answer 409.
    name: Name = Field(examples=["Spring Sale (try-it-out example)"])
    model_path: ModelPath = Field(
        examples=["models/campaign_model_v1.pkl"],
        description="A registered artifact in the model directory (see models/registry.json).",
    )
    audience_filter: AudienceText | None = Field(
        default=None, examples=["country='US' AND age > 25"], description=FILTER_DESCRIPTION
    )
    features: Features = Field(
        examples=[
            ["recency", "frequency", "monetary", "engagement_score", "days_since_last_purchase"]
        ],
        description="The model's input features (the same set the model was trained on).",
    )
    is_active: StrictBool = True
    holdout_share: HoldoutShare = Field(
        default=DEFAULT_HOLDOUT_SHARE, examples=[0.1], description=HOLDOUT_DESCRIPTION
    )
    input_tolerance: Tolerance = Field(
        default=DEFAULT_INPUT_TOLERANCE, examples=[0.05], description=INPUT_TOLERANCE_DESCRIPTION
    )

    _filter = field_validator("audience_filter")(_check_filter)
    _features = field_validator("features")(_check_features)


class CampaignCreate(CampaignBase):
    pass


class CampaignUpdate(BaseModel):
    """Fields to change; omitted fields keep their value. Only the filter may be null."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    model_path: ModelPath | None = None
    audience_filter: AudienceText | None = Field(default=None, description=FILTER_DESCRIPTION)
    features: Features | None = None
    is_active: StrictBool | None = None
    holdout_share: HoldoutShare | None = Field(default=None, description=HOLDOUT_DESCRIPTION)
    input_tolerance: Tolerance | None = Field(default=None, description=INPUT_TOLERANCE_DESCRIPTION)

    _filter = field_validator("audience_filter")(_check_filter)
    _features = field_validator("features")(_check_features)

    @field_validator(
        "name", "model_path", "features", "is_active", "holdout_share", "input_tolerance"
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null (omit the field to keep its value)")
        return value


class CampaignPublic(CampaignFields):
    model_config = ConfigDict(from_attributes=True)


class CampaignSaved(CampaignPublic):
    """A campaign as create and update answer it: the stored fields, and warnings."""

    warnings: list[str] = Field(default_factory=list, description=WARNINGS_DESCRIPTION)


STALE_DESCRIPTION = (
    "True when the run is queued or running but its newest sign of life (the latest of "
    "heartbeat_at, started_at and created_at) is older than the server's "
    "RUN_STALE_AFTER_SECONDS (default 180) by the server's clock: the job has most likely "
    "died. Computed on every read; never stored."
)


NOT_IN_FUTURE = (
    " A time later than the server's clock is stored as the server's current time: the "
    "server's clock decides liveness (`stale`), so a future value cannot keep a dead run "
    "from going stale."
)


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: RunStatus = "running"
    started_at: UtcDatetime | None = Field(
        default=None,
        description="When the job started (UTC; any offset is converted)." + NOT_IN_FUTURE,
    )
    finished_at: UtcDatetime | None = None
    input_rows: Count | None = None
    audience_size: Count | None = None
    scored_rows: Count | None = None
    output_path: OutputPath | None = None
    model_sha256: Sha256 | None = None
    error_message: ErrorMessage | None = None
    scoring_path: ScoringPath | None = Field(default=None, description=SCORING_PATH_DESCRIPTION)
    control_size: Count | None = Field(default=None, description=CONTROL_SIZE_DESCRIPTION)
    max_psi: Psi | None = Field(default=None, description=MAX_PSI_DESCRIPTION)
    score_shares: ScoreShares | None = Field(default=None, description=SCORE_SHARES_DESCRIPTION)
    as_of: StrictDate | None = Field(default=None, description=AS_OF_DESCRIPTION)


class RunUpdate(RunCreate):
    """Fields to change; omitted fields keep their value. ``status`` may not be null."""

    status: RunStatus | None = None  # type: ignore[assignment]
    heartbeat_at: UtcDatetime | None = Field(
        default=None, description=HEARTBEAT_DESCRIPTION + NOT_IN_FUTURE
    )

    @field_validator("status")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null (omit the field to keep its value)")
        return value


class RunPublic(RunFields):
    model_config = ConfigDict(from_attributes=True)

    # Always answered (null until the first beat): required in the API's schema, while
    # lib.contract keeps a default so the client also reads answers from older servers.
    heartbeat_at: datetime | None = Field(description=HEARTBEAT_DESCRIPTION)

    @computed_field(description=STALE_DESCRIPTION)  # type: ignore[prop-decorator]
    @property
    def stale(self) -> bool:
        if self.status not in ACTIVE_RUN_STATUSES:
            return False
        seen = max(t for t in (self.heartbeat_at, self.started_at, self.created_at) if t)
        limit = timedelta(seconds=get_settings().run_stale_after_seconds)
        return datetime.now(UTC) - seen > limit


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: str


class AudiencePreviewRequest(BaseModel):
    """A filter to try before saving it on a campaign."""

    model_config = ConfigDict(extra="forbid")

    audience_filter: AudienceText | None = Field(
        default=None, examples=["country='US' AND age > 25"], description=FILTER_DESCRIPTION
    )
    sample_size: Annotated[StrictInt, Field(ge=0, le=50)] = 5

    _filter = field_validator("audience_filter")(_check_filter)


class AudiencePreviewPublic(BaseModel):
    """How many users match (counted with Ibis on DuckDB over the users Parquet)."""

    total_users: int
    matching_users: int
    share: float
    sample: list[dict[str, int | float | str | None]]
    warnings: list[str] = Field(default_factory=list, description=WARNINGS_DESCRIPTION)
    message: str | None = Field(
        default=None, description="Said when the filter selects nobody in the current data."
    )


class FilterColumn(BaseModel):
    """A column a filter may read."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    type: Literal["text", "whole number", "decimal number"]
    example: str = Field(description="A filter on this column that the API accepts.")
    values: list[str] | None = Field(
        description="A text column's distinct values in the server's users data (null: not "
        "text, no data, or too many values to list)."
    )


class FilterOperator(BaseModel):
    """An operator or keyword, with every spelling the API accepts."""

    model_config = ConfigDict(from_attributes=True)

    form: str
    spellings: list[str]
    meaning: str
    example: str = Field(description="A filter using it that the API accepts.")


class FilterExample(BaseModel):
    """A whole filter and what it selects."""

    model_config = ConfigDict(from_attributes=True)

    filter: str
    meaning: str


class FilterLanguage(BaseModel):
    """The audience filter language, generated from the checker the API validates with."""

    model_config = ConfigDict(from_attributes=True)

    summary: str
    columns: list[FilterColumn]
    operators: list[FilterOperator]
    values: list[str] = Field(description="How text and numbers are written.")
    examples: list[FilterExample]
    not_allowed: list[str]
    limits: dict[str, int]
    reference: str


PublicT = TypeVar("PublicT", bound=BaseModel)


class MalformedRowError(Exception):
    """A stored row does not fit its public schema: it was written around the API."""

    def __init__(self, what: str, problems: list[str]) -> None:
        self.what = what
        self.problems = problems
        super().__init__(f"stored {what} is malformed: " + "; ".join(problems))


def from_stored(
    model: type[PublicT], row: object, what: str, changes: Mapping[str, Any] | None = None
) -> PublicT:
    """``row`` read strictly as ``model`` (with ``changes`` applied), or MalformedRowError.

    Strict, because lax reading would hide damage: 'yes' is not a boolean in the database.
    """
    data = {name: getattr(row, name, None) for name in model.model_fields}
    data.update(changes or {})
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as err:
        problems = []
        for error in err.errors()[:10]:
            field = ".".join(str(part) for part in error["loc"])
            value = error.get("input")
            if isinstance(value, Malformed):
                problems.append(f"{field} is {value.reason} (stored {excerpt(value.raw)!r})")
            else:
                problems.append(f"{field}: {error['msg']} (stored {excerpt(value)!r})")
        raise MalformedRowError(what, problems) from None
