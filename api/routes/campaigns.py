"""/campaigns: the seed's CRUD endpoints, plus the scoring job's run records."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from api import crud
from api.deps import SessionDep, SettingsDep
from api.models import Campaign
from api.routes.audience import BAD_STORED_FILTER, NO_USERS, audience_preview
from api.schemas import (
    MAX_ID,
    AudiencePreviewPublic,
    CampaignCreate,
    CampaignPublic,
    CampaignUpdate,
    Message,
    RunCreate,
    RunPublic,
    RunUpdate,
)
from api.validation import check_model_and_features

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

CampaignId = Annotated[int, Path(ge=1, le=MAX_ID, description="The campaign's id.")]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="The run's id.")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Rows to skip.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Rows to return (1-1000).")]

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Message, "description": "Unknown id"}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Message, "description": "Another campaign has this name"}
}


def _get_or_404(session: SessionDep, campaign_id: int) -> Campaign:
    campaign = crud.get_campaign(session=session, campaign_id=campaign_id)
    if campaign is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Campaign {campaign_id} not found")
    return campaign


def _duplicate(name: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, f"A campaign named {name!r} already exists")


@router.post("/", response_model=CampaignPublic, status_code=201, responses=CONFLICT)
def create_campaign(
    campaign_in: CampaignCreate, session: SessionDep, settings: SettingsDep
) -> Campaign:
    """Create a campaign; the model must be registered and the features must be its inputs."""
    check_model_and_features(campaign_in.model_path, campaign_in.features, settings.model_dir)
    try:
        return crud.create_campaign(session=session, campaign_in=campaign_in)
    except crud.DuplicateNameError:
        raise _duplicate(campaign_in.name) from None


@router.get("/", response_model=list[CampaignPublic])
def list_campaigns(
    session: SessionDep,
    response: Response,
    offset: Offset = 0,
    limit: Limit = 100,
    is_active: Annotated[bool | None, Query(description="Only (in)active campaigns.")] = None,
) -> list[Campaign]:
    """Campaigns in id order; the total number that match is in the X-Total-Count header."""
    rows, total = crud.list_campaigns(
        session=session, offset=offset, limit=limit, is_active=is_active
    )
    response.headers["X-Total-Count"] = str(total)
    return rows


@router.get("/{campaign_id}", response_model=CampaignPublic, responses=NOT_FOUND)
def read_campaign(campaign_id: CampaignId, session: SessionDep) -> Campaign:
    return _get_or_404(session, campaign_id)


@router.put("/{campaign_id}", response_model=CampaignPublic, responses={**NOT_FOUND, **CONFLICT})
def update_campaign(
    campaign_id: CampaignId,
    campaign_in: CampaignUpdate,
    session: SessionDep,
    settings: SettingsDep,
) -> Campaign:
    """Change the given fields; the result is validated as a whole (model and features agree)."""
    campaign = _get_or_404(session, campaign_id)
    changes = campaign_in.model_dump(exclude_unset=True)
    if "model_path" in changes or "features" in changes:
        check_model_and_features(
            changes.get("model_path", campaign.model_path),
            changes.get("features", campaign.features),
            settings.model_dir,
        )
    try:
        return crud.update_campaign(session=session, db_campaign=campaign, campaign_in=campaign_in)
    except crud.DuplicateNameError:
        raise _duplicate(changes["name"]) from None


@router.delete("/{campaign_id}", status_code=204, responses=NOT_FOUND)
def delete_campaign(campaign_id: CampaignId, session: SessionDep) -> Response:
    """Delete a campaign and its run records."""
    crud.delete_campaign(session=session, db_campaign=_get_or_404(session, campaign_id))
    return Response(status_code=204)


@router.post("/{campaign_id}/runs", response_model=RunPublic, status_code=201, responses=NOT_FOUND)
def create_run(campaign_id: CampaignId, run_in: RunCreate, session: SessionDep) -> Any:
    """Record that the scoring job started (or was queued) for this campaign."""
    _get_or_404(session, campaign_id)
    return crud.create_run(session=session, campaign_id=campaign_id, run_in=run_in)


@router.get("/{campaign_id}/runs", response_model=list[RunPublic], responses=NOT_FOUND)
def list_runs(
    campaign_id: CampaignId, session: SessionDep, offset: Offset = 0, limit: Limit = 100
) -> Any:
    """The campaign's runs, newest first."""
    _get_or_404(session, campaign_id)
    return crud.list_runs(session=session, campaign_id=campaign_id, offset=offset, limit=limit)


@router.get("/{campaign_id}/runs/{run_id}", response_model=RunPublic, responses=NOT_FOUND)
def read_run(campaign_id: CampaignId, run_id: RunId, session: SessionDep) -> Any:
    run = crud.get_run(session=session, campaign_id=campaign_id, run_id=run_id)
    if run is None:
        raise HTTPException(404, f"Run {run_id} of campaign {campaign_id} not found")
    return run


@router.patch("/{campaign_id}/runs/{run_id}", response_model=RunPublic, responses=NOT_FOUND)
def update_run(
    campaign_id: CampaignId, run_id: RunId, run_in: RunUpdate, session: SessionDep
) -> Any:
    """Update a run as it progresses or finishes (status, counts, output, error)."""
    run = crud.get_run(session=session, campaign_id=campaign_id, run_id=run_id)
    if run is None:
        raise HTTPException(404, f"Run {run_id} of campaign {campaign_id} not found")
    return crud.update_run(session=session, db_run=run, run_in=run_in)


@router.get(
    "/{campaign_id}/audience",
    response_model=AudiencePreviewPublic,
    responses={**NOT_FOUND, **NO_USERS, **BAD_STORED_FILTER},
)
def campaign_audience(
    campaign_id: CampaignId,
    session: SessionDep,
    settings: SettingsDep,
    sample_size: Annotated[int, Query(ge=0, le=50, description="Users to show.")] = 5,
) -> AudiencePreviewPublic:
    """The campaign's audience: matching users, their share and a small sample."""
    campaign = _get_or_404(session, campaign_id)
    return audience_preview(campaign.audience_filter, settings, sample_size)
