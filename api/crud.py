"""Database operations. Keyword-only, no HTTP here: callers map the exceptions to answers."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.models import Campaign, Run
from api.schemas import CampaignCreate, CampaignUpdate, RunCreate, RunUpdate


class DuplicateNameError(Exception):
    """Another campaign already has this name."""


def _commit_campaign(session: Session, campaign: Campaign) -> Campaign:
    """Commit, turning the unique-name violation (also under concurrent writers) into an error."""
    try:
        session.commit()
    except IntegrityError as err:
        session.rollback()
        raise DuplicateNameError(campaign.name) from err
    session.refresh(campaign)
    return campaign


def create_campaign(*, session: Session, campaign_in: CampaignCreate) -> Campaign:
    campaign = Campaign(**campaign_in.model_dump())
    session.add(campaign)
    return _commit_campaign(session, campaign)


def get_campaign(*, session: Session, campaign_id: int) -> Campaign | None:
    return session.get(Campaign, campaign_id)


def get_campaign_by_name(*, session: Session, name: str) -> Campaign | None:
    return session.scalar(select(Campaign).where(Campaign.name == name))


def list_campaigns(
    *, session: Session, offset: int = 0, limit: int = 100, is_active: bool | None = None
) -> tuple[list[Campaign], int]:
    """A page of campaigns in id order, and how many match in total."""
    query = select(Campaign)
    if is_active is not None:
        query = query.where(Campaign.is_active == is_active)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Campaign.id).offset(offset).limit(limit)).all()
    return list(rows), total


def update_campaign(
    *, session: Session, db_campaign: Campaign, campaign_in: CampaignUpdate
) -> Campaign:
    for key, value in campaign_in.model_dump(exclude_unset=True).items():
        setattr(db_campaign, key, value)
    return _commit_campaign(session, db_campaign)


def delete_campaign(*, session: Session, db_campaign: Campaign) -> None:
    session.delete(db_campaign)
    session.commit()


def create_run(*, session: Session, campaign_id: int, run_in: RunCreate) -> Run:
    run = Run(campaign_id=campaign_id, **run_in.model_dump())
    session.add(run)
    session.commit()
    session.refresh(run)
    return run


def get_run(*, session: Session, campaign_id: int, run_id: int) -> Run | None:
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
    return list(session.scalars(query).all())


def update_run(*, session: Session, db_run: Run, run_in: RunUpdate) -> Run:
    for key, value in run_in.model_dump(exclude_unset=True).items():
        setattr(db_run, key, value)
    session.commit()
    session.refresh(db_run)
    return db_run
