"""Notebook 04 as the production job: papermill CLI, testbook, `make score`, `make demo`."""

from __future__ import annotations

import ast
import json
import re
import socket
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from lib import report
from lib.settings import PROJECT_ROOT
from tests.conftest import ScoredRun
from tests.helpers import project_env, run_cmd
from tests.notebooks.conftest import assert_no_noise, assert_quiet_notebook, executed_notebook
from tests.project import Project

pytestmark = [pytest.mark.e2e, pytest.mark.notebooks]

NOTEBOOK = PROJECT_ROOT / "notebooks" / "04_spark_scoring.ipynb"
PAPERMILL = Path(sys.executable).parent / "papermill"


def test_papermill_lists_every_parameter_with_its_declared_type() -> None:
    out = run_cmd([PAPERMILL, "--help-notebook", NOTEBOOK])
    assert out.returncode == 0, out.stderr
    listed = dict(re.findall(r"^  (\w+): (\w+) \(default", out.stdout, re.M))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    declared = {
        node.target.id: ast.unparse(node.annotation)
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    assert listed == declared
    assert listed["campaign_id"] == "int"


def test_papermill_cli_runs_the_job(
    project: Project, connect_env: dict[str, str], tmp_path: Path
) -> None:
    campaign_id = project.create_campaign("papermill", "country='US' AND age > 25")
    executed = tmp_path / "runs" / "black_friday.ipynb"
    executed.parent.mkdir()
    out = run_cmd(
        [
            PAPERMILL,
            NOTEBOOK,
            executed,
            "-p",
            "campaign_id",
            str(campaign_id),
            "-p",
            "config_api_url",
            project.url,
        ],
        {**project.env, **connect_env},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    nb = nbformat.read(executed, as_version=4)
    assert not [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    printed = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "✅ JOB COMPLETED SUCCESSFULLY" in printed
    users = pd.read_parquet(project.users)
    expected = int(((users.country == "US") & (users.age > 25)).sum())
    assert len(pd.read_parquet(project.output(campaign_id))) == expected


def test_testbook_reads_the_jobs_results_from_the_kernel(
    project: Project, connect_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {**project.env, **connect_env}.items():
        monkeypatch.setenv(key, value)
    campaign_id = project.create_campaign("testbook", "engagement_score >= 0.5")
    users = pd.read_parquet(project.users)
    expected = int((users.engagement_score >= 0.5).sum())
    params = {"campaign_id": campaign_id, "config_api_url": project.url}
    with executed_notebook("04_spark_scoring.ipynb", params) as tb:
        assert tb.value("audience_size") == expected
        assert sum(tb.value("decile_sizes")) == expected
        summary = tb.value("summary")
        assert summary["input_rows"] == len(users)
        assert summary["output_path"] == str(project.output(campaign_id))
        assert set(tb.value("list(result.timings)")) >= {"load model", "filter + score", "write"}
        assert tb.value("len(top_users)") == 10


def test_score_entry_point_exits_0_every_time_it_runs(
    project: Project, connect_env: dict[str, str], scored_run: ScoredRun
) -> None:
    """Run after run, the process ends cleanly: nothing aborts after the job succeeded.
    Over Spark Connect, as a learner re-runs it with `make up`: the suite's `make score` run,
    then the same campaign again."""
    again = run_cmd(
        [sys.executable, "-m", "lib.runner", "--campaign-id", str(scored_run.campaign_id)],
        {**project.env, **connect_env},
    )
    for attempt, out in enumerate([scored_run.process, again]):
        assert out.returncode == 0, (attempt, out.stderr[-3000:])
        assert "terminate called" not in out.stderr and "Fatal Python error" not in out.stderr
        assert out.stdout.rstrip().splitlines()[-1].startswith("📄 Run report:")


def test_notebook_04_with_its_spark_connect_server_down_fails_in_one_line_at_once(
    project: Project,
) -> None:
    # After `make down`, SPARK_REMOTE still set: the kernel sat "Busy" for 10 minutes.
    campaign_id = project.create_campaign("connect down", "age > 20")
    with socket.socket() as closed:  # bound, never listening: refused
        closed.bind(("127.0.0.1", 0))
        remote = f"sc://localhost:{closed.getsockname()[1]}"
        started = time.monotonic()
        out = run_cmd(
            [sys.executable, "-m", "lib.runner", "--campaign-id", str(campaign_id)],
            {**project.env, "SPARK_REMOTE": remote},
            timeout=300,
        )
    assert time.monotonic() - started < 120  # a kernel's start included; pyspark: 10 minutes
    assert out.returncode == 9, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("❌")]
    assert errors == [
        f"❌ error: no Spark Connect server at {remote} (nothing listens there): "
        "start the project's server with `make up`, or unset SPARK_REMOTE to run "
        "Spark here"
    ], out.stderr
    assert "Traceback" not in out.stderr and "RETRIES_EXCEEDED" not in out.stderr


def test_failing_run_exits_with_the_jobs_code_and_keeps_the_notebook(project: Project) -> None:
    out = run_cmd([sys.executable, "-m", "lib.runner", "--campaign-id", "9999"], project.env)
    assert out.returncode == 4
    assert "❌ error: campaign 9999 does not exist" in out.stderr
    executed = sorted((project.root / "output" / "runs").glob("campaign_9999_*.ipynb"))
    assert len(executed) == 1
    cells = json.loads(executed[0].read_text())["cells"]
    errors = [
        o
        for c in cells
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
        if o["output_type"] == "error"
    ]
    assert errors and errors[0]["ename"] == "CampaignNotFoundError"


def test_make_demo_runs_end_to_end_twice(tmp_path: Path) -> None:
    env = project_env(tmp_path, API_PORT="0")
    first = run_cmd([sys.executable, "scripts/demo.py"], env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for text in (
        "Model accuracy: 0.",
        "Created campaign 1: Black Friday Campaign",
        "✅ JOB COMPLETED SUCCESSFULLY",
        "Audience:",
        "Mean score:",
        "Report:",
        "Contacts:",
        "🛑 Config API stopped",
    ):
        assert text in first.stdout, text
    contacts = tmp_path / "output" / "runs" / "demo_campaign_1_contacts.csv"
    assert f"Contacts:   {contacts}" in first.stdout
    predictions = pd.read_parquet(tmp_path / "output" / "predictions_campaign_1.parquet")
    users = pd.read_parquet(tmp_path / "data" / "sample_users.parquet")
    assert len(users) == 1_000
    assert len(predictions) == int(((users.country == "US") & (users.age > 25)).sum())
    assert (tmp_path / "output" / "runs" / "demo_campaign_1.html").exists()
    # Classic Spark (the demo starts no Connect server): the kernel's own JVM, where the JVM's
    # and Spark's start-up lines came from, prints nothing a learner cannot act on.
    assert_no_noise(first.stdout + first.stderr)
    executed = tmp_path / "output" / "runs" / "demo_campaign_1.ipynb"
    assert_quiet_notebook(executed)
    run = report.read_run(executed)
    assert run.payload is not None and run.payload["spark_mode"].startswith("classic")
    timings = dict(run.payload["timings"])
    assert list(timings)[:2] == ["import libraries", "start Spark (local JVM)"]
    assert timings["start Spark (local JVM)"] > 1  # a JVM start, not the 0.000 it once showed

    second = run_cmd([sys.executable, "scripts/demo.py"], env)  # idempotent
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for out in (first, second):  # no crash after success (a native thread alive at exit)
        assert "terminate called" not in out.stderr and "Fatal Python error" not in out.stderr
    assert "Reusing campaign 1: Black Friday Campaign" in second.stdout
    assert "Reusing registered model" in second.stdout
