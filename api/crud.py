"""Database operations. Keyword-only, no HTTP here: callers map the exceptions to answers.

Each function is one transaction (``with session.begin()``) that is over when it returns,
so no request holds a pooled connection while FastAPI serialises its response. That
matters: sync endpoints and their response serialisation share anyio's 40 worker threads,
and a burst of requests that kept their connections until the end of the request could
park every thread waiting for a connection that only a thread could give back.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import delete, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from api.models import CampaignRow, RunRow, name_key, utcnow
from api.run_states import RunTransitionError, check_run, finish_time, state_of
from api.schemas import CampaignCreate, CampaignUpdate, RunCreate, RunUpdate

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult


class DuplicateNameError(Exception):
    """Another campaign already has this name (compared by api.models.name_key)."""

    def __init__(self, name: str, existing: str | None = None) -> None:
        super().__init__(name)
        self.name = name
        self.existing = existing  # the stored name it clashes with, when it could be read


class CampaignNotFoundError(Exception):
    """The campaign does not exist (any more: a concurrent request may have deleted it)."""


class RunNotFoundError(Exception):
    """The run does not exist (any more: deleting its campaign deletes it)."""


class ConstraintError(Exception):
    """The database refused a value the schemas let through (they should agree: a bug)."""

    def __init__(self, constraint: str) -> None:
        super().__init__(constraint)
        self.constraint = constraint


def _violation(err: IntegrityError) -> tuple[str, str]:
    """(kind, detail) of a refused write: kind is unique, foreign_key or other."""
    orig = err.orig
    pgcode = getattr(orig, "pgcode", None)
    if pgcode is not None:
        diag = getattr(orig, "diag", None)
        detail = getattr(diag, "constraint_name", None) or str(orig).splitlines()[0]
        return {"23505": "unique", "23503": "foreign_key"}.get(pgcode, "other"), detail
    name = getattr(orig, "sqlite_errorname", "")
    kinds = {"SQLITE_CONSTRAINT_UNIQUE": "unique", "SQLITE_CONSTRAINT_FOREIGNKEY": "foreign_key"}
    return kinds.get(name, "other"), str(orig)


def create_campaign(*, session: Session, campaign_in: CampaignCreate) -> CampaignRow:
    campaign = CampaignRow(**campaign_in.model_dump())
    try:
        with session.begin():
            session.add(campaign)
            session.flush()  # the unique index answers here, also under concurrent writers
            session.refresh(campaign)
    except IntegrityError as err:
        kind, detail = _violation(err)
        if kind == "unique":
            name = campaign_in.name
            raise DuplicateNameError(name, _name_taken_by(session, name)) from err
        raise ConstraintError(detail) from err
    return campaign


def _name_taken_by(session: Session, name: str) -> str | None:
    """The stored name that ``name`` clashes with (None if it went away meanwhile)."""
    with session.begin():
        return session.scalar(
            select(CampaignRow.name).where(CampaignRow.name_key == name_key(name))
        )


def get_campaign(*, session: Session, campaign_id: int) -> CampaignRow | None:
    with session.begin():
        return session.get(CampaignRow, campaign_id)


def list_campaigns(
    *, session: Session, offset: int = 0, limit: int = 100, is_active: bool | None = None
) -> tuple[list[CampaignRow], int]:
    """A page of stored campaigns in id order, and how many stored rows match in total."""
    query = select(CampaignRow)
    if is_active is not None:
        query = query.where(CampaignRow.is_active == is_active)
    with session.begin():
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(CampaignRow.id).offset(offset).limit(limit)).all()
    return list(rows), total


def update_campaign(
    *, session: Session, db_campaign: CampaignRow, campaign_in: CampaignUpdate
) -> CampaignRow:
    """Apply the given fields. Raises CampaignNotFoundError when the row went away since
    it was read (a concurrent DELETE), DuplicateNameError on a taken name."""
    campaign_id = db_campaign.id  # read now: a rollback expires every attribute
    try:
        with session.begin():
            for key, value in campaign_in.model_dump(exclude_unset=True).items():
                setattr(db_campaign, key, value)
            session.flush()  # UPDATE ... WHERE id: no row matched raises StaleDataError
            # Reload (also notices a delete when there was nothing to update).
            if session.get(CampaignRow, campaign_id, populate_existing=True) is None:
                raise CampaignNotFoundError(campaign_id)
    except StaleDataError as err:
        raise CampaignNotFoundError(campaign_id) from err
    except IntegrityError as err:  # the rollback has forgotten the refused change
        kind, detail = _violation(err)
        if kind == "unique":
            name = str(campaign_in.name)
            raise DuplicateNameError(name, _name_taken_by(session, name)) from err
        raise ConstraintError(detail) from err
    return db_campaign


def delete_campaign(*, session: Session, campaign_id: int) -> None:
    """Delete the campaign (its runs go with it, ON DELETE CASCADE) in one statement, so
    two concurrent deletes cannot both succeed: the second raises CampaignNotFoundError."""
    with session.begin():
        result = session.execute(delete(CampaignRow).where(CampaignRow.id == campaign_id))
        deleted = cast("CursorResult[Any]", result).rowcount
    if not deleted:
        raise CampaignNotFoundError(campaign_id)


def _campaign_exists(session: Session, campaign_id: int) -> bool:
    with session.begin():
        return bool(session.scalar(select(exists().where(CampaignRow.id == campaign_id))))


# Signs of life that decide whether a run is stale (see api.schemas.RunPublic.stale).
LIVENESS_FIELDS = ("started_at", "heartbeat_at")


def _not_in_future(values: dict[str, Any], now: datetime) -> dict[str, Any]:
    """``values`` with signs of life later than ``now`` stored as ``now``.

    The server's clock decides liveness: a future instant (a typo, or a job host whose
    clock runs ahead) would otherwise keep a dead run from ever reading stale.
    """
    for field in LIVENESS_FIELDS:
        value = values.get(field)
        if isinstance(value, datetime) and value > now:
            values[field] = now
    return values


def create_run(*, session: Session, campaign_id: int, run_in: RunCreate) -> RunRow:
    """Record a run; CampaignNotFoundError when the campaign is missing or being deleted,
    RunTransitionError when it would not start as queued or running (api.run_states).

    started_at is stored as at most the server's current time (see _not_in_future)."""
    now = utcnow()
    values = _not_in_future(run_in.model_dump(), now)
    check_run(None, {**values, "created_at": now})
    run = RunRow(campaign_id=campaign_id, created_at=now, **values)
    try:
        with session.begin():
            session.add(run)
            session.flush()  # the foreign key refuses a campaign deleted meanwhile
            session.refresh(run)
    except IntegrityError as err:
        kind, detail = _violation(err)
        if kind == "foreign_key" or not _campaign_exists(session, campaign_id):
            raise CampaignNotFoundError(campaign_id) from err
        raise ConstraintError(detail) from err
    return run


def get_run(*, session: Session, campaign_id: int, run_id: int) -> RunRow | None:
    with session.begin():
        run = session.get(RunRow, run_id)
    return run if run is not None and run.campaign_id == campaign_id else None


def list_runs(
    *, session: Session, campaign_id: int, offset: int = 0, limit: int = 100
) -> list[RunRow]:
    """A campaign's stored runs, newest first."""
    query = (
        select(RunRow)
        .where(RunRow.campaign_id == campaign_id)
        .order_by(RunRow.id.desc())
        .offset(offset)
        .limit(limit)
    )
    with session.begin():
        return list(session.scalars(query).all())


def update_run(*, session: Session, db_run: RunRow, run_in: RunUpdate) -> RunRow:
    """Apply the given fields; RunNotFoundError when the run was deleted since it was read,
    RunTransitionError when the change breaks the run state machine (api.run_states).

    The run is read again under a row lock (PostgreSQL) in the transaction that writes it,
    and the UPDATE names the version it read (every database, SQLite included). When another
    update got in between (say a late heartbeat), the change is checked again against the
    new state, a few times: two final updates cannot both win, and a heartbeat cannot make
    the job's final update fail. started_at and heartbeat_at are stored as at most the
    server's current time."""
    run_id = db_run.id  # read now: a rollback expires every attribute
    for _ in range(UPDATE_ATTEMPTS):
        now = utcnow()
        changes = _not_in_future(run_in.model_dump(exclude_unset=True), now)
        try:
            with session.begin():
                run = session.get(RunRow, run_id, with_for_update=True, populate_existing=True)
                if run is None:
                    raise RunNotFoundError(run_id)
                before = state_of(run)
                changes = finish_time(before, changes, now)
                check_run(before, {**before, **changes})
                for key, value in changes.items():
                    setattr(run, key, value)
                # UPDATE ... WHERE id AND version: no row matched raises StaleDataError.
                session.flush()
            return run
        except StaleDataError as err:
            if not _run_exists(session, run_id):
                raise RunNotFoundError(run_id) from err
        except IntegrityError as err:
            raise ConstraintError(_violation(err)[1]) from err
    raise RunTransitionError(
        "the run kept changing while this update was checked: read it again, then retry"
    )


UPDATE_ATTEMPTS = 3


def _run_exists(session: Session, run_id: int) -> bool:
    with session.begin():
        return bool(session.scalar(select(exists().where(RunRow.id == run_id))))
