"""/audience/preview: how many users a filter selects, before a campaign is saved.

The users Parquet is server-side data: a missing file is a 404 (generate it), and a file
that cannot be read or does not fit the filter's columns is a 503 naming the file, never
a 500: the client's request is fine, the server's data is not.

Answers also carry ``warnings`` (text values the filter compares with that no user has:
``'UK'`` where the data says ``GB``) and, when the filter selects nobody, a ``message``.
Campaign creation and updates answer the same warnings (:func:`filter_warnings`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import ValidationError

from api.deps import SettingsDep
from api.limits import MAX_MESSAGE_CHARS, StrictJSONRoute
from api.schemas import AudiencePreviewPublic, AudiencePreviewRequest, Message
from lib.audience import AudiencePreview, parse_filter, preview_parquet, value_warnings
from lib.errors import AudienceFilterError
from lib.settings import Settings

router = APIRouter(prefix="/audience", tags=["audience"], route_class=StrictJSONRoute)

USERS_DATA: dict[int | str, dict[str, Any]] = {
    404: {"model": Message, "description": "No users data to count"},
    503: {
        "model": Message,
        "description": "The users data on the server is unreadable or does not fit the "
        "filter (damaged, or a column missing or of the wrong type: regenerate it with "
        "`python -m lib.data`)",
    },
}
BAD_STORED_FILTER = {
    409: {
        "model": Message,
        "description": "The stored filter is not valid (written around the API)",
    }
}


def audience_preview(
    audience_filter: str | None, settings: Settings, sample_size: int
) -> AudiencePreviewPublic:
    """Count with Ibis on DuckDB over the users Parquet; the scoring job counts the same."""
    users = settings.users_path
    if not users.exists():
        raise HTTPException(404, f"no users data at {users}: run `python -m lib.data` first")
    try:
        audience = parse_filter(audience_filter)
    except AudienceFilterError as err:  # only a filter stored around the API gets here
        raise HTTPException(409, f"stored audience filter is invalid: {err}") from None
    try:
        preview = preview_parquet(audience, users, sample_size)
    except AudienceFilterError as err:  # the data's column types cannot take this filter
        raise HTTPException(422, f"the filter cannot be used on the users data: {err}") from None
    except _unreadable_errors() as err:
        raise _unreadable(users, err) from None
    try:
        return AudiencePreviewPublic(
            total_users=preview.total_users,
            matching_users=preview.matching_users,
            share=preview.share,
            sample=_json_safe(preview),
            warnings=value_warnings(audience, users),
            message=_nobody(preview),
        )
    except ValidationError as err:  # e.g. a date or binary column the answer cannot hold
        raise _unreadable(users, err) from None


def filter_warnings(audience_filter: str | None, settings: Settings) -> list[str]:
    """Warnings for a campaign's filter on the server's users data: advice, never a refusal.

    A stored filter the checker refuses (written around the API) has none: reading the
    campaign's audience says what is wrong with it.
    """
    try:
        audience = parse_filter(audience_filter)
    except AudienceFilterError:
        return []
    return value_warnings(audience, settings.users_path)


def _nobody(preview: AudiencePreview) -> str | None:
    """A plain sentence when the filter selects no one (None otherwise)."""
    if preview.matching_users:
        return None
    if not preview.total_users:
        return "The users data holds no users, so this filter selects nobody."
    return f"This filter selects nobody in the current data (0 of {preview.total_users} users)."


def _unreadable_errors() -> tuple[type[Exception], ...]:
    """What reading a damaged or mismatched users file raises (DuckDB, Ibis, Arrow, OS).

    Imported here, not at the top: the API starts without loading Ibis and DuckDB.
    """
    import duckdb
    import pyarrow
    from ibis.common.exceptions import IbisError

    return (duckdb.Error, IbisError, pyarrow.ArrowException, OSError)


def _unreadable(users: Path, err: Exception) -> HTTPException:
    lines = str(err).strip().splitlines()
    cause = lines[0] if lines else type(err).__name__
    if isinstance(err, ValidationError):
        cause = f"a column holds values the answer cannot show ({err.errors()[0]['msg']})"
    detail = f"users data at {users} is unreadable: {cause}"[:MAX_MESSAGE_CHARS]
    return HTTPException(503, detail)


def _json_safe(preview: AudiencePreview) -> list[dict[str, Any]]:
    """The sample with NaN and infinities as null: JSON has no spelling for them."""
    return [
        {
            key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in row.items()
        }
        for row in preview.sample
    ]


@router.post("/preview", response_model=AudiencePreviewPublic, responses=USERS_DATA)
def preview(body: AudiencePreviewRequest, settings: SettingsDep) -> AudiencePreviewPublic:
    """Try an audience filter: matching users, their share and a small sample."""
    return audience_preview(body.audience_filter, settings, body.sample_size)
