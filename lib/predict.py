"""The batch scoring job's entry points: the command line, and :func:`run_job` for notebooks.

    python -m lib.predict --campaign-id 1 [--config-api-url URL] [--input PATH]
                          [--output PATH] [--master URL] [--model-dir PATH]
    spark-submit --master 'local[*]' lib/predict.py --campaign-id 1

Notebook 04 calls :func:`run_job` (papermill runs that notebook as the production job).
The flow and every check live in :mod:`lib.job`, the Spark work in :mod:`lib.spark_engine`,
the output targets in :mod:`lib.sinks`; this module wires them and owns the Spark session's
lifecycle for the command line. Every failure a user can cause ends with one line and its
own exit code (lib.errors), and is recorded on the campaign's run when the API is reachable.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if __package__ in (None, ""):  # run as a file (spark-submit lib/predict.py): find `lib`
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from lib import job
from lib.contract import parse_date, parse_id
from lib.errors import InvalidInputError, JobInterruptedError, run_cli
from lib.job import Echo, JobResult, JobSpec
from lib.spark_engine import SparkEngine

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["JobResult", "build_parser", "main", "run_job"]


def run_job(
    campaign_id: int | str,
    *,
    config_api_url: str | None = None,
    input_path: str | os.PathLike[str] | None = None,
    output_path: str | os.PathLike[str] | None = None,
    spark: SparkSession | None = None,
    master: str | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    echo: Echo = print,
    scoring_path: str | None = None,
    engine: str = "spark",
    as_of: str | date | None = None,
) -> JobResult:
    """Score one campaign's audience with Spark and write its predictions.

    Unset arguments come from the settings (environment variables). ``spark`` is used as
    given (notebook 04 builds it in its own cell); without it a session is started.
    ``scoring_path`` forces how the users are read (default: SCORING_PATH, ``auto``).
    ``engine="local"`` scores in this process without Spark (lib.local_engine: the floor).
    ``as_of`` (``YYYY-MM-DD``) scores that date's snapshot, DATA_DIR/users/snapshot_date=...,
    into that date's own predictions file (empty or None: the undated input).
    """
    campaign_id = check_campaign_id(campaign_id)
    try:
        day = parse_date(as_of) if as_of else None
    except ValueError as err:
        raise InvalidInputError(str(err)) from None
    spec = JobSpec.from_settings(
        campaign_id,
        config_api_url=config_api_url,
        input_path=os.fspath(input_path) if input_path else None,
        output_path=os.fspath(output_path) if output_path else None,
        model_dir=os.fspath(model_dir) if model_dir else None,
        as_of=day,
    )
    if engine == "local":
        from lib.local_engine import LocalEngine

        return job.run_job(spec, LocalEngine(), echo)
    if engine != "spark":
        raise InvalidInputError(f"engine must be 'spark' or 'local', got {engine!r}")
    return job.run_job(spec, SparkEngine(spark, master, scoring_path), echo)


def check_campaign_id(campaign_id: object) -> int:
    """The campaign id read as the API reads ids (lib.contract.parse_id), or exit code 2.

    Text is accepted in plain decimal digits only: papermill's ``-r campaign_id TEXT`` hands
    the notebook the text itself (``-p`` lets papermill's own int() read it first).
    """
    try:
        return parse_id(campaign_id)
    except ValueError as err:
        raise InvalidInputError(str(err)) from None


def campaign_id_argument(text: str) -> int:
    """argparse ``type=`` for ``--campaign-id``: the strict reading, argparse's error line."""
    try:
        return parse_id(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# ---- command line ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lib.predict",
        description="Score a campaign's audience with its CatBoost model on Spark.",
    )
    parser.add_argument(
        "--campaign-id", type=campaign_id_argument, required=True, help="campaign to score"
    )
    parser.add_argument(
        "--config-api-url", default=None, help="config API base URL (default: CONFIG_API_URL)"
    )
    parser.add_argument(
        "--input", default=None, help="users Parquet (default: DATA_DIR/sample_users.parquet)"
    )
    parser.add_argument(
        "--output",
        default=None,
        help="a Parquet path or URI (gs://, s3a://), or bigquery:project.dataset.table "
        "(default: OUTPUT_DIR/predictions_campaign_<id>.parquet)",
    )
    parser.add_argument("--master", default=None, help="Spark master (default: SPARK_MASTER)")
    parser.add_argument("--model-dir", default=None, help="registered models (default: MODEL_DIR)")
    parser.add_argument("--as-of", type=date_argument, default=None, help=AS_OF_HELP)
    return parser


AS_OF_HELP = (
    "score the snapshot of this date (YYYY-MM-DD): DATA_DIR/users/snapshot_date=DATE/, into "
    "OUTPUT_DIR/predictions_campaign_<id>_<DATE>.parquet"
)


def date_argument(text: str) -> date:
    """argparse ``type=`` for ``--as-of``: the strict reading, argparse's error line."""
    try:
        return parse_date(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Stop the job: cancel Spark's work, and raise here unless that would break something.

    Raising inside a py4j call would break the gateway's protocol (py4j then logs a
    traceback and wraps our error in its own), and raising inside an import leaves a
    half-initialised module behind (pyspark then fails to import with a circular-import
    error). In those cases the flag alone stops the job: cancelling the jobs from another
    thread makes a blocked call return with a cancellation, and the job's next stage
    boundary raises "stopped by signal SIGTERM". Over Spark Connect the server's
    operations are interrupted and the exception is raised right away.
    """
    job.STOP_REQUESTED.set()
    threading.Thread(target=_cancel_spark_jobs, name="sigterm-cancel", daemon=True).start()
    if _raising_is_unsafe(frame):
        return
    raise JobInterruptedError(f"stopped by signal {signal.Signals(signum).name}")


def _raising_is_unsafe(frame: FrameType | None) -> bool:
    """True inside a py4j call or an import (see _on_sigterm)."""
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module.startswith(("py4j", "importlib")) or frame.f_code.co_filename.startswith(
            "<frozen importlib"
        ):
            return True
        frame = frame.f_back
    return False


def _cancel_spark_jobs() -> None:
    """Cancel Spark's work until the job gives up: a stage submitted after the first cancel
    (the query was still being planned when the signal came, or Spark was still starting)
    is cancelled on a later round.

    Runs in its own thread, where pyspark's *active* session (thread-local) is unset: it
    uses the process's SparkContext (classic) or default Connect session instead. It never
    imports pyspark itself: the main thread may be importing it at this moment.
    """
    import time

    for _ in range(240):  # at most two minutes; the process normally exits long before
        try:
            context = getattr(sys.modules.get("pyspark.core.context"), "SparkContext", None)
            classic = context._active_spark_context if context is not None else None
            connect = getattr(sys.modules.get("pyspark.sql.connect.session"), "SparkSession", None)
            if classic is not None:
                classic.cancelAllJobs()
            elif connect is not None and (remote := connect._get_default_session()) is not None:
                remote.interruptAll()  # the server's running operations for this session
        except Exception:
            return
        time.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A stopped job (kubectl delete, a scheduler's timeout) records its run as failed.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        result = run_job(
            args.campaign_id,
            config_api_url=args.config_api_url,
            input_path=args.input,
            output_path=args.output,
            master=args.master,
            model_dir=args.model_dir,
            as_of=args.as_of,
        )
    except Exception:
        if job.STOP_REQUESTED.is_set():  # stopped outside run_job's own handling
            raise JobInterruptedError("stopped by signal SIGTERM") from None
        raise
    finally:
        _stop_spark()
    mean = f"{result.mean_score:.3f}" if result.mean_score is not None else "n/a"
    print(
        f"📈 Users: {result.input_rows:,} | audience: {result.audience_size:,} "
        f"({result.audience_share:.1%}) | mean score: {mean} | run id: {result.run_id}"
    )
    return 0


def _stop_spark() -> None:
    """Stop the session this process made, if pyspark got as far as making one."""
    session = getattr(sys.modules.get("pyspark.sql.session"), "SparkSession", None)
    if session is not None:
        active = session.getActiveSession()
        if active is not None:
            active.stop()


if __name__ == "__main__":
    run_cli(main)
