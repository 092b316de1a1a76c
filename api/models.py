"""ORM tables. Alembic migrations (api/alembic/versions) own the real schema; tests check
that the two agree."""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from math import isfinite
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from lib.contract import (
    DEFAULT_HOLDOUT_SHARE,
    DEFAULT_INPUT_TOLERANCE,
    MAX_HOLDOUT_SHARE,
    RUN_STATUSES,
    SCORE_BINS,
    SCORING_PATHS,
)
from lib.text import without_ignorable

# Named constraints make migrations reproducible, and batch mode on SQLite possible.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def name_key(name: str) -> str:
    """What makes two campaign names the same: NFKC, case folded, runs of spaces as one.

    `Dup`, `DUP`, the NFC and NFD forms of `Café`, a full-width `Ｄup` and `Dup` followed by
    a character that renders as nothing (a variation selector) share a key. Stored
    as its sha256 (64 characters): a name of 200 characters can grow 18-fold under NFKC, past
    what a PostgreSQL index entry holds. Migration 0003 keeps its own copy of this rule.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    visible = without_ignorable(folded)  # `Dup` + a variation selector is still `Dup`
    return hashlib.sha256(" ".join(visible.split()).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Malformed:
    """A stored value that cannot be read as its column's type (written around the API)."""

    raw: object
    reason: str


class _Tolerant(TypeDecorator[Any]):
    """Reading a row never raises: a value the column's type cannot decode comes back as
    :class:`Malformed`, so one bad row (written around the API) cannot break every
    request that reads it; the routes turn it into a 409 or skip it in lists."""

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        decode = super().result_processor(dialect, coltype)

        def tolerant(value: Any) -> Any:
            if value is None or decode is None:
                return value
            try:
                return decode(value)
            except Exception as err:  # any decoder failure is the row's fault, not the request's
                return Malformed(value, f"unreadable ({type(err).__name__}: {err})")

        return tolerant


class UTCDateTime(_Tolerant):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL keeps the offset (timestamptz); SQLite stores naive text, so values are
    normalised to UTC on the way in and marked as UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone-aware UTC values")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if not isinstance(value, datetime):
            return Malformed(value, "not a timestamp")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class FeatureList(_Tolerant):
    """A JSON array of feature names: JSONB on PostgreSQL, JSON text on SQLite."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return Malformed(value, "not a JSON array of strings")
        return value


class TolerantFloat(_Tolerant):
    """A float that reads only finite numbers (SQLite stores any value in any column)."""

    impl = Float
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not isfinite(value):
            return Malformed(value, "not a finite number")
        return float(value)


class TolerantDate(_Tolerant):
    """A calendar date (SQLite: ISO text); an unreadable one is Malformed, not an error."""

    impl = Date
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None or isinstance(value, Malformed):
            return value
        return value if isinstance(value, date) else Malformed(value, "not a date")


class ShareList(_Tolerant):
    """A JSON array of ten shares (0..1): a run's score distribution (lib.drift). None is
    SQL NULL (SQLAlchemy's JSON would store the JSON text 'null')."""

    impl = JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        postgresql = dialect.name == "postgresql"
        return dialect.type_descriptor(
            JSONB(none_as_null=True) if postgresql else JSON(none_as_null=True)
        )

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or len(value) != SCORE_BINS
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1
                for v in value
            )
        ):
            return Malformed(value, f"not a JSON array of {SCORE_BINS} shares")
        return [float(v) for v in value]


class StrictBoolean(_Tolerant):
    """A boolean that reads only true/false (SQLite: 0/1); SQLAlchemy alone reads 'no' as True."""

    impl = Boolean
    cache_ok = True

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        def strict(value: Any) -> Any:
            # bool is an int subclass: True/False (PostgreSQL) and 0/1 (SQLite) pass.
            if value is None or (isinstance(value, int) and value in (0, 1)):
                return None if value is None else bool(value)
            return Malformed(value, "not a boolean")

        return strict


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _check(
    name: str, both: str | None = None, *, sqlite: str | None = None, postgresql: str | None = None
) -> list[CheckConstraint]:
    """A named CHECK constraint: one text for both databases, or one per database."""
    if both is not None:
        return [CheckConstraint(both, name=name)]
    texts = {"sqlite": sqlite, "postgresql": postgresql}
    return [
        CheckConstraint(text, name=name).ddl_if(dialect=dialect)
        for dialect, text in texts.items()
        if text is not None
    ]


# What the schemas promise and a database can enforce. Migration 0002 creates these: keep
# the texts identical. PostgreSQL enforces VARCHAR(n), BOOLEAN and BIGINT itself; SQLite
# stores any value in any column, so it needs the checks spelled out.
_COUNTS = ("input_rows", "audience_size", "scored_rows")
CAMPAIGN_CHECKS = [
    *_check("name_length", "length(name) BETWEEN 1 AND 200"),
    *_check("model_path_length", "length(model_path) BETWEEN 1 AND 500"),
    *_check("audience_filter_length", "length(audience_filter) <= 2000"),
    *_check("is_active_boolean", sqlite="is_active IN (0, 1)"),
    *_check(
        "features_array",
        # SQLite allows no subqueries in CHECK, so element types are checked on PostgreSQL only.
        sqlite="CASE WHEN json_valid(features) THEN json_type(features) = 'array' "
        "AND json_array_length(features) BETWEEN 1 AND 50 ELSE 0 END",
        postgresql="CASE WHEN jsonb_typeof(features) = 'array' "
        "THEN jsonb_array_length(features) BETWEEN 1 AND 50 "
        "AND NOT jsonb_path_exists(features, '$[*] ? (@.type() != \"string\")') ELSE false END",
    ),
    # Migration 0005 creates these.
    *_check("holdout_share_range", f"holdout_share BETWEEN 0 AND {MAX_HOLDOUT_SHARE}"),
    *_check("input_tolerance_range", "input_tolerance BETWEEN 0 AND 1"),
]
RUN_CHECKS = [
    *_check("status_known", f"status IN ({', '.join(repr(s) for s in RUN_STATUSES)})"),
    *_check("counts_non_negative", " AND ".join(f"coalesce({c}, 0) >= 0" for c in _COUNTS)),
    *_check(
        "counts_integer",
        sqlite=" AND ".join(f"typeof({c}) IN ('integer', 'null')" for c in _COUNTS),
    ),
    *_check(
        "model_sha256_hex",
        sqlite="length(model_sha256) = 64 AND model_sha256 NOT GLOB '*[^0-9a-f]*'",
        postgresql="model_sha256 ~ '^[0-9a-f]{64}$'",
    ),
    *_check("output_path_length", "length(output_path) <= 1000"),
    # Migration 0004 creates this one.
    *_check("scoring_path_known", f"scoring_path IN ({', '.join(repr(p) for p in SCORING_PATHS)})"),
    *_check("error_message_length", "length(error_message) <= 10000"),
    # Migration 0005 creates these.
    *_check("control_size_non_negative", "coalesce(control_size, 0) >= 0"),
    *_check("control_size_integer", sqlite="typeof(control_size) IN ('integer', 'null')"),
    *_check("max_psi_non_negative", "coalesce(max_psi, 0) >= 0"),
    *_check(
        "score_shares_array",
        sqlite="score_shares IS NULL OR (CASE WHEN json_valid(score_shares) THEN "
        f"json_type(score_shares) = 'array' AND json_array_length(score_shares) = {SCORE_BINS} "
        "ELSE 0 END)",
        postgresql="score_shares IS NULL OR (CASE WHEN jsonb_typeof(score_shares) = 'array' "
        f"THEN jsonb_array_length(score_shares) = {SCORE_BINS} ELSE false END)",
    ),
    *_check("as_of_date", sqlite="as_of IS NULL OR coalesce(date(julianday(as_of)) = as_of, 0)"),
]


class CampaignRow(Base):
    __tablename__ = "campaigns"
    __table_args__ = tuple(CAMPAIGN_CHECKS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # name_key(name), set with the name: the database keeps names unique by it.
    name_key: Mapped[str] = mapped_column(String(64), unique=True)
    model_path: Mapped[str] = mapped_column(String(500))
    audience_filter: Mapped[str | None] = mapped_column(Text)
    features: Mapped[list[str]] = mapped_column(FeatureList())
    is_active: Mapped[bool] = mapped_column(StrictBoolean(), default=True)
    # Migration 0005: the holdout and the input gate's tolerance (lib.contract).
    holdout_share: Mapped[float] = mapped_column(
        TolerantFloat(),
        default=DEFAULT_HOLDOUT_SHARE,
        server_default=text(str(DEFAULT_HOLDOUT_SHARE)),
    )
    input_tolerance: Mapped[float] = mapped_column(
        TolerantFloat(),
        default=DEFAULT_INPUT_TOLERANCE,
        server_default=text(str(DEFAULT_INPUT_TOLERANCE)),
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    runs: Mapped[list[RunRow]] = relationship(
        back_populates="campaign", cascade="all, delete-orphan", passive_deletes=True
    )

    @validates("name")
    def _keep_name_key(self, _: str, name: str) -> str:
        self.name_key = name_key(name)
        return name


class RunRow(Base):
    """One execution of the scoring job for a campaign."""

    __tablename__ = "campaign_runs"
    __table_args__ = tuple(RUN_CHECKS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    input_rows: Mapped[int | None] = mapped_column(BigInteger)
    audience_size: Mapped[int | None] = mapped_column(BigInteger)
    scored_rows: Mapped[int | None] = mapped_column(BigInteger)
    output_path: Mapped[str | None] = mapped_column(String(1000))
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Last sign of life from the job (it PATCHes this every ~30 s while running).
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Optimistic concurrency: an UPDATE matches only the version it was checked against.
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    # How the job read the users (lib.contract.ScoringPath); null for older jobs' runs.
    scoring_path: Mapped[str | None] = mapped_column(String(20))
    # Migration 0005: after the scoring (holdout, drift, dated runs).
    control_size: Mapped[int | None] = mapped_column(BigInteger)
    max_psi: Mapped[float | None] = mapped_column(TolerantFloat())
    score_shares: Mapped[list[float] | None] = mapped_column(ShareList())
    as_of: Mapped[date | None] = mapped_column(TolerantDate(), index=True)

    campaign: Mapped[CampaignRow] = relationship(back_populates="runs")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's own protocol
