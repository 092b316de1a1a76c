"""Database operations. Keyword-only, no HTTP here: callers map the exceptions to answers.

Each function is one transaction (``with session.begin()``) that is over when it returns,
so no request holds a pooled connection while FastAPI serialises its response. That
matters: sync endpoints and their response serialisation share anyio's 40 worker threads,
and a burst of requests that kept their connections until the end of the request could
park every thread waiting for a connection that only a thread could give back.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.models import Campaign, Run
from api.schemas import CampaignCreate, CampaignUpdate, RunCreate, RunUpdate


class DuplicateNameError(Exception):
    """Another campaign already has this name."""


def create_campaign(*, session: Session, campaign_in: CampaignCreate) -> Campaign:
    campaign = Campaign(**campaign_in.model_dump())
    try:
        with session.begin():
            session.add(campaign)
            session.flush()  # the unique index answers here, also under concurrent writers
            session.refresh(campaign)
    except IntegrityError as err:
        raise DuplicateNameError(campaign.name) from err
    return campaign


def get_campaign(*, session: Session, campaign_id: int) -> Campaign | None:
    with session.begin():
        return session.get(Campaign, campaign_id)


def list_campaigns(
    *, session: Session, offset: int = 0, limit: int = 100, is_active: bool | None = None
) -> tuple[list[Campaign], int]:
    """A page of campaigns in id order, and how many match in total."""
    query = select(Campaign)
    if is_active is not None:
        query = query.where(Campaign.is_active == is_active)
    with session.begin():
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(Campaign.id).offset(offset).limit(limit)).all()
    return list(rows), total


def update_campaign(
    *, session: Session, db_campaign: Campaign, campaign_in: CampaignUpdate
) -> Campaign:
    try:
        with session.begin():
            for key, value in campaign_in.model_dump(exclude_unset=True).items():
                setattr(db_campaign, key, value)
            session.flush()
            session.refresh(db_campaign)
    except IntegrityError as err:
        session.expire(db_campaign)  # forget the refused change
        raise DuplicateNameError(str(campaign_in.name)) from err
    return db_campaign


def delete_campaign(*, session: Session, db_campaign: Campaign) -> None:
    with session.begin():
        session.delete(db_campaign)


def create_run(*, session: Session, campaign_id: int, run_in: RunCreate) -> Run:
    run = Run(campaign_id=campaign_id, **run_in.model_dump())
    with session.begin():
        session.add(run)
        session.flush()
        session.refresh(run)
    return run


def get_run(*, session: Session, campaign_id: int, run_id: int) -> Run | None:
    with session.begin():
        run = session.get(Run, run_id)
    return run if run is not None and run.campaign_id == campaign_id else None


def list_runs(
    *, session: Session, campaign_id: int, offset: int = 0, limit: int = 100
) -> list[Run]:
    """A campaign's runs, newest first."""
    query = (
        select(Run)
        .where(Run.campaign_id == campaign_id)
        .order_by(Run.id.desc())
        .offset(offset)
        .limit(limit)
    )
    with session.begin():
        return list(session.scalars(query).all())


def update_run(*, session: Session, db_run: Run, run_in: RunUpdate) -> Run:
    with session.begin():
        for key, value in run_in.model_dump(exclude_unset=True).items():
            setattr(db_run, key, value)
        session.flush()
        session.refresh(db_run)
    return db_run
