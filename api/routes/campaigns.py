"""/campaigns: the seed's CRUD endpoints, plus the scoring job's run records.

Concurrent requests on one campaign are answered 404 (it is gone) or 409, never 500:
crud raises typed errors when a row disappears under it, mapped to answers here. A stored
row that does not fit its schema (written around the API) is a 409 that says what is
wrong; lists skip such rows and log a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from api import crud
from api.deps import SessionDep, SettingsDep
from api.limits import StrictJSONRoute
from api.models import CampaignRow, RunRow
from api.routes.audience import BAD_STORED_FILTER, USERS_DATA, audience_preview, filter_warnings
from api.run_states import RunTransitionError
from api.schemas import (
    AudiencePreviewPublic,
    CampaignCreate,
    CampaignPublic,
    CampaignSaved,
    CampaignUpdate,
    MalformedRowError,
    Message,
    PublicT,
    RunCreate,
    RunPublic,
    RunUpdate,
    StrictBoolText,
    StrictNonNegative,
    StrictPositive,
    from_stored,
)
from api.validation import check_model_and_features
from lib.contract import MAX_ID, campaign_not_found
from lib.settings import Settings

log = logging.getLogger("api")

router = APIRouter(prefix="/campaigns", tags=["campaigns"], route_class=StrictJSONRoute)

_DIGITS = "Plain decimal digits only (no sign, spaces, underscores or leading zeros)."
CampaignId = Annotated[
    int, Path(ge=1, le=MAX_ID, description=f"The campaign's id. {_DIGITS}"), StrictPositive
]
RunId = Annotated[
    int, Path(ge=1, le=MAX_ID, description=f"The run's id. {_DIGITS}"), StrictPositive
]
Offset = Annotated[
    int, Query(ge=0, le=MAX_ID, description=f"Rows to skip. {_DIGITS}"), StrictNonNegative
]
Limit = Annotated[
    int, Query(ge=1, le=1000, description=f"Rows to return (1-1000). {_DIGITS}"), StrictPositive
]

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": Message, "description": "Unknown id (or deleted meanwhile)"}}
CONFLICT: Responses = {
    409: {
        "model": Message,
        "description": "Another campaign has this name, or the stored row is malformed",
    }
}
MALFORMED: Responses = {
    409: {"model": Message, "description": "The stored row is malformed (written around the API)"}
}
LIST_HEADERS = {
    "X-Total-Count": {
        "description": "Stored rows matching the query, malformed ones included (they take "
        "their place in the paging: a page may hold fewer than `limit` items).",
        "schema": {"type": "integer"},
    },
    "X-Skipped-Count": {
        "description": "Malformed stored rows left out of this page (see the server log).",
        "schema": {"type": "integer"},
    },
}

# OpenAPI links: what a client (and schemathesis' stateful tests) can do next with an answer.
_CAMPAIGN = "#/paths/~1campaigns~1{campaign_id}"
_RUNS = "#/paths/~1campaigns~1{campaign_id}~1runs"
_RUN = "#/paths/~1campaigns~1{campaign_id}~1runs~1{run_id}"
_FROM_CAMPAIGN = {"campaign_id": "$response.body#/id"}
_FROM_RUN = {"campaign_id": "$response.body#/campaign_id", "run_id": "$response.body#/id"}
CAMPAIGN_LINKS = {
    "GetCampaign": {"operationRef": f"{_CAMPAIGN}/get", "parameters": _FROM_CAMPAIGN},
    "UpdateCampaign": {"operationRef": f"{_CAMPAIGN}/put", "parameters": _FROM_CAMPAIGN},
    "DeleteCampaign": {"operationRef": f"{_CAMPAIGN}/delete", "parameters": _FROM_CAMPAIGN},
    "CreateRun": {"operationRef": f"{_RUNS}/post", "parameters": _FROM_CAMPAIGN},
    "ListRuns": {"operationRef": f"{_RUNS}/get", "parameters": _FROM_CAMPAIGN},
}
RUN_LINKS = {
    "GetRun": {"operationRef": f"{_RUN}/get", "parameters": _FROM_RUN},
    "UpdateRun": {"operationRef": f"{_RUN}/patch", "parameters": _FROM_RUN},
    "DeleteCampaign": {
        "operationRef": f"{_CAMPAIGN}/delete",
        "parameters": {"campaign_id": "$response.body#/campaign_id"},
    },
}


def _campaign_not_found(campaign_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, campaign_not_found(campaign_id))


def _run_not_found(campaign_id: int, run_id: int) -> HTTPException:
    return HTTPException(404, f"Run {run_id} of campaign {campaign_id} not found")


def _malformed(err: MalformedRowError) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, str(err))


def _get_or_404(session: SessionDep, campaign_id: int) -> CampaignRow:
    campaign = crud.get_campaign(session=session, campaign_id=campaign_id)
    if campaign is None:
        raise _campaign_not_found(campaign_id)
    return campaign


def _campaign_public(
    campaign: CampaignRow, changes: dict[str, Any] | None = None
) -> CampaignPublic:
    try:
        return from_stored(CampaignPublic, campaign, f"campaign {campaign.id}", changes)
    except MalformedRowError as err:
        raise _malformed(err) from None


def _run_public(run: RunRow, changes: dict[str, Any] | None = None) -> RunPublic:
    try:
        return from_stored(RunPublic, run, f"run {run.id}", changes)
    except MalformedRowError as err:
        raise _malformed(err) from None


def _saved(campaign: CampaignRow, settings: Settings) -> CampaignSaved:
    """The saved campaign with warnings about its filter on the users data (not stored)."""
    public = _campaign_public(campaign)
    warnings = filter_warnings(public.audience_filter, settings)
    return CampaignSaved.model_validate({**public.model_dump(), "warnings": warnings})


def _readable(rows: Sequence[Any], public: type[PublicT], what: str) -> tuple[list[PublicT], int]:
    """The rows that read as ``public``; malformed ones are logged and left out."""
    readable = []
    for row in rows:
        try:
            readable.append(from_stored(public, row, f"{what} {row.id}"))
        except MalformedRowError as err:
            log.warning("skipping from the list: %s", err)
    return readable, len(rows) - len(readable)


def _duplicate(err: crud.DuplicateNameError) -> HTTPException:
    if err.existing is None or err.existing == err.name:
        return HTTPException(409, f"A campaign named {err.name!r} already exists")
    return HTTPException(
        409,
        f"A campaign named {err.existing!r} already exists: names are compared ignoring case, "
        f"letter width and spacing, so {err.name!r} is the same name",
    )


def _refused(err: crud.ConstraintError) -> HTTPException:
    # The schemas should refuse first; if they let something through, the database did not.
    log.error("database constraint refused a validated value: %s", err.constraint)
    return HTTPException(422, f"the database refused the value ({err.constraint})")


@router.post(
    "/",
    response_model=CampaignSaved,
    status_code=201,
    responses={**CONFLICT, 201: {"links": CAMPAIGN_LINKS}},
)
def create_campaign(
    campaign_in: CampaignCreate, session: SessionDep, settings: SettingsDep
) -> CampaignSaved:
    """Create a campaign; the model must be registered and the features must be its inputs.

    `warnings` lists the filter's text values that no user has (the campaign is created all
    the same)."""
    check_model_and_features(campaign_in.model_path, campaign_in.features, settings.model_dir)
    try:
        campaign = crud.create_campaign(session=session, campaign_in=campaign_in)
    except crud.DuplicateNameError as err:
        raise _duplicate(err) from None
    except crud.ConstraintError as err:
        raise _refused(err) from None
    return _saved(campaign, settings)


@router.get("/", response_model=list[CampaignPublic], responses={200: {"headers": LIST_HEADERS}})
def list_campaigns(
    session: SessionDep,
    response: Response,
    offset: Offset = 0,
    limit: Limit = 100,
    is_active: Annotated[
        bool | None, Query(description="Only (in)active campaigns: true or false."), StrictBoolText
    ] = None,
) -> list[CampaignPublic]:
    """Campaigns in id order. X-Total-Count counts the stored rows that match; malformed
    rows are left out of the page (X-Skipped-Count says how many) and logged."""
    rows, total = crud.list_campaigns(
        session=session, offset=offset, limit=limit, is_active=is_active
    )
    campaigns, skipped = _readable(rows, CampaignPublic, "campaign")
    response.headers["X-Total-Count"] = str(total)
    response.headers["X-Skipped-Count"] = str(skipped)
    return campaigns


@router.get("/{campaign_id}", response_model=CampaignPublic, responses={**NOT_FOUND, **MALFORMED})
def read_campaign(campaign_id: CampaignId, session: SessionDep) -> CampaignPublic:
    return _campaign_public(_get_or_404(session, campaign_id))


@router.put("/{campaign_id}", response_model=CampaignSaved, responses={**NOT_FOUND, **CONFLICT})
def update_campaign(
    campaign_id: CampaignId,
    campaign_in: CampaignUpdate,
    session: SessionDep,
    settings: SettingsDep,
) -> CampaignSaved:
    """Change the given fields; the result is validated as a whole (model and features agree).

    A malformed stored row can be repaired by sending the fields that are wrong. `warnings`
    lists the resulting filter's text values that no user has (the change is saved all the
    same)."""
    campaign = _get_or_404(session, campaign_id)
    changes = campaign_in.model_dump(exclude_unset=True)
    result = _campaign_public(campaign, changes)  # what the row would be: 409 if malformed
    if "model_path" in changes or "features" in changes:
        check_model_and_features(result.model_path, result.features, settings.model_dir)
    try:
        campaign = crud.update_campaign(
            session=session, db_campaign=campaign, campaign_in=campaign_in
        )
    except crud.CampaignNotFoundError:
        raise _campaign_not_found(campaign_id) from None
    except crud.DuplicateNameError as err:
        raise _duplicate(err) from None
    except crud.ConstraintError as err:
        raise _refused(err) from None
    return _saved(campaign, settings)


@router.delete("/{campaign_id}", status_code=204, responses=NOT_FOUND)
def delete_campaign(campaign_id: CampaignId, session: SessionDep) -> Response:
    """Delete a campaign and its run records."""
    try:
        crud.delete_campaign(session=session, campaign_id=campaign_id)
    except crud.CampaignNotFoundError:
        raise _campaign_not_found(campaign_id) from None
    return Response(status_code=204)


TRANSITION: Responses = {
    409: {"model": Message, "description": "An impossible run history (the state machine)"}
}


@router.post(
    "/{campaign_id}/runs",
    response_model=RunPublic,
    status_code=201,
    responses={**NOT_FOUND, **TRANSITION, 201: {"links": RUN_LINKS}},
)
def create_run(campaign_id: CampaignId, run_in: RunCreate, session: SessionDep) -> RunPublic:
    """Record that the scoring job started (or was queued) for this campaign.

    A run starts as `queued` or `running`, without an outcome: anything else is a 409 that
    says why (the run state machine: see PATCH)."""
    try:
        run = crud.create_run(session=session, campaign_id=campaign_id, run_in=run_in)
    except crud.CampaignNotFoundError:
        raise _campaign_not_found(campaign_id) from None
    except RunTransitionError as err:
        raise HTTPException(409, str(err)) from None
    except crud.ConstraintError as err:
        raise _refused(err) from None
    return _run_public(run)


@router.get(
    "/{campaign_id}/runs",
    response_model=list[RunPublic],
    responses={**NOT_FOUND, 200: {"headers": {"X-Skipped-Count": LIST_HEADERS["X-Skipped-Count"]}}},
)
def list_runs(
    campaign_id: CampaignId,
    session: SessionDep,
    response: Response,
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[RunPublic]:
    """The campaign's runs, newest first; malformed stored runs are left out and logged."""
    _get_or_404(session, campaign_id)
    rows = crud.list_runs(session=session, campaign_id=campaign_id, offset=offset, limit=limit)
    runs, skipped = _readable(rows, RunPublic, "run")
    response.headers["X-Skipped-Count"] = str(skipped)
    return runs


@router.get(
    "/{campaign_id}/runs/{run_id}",
    response_model=RunPublic,
    responses={**NOT_FOUND, **MALFORMED},
)
def read_run(campaign_id: CampaignId, run_id: RunId, session: SessionDep) -> RunPublic:
    """One run; `stale` says whether a queued or running job has stopped reporting."""
    run = crud.get_run(session=session, campaign_id=campaign_id, run_id=run_id)
    if run is None:
        raise _run_not_found(campaign_id, run_id)
    return _run_public(run)


@router.patch(
    "/{campaign_id}/runs/{run_id}",
    response_model=RunPublic,
    responses={
        **NOT_FOUND,
        409: {"model": Message, "description": "An impossible run history, or a malformed row"},
    },
)
def update_run(
    campaign_id: CampaignId, run_id: RunId, run_in: RunUpdate, session: SessionDep
) -> RunPublic:
    """Update a run as it progresses or finishes (status, counts, output, error).

    While running, the scoring job sends `{"heartbeat_at": "<now, ISO 8601 UTC>"}` about
    every 30 s; a queued or running run without news for RUN_STALE_AFTER_SECONDS reads
    `stale: true`.

    The run state machine answers 409 with the reason for an impossible history:
    `queued → running → succeeded | failed` (or `queued → failed`); a finished run is final
    (re-sending what it holds is a no-op); `finished_at` is required exactly when finished,
    `finished_at ≥ started_at`, both no earlier than `created_at` less 5 minutes of clock
    skew; counts, output path and sha256 only on success, `error_message` only on failure."""
    run = crud.get_run(session=session, campaign_id=campaign_id, run_id=run_id)
    if run is None:
        raise _run_not_found(campaign_id, run_id)
    changes = run_in.model_dump(exclude_unset=True)
    _run_public(run, changes)  # what the row would be: 409 if it stays malformed
    try:
        run = crud.update_run(session=session, db_run=run, run_in=run_in)
    except crud.RunNotFoundError:
        raise _run_not_found(campaign_id, run_id) from None
    except RunTransitionError as err:
        raise HTTPException(409, f"run {run_id}: {err}") from None
    except crud.ConstraintError as err:
        raise _refused(err) from None
    return _run_public(run)


@router.get(
    "/{campaign_id}/audience",
    response_model=AudiencePreviewPublic,
    responses={
        **NOT_FOUND,
        **USERS_DATA,
        503: {
            **USERS_DATA[503],
            "description": f"{USERS_DATA[503]['description']}, or the database is unavailable",
        },
        409: {**BAD_STORED_FILTER[409], "description": "The stored filter or row is malformed"},
    },
)
def campaign_audience(
    campaign_id: CampaignId,
    session: SessionDep,
    settings: SettingsDep,
    sample_size: Annotated[
        int, Query(ge=0, le=50, description=f"Users to show. {_DIGITS}"), StrictNonNegative
    ] = 5,
) -> AudiencePreviewPublic:
    """The campaign's audience: matching users, their share and a small sample."""
    campaign = _campaign_public(_get_or_404(session, campaign_id))
    return audience_preview(campaign.audience_filter, settings, sample_size)
