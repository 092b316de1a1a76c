"""The scoring job end to end: real API, real Spark, real CatBoost, real files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lib import job, predict, schema
from lib.errors import (
    AudienceFilterError,
    CampaignInactiveError,
    InvalidInputError,
    ModelError,
    StorageError,
)
from lib.inputs import check_local_input
from lib.registry import load_model
from lib.settings import PROJECT_ROOT
from lib.sinks import BigQuerySink, ObjectStoreSink, sink_for
from tests.helpers import python_module
from tests.project import Project

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

FILTERS: list[tuple[str | None, Callable[[pd.DataFrame], pd.Series]]] = [
    ("country='US' AND age > 25", lambda d: (d.country == "US") & (d.age > 25)),
    (
        "country IN ('DE', 'FR') AND engagement_score >= 0.5",
        lambda d: d.country.isin(["DE", "FR"]) & (d.engagement_score >= 0.5),
    ),
    (
        "age BETWEEN 30 AND 40 OR NOT (frequency > 2)",
        lambda d: d.age.between(30, 40) | ~(d.frequency > 2),
    ),
    (None, lambda d: pd.Series(True, index=d.index)),
]


def run(project: Project, spark, campaign_id: int, **kwargs) -> predict.JobResult:
    kwargs.setdefault("echo", lambda line: None)
    return predict.run_job(
        campaign_id,
        config_api_url=project.url,
        input_path=str(project.users),
        output_path=str(project.output(campaign_id)),
        spark=spark,
        model_dir=project.models,
        **kwargs,
    )


def last_run(project: Project, campaign_id: int):
    with project.api() as api:
        return api.list_runs(campaign_id)[0]


@pytest.mark.parametrize(("text", "select"), FILTERS)
def test_output_is_exactly_the_audience_scored_by_catboost(
    project: Project, spark, text: str | None, select
) -> None:
    campaign_id = project.create_campaign(f"correctness {text}", text)
    result = run(project, spark, campaign_id)

    users = pd.read_parquet(project.users)
    expected = users[select(users)]
    out = pd.read_parquet(project.output(campaign_id)).sort_values(schema.USER_ID)
    assert out[schema.USER_ID].tolist() == sorted(expected[schema.USER_ID])
    assert result.input_rows == len(users)
    assert result.audience_size == len(expected)
    # The API's Ibis/DuckDB preview counts exactly what the Spark job scored.
    preview = httpx.get(f"{project.url}/campaigns/{campaign_id}/audience").json()
    assert (preview["matching_users"], preview["total_users"]) == (len(out), len(users))

    model = load_model("campaign_model_v1.cbm", project.models)
    merged = out.merge(users, on=schema.USER_ID)
    truth = model.predict_proba(merged[list(schema.FEATURES)])[:, 1]
    assert np.max(np.abs(merged[schema.SCORE].to_numpy() - truth)) <= 1e-9
    assert result.mean_score == pytest.approx(truth.mean(), abs=1e-12)

    # Deciles: 1 holds the best scores, each tenth of the audience gets its own decile.
    ranked = out.sort_values(schema.SCORE, ascending=False)
    assert ranked[schema.DECILE].is_monotonic_increasing
    sizes = ranked[schema.DECILE].value_counts().reindex(range(1, 11), fill_value=0)
    assert (abs(sizes - len(out) / 10) <= 1.5).all(), sizes.tolist()

    assert (out[schema.CAMPAIGN_ID] == campaign_id).all()
    assert (out["run_id"] == result.run_id).all()
    assert (out["model_sha256"] == result.model_sha256).all()
    run_record = last_run(project, campaign_id)
    assert (run_record.status, run_record.audience_size) == ("succeeded", len(expected))
    assert run_record.input_rows == len(users) and run_record.scored_rows == len(expected)
    assert result.scoring_path == run_record.scoring_path == "python-reads"  # a local input


def test_output_schema_is_the_contract(project: Project, spark) -> None:
    campaign_id = project.create_campaign("schema", "age > 60")
    run(project, spark, campaign_id)
    file_schema = pq.read_schema(next(project.output(campaign_id).glob("*.parquet")))
    for field in schema.PREDICTION_SCHEMA:
        assert file_schema.field(field.name).type == field.type, field.name


def test_ids_and_scores_are_written_plain_and_repeated_values_with_a_dictionary(
    project: Project, spark
) -> None:
    # Every user's id and score is new: a dictionary never pays there (lib.sinks).
    campaign_id = project.create_campaign("encodings", "age > 30")
    run(project, spark, campaign_id)
    metadata = pq.ParquetFile(next(project.output(campaign_id).glob("*.parquet"))).metadata
    group = metadata.row_group(0)
    columns = range(metadata.num_columns)
    encodings = {group.column(i).path_in_schema: group.column(i).encodings for i in columns}
    assert not any("DICTIONARY" in e for e in encodings[schema.USER_ID] + encodings[schema.SCORE])
    assert any("DICTIONARY" in e for e in encodings[schema.GROUP])
    assert any("DICTIONARY" in e for e in encodings[schema.DECILE])


def test_empty_audience_writes_an_empty_file_with_the_full_schema(project: Project, spark) -> None:
    campaign_id = project.create_campaign("nobody", "country = 'XX'")
    result = run(project, spark, campaign_id)
    out = pd.read_parquet(project.output(campaign_id))
    assert result.audience_size == 0 and out.empty
    assert list(out.columns) == schema.PREDICTION_SCHEMA.names
    assert last_run(project, campaign_id).status == "succeeded"


def test_rerun_replaces_the_output_atomically(project: Project, spark) -> None:
    campaign_id = project.create_campaign("rerun", "age > 50")
    first = run(project, spark, campaign_id)
    second = run(project, spark, campaign_id)
    out = pd.read_parquet(project.output(campaign_id))
    assert set(out["run_id"]) == {second.run_id} != {first.run_id}
    assert project.output(campaign_id).is_symlink()
    staging = project.output(campaign_id).parent / f".{project.output(campaign_id).name}.staging"
    assert list(staging.iterdir()) == []


def test_crash_while_writing_keeps_the_previous_output(
    project: Project, spark, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lib.sinks import LocalTarget

    campaign_id = project.create_campaign("crash", "age > 40")
    run(project, spark, campaign_id)
    before = pd.read_parquet(project.output(campaign_id))

    def crash_after_partial_write(self, written: Path, marker=None) -> Path:
        assert any(written.glob("*.parquet"))  # the new data was (partly) on disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LocalTarget, "publish", crash_after_partial_write)
    with pytest.raises(StorageError, match="writing the predictions failed: no space left"):
        run(project, spark, campaign_id)
    pd.testing.assert_frame_equal(pd.read_parquet(project.output(campaign_id)), before)
    staging = project.output(campaign_id).parent / f".{project.output(campaign_id).name}.staging"
    assert list(staging.iterdir()) == []
    failed = last_run(project, campaign_id)
    assert failed.status == "failed" and "no space left" in failed.error_message
    assert "\n" not in failed.error_message and "Traceback" not in failed.error_message


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 KiB tmpfs: a real full disk for the output (root only, as in CI)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_during_the_write_is_one_line_with_the_details_in_a_log(
    project: Project, tiny_disk: Path
) -> None:
    # The report: a Python traceback, a JVM stack trace and exit 1, and the run record's
    # error_message held the stack trace. Now: exit 8, one line naming the log file.
    campaign_id = project.create_campaign("full disk", None)
    target = tiny_disk / "predictions.parquet"
    out = cli(project, "--campaign-id", str(campaign_id), "--output", str(target))  # classic
    assert_one_line_failure(out, 8, "writing the predictions failed: no space left")
    log = Path(out.stderr.split("details in ", 1)[1].split(")", 1)[0])
    assert "No space left on device" in log.read_text()
    failed = last_run(project, campaign_id)
    assert failed.status == "failed" and failed.error_message.startswith("writing the predictions")
    assert "\tat " not in failed.error_message and len(failed.error_message) < 400
    assert not any(tiny_disk.glob("**/*.parquet"))  # no partial output was published


@pytest.mark.parametrize("path", ["python-reads", "spark-reads"])
def test_an_input_deleted_while_the_job_reads_it_is_one_line(
    project: Project, spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    import lib.parquet_source
    import lib.spark_engine

    users = tmp_path / "users.parquet"
    shutil.copy(project.users, users)
    check, plan = lib.spark_engine.check_input_columns, lib.parquet_source.plan_row_groups

    def check_then_delete(frame, needed) -> None:  # the file goes after Spark listed it
        check(frame, needed)
        users.unlink()

    def plan_then_delete(*args, **kwargs):  # ... or after the driver planned its row groups
        shares = plan(*args, **kwargs)
        users.unlink()
        return shares

    monkeypatch.setattr(lib.spark_engine, "check_input_columns", check_then_delete)
    monkeypatch.setattr(lib.parquet_source, "plan_row_groups", plan_then_delete)
    campaign_id = project.create_campaign(f"vanishing input {path}", "age > 30")
    with pytest.raises(InvalidInputError, match="changed or disappeared while the job read it"):
        run_on(project, spark, campaign_id, users, tmp_path / "out.parquet", path)
    run = last_run(project, campaign_id)
    assert run.status == "failed" and "\n" not in (run.error_message or "")


def test_leftovers_of_a_killed_run_do_not_disturb_readers(project: Project, spark) -> None:
    campaign_id = project.create_campaign("killed", "age > 30")
    run(project, spark, campaign_id)
    before = pd.read_parquet(project.output(campaign_id))
    # What a run killed mid-write leaves: a half-written folder in the staging area.
    staging = project.output(campaign_id).parent / f".{project.output(campaign_id).name}.staging"
    partial = staging / "20261126T000000-run999-deadbeef"
    partial.mkdir()
    (partial / "part-00000.parquet").write_bytes(b"PAR1 half a file")
    pd.testing.assert_frame_equal(pd.read_parquet(project.output(campaign_id)), before)
    run(project, spark, campaign_id)  # the next run still publishes cleanly
    assert len(pd.read_parquet(project.output(campaign_id))) == len(before)


def test_hostile_filter_written_into_the_database_is_refused(project: Project, spark) -> None:
    campaign_id = project.insert_raw_campaign(
        name="sneaky",
        audience_filter="age > 0 AND EXISTS (SELECT TRANSFORM(age) USING 'touch /tmp/pwned' "
        "AS (x) FROM users)",
    )
    with pytest.raises(AudienceFilterError, match="subqueries"):
        run(project, spark, campaign_id)
    assert not project.output(campaign_id).exists()
    assert last_run(project, campaign_id).status == "failed"


def test_a_name_that_forges_terminal_output_is_printed_escaped(project: Project, spark) -> None:
    # The API refuses such names now; one written straight into the database still reaches
    # the job, which must show it, never obey it (clear the screen, forge a progress line).
    forged = "x\x1b[2J\r\n✅ JOB COMPLETED SUCCESSFULLY\u2028"
    campaign_id = project.insert_raw_campaign(name=forged, audience_filter="age > 30")
    lines: list[str] = []
    run(project, spark, campaign_id, echo=lines.append)
    shown = [line for line in lines if line.startswith("✅ Loaded campaign:")]
    assert shown == ["✅ Loaded campaign: x\\x1b[2J\\r\\n✅ JOB COMPLETED SUCCESSFULLY\\u2028"]
    assert all(line.isprintable() for line in lines)
    assert lines.count("✅ JOB COMPLETED SUCCESSFULLY") == 1


def test_inactive_campaign_is_refused_and_recorded(project: Project, spark) -> None:
    campaign_id = project.create_campaign("paused", "age > 20", is_active=False)
    with pytest.raises(CampaignInactiveError, match="inactive"):
        run(project, spark, campaign_id)
    failed = last_run(project, campaign_id)
    assert failed.status == "failed" and "inactive" in failed.error_message


def test_input_with_wrong_column_types_is_refused(project: Project, spark, tmp_path) -> None:
    users = pd.read_parquet(project.users).astype({"age": str})
    users.to_parquet(tmp_path / "bad.parquet")
    campaign_id = project.create_campaign("types", "age > 25")
    with pytest.raises(InvalidInputError, match="'age' must be numeric"):
        predict.run_job(
            campaign_id,
            config_api_url=project.url,
            input_path=str(tmp_path / "bad.parquet"),
            spark=spark,
            output_path=str(tmp_path / "out.parquet"),
            model_dir=project.models,
            echo=lambda line: None,
        )


def test_restricted_mode_makes_spark_refuse_reflection(spark) -> None:
    from pyspark.errors import AnalysisException

    with pytest.raises(AnalysisException):
        spark.sql("SELECT reflect('java.lang.System', 'getProperty', 'user.name')").collect()
    with pytest.raises(AnalysisException):
        spark.sql("SELECT * FROM parquet.`/etc`").collect()


# ---- the command line: one readable line and a distinct exit code per failure -----------------
def cli(
    project: Project, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m lib.predict args`` on the shared project."""
    return python_module("lib.predict", *args, env={**project.env, **(env or {})}, timeout=300)


def start_job(project: Project, *args: str) -> subprocess.Popen[str]:
    """``python -m lib.predict args`` in the background, to signal it while it works."""
    return subprocess.Popen(
        [sys.executable, "-m", "lib.predict", *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **project.env},
    )


def assert_one_line_failure(out, code: int, message: str) -> None:
    assert out.returncode == code, (out.returncode, out.stderr)
    assert_one_line_failure_text(out.stderr, message)


def assert_one_line_failure_text(stderr: str, message: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith("❌")]
    assert len(errors) == 1 and message in errors[0], stderr
    assert "Traceback" not in stderr and "\tat " not in stderr and "Exception" not in stderr


@pytest.fixture
def previous_output(project: Project, spark) -> Callable[[int], bytes]:
    """Score a campaign once so a failing later run has an output to leave alone."""

    def make(campaign_id: int) -> bytes:
        run(project, spark, campaign_id)
        return pd.read_parquet(project.output(campaign_id)).to_json().encode()

    return make


def test_cli_unknown_campaign(project: Project) -> None:
    assert_one_line_failure(cli(project, "--campaign-id", "4242"), 4, "does not exist")


def test_cli_api_unreachable(project: Project) -> None:
    out = cli(project, "--campaign-id", "1", "--config-api-url", "http://127.0.0.1:9")
    assert_one_line_failure(out, 6, "config API unreachable")


def test_cli_finds_the_api_on_api_port_without_config_api_url(project: Project) -> None:
    # `make score API_PORT=...`: the port reaches the job (it used to call localhost:8000).
    campaign_id = project.create_campaign("cli api port", "age > 20")
    with project.api() as api:
        api.update_campaign(campaign_id, is_active=False)  # answered by that API: exit 5
    port = str(httpx.URL(project.url).port)
    where = {"CONFIG_API_URL": "", "API_HOST": "127.0.0.1", "API_PORT": port}
    assert_one_line_failure(
        cli(project, "--campaign-id", str(campaign_id), env=where), 5, "inactive"
    )


def test_cli_hint_names_the_api_port_in_use(project: Project) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = str(closed.getsockname()[1])
        out = cli(project, "--campaign-id", "1", env={"CONFIG_API_URL": "", "API_PORT": port})
    assert_one_line_failure(out, 6, f"start it with `make api API_PORT={port}`")


def test_cli_spark_connect_down_is_one_line_at_once(project: Project) -> None:
    # A learner's `make down` with SPARK_REMOTE still set: pyspark alone retried for 10 min.
    campaign_id = project.create_campaign("cli connect down", "age > 20")
    with socket.socket() as closed:  # bound, never listening: refused
        closed.bind(("127.0.0.1", 0))
        remote = f"sc://localhost:{closed.getsockname()[1]}"
        started = time.monotonic()
        out = cli(project, "--campaign-id", str(campaign_id), env={"SPARK_REMOTE": remote})
    assert time.monotonic() - started < 60  # the job's start-up included; pyspark: 10 minutes
    assert_one_line_failure(out, 9, f"no Spark Connect server at {remote}")
    assert last_run(project, campaign_id).status == "failed"


def test_cli_inactive_campaign(project: Project, previous_output) -> None:
    campaign_id = project.create_campaign("cli paused", "age > 20")
    before = previous_output(campaign_id)
    with project.api() as api:
        api.update_campaign(campaign_id, is_active=False)
    assert_one_line_failure(cli(project, "--campaign-id", str(campaign_id)), 5, "inactive")
    assert pd.read_parquet(project.output(campaign_id)).to_json().encode() == before


def test_cli_invalid_filter_in_database(project: Project) -> None:
    campaign_id = project.insert_raw_campaign(
        name="cli sneaky", audience_filter="reflect('java.lang.Runtime', 'getRuntime') IS NULL"
    )
    out = cli(project, "--campaign-id", str(campaign_id))
    assert_one_line_failure(out, 7, "function calls are not allowed")
    assert last_run(project, campaign_id).status == "failed"


@pytest.mark.parametrize("problem", ["missing", "unregistered", "tampered"])
def test_cli_model_problems(project: Project, previous_output, tmp_path: Path, problem) -> None:
    campaign_id = project.create_campaign(f"cli model {problem}", "age > 20")
    before = previous_output(campaign_id)
    models = tmp_path / "models"
    shutil.copytree(project.models, models)
    if problem == "missing":
        (models / "campaign_model_v1.pkl").unlink()
    elif problem == "unregistered":
        (models / "registry.json").write_text('{"artifacts": {}}')
    else:
        (models / "campaign_model_v1.pkl").write_bytes(b"\x80\x04evil")
    out = cli(project, "--campaign-id", str(campaign_id), env={"MODEL_DIR": str(models)})
    message = {"missing": "missing", "unregistered": "not registered", "tampered": "checksum"}
    assert_one_line_failure(out, ModelError.exit_code, message[problem])
    assert pd.read_parquet(project.output(campaign_id)).to_json().encode() == before
    failed = last_run(project, campaign_id)
    assert failed.status == "failed" and message[problem] in failed.error_message


def test_cli_input_missing(project: Project, tmp_path: Path) -> None:
    campaign_id = project.create_campaign("cli no input", "age > 20")
    out = cli(project, "--campaign-id", str(campaign_id), "--input", str(tmp_path / "nope"))
    assert_one_line_failure(out, 2, "input not found")


def test_cli_input_lacking_columns(project: Project, tmp_path: Path) -> None:
    campaign_id = project.create_campaign("cli columns", "age > 20")
    pd.read_parquet(project.users).drop(columns=["monetary"]).to_parquet(tmp_path / "u.parquet")
    out = cli(project, "--campaign-id", str(campaign_id), "--input", str(tmp_path / "u.parquet"))
    assert_one_line_failure(out, 2, "input lacks columns ['monetary']")
    assert last_run(project, campaign_id).status == "failed"


def test_cli_success_prints_the_seed_progress_lines(
    project: Project, connect_env: dict[str, str]
) -> None:
    """Over the suite's Spark Connect server (a warm JVM); the cluster test runs it classic."""
    campaign_id = project.create_campaign("cli ok", "country='US' AND age > 25")
    out = cli(project, "--campaign-id", str(campaign_id), env=connect_env)
    assert out.returncode == 0, out.stderr
    users = pd.read_parquet(project.users)
    n = int(((users.country == "US") & (users.age > 25)).sum())
    for line in [
        "🚀 SPARK PREDICTION JOB STARTING",
        f"📡 Fetching campaign config from: {project.url}/campaigns/{campaign_id}",
        "✅ Loaded campaign: cli ok",
        "📦 Loading model from: models/campaign_model_v1.pkl",
        f"📊 Reading user data from: {project.users}",
        "✅ Loaded 1,000 users",
        "⚙️ Scoring path: python-reads: Python tasks read the Parquet row groups, only the "
        "scores cross to Spark",
        "🎯 Applying audience filter: country='US' AND age > 25",
        f"✅ Filtered to {n:,} users ({n / 1000:.1%})",
        "🤖 Generating predictions...",
        f"💾 Writing predictions to: {project.output(campaign_id)}",
        "✅ JOB COMPLETED SUCCESSFULLY",
    ]:
        assert line in out.stdout.splitlines(), line
    assert len(pd.read_parquet(project.output(campaign_id))) == n


def test_bigquery_output_without_the_connector_fails_before_any_work(
    project: Project, spark
) -> None:
    campaign_id = project.create_campaign("bigquery", "age > 20")
    with pytest.raises(InvalidInputError, match="spark-bigquery connector"):
        predict.run_job(
            campaign_id,
            config_api_url=project.url,
            input_path=str(project.users),
            output_path="bigquery:my-project.marketing.predictions",
            spark=spark,
            model_dir=project.models,
            echo=lambda line: None,
        )
    assert last_run(project, campaign_id).status == "failed"


def test_malformed_bigquery_target_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"bigquery:project\.dataset\.table"):
        sink_for("bigquery:just-a-table")
    assert isinstance(sink_for("bigquery:proj.dataset.table"), BigQuerySink)
    assert isinstance(sink_for("gs://bucket/predictions.parquet"), ObjectStoreSink)


# ---- hostile and damaged inputs: the documented exit code, or it works -----------------------
def run_on(
    project: Project,
    spark,
    campaign_id: int,
    users: Path,
    output: Path,
    scoring_path: str | None = None,
):
    return predict.run_job(
        campaign_id,
        config_api_url=project.url,
        input_path=str(users),
        output_path=str(output),
        spark=spark,
        model_dir=project.models,
        echo=lambda line: None,
        scoring_path=scoring_path,
    )


def users_table(project: Project) -> pa.Table:
    return pq.read_table(project.users)


@pytest.mark.parametrize("path", ["python-reads", "spark-reads"])
def test_damaged_data_pages_behind_an_intact_footer_are_exit_2(
    project: Project, spark, tmp_path: Path, path: str
) -> None:
    damaged = tmp_path / "damaged.parquet"
    pq.write_table(users_table(project), damaged, compression="snappy")
    data = bytearray(damaged.read_bytes())
    footer_start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    for i in range(4, footer_start - 4, 7):  # garble the pages, keep the footer readable
        data[i] = (data[i] * 31 + 17) % 256
    damaged.write_bytes(bytes(data))
    pq.read_metadata(damaged)  # the footer still reads: only Spark's scan can find out
    campaign_id = project.create_campaign(f"damaged pages {path}", "age > 20")
    with pytest.raises(InvalidInputError, match="damaged"):
        run_on(project, spark, campaign_id, damaged, tmp_path / "out.parquet", path)
    assert not (tmp_path / "out.parquet").exists()
    assert last_run(project, campaign_id).status == "failed"


def test_parts_whose_column_types_disagree_are_refused_before_spark(
    project: Project, tmp_path: Path
) -> None:
    table = users_table(project)
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(table.slice(0, 500), folder / "part-0.parquet")
    second = table.slice(500).set_column(
        table.schema.get_field_index("age"), "age", pc.cast(table.slice(500)["age"], pa.string())
    )
    pq.write_table(second, folder / "part-1.parquet")
    with pytest.raises(InvalidInputError, match="parts disagree on column 'age'"):
        check_local_input(str(folder), ["user_id", "age"])


def test_a_part_lacking_a_needed_column_is_refused_before_spark(
    project: Project, tmp_path: Path
) -> None:
    # Spark would read NULL for it and quietly drop those users from `country = 'US'`.
    table = users_table(project)
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(table.slice(0, 500), folder / "part-0.parquet")
    pq.write_table(table.slice(500).drop_columns(["country"]), folder / "part-1.parquet")
    with pytest.raises(InvalidInputError, match=r"part-1\.parquet lacks column 'country'"):
        check_local_input(str(folder), ["user_id", "country"])
    assert check_local_input(str(folder), ["user_id", "age"]) == 1000  # not needed: fine
    (folder / "part-0.parquet").rename(folder / "part-2.parquet")  # the first part lacks it
    with pytest.raises(InvalidInputError, match=r"part-1\.parquet lacks column 'country'"):
        check_local_input(str(folder), ["user_id", "country"])


@pytest.mark.parametrize(
    ("user_ids", "message"),
    [
        (pa.array([i + 0.5 for i in range(1000)], pa.float64()), "is float"),
        (pa.array([2**63 + i for i in range(1000)], pa.uint64()), "is uint64"),
        (pa.array([str(i) for i in range(1000)], pa.string()), "is string"),
    ],
)
def test_user_ids_that_are_not_int64_are_refused(
    project: Project, tmp_path: Path, user_ids: pa.Array, message: str
) -> None:
    table = users_table(project)
    table = table.set_column(table.schema.get_field_index("user_id"), "user_id", user_ids)
    pq.write_table(table, tmp_path / "u.parquet")
    with pytest.raises(InvalidInputError, match=f"'user_id' must hold whole numbers.*{message}"):
        check_local_input(str(tmp_path / "u.parquet"), ["user_id", "age"])


def test_null_user_ids_in_the_audience_are_refused_not_written(
    project: Project, spark, tmp_path: Path
) -> None:
    table = users_table(project)
    ids = [None if i % 100 == 0 else v for i, v in enumerate(table["user_id"].to_pylist())]
    table = table.set_column(0, "user_id", pa.array(ids, pa.int64()))
    pq.write_table(table, tmp_path / "u.parquet")
    campaign_id = project.create_campaign("null ids", None)
    with pytest.raises(InvalidInputError, match="10 users without a user_id"):
        run_on(project, spark, campaign_id, tmp_path / "u.parquet", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_duplicate_users_are_refused_not_scored_twice(
    project: Project, spark, tmp_path: Path
) -> None:
    table = users_table(project)
    pq.write_table(pa.concat_tables([table, table.slice(0, 3)]), tmp_path / "u.parquet")
    campaign_id = project.create_campaign("duplicates", None)
    with pytest.raises(InvalidInputError, match="3 duplicate user_id rows"):
        run_on(project, spark, campaign_id, tmp_path / "u.parquet", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("path", ["python-reads", "spark-reads"])
def test_categorical_country_and_decimal_monetary_are_scored_like_the_plain_input(
    project: Project, spark, tmp_path: Path, path: str
) -> None:
    users = pd.read_parquet(project.users)
    odd = users.astype({"country": "category"})
    table = pa.Table.from_pandas(odd, preserve_index=False)
    cents = [Decimal(f"{v:.2f}") for v in users.monetary]
    monetary = pa.array(cents, pa.decimal128(12, 2))
    table = table.set_column(table.schema.get_field_index("monetary"), "monetary", monetary)
    pq.write_table(table, tmp_path / "u.parquet")
    assert pa.types.is_dictionary(pq.read_schema(tmp_path / "u.parquet").field("country").type)
    text = "country IN ('US', 'DE') AND monetary > 100"
    campaign_id = project.create_campaign(f"odd types {path}", text)
    result = run_on(
        project, spark, campaign_id, tmp_path / "u.parquet", tmp_path / "out.parquet", path
    )
    assert result.scoring_path == path

    plain = users.assign(monetary=[float(c) for c in cents])
    expected = plain[plain.country.isin(["US", "DE"]) & (plain.monetary > 100)]
    out = pd.read_parquet(tmp_path / "out.parquet").merge(expected, on=schema.USER_ID)
    assert result.audience_size == len(expected) == len(out)
    model = load_model("campaign_model_v1.cbm", project.models)
    truth = model.predict_proba(out[list(schema.FEATURES)])[:, 1]
    assert np.max(np.abs(out[schema.SCORE].to_numpy() - truth)) <= 1e-9


@pytest.mark.parametrize("path", ["python-reads", "spark-reads"])
def test_an_int64_monetary_is_filtered_exactly_like_spark_sql_reads_the_filter(
    project: Project, spark, tmp_path: Path, path: str
) -> None:
    # The report: monetary stored as int64 was cast to double, so `= 9007199254740993`
    # selected both 2^53 and 2^53 + 1; Spark SQL on the bigint column selects one.
    users = pd.read_parquet(project.users).head(4)
    table = pa.Table.from_pandas(users, preserve_index=False)
    big = pa.array([2**53, 2**53 + 1, 2**53 + 1, 7], pa.int64())
    table = table.set_column(table.schema.get_field_index("monetary"), "monetary", big)
    pq.write_table(table, tmp_path / "u.parquet")
    text = "monetary = 9007199254740993 OR monetary BETWEEN 6.5 AND 7"
    # Values far beyond the training range are this test's point: the gate would refuse them.
    campaign_id = project.create_campaign(f"int64 monetary {path}", text, input_tolerance=1)
    run_on(project, spark, campaign_id, tmp_path / "u.parquet", tmp_path / "out.parquet", path)
    selected = sorted(pd.read_parquet(tmp_path / "out.parquet")[schema.USER_ID])
    by_spark_sql = spark.read.parquet(str(tmp_path / "u.parquet")).filter(text)
    assert selected == sorted(row.user_id for row in by_spark_sql.collect())
    assert selected == sorted(users[schema.USER_ID].iloc[1:4])


def test_heartbeat_keeps_a_running_run_fresh(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign_id = project.create_campaign("heartbeat", None)
    with project.api() as api:
        created = api.create_run(campaign_id, status="running")
    monkeypatch.setattr(job._Heartbeat, "interval", 0.1)
    with job._Heartbeat(project.url, campaign_id, created.id):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with project.api() as api:
                beat = api.list_runs(campaign_id)[0].heartbeat_at
            if beat is not None:
                break
            time.sleep(0.1)
    assert beat is not None and beat >= created.created_at


# ---- output safety, end to end -------------------------------------------------------------
def test_output_onto_a_folder_of_other_files_is_refused_and_nothing_is_touched(
    project: Project, tmp_path: Path
) -> None:
    campaign_id = project.create_campaign("cli onto a folder", "age > 20")
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "q3.csv").write_text("precious")
    out = cli(project, "--campaign-id", str(campaign_id), "--output", str(folder))
    assert_one_line_failure(out, 2, "not this job's output")
    assert [p.name for p in folder.iterdir()] == ["q3.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]


def test_output_equal_to_the_input_is_refused_and_the_input_kept(
    project: Project, tmp_path: Path
) -> None:
    campaign_id = project.create_campaign("cli onto the input", "age > 20")
    users = tmp_path / "users.parquet"
    shutil.copy(project.users, users)
    before = users.read_bytes()
    out = cli(
        project, "--campaign-id", str(campaign_id), "--input", str(users), "--output", str(users)
    )
    assert_one_line_failure(out, 2, "output")
    assert users.read_bytes() == before


def test_a_second_run_for_a_busy_target_refuses_with_one_line(
    project: Project, tmp_path: Path
) -> None:
    from lib.sinks import LocalTarget

    campaign_id = project.create_campaign("cli busy", "age > 20")
    target = tmp_path / "out.parquet"
    with LocalTarget(target).lock():
        out = cli(project, "--campaign-id", str(campaign_id), "--output", str(target))
    assert_one_line_failure(out, 2, "another run")
    assert not target.exists()


# ---- the model and the API, as the command line sees them ------------------------------------
@pytest.mark.parametrize("problem", ["entry not an object", "no sha256", "truncated pickle"])
def test_cli_broken_registry_or_model_is_exit_3(
    project: Project, tmp_path: Path, problem: str
) -> None:
    from lib.registry import sha256_file

    campaign_id = project.create_campaign(f"cli registry {problem}", "age > 20")
    models = tmp_path / "models"
    shutil.copytree(project.models, models)
    registry = json.loads((models / "registry.json").read_text())
    entry = registry["artifacts"]["campaign_model_v1.pkl"]
    if problem == "entry not an object":
        registry["artifacts"]["campaign_model_v1.pkl"] = "oops"
    elif problem == "no sha256":
        del entry["sha256"]
    else:
        pkl = models / "campaign_model_v1.pkl"
        pkl.write_bytes(pkl.read_bytes()[:200])
        entry.update(sha256=sha256_file(pkl), size=200)
    (models / "registry.json").write_text(json.dumps(registry))
    out = cli(project, "--campaign-id", str(campaign_id), env={"MODEL_DIR": str(models)})
    message = {
        "entry not an object": "is not an object",
        "no sha256": "no valid sha256",
        "truncated pickle": "not a readable pickle",
    }[problem]
    assert_one_line_failure(out, 3, message)


@pytest.fixture
def html_server() -> Iterator[str]:
    """A loopback server that answers every request 200 with an HTML page (a proxy's login)."""

    class Html(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><body>Please sign in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PATCH = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_cli_api_answering_html_is_exit_6(project: Project, html_server: str) -> None:
    out = cli(project, "--campaign-id", "1", "--config-api-url", html_server)
    assert_one_line_failure(out, 6, "not the expected Campaign")


def test_cli_sigterm_records_the_run_as_failed(project: Project, tmp_path: Path) -> None:
    campaign_id = project.create_campaign("cli sigterm", "age > 20")
    process = start_job(
        project, "--campaign-id", str(campaign_id), "--output", str(tmp_path / "out.parquet")
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with project.api() as api:
                if api.list_runs(campaign_id):
                    break
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, stderr
    assert [line for line in stderr.splitlines() if line.startswith("❌")] == [
        "❌ error: stopped by signal SIGTERM"
    ]
    failed = last_run(project, campaign_id)
    assert failed.status == "failed" and "SIGTERM" in failed.error_message
    assert not (tmp_path / "out.parquet").exists()


def test_file_uri_output_onto_a_folder_of_other_files_is_refused(
    project: Project, tmp_path: Path
) -> None:
    campaign_id = project.create_campaign("cli file uri", "age > 20")
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.docx").write_text("x")
    out = cli(project, "--campaign-id", str(campaign_id), "--output", f"file://{folder}")
    assert_one_line_failure(out, 2, "not this job's output")
    assert [p.name for p in folder.iterdir()] == ["thesis.docx"]


def test_hive_partitioned_input_is_scored_like_the_flat_file(
    project: Project, spark, tmp_path: Path
) -> None:
    users = pd.read_parquet(project.users)
    users.to_parquet(tmp_path / "by_country", partition_cols=["country"])
    campaign_id = project.create_campaign("hive input", "country = 'US' AND age > 25")
    result = run_on(project, spark, campaign_id, tmp_path / "by_country", tmp_path / "out.parquet")
    expected = users[(users.country == "US") & (users.age > 25)]
    assert result.audience_size == len(expected)
    assert result.scoring_path == "spark-reads"  # Spark types the folder values
    assert result.output_path == str(tmp_path / "out.parquet")  # absolute, as recorded
    assert last_run(project, campaign_id).output_path == str(tmp_path / "out.parquet")


def test_cli_sigterm_while_spark_works_is_exit_143_and_recorded(
    project: Project, tmp_path: Path
) -> None:
    from lib.data import write_users

    big = write_users(tmp_path / "big.parquet", 400_000, seed=3)
    campaign_id = project.create_campaign("cli sigterm in spark", None)
    process = start_job(
        project,
        "--campaign-id",
        str(campaign_id),
        "--input",
        str(big),
        "--output",
        str(tmp_path / "out.parquet"),
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # Spark is scoring once the filter line is printed
            if line.startswith("🎯 Applying audience filter"):
                break
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, stderr[-3000:]
    assert [line for line in stderr.splitlines() if line.startswith("❌")] == [
        "❌ error: stopped by signal SIGTERM"
    ]
    assert "Traceback" not in stderr
    failed = last_run(project, campaign_id)
    assert failed.status == "failed" and failed.error_message == "stopped by signal SIGTERM"
    assert not (tmp_path / "out.parquet").exists()


def test_the_in_process_engine_writes_what_spark_writes(
    project: Project, spark, tmp_path: Path
) -> None:
    # engine="local" (the benchmark's floor) runs the same job without Spark: the same
    # users, scores, deciles and cut points (Spark's percentile_approx is exact here).
    campaign_id = project.create_campaign("in process", "country IN ('US', 'GB') AND age > 22")
    results, frames = {}, {}
    for engine in ("spark", "local"):
        out = tmp_path / f"{engine}.parquet"
        results[engine] = predict.run_job(
            campaign_id,
            config_api_url=project.url,
            input_path=str(project.users),
            output_path=str(out),
            spark=spark if engine == "spark" else None,
            model_dir=project.models,
            echo=lambda line: None,
            engine=engine,
        )
        frames[engine] = pd.read_parquet(out).sort_values(schema.USER_ID).reset_index(drop=True)
        assert pq.read_schema(next(out.glob("*.parquet"))).field(schema.DECILE).type == pa.int32()
    columns = [
        schema.USER_ID,
        schema.CAMPAIGN_ID,
        schema.SCORE,
        schema.DECILE,
        schema.GROUP,
        "model_sha256",
    ]
    assert len(frames["local"]) > 100
    pd.testing.assert_frame_equal(frames["spark"][columns], frames["local"][columns])
    local, on_spark = results["local"], results["spark"]
    assert local.decile_cut_points == on_spark.decile_cut_points
    # The holdout and the drift counts too: the same groups, the same PSIs.
    assert local.control_size == on_spark.control_size > 0
    # (The score drift differs: the second run compares its scores with the first.)
    assert local.drift is not None and on_spark.drift is not None
    for key in ("features", "score_shares"):
        assert local.drift[key] == on_spark.drift[key]
    assert local.mean_score == pytest.approx(on_spark.mean_score, rel=1e-12)
    assert local.scoring_path == last_run(project, campaign_id).scoring_path == "in-process"


def test_the_in_process_engine_refuses_what_only_spark_can_do(
    project: Project, tmp_path: Path
) -> None:
    users = pd.read_parquet(project.users)
    users.to_parquet(tmp_path / "by_country", partition_cols=["country"])
    campaign_id = project.create_campaign("in process, partitioned", "age > 30")
    with pytest.raises(InvalidInputError, match="engine=local reads one local Parquet file"):
        predict.run_job(
            campaign_id,
            config_api_url=project.url,
            input_path=str(tmp_path / "by_country"),
            output_path=str(tmp_path / "out.parquet"),
            model_dir=project.models,
            echo=lambda line: None,
            engine="local",
        )
    assert not (tmp_path / "out.parquet").exists()
    assert last_run(project, campaign_id).status == "failed"
