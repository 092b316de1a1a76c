"""The production runner: notebook 04 under papermill for one campaign, then an HTML report.

    python -m lib.runner --campaign-id 1 [--config-api-url URL] [--input P] [--output P]
                         [--engine spark|local] [--as-of YYYY-MM-DD] [--contact-budget 500|30%]
    python -m lib.runner --campaign-id 1 --backfill 2026-12-01..2026-12-07 [--force]

A backfill runs each date of the range in order (that date's snapshot, into that date's
predictions), skips dates whose run already succeeded unless ``--force``, and stops at the
first failure with its exit code.

``make score``, ``make demo`` (through :func:`score`) and the Kubernetes papermill Job all
run this, so every way of running the notebook gives the same exit codes and report. The
executed notebook and its run report (lib.report: HTML without code, readable offline) land
in OUTPUT_DIR/runs/; they are kept for failed runs too (the report's first line says what
failed). Exit code: the job's own (see docs/scoring-job.md, "Exit codes of the job").
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

# papermill -> nbformat -> jsonschema imports rfc3987_syntax only to check the "iri" string
# format, and that import builds a grammar for 1.2 s. Nothing here validates IRIs; jsonschema
# treats the missing module as "check unavailable".
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from lib.errors import exit_code_for, run_cli  # noqa: E402  (lib.predict loads ApiError)
from lib.predict import AS_OF_HELP, campaign_id_argument, date_argument  # noqa: E402
from lib.settings import PROJECT_ROOT, get_settings  # noqa: E402
from lib.text import escape_controls  # noqa: E402

NOTEBOOK = PROJECT_ROOT / "notebooks" / "04_spark_scoring.ipynb"


def render_html(notebook: Path, exit_code: int | None = None) -> Path:
    """The run report (lib.report) beside the executed notebook: no code, readable offline."""
    from lib.report import render_report

    return render_report(notebook, exit_code=exit_code)


def _kernel_config() -> Any:
    """The kernel talks to papermill over IPC sockets (files in Jupyter's private runtime
    folder), not loopback TCP: nothing else on the machine can connect to it, and ipykernel
    has no "Kernel is running over TCP without encryption" warning to print."""
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets.config import Config

    # Without an absolute prefix jupyter_client names the sockets "kernel-ipc-<n>" in the
    # working folder (notebooks/), where two runs at once would take each other's sockets.
    runtime = Path(jupyter_runtime_dir())
    prefix = runtime / f"kernel-{uuid.uuid4()}-ipc"
    # A Unix socket path has at most 107 bytes ("<prefix>-<n>"). With an unusually long
    # runtime folder, loopback TCP it is (and its warning).
    if len(os.fsencode(str(prefix))) + 4 > 107:
        return Config()
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Config({"KernelManager": {"transport": "ipc", "ip": str(prefix)}})


def score(
    campaign_id: int,
    *,
    config_api_url: str | None = None,
    input_path: str | None = None,
    output_path: str | None = None,
    name: str | None = None,
    engine: str = "spark",
    as_of: date | None = None,
    contact_budget: str | None = None,
) -> tuple[int, Path, Path | None]:
    """Run notebook 04; returns (exit code, executed notebook, HTML report).

    ``contact_budget`` (lib.gains: ``500`` users or ``30%`` of the treatment group; None:
    the notebook's default) is checked first: a bad one raises InvalidInputError, nothing run.
    """
    import papermill as pm

    if contact_budget is not None:
        from lib.gains import parse_contact_budget

        contact_budget = parse_contact_budget(contact_budget).text
    settings = get_settings()
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    dated = f"_as_of_{as_of.isoformat()}" if as_of else ""
    executed = settings.runs_dir / f"{name or f'campaign_{campaign_id}{dated}_{stamp}'}.ipynb"
    parameters = {
        "campaign_id": campaign_id,
        "config_api_url": config_api_url or settings.config_api_url,
    }
    if input_path:
        parameters["input_path"] = input_path
    if output_path:
        parameters["output_path"] = output_path
    if as_of:
        parameters["as_of"] = as_of.isoformat()
    if contact_budget is not None:
        parameters["contact_budget"] = contact_budget
    if engine != "spark":  # "local": no Spark at all (the floor of bench.teaching_run)
        parameters["engine"] = engine
    else:
        _use_local_spark_connect()
    code = 0
    try:
        pm.execute_notebook(
            str(NOTEBOOK),
            str(executed),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(NOTEBOOK.parent),
            progress_bar=False,
            # The job has published its output and recorded the run by the last cell; a
            # graceful kernel shutdown would only wait ~2.5 s for the JVM to tear down.
            shutdown_kernel="immediate",
            # Stream the cells' printed output (the job's progress lines) as it comes.
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
            config=_kernel_config(),
        )
    except pm.PapermillExecutionError as err:
        print(f"❌ error: {escape_controls(err.evalue)}", file=sys.stderr)
        code = exit_code_for(err.ename)
    html = None
    if executed.exists():
        try:
            html = render_html(executed, code)
        except Exception as err:  # the report is a view: it never changes the job's result
            shown = escape_controls(str(err))
            print(f"⚠️ the run report could not be rendered: {shown}", file=sys.stderr)
    return code, executed, html


def _use_local_spark_connect() -> None:
    """With `make up`'s Spark Connect server running, the kernel uses it (a warm JVM).

    An explicit SPARK_REMOTE (a remote server) or SPARK_MASTER (a cluster) is left alone.
    """
    from lib.connect_server import local_server

    if os.environ.get("SPARK_REMOTE") or os.environ.get("SPARK_MASTER"):
        return
    server = local_server()
    if server is not None:
        os.environ.update(server.client_env())  # inherited by the papermill kernel
        get_settings.cache_clear()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lib.runner", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--campaign-id", type=campaign_id_argument, required=True, help="campaign to score"
    )
    parser.add_argument("--config-api-url", default=None, help="default: CONFIG_API_URL")
    parser.add_argument("--input", default=None, help="default: DATA_DIR/sample_users.parquet")
    parser.add_argument("--output", default=None, help="default: OUTPUT_DIR/predictions_...")
    parser.add_argument(
        "--engine",
        choices=["spark", "local"],
        default="spark",
        help="spark (default); local: score in the kernel with pyarrow + CatBoost, no Spark",
    )
    dates = parser.add_mutually_exclusive_group()
    dates.add_argument("--as-of", type=date_argument, default=None, help=AS_OF_HELP)
    dates.add_argument(
        "--backfill",
        type=date_range_argument,
        default=None,
        metavar="FROM..TO",
        help="score every date from FROM to TO (inclusive, YYYY-MM-DD..YYYY-MM-DD) in order",
    )
    parser.add_argument(
        "--force", action="store_true", help="with --backfill: re-run dates that succeeded"
    )
    parser.add_argument(
        "--contact-budget",
        default=None,
        metavar="500|30%",
        help="whom the report says to contact: that many best-scoring treatment users, or "
        "that share of them (default: notebook 04's, 30%%)",
    )
    return parser


MAX_BACKFILL_DAYS = 366


def date_range_argument(text: str) -> list[date]:
    """``FROM..TO`` as the list of its dates (inclusive), for ``--backfill``."""
    start, sep, end = text.partition("..")
    if not sep:
        raise argparse.ArgumentTypeError(f"a range is written FROM..TO, got {text!r}")
    first, last = date_argument(start), date_argument(end)
    if last < first:
        raise argparse.ArgumentTypeError(f"the range ends before it starts: {text}")
    days = (last - first).days + 1
    if days > MAX_BACKFILL_DAYS:
        raise argparse.ArgumentTypeError(
            f"a backfill covers at most {MAX_BACKFILL_DAYS} days, {text} has {days}"
        )
    return [first + timedelta(days=i) for i in range(days)]


def succeeded_dates(campaign_id: int, config_api_url: str | None) -> set[date]:
    """The snapshot dates of the campaign that have a successful run."""
    from lib.api_client import ConfigApiClient

    with ConfigApiClient(config_api_url or get_settings().config_api_url) as api:
        runs = api.list_runs(campaign_id)
    return {r.as_of for r in runs if r.status == "succeeded" and r.as_of is not None}


def backfill(args: argparse.Namespace) -> int:
    """Each date in order; a date that already succeeded is skipped unless --force."""
    done = set() if args.force else succeeded_dates(args.campaign_id, args.config_api_url)
    for day in args.backfill:
        if day in done:
            print(f"⏭️ {day}: already scored successfully (--force re-runs it)")
            continue
        print(f"📅 Backfill: scoring the snapshot of {day}")
        code, executed, html = score(
            args.campaign_id,
            config_api_url=args.config_api_url,
            engine=args.engine,
            as_of=day,
            contact_budget=args.contact_budget,
        )
        _show(executed, html)
        if code:
            print(f"❌ backfill stopped at {day} (exit code {code}); later dates were not run")
            return code
    return 0


def _show(executed: Path, html: Path | None) -> None:
    from lib.contacts import contact_list_path

    print(f"📓 Executed notebook: {executed}")
    if html is not None:
        if contact_list_path(html).exists():  # whom the report says to contact, for a marketer
            print(f"📇 Contact list: {contact_list_path(html)}")
        print(f"📄 Run report: {html}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.contact_budget is not None:  # a bad budget: one line, exit 2, before any work
        from lib.gains import parse_contact_budget

        parse_contact_budget(args.contact_budget)
    if args.force and not args.backfill:
        build_parser().error("--force goes with --backfill")
    if args.backfill:
        if args.input or args.output:
            build_parser().error("--backfill reads each date's snapshot: no --input/--output")
        return backfill(args)
    code, executed, html = score(
        args.campaign_id,
        config_api_url=args.config_api_url,
        input_path=args.input,
        output_path=args.output,
        engine=args.engine,
        as_of=args.as_of,
        contact_budget=args.contact_budget,
    )
    _show(executed, html)
    return code


if __name__ == "__main__":
    run_cli(main)
