"""The config API's wire contract: one home for what the API, its client and callers share.

The API (``api.schemas``) builds its response models on these classes and the client
(``lib.api_client``) reads answers with them, so a field is spelled once. Scripts, bench,
tests and notebooks take the seed campaign, the id bounds and the default URL from here.
``lib`` never imports ``api``: the dependency points from the API to this module.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, Field

from lib.settings import DEFAULT_CONFIG_API_URL

__all__ = [
    "DEFAULT_CONFIG_API_URL",
    "MAX_ID",
    "RUN_STATUSES",
    "SCORING_PATHS",
    "CampaignFields",
    "RunFields",
    "RunStatus",
    "ScoringPath",
    "campaign_not_found",
    "parse_date",
    "parse_id",
    "seed_campaign",
]

# Ids are INTEGER columns on SQLite and PostgreSQL: the API and the job bound them alike.
MAX_ID: Final = 2**31 - 1

# An id as text: ASCII digits, no sign, separator, space or leading zero. Python's int()
# (so argparse's type=int, pydantic's lax mode and papermill's -p) also reads "+1", " 1",
# "1_0" as 10 and Arabic-Indic digits: the wrong campaign would be scored.
POSITIVE_DIGITS: Final = re.compile(r"[1-9][0-9]{0,18}")
NON_NEGATIVE_DIGITS: Final = re.compile(r"0|[1-9][0-9]{0,18}")


def parse_id(value: object, what: str = "campaign id") -> int:
    """``value`` as an id (1..MAX_ID), from an int or plain decimal text; ValueError if not.

    The one reading of an id for every entry point: the API's paths, ``lib.predict``,
    ``lib.runner``, notebook 04's ``campaign_id`` parameter (papermill ``-r``).
    """
    if isinstance(value, str):
        if value.isascii() and value.isdigit() and value[0] != "0" and len(value) > 19:
            raise ValueError(f"{what} must be between 1 and {MAX_ID}, got {value}")
        if not POSITIVE_DIGITS.fullmatch(value):
            raise ValueError(
                f"{what} must be written in plain decimal digits (no sign, spaces, "
                f"underscores or leading zeros), got {value!r}"
            )
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if not 1 <= value <= MAX_ID:
        raise ValueError(f"{what} must be between 1 and {MAX_ID}, got {value}")
    return value


ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(value: object, what: str = "as-of date") -> date:
    """A snapshot date from ``YYYY-MM-DD`` text (or a date); ValueError otherwise.

    The one reading of a date for the runner, lib.predict and notebook 04's ``as_of``.
    """
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
        raise ValueError(f"{what} must be a date written YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a calendar date") from None


RunStatus = Literal["queued", "running", "succeeded", "failed"]
RUN_STATUSES: Final[tuple[str, ...]] = get_args(RunStatus)
ACTIVE_RUN_STATUSES: Final[tuple[str, ...]] = ("queued", "running")


# How the job read the users: Python tasks read the Parquet row groups with pyarrow (local
# or mounted inputs), or Spark's JVM read them and shipped the features to Python (remote),
# or no Spark at all (notebook 04's engine="local": the benchmark's floor).
ScoringPath = Literal["python-reads", "spark-reads", "in-process"]
SCORING_PATHS: Final[tuple[str, ...]] = get_args(ScoringPath)
SCORING_PATH_DESCRIPTION: Final = (
    "How the job read the users: `python-reads` (Python tasks read the Parquet row groups "
    "with pyarrow, only the scores crossed to Spark), `spark-reads` (Spark read the input, "
    "a remote one, and shipped the features to Python) or `in-process` (no Spark: pyarrow "
    "and CatBoost in the job's own process). Null for runs of older jobs."
)

HEARTBEAT_SECONDS: Final = 30.0  # how often a running job tells the API it is alive

# After the scoring (lib.holdout, lib.drift, lib.gate): what a campaign sets and a run keeps.
DEFAULT_HOLDOUT_SHARE: Final = 0.1
MAX_HOLDOUT_SHARE: Final = 0.5
HOLDOUT_DESCRIPTION: Final = (
    "The share of the audience held out as a control group, never contacted, so that the "
    "campaign's effect can be measured (0 to 0.5; 0: no holdout). A user's group is a fixed "
    "function of the campaign and user ids: the same on every run."
)
DEFAULT_INPUT_TOLERANCE: Final = 0.05
INPUT_TOLERANCE_DESCRIPTION: Final = (
    "How far the users may stray from the model's training data before the job refuses to "
    "score them (0 to 1): the share of a feature's values that may be missing beyond the "
    "training share, and the share of its values that may lie outside the range seen at "
    "training. Within the tolerance the job scores and warns; beyond it, it stops (exit "
    "code 10) and writes nothing."
)
CONTROL_SIZE_DESCRIPTION: Final = "Audience users held out as the control group."
MAX_PSI_DESCRIPTION: Final = (
    "The largest population stability index of the run: of each feature against the "
    "model's training data and of the scores against the previous successful run "
    "(< 0.1 stable, 0.1-0.25 watch, > 0.25 act)."
)
SCORE_BINS: Final = 10
SCORE_SHARES_DESCRIPTION: Final = (
    "The share of the run's audience in each of the model's ten reference score bins: the "
    "next run's score drift compares with it."
)
AS_OF_DESCRIPTION: Final = "The snapshot date the run scored (null: the undated input)."


def campaign_not_found(campaign_id: int) -> str:
    """The API's 404 message for an unknown campaign; the client tells it from other 404s."""
    return f"Campaign {campaign_id} not found"


def seed_campaign() -> dict[str, Any]:
    """The original project's example campaign (docs/scoring-job.md, the demo, notebook 03,
    bench, tests).

    Its features are the model's, from :mod:`lib.schema`: adding a feature column there
    changes the seed body too.
    """
    from lib import schema  # here, not at the top: the client and the registry need no pyarrow

    return {
        "name": "Black Friday Campaign",
        "model_path": "models/campaign_model_v1.pkl",
        "audience_filter": "country='US' AND age > 25",
        "features": list(schema.FEATURES),
    }


class CampaignFields(BaseModel):
    """A campaign as the API answers it."""

    id: int
    name: str
    model_path: str
    audience_filter: str | None
    features: list[str]
    is_active: bool
    created_at: datetime
    updated_at: datetime
    # Defaults: answers of servers older than these fields still read.
    holdout_share: float = Field(default=DEFAULT_HOLDOUT_SHARE, description=HOLDOUT_DESCRIPTION)
    input_tolerance: float = Field(
        default=DEFAULT_INPUT_TOLERANCE, description=INPUT_TOLERANCE_DESCRIPTION
    )


HEARTBEAT_DESCRIPTION: Final = (
    "When the job last reported that it is alive (UTC; any offset is converted). The "
    f"scoring job PATCHes it about every {HEARTBEAT_SECONDS:.0f} s while it runs; null clears it."
)


class RunFields(BaseModel):
    """A scoring run as the API answers it (``stale`` is added by each side: see below)."""

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
    heartbeat_at: datetime | None = Field(default=None, description=HEARTBEAT_DESCRIPTION)
    scoring_path: ScoringPath | None = Field(default=None, description=SCORING_PATH_DESCRIPTION)
    control_size: int | None = Field(default=None, description=CONTROL_SIZE_DESCRIPTION)
    max_psi: float | None = Field(default=None, description=MAX_PSI_DESCRIPTION)
    score_shares: list[float] | None = Field(default=None, description=SCORE_SHARES_DESCRIPTION)
    as_of: date | None = Field(default=None, description=AS_OF_DESCRIPTION)
