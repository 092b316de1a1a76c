"""Notebook 04 as `make score` runs it: a quiet terminal, honest timings, a marketer's report.

Over the suite's Spark Connect server, as a learner runs it with `make up`. The classic run
(the kernel's own JVM, where the JVM's and Spark's start-up lines came from) is checked the
same way by the demo's test.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from lib import gains, report, schema
from lib.api_server import free_port
from tests.conftest import ScoredRun
from tests.helpers import project_env, python_module
from tests.notebooks.conftest import assert_no_noise, assert_quiet_notebook
from tests.project import Project

pytestmark = [pytest.mark.notebooks, pytest.mark.e2e, pytest.mark.spark]


def test_make_score_is_quiet_and_writes_a_report(project: Project, scored_run: ScoredRun) -> None:
    """`make score` with the services up (Spark Connect): a quiet terminal, honest timings and
    a marketer's report. The classic run (its own JVM) is checked the same way by the demo's
    test (tests/e2e/test_notebook_job.py), which runs the same runner without a server."""
    out, executed = scored_run.process, scored_run.notebook
    # Nothing a learner cannot act on, in the terminal or in the executed notebook.
    assert_no_noise(out.stdout + out.stderr)
    assert out.stderr.strip() == "", out.stderr
    assert executed.parent == project.root / "output" / "runs"
    assert executed.name.startswith(f"campaign_{scored_run.campaign_id}_")
    assert_quiet_notebook(executed)
    # The learner's exercise, untouched by the job: its check leaves a hint in the executed
    # notebook and nothing in the terminal.
    cells = nbformat.read(executed, as_version=4).cells
    (check,) = [c for c in cells if "check" in c.metadata.get("tags", [])]
    (shown,) = [o["data"]["text/plain"] for o in check.outputs]
    assert shown.startswith("Not yet: replace None")
    assert "Not yet" not in out.stdout

    # Honest timings: every stage the notebook waited for, the session start first.
    run = report.read_run(executed)
    assert run.payload is not None
    timings = dict(run.payload["timings"])
    assert list(timings)[:2] == ["import libraries", "connect to Spark Connect"]
    job_stages = {
        "fetch campaign",
        "load model",
        "filter + score",
        "write",
    }  # python-reads: no read stage
    assert job_stages | {"job: checks and run record", "summaries (Spark)"} <= set(timings)
    assert run.payload["spark_mode"].startswith("Spark Connect")

    # The report: what a marketer needs, offline, no code.
    html_path = scored_run.report
    assert out.stdout.rstrip().splitlines()[-1] == f"📄 Run report: {html_path}"
    page = html_path.read_text(encoding="utf-8")
    assert "<script" not in page and 'src="http' not in page
    assert re.search(r'<img id="gains-chart" [^>]*src="data:image/png;base64,', page)
    output = project.output(scored_run.campaign_id)
    sha256 = pd.read_parquet(output)["model_sha256"].iloc[0]
    assert len(sha256) == 64 and f'<code id="sha256">{sha256}</code>' in page
    assert f'<code id="output-path">{output}</code>' in page
    scores = pd.read_parquet(output)[schema.SCORE]
    assert f"Expected conversions</th><td>{scores.sum():,.1f}" in page
    assert '<p id="status" class="status ok">Succeeded</p>' in page
    assert "(the default budget: 30% of the treatment group, the size of the top 3 deciles" in page
    # The holdout: the advice counts treatment users only and says who is held out, and why.
    frame = pd.read_parquet(output)
    held = int((frame[schema.GROUP] == "control").sum())
    assert held > 0 and f"{held:,} users: the control group" in page
    assert "held out as the control group: not contacted" in page
    # The contact list beside the report: the default budget's best treatment users.
    listed = pd.read_csv(html_path.with_name(f"{html_path.stem}_contacts.csv"))
    treatment = frame[frame[schema.GROUP] == "treatment"]
    best = treatment.sort_values([schema.SCORE, schema.USER_ID], ascending=[False, True])
    assert len(listed) == gains.parse_contact_budget("30%").contacts(len(treatment)) > 0
    assert listed["user_id"].tolist() == best[schema.USER_ID].head(len(listed)).tolist()
    assert f"Contact the {len(listed):,} best-scoring treatment users" in page
    assert f'href="{html_path.stem}_contacts.csv"' in page
    assert 'id="drift-summary"' in page and "Population stability index" in page
    assert "run_job(" not in page and "build_spark" not in page  # no code cells


def test_the_job_without_the_api_says_how_to_start_it_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # nothing listens there
    out = python_module(
        "lib.predict", "--campaign-id", "1", "--config-api-url", url, env=project_env(tmp_path)
    )
    assert out.returncode == 6
    (line,) = out.stderr.strip().splitlines()  # the real error is still shown, in one line
    assert line.startswith(f"❌ error: config API unreachable at {url}")
    assert f"`make api API_PORT={port}`" in line
