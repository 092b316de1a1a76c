"""After the scoring: the holdout, drift, the input gate, dated runs and backfills, end to end.

The job runs in process (``engine="local"``) or through the runner and its papermill kernel
with ``--engine local``: the same checks, records and reports as on Spark without a JVM
(tests/e2e/test_scoring_job.py shows the engines write the same groups and PSIs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib import predict, schema
from lib.errors import InputGateError
from lib.holdout import is_control
from tests.helpers import project_env, python_module
from tests.project import Project

pytestmark = [pytest.mark.e2e, pytest.mark.notebooks]


def runs(project: Project, campaign_id: int):
    with project.api() as api:
        return api.list_runs(campaign_id)


def env(project: Project) -> dict[str, str]:
    return project_env(project.root, CONFIG_API_URL=project.url)


def snapshot(project: Project, day: str, *args: str) -> Path:
    out = python_module("lib.data", "--as-of", day, "--n-users", "600", *args, env=env(project))
    assert out.returncode == 0, out.stderr
    return project.root / "data" / "users" / f"snapshot_date={day}"


def dated_output(project: Project, campaign_id: int, day: str) -> Path:
    return project.root / "output" / f"predictions_campaign_{campaign_id}_{day}.parquet"


def score_locally(project: Project, campaign_id: int, users: Path, out: Path):
    return predict.run_job(
        campaign_id,
        config_api_url=project.url,
        input_path=str(users),
        output_path=str(out),
        model_dir=project.models,
        echo=lambda line: None,
        engine="local",
    )


def test_every_run_holds_out_the_same_users_and_records_them(
    project: Project, tmp_path: Path
) -> None:
    campaign_id = project.create_campaign("holdout twice", None, holdout_share=0.3)
    first = score_locally(project, campaign_id, project.users, tmp_path / "a.parquet")
    second = score_locally(project, campaign_id, project.users, tmp_path / "b.parquet")
    a, b = (pd.read_parquet(tmp_path / f"{n}.parquet").sort_values(schema.USER_ID) for n in "ab")
    assert a[schema.GROUP].tolist() == b[schema.GROUP].tolist()
    expected = is_control(campaign_id, a[schema.USER_ID].to_numpy(), 0.3)
    assert ((a[schema.GROUP] == "control").to_numpy() == expected).all()
    assert first.control_size == second.control_size == int(expected.sum()) > 0
    newest = runs(project, campaign_id)[0]
    assert newest.control_size == first.control_size
    # The second run compares its scores with the first: the same users, no drift.
    assert first.drift is not None and first.drift["score"] is None
    assert second.drift is not None and second.drift["score"] == pytest.approx(0.0)
    assert newest.score_shares == pytest.approx(second.drift["score_shares"])
    assert newest.max_psi == pytest.approx(max(second.drift["features"].values()))


def test_no_holdout_contacts_everybody(project: Project, tmp_path: Path) -> None:
    campaign_id = project.create_campaign("no holdout", None, holdout_share=0)
    result = score_locally(project, campaign_id, project.users, tmp_path / "out.parquet")
    assert result.control_size == 0 and result.treatment_size == result.audience_size
    assert set(pd.read_parquet(tmp_path / "out.parquet")[schema.GROUP]) == {"treatment"}


def test_the_input_gate_refuses_missing_values_and_writes_nothing(
    project: Project, tmp_path: Path
) -> None:
    users = pd.read_parquet(project.users)
    users["engagement_score"] = users["engagement_score"].mask(np.arange(len(users)) % 2 == 0)
    pq.write_table(pa.Table.from_pandas(users, preserve_index=False), tmp_path / "u.parquet")
    campaign_id = project.create_campaign("gate", None)
    with pytest.raises(InputGateError, match=r"engagement_score: 50\.0% of values missing") as err:
        score_locally(project, campaign_id, tmp_path / "u.parquet", tmp_path / "out.parquet")
    assert err.value.exit_code == 10
    assert not (tmp_path / "out.parquet").exists()
    failed = runs(project, campaign_id)[0]
    assert failed.status == "failed" and "input_tolerance" in (failed.error_message or "")


def test_a_backfill_scores_each_date_once_and_stops_at_the_first_failure(
    project: Project,
) -> None:
    campaign_id = project.create_campaign("backfill", None)
    for day in ("2026-11-01", "2026-11-02"):
        snapshot(project, day)
    cid = str(campaign_id)

    def backfill(*args: str):
        return python_module(
            "lib.runner", "--campaign-id", cid, "--engine", "local", *args, env=env(project)
        )

    done = backfill("--backfill", "2026-11-01..2026-11-02")
    assert done.returncode == 0, done.stderr
    for day in ("2026-11-01", "2026-11-02"):
        assert (
            dated_output(project, campaign_id, day).is_dir()
            or dated_output(project, campaign_id, day).is_file()
        )
    recorded = runs(project, campaign_id)
    assert sorted(str(r.as_of) for r in recorded) == ["2026-11-01", "2026-11-02"]
    assert {r.status for r in recorded} == {"succeeded"}

    again = backfill("--backfill", "2026-11-01..2026-11-02")  # nothing left to do
    assert again.returncode == 0 and again.stdout.count("already scored successfully") == 2
    assert len(runs(project, campaign_id)) == 2

    first_day = dated_output(project, campaign_id, "2026-11-01")
    untouched = sorted((p.name, p.stat().st_mtime_ns) for p in first_day.rglob("*"))
    forced = backfill("--backfill", "2026-11-02..2026-11-04", "--force")
    assert forced.returncode == 2, forced.stdout + forced.stderr  # 11-03 has no snapshot
    assert "backfill stopped at 2026-11-03" in forced.stdout
    by_date = [str(r.as_of) for r in runs(project, campaign_id)]
    assert by_date.count("2026-11-02") == 2 and "2026-11-04" not in by_date
    # Re-running 11-02 replaced that date's output only.
    assert sorted((p.name, p.stat().st_mtime_ns) for p in first_day.rglob("*")) == untouched


def test_a_drifted_snapshot_fires_the_drift_check(project: Project) -> None:
    campaign_id = project.create_campaign("drifted", None)
    snapshot(project, "2026-11-10", "--drift", "1.0")
    out = python_module(
        "lib.runner",
        "--campaign-id",
        str(campaign_id),
        "--engine",
        "local",
        "--as-of",
        "2026-11-10",
        env=env(project),
    )
    assert out.returncode == 0, out.stderr
    assert "⚠️ Drift: recency: PSI" in out.stdout and "(act;" in out.stdout
    run = runs(project, campaign_id)[0]
    assert str(run.as_of) == "2026-11-10" and run.max_psi is not None and run.max_psi > 0.25
    report = Path(out.stdout.rstrip().splitlines()[-1].split(": ", 1)[1])
    page = report.read_text(encoding="utf-8")
    assert 'id="drift-summary"' in page and "recency" in page and "(act)" in page
    assert "Snapshot date" in page and "2026-11-10" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backfill", "2026-11-05..2026-11-01"], "ends before it starts"),
        (["--backfill", "2026-11-01"], "FROM..TO"),
        (["--as-of", "2026-02-30"], "not a calendar date"),
        (["--as-of", "yesterday"], "YYYY-MM-DD"),
        (["--force"], "--force goes with --backfill"),
    ],
)
def test_bad_dates_are_one_line_and_exit_2(project: Project, args: list[str], message: str) -> None:
    out = python_module("lib.runner", "--campaign-id", "1", *args, env=env(project))
    assert out.returncode == 2 and message in out.stderr
