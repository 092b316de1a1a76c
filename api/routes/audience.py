"""/audience/preview: how many users a filter selects, before a campaign is saved."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from api.deps import SettingsDep
from api.limits import StrictJSONRoute
from api.schemas import AudiencePreviewPublic, AudiencePreviewRequest, Message
from lib.audience import parse_filter, preview_parquet
from lib.errors import AudienceFilterError
from lib.settings import Settings

router = APIRouter(prefix="/audience", tags=["audience"], route_class=StrictJSONRoute)

NO_USERS = {404: {"model": Message, "description": "No users data to count"}}
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
    preview = preview_parquet(audience, users, sample_size)
    return AudiencePreviewPublic(
        total_users=preview.total_users,
        matching_users=preview.matching_users,
        share=preview.share,
        sample=preview.sample,
    )


@router.post("/preview", response_model=AudiencePreviewPublic, responses=NO_USERS)
def preview(body: AudiencePreviewRequest, settings: SettingsDep) -> AudiencePreviewPublic:
    """Try an audience filter: matching users, their share and a small sample."""
    return audience_preview(body.audience_filter, settings, body.sample_size)
