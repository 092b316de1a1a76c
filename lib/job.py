"""The scoring job's flow, whatever engine does the heavy work.

    fetch the campaign → active? → filter valid? → model registered and intact → features
    are the model's → input footers → run record "running" (+ heartbeat) → the engine
    reads, filters, scores and writes through the sink → run record "succeeded" / "failed"

An :class:`Engine` (Spark today: :mod:`lib.spark_engine`; Spark Connect plugs in the same
way) gets one :class:`ScoringTask` and returns :class:`EngineStats`; everything else,
including every check a user can fail, happens here once for all engines.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from lib import schema
from lib.api_client import Campaign, ConfigApiClient, Run
from lib.audience import AudienceFilter, parse_filter
from lib.contract import HEARTBEAT_SECONDS, SCORE_BINS, ScoringPath
from lib.drift import DRIFT_BANDS, DriftReport, drift_report
from lib.errors import CampaignInactiveError, JobInterruptedError, PipelineError
from lib.failures import known_failure
from lib.files import local_path
from lib.gate import check_input, check_ranges
from lib.inputs import check_local_input
from lib.registry import VerifiedModel, check_features, load_verified
from lib.scoring import RunColumns
from lib.settings import get_settings
from lib.sinks import Sink, sink_for
from lib.text import escape_controls, escaping

__all__ = [
    "Echo",
    "Engine",
    "EngineStats",
    "JobResult",
    "JobSpec",
    "ScoringTask",
    "Timer",
    "run_job",
]

Echo = Callable[[str], None]

# Set by a signal handler (lib.predict's SIGTERM): whatever exception the interrupted call
# then raises (py4j wraps it in its own), the job reports and records "stopped by signal".
STOP_REQUESTED = threading.Event()


@dataclass(frozen=True)
class JobSpec:
    """What to score and where: one campaign, its input, its output, the API, the models."""

    campaign_id: int
    config_api_url: str
    input_path: str
    output_path: str
    model_dir: Path | None = None
    as_of: date | None = None  # the snapshot date scored (None: the undated input)

    @classmethod
    def from_settings(
        cls,
        campaign_id: int,
        *,
        config_api_url: str | None = None,
        input_path: str | Path | None = None,
        output_path: str | Path | None = None,
        model_dir: str | Path | None = None,
        as_of: date | None = None,
    ) -> JobSpec:
        """Fill what is not given from the settings (environment variables); a dated run
        reads that date's snapshot and writes that date's predictions."""
        settings = get_settings()
        default_input = settings.snapshot_path(as_of) if as_of else settings.users_path
        return cls(
            campaign_id=campaign_id,
            config_api_url=config_api_url or settings.config_api_url,
            input_path=str(input_path or default_input),
            output_path=str(output_path or settings.prediction_path(campaign_id, as_of)),
            model_dir=Path(model_dir) if model_dir else None,
            as_of=as_of,
        )


@dataclass(frozen=True)
class ScoringTask:
    """Everything an engine needs, already checked: it only reads, scores and writes."""

    campaign: Campaign
    run_id: int
    audience: AudienceFilter | None
    model: VerifiedModel
    input_path: str
    needed_columns: tuple[str, ...]
    known_input_rows: int | None  # from local Parquet footers; None for remote inputs
    sink: Sink
    scored_at: datetime
    input_warnings: tuple[str, ...] = ()  # what the input gate let through (lib.gate)

    def check_ranges(self, profile: dict[str, list[int]] | None, echo: Echo) -> list[str]:
        """The input gate's last check (lib.gate), before anything is written: raises
        InputGateError (exit 10) beyond the campaign's tolerance; returns the warnings."""
        reference = self.model.artifact.reference
        if reference is None or profile is None:
            return []
        warnings = check_ranges(reference, profile, self.campaign.input_tolerance).warnings
        for warning in warnings:
            echo(f"⚠️ Input: {warning} (within the campaign's input_tolerance)")
        return warnings

    def run_columns(self) -> RunColumns:
        """What the tasks add to the scores: the holdout group and the drift counts."""
        return RunColumns.for_model(self.campaign.id, self.campaign.holdout_share, self.model)


@dataclass(frozen=True)
class EngineStats:
    """What the engine measured while scoring (one pass over the audience)."""

    input_rows: int
    audience_size: int
    mean_score: float | None
    decile_cut_points: list[float]
    scoring_path: ScoringPath | None = None  # how the engine read the users
    control_size: int = 0  # audience users held out (lib.holdout)
    profile: dict[str, list[int]] | None = None  # drift counts (lib.drift); None: no reference
    range_warnings: list[str] = field(default_factory=list)  # the input gate's (lib.gate)


class Timer:
    """Wall-clock seconds per stage, for the notebook's "where did the time go"."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.current: str | None = None  # the stage started last (a failure's "while ...")

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if STOP_REQUESTED.is_set():  # a stop asked for between stages takes effect here
            raise JobInterruptedError("stopped by signal SIGTERM")
        self.current = name
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - started, 3)


class Engine(Protocol):
    """A compute engine for the job (Spark classic; Spark Connect is the next)."""

    def check_sink(self, sink: Sink, timer: Timer) -> None:
        """Refuse a sink the engine cannot write to (a missing connector) before any work."""

    def score(self, task: ScoringTask, echo: Echo, timer: Timer) -> EngineStats:
        """Read, check, filter, score, measure and write through ``task.sink``."""


@dataclass
class JobResult:
    """What a run did; JSON-friendly (notebook 04 and the run record read it)."""

    campaign_id: int
    campaign_name: str
    run_id: int | None
    input_path: str
    output_path: str
    model_path: str
    model_sha256: str
    audience_filter: str | None
    input_rows: int
    audience_size: int
    mean_score: float | None
    decile_cut_points: list[float]
    timings: dict[str, float] = field(default_factory=dict)
    scoring_path: str | None = None
    holdout_share: float = 0.0
    control_size: int = 0
    as_of: str | None = None  # ISO date of the snapshot scored
    drift: dict[str, Any] | None = None  # DriftReport as JSON (None: the model has no reference)
    input_warnings: list[str] = field(default_factory=list)  # the input gate's (lib.gate)

    @property
    def treatment_size(self) -> int:
        """The audience users to contact: everybody but the held-out control group."""
        return self.audience_size - self.control_size

    @property
    def audience_share(self) -> float:
        return self.audience_size / self.input_rows if self.input_rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "audience_share": self.audience_share}


def run_job(spec: JobSpec, engine: Engine, echo: Echo = print) -> JobResult:
    """Score one campaign's audience with ``engine`` and record the run; see the module doc.

    A failure of the storage or of Spark (lib.failures) becomes one PipelineError line,
    also before the run record exists (a full disk refusing the lock file)."""
    echo = escaping(echo)  # names, filters and paths are user text: shown, never obeyed
    timer = Timer()
    try:
        return _run_job(spec, engine, echo, timer)
    except Exception as err:
        known = None if isinstance(err, PipelineError) else _known(err, timer)
        if known is None:
            raise
        raise known from None


def _run_job(spec: JobSpec, engine: Engine, echo: Echo, timer: Timer) -> JobResult:
    sink = sink_for(spec.output_path, spec.campaign_id)
    sink.check(spec.input_path)  # someone else's data, or the input itself: refuse now

    # One run per local target at a time, for the whole job: the lock is taken before the
    # run record exists, so a refused second run leaves no trace but its one-line error.
    with sink.hold():
        echo("🚀 SPARK PREDICTION JOB STARTING")
        url = f"{spec.config_api_url.rstrip('/')}/campaigns/{spec.campaign_id}"
        echo(f"📡 Fetching campaign config from: {url}")
        with ConfigApiClient(spec.config_api_url) as api, timer.stage("fetch campaign"):
            campaign = api.get_campaign(spec.campaign_id)
            echo(f"✅ Loaded campaign: {campaign.name}")
            run = api.create_run(
                spec.campaign_id,
                status="running",
                started_at=_now(),
                **({"as_of": spec.as_of.isoformat()} if spec.as_of else {}),
            )
            earlier = api.list_runs(spec.campaign_id)  # newest first: the score drift's base
        try:
            with _Heartbeat(spec.config_api_url, spec.campaign_id, run.id):
                task = _prepare(spec, campaign, run.id, sink, engine, echo, timer)
                stats = engine.score(task, echo, timer)
                previous = _previous_scores(earlier, task.model.sha256, spec.as_of)
                drift = _after_scoring(task, stats, previous, echo)
        except BaseException as err:
            stopped = _stop_reason(err)
            known = None if stopped or isinstance(err, PipelineError) else _known(err, timer)
            if isinstance(err, PipelineError) or known is not None:
                message = str(known or err)
            else:
                message = stopped or f"{type(err).__name__}: {err}"
            _record(spec, run.id, status="failed", finished_at=_now(), error_message=message)
            if stopped and not isinstance(err, JobInterruptedError):
                raise JobInterruptedError(stopped) from None
            if known is not None:  # one line, the traceback in the log file it names
                raise known from None
            raise
    _record(
        spec,
        run.id,
        status="succeeded",
        finished_at=_now(),
        input_rows=stats.input_rows,
        audience_size=stats.audience_size,
        scored_rows=stats.audience_size,
        output_path=sink.location,
        model_sha256=task.model.sha256,
        **({"scoring_path": stats.scoring_path} if stats.scoring_path else {}),
        control_size=stats.control_size,
        **({"max_psi": drift.largest} if drift else {}),
        **(
            {"score_shares": drift.score_shares}
            if drift and len(drift.score_shares) == SCORE_BINS
            else {}
        ),
    )
    echo("✅ JOB COMPLETED SUCCESSFULLY")
    return JobResult(
        campaign_id=campaign.id,
        campaign_name=campaign.name,
        run_id=run.id,
        input_path=spec.input_path,
        output_path=sink.location,
        model_path=campaign.model_path,
        model_sha256=task.model.sha256,
        audience_filter=campaign.audience_filter,
        input_rows=stats.input_rows,
        audience_size=stats.audience_size,
        mean_score=stats.mean_score,
        decile_cut_points=stats.decile_cut_points,
        timings=timer.timings,
        scoring_path=stats.scoring_path,
        holdout_share=campaign.holdout_share,
        control_size=stats.control_size,
        as_of=spec.as_of.isoformat() if spec.as_of else None,
        drift=asdict(drift) if drift else None,
        input_warnings=[*task.input_warnings, *stats.range_warnings],
    )


def _previous_scores(runs: list[Run], model_sha256: str, as_of: date | None) -> list[float] | None:
    """The score shares of the run to compare with: the newest successful one of the same
    model (another model's scores are another scale) and, for a dated run, an earlier date
    (a backfill compares each day with the day before, not with today)."""
    for run in runs:
        if run.status != "succeeded" or not run.score_shares or run.model_sha256 != model_sha256:
            continue
        if as_of is not None and (run.as_of is None or run.as_of >= as_of):
            continue
        return run.score_shares
    return None


def _after_scoring(
    task: ScoringTask, stats: EngineStats, previous: list[float] | None, echo: Echo
) -> DriftReport | None:
    """Say how many users are held out, and whether the population drifted (lib.drift)."""
    share = task.campaign.holdout_share
    if stats.audience_size:
        echo(
            f"🧪 Holdout: {stats.control_size:,} of {stats.audience_size:,} users "
            f"({stats.control_size / stats.audience_size:.1%}; the campaign holds out "
            f"{share:.0%}) are the control group: not contacted, so that the campaign's "
            "effect can be measured"
        )
    reference = task.model.artifact.reference
    if reference is None or stats.profile is None or not stats.audience_size:
        return None
    drift = drift_report(reference, stats.profile, previous)
    crossed = drift.crossed()
    for name, value, level in crossed:
        echo(f"⚠️ Drift: {name}: PSI {value:.3f} ({level}; {DRIFT_BANDS})")
    if not crossed:
        echo(f"✅ Drift: every PSI is stable (largest {drift.largest:.3f}; {DRIFT_BANDS})")
    return drift


def _prepare(
    spec: JobSpec,
    campaign: Campaign,
    run_id: int,
    sink: Sink,
    engine: Engine,
    echo: Echo,
    timer: Timer,
) -> ScoringTask:
    """Every check a user can fail, in the order that fails fastest, before the engine works."""
    if not campaign.is_active:
        raise CampaignInactiveError(
            f"campaign {campaign.id} ({campaign.name}) is inactive; activate it to score"
        )
    # The stored text is checked again: it may have been written to the database directly.
    audience = parse_filter(campaign.audience_filter)

    echo(f"📦 Loading model from: {campaign.model_path}")
    with timer.stage("load model"):
        # The registry check, then one read of the bytes that are hashed, shipped to the
        # workers and deserialised here first, so a broken model fails before any engine work.
        model = load_verified(campaign.model_path, spec.model_dir)
        model.load()
    check_features(campaign.features, model.features)

    echo(f"📊 Reading user data from: {spec.input_path}")
    filter_columns = sorted(audience.columns) if audience else []
    needed = tuple(dict.fromkeys([schema.USER_ID, *model.features, *filter_columns]))
    known_rows = check_local_input(spec.input_path, needed)
    warnings = _input_gate(spec.input_path, model, campaign, echo)
    engine.check_sink(sink, timer)
    return ScoringTask(
        campaign=campaign,
        run_id=run_id,
        audience=audience,
        model=model,
        input_path=spec.input_path,
        needed_columns=needed,
        known_input_rows=known_rows,
        sink=sink,
        scored_at=datetime.now(UTC),
        input_warnings=warnings,
    )


def _input_gate(
    input_path: str, model: VerifiedModel, campaign: Campaign, echo: Echo
) -> tuple[str, ...]:
    """Refuse (exit 10) or warn when the users do not look like the training data."""
    reference = model.artifact.reference
    local = local_path(input_path)
    if reference is None:
        echo("🚦 Input gate: not run (the model was registered without a training reference)")
        return ()
    if local is None:
        echo("🚦 Input gate: not run (a remote input: no Parquet footers to read here)")
        return ()
    result = check_input(local, reference, campaign.input_tolerance)
    for warning in result.warnings:
        echo(f"⚠️ Input: {warning} (within the campaign's input_tolerance)")
    if not result.warnings:
        echo("🚦 Input gate: types, missing values and ranges match the training data")
    return tuple(result.warnings)


class _Heartbeat:
    """Tells the config API every HEARTBEAT_SECONDS that the run is alive.

    A job killed without warning (OOM killer, ``kill -9``, a lost node) cannot record its
    failure; its run then stops beating and the API shows it as stale instead of running
    forever. A missed beat is not an error: the job's own outcome is what matters.
    """

    interval = HEARTBEAT_SECONDS

    def __init__(self, api_url: str, campaign_id: int, run_id: int) -> None:
        self.api_url, self.campaign_id, self.run_id = api_url, campaign_id, run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-run-{run_id}")
        self._thread.daemon = True  # never keeps a dying process alive

    def _beat(self) -> None:
        # Short timeouts: one beat must end well within __exit__'s join.
        with ConfigApiClient(self.api_url, retries=0, timeout=3.0) as api:
            while not self._stop.wait(self.interval):
                try:
                    api.update_run(self.campaign_id, self.run_id, heartbeat_at=_now())
                except Exception:  # noqa: S112 - a missed beat is never fatal
                    continue

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _known(err: BaseException, timer: Timer) -> PipelineError | None:
    """A failure of the storage or of Spark a user can meet (lib.failures), or None."""
    if not isinstance(err, Exception):
        return None
    doing = {"write": "writing the predictions", "read": "reading the users"}.get(
        timer.current or "", f"the job ({timer.current or 'starting'})"
    )
    return known_failure(err, doing=doing, log_dir=get_settings().logs_dir)


def _stop_reason(err: BaseException) -> str | None:
    """Why the job was stopped from outside (a signal, Ctrl-C), or None for other errors."""
    if isinstance(err, JobInterruptedError):
        return str(err)
    if STOP_REQUESTED.is_set():
        return "stopped by signal SIGTERM"
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return None


def _record(spec: JobSpec, run_id: int, **fields: Any) -> None:
    """Update the run record; a failure to record must not hide the job's own outcome."""
    if isinstance(fields.get("error_message"), str):
        fields["error_message"] = fields["error_message"][:10_000]
    try:
        with ConfigApiClient(spec.config_api_url, retries=2) as api:
            api.update_run(spec.campaign_id, run_id, **fields)
    except PipelineError as err:
        import sys

        print(f"⚠️ could not record run {run_id}: {escape_controls(str(err))}", file=sys.stderr)


def _now() -> str:
    return datetime.now(UTC).isoformat()
