"""Notebook 04 as `make score` runs it: a quiet terminal, honest timings, a marketer's report.

Classic Spark on purpose (no Spark Connect server): the kernel starts its own JVM, which is
where the JVM's and Spark's start-up lines used to come from.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from lib import report, schema
from lib.api_client import ConfigApiClient
from lib.api_server import free_port
from lib.contract import seed_campaign
from lib.data import write_users
from tests.helpers import project_env, python_module
from tests.notebooks.conftest import assert_no_noise
from tests.servers import uvicorn_server

pytestmark = [pytest.mark.notebooks, pytest.mark.e2e, pytest.mark.spark]


def test_make_score_is_quiet_and_writes_a_report(trained_model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(trained_model_dir, root / "models")
    write_users(root / "data" / "sample_users.parquet", 600, seed=5)
    env = project_env(root)
    with uvicorn_server(env, tmp_path / "api.log") as url:
        with ConfigApiClient(url) as api:
            campaign = api.create_campaign(**seed_campaign())
        out = python_module(
            "lib.runner", "--campaign-id", str(campaign.id), env={**env, "CONFIG_API_URL": url}
        )
    assert out.returncode == 0, out.stderr[-3000:]
    # Nothing a learner cannot act on, in the terminal or in the executed notebook.
    assert_no_noise(out.stdout + out.stderr)
    assert out.stderr.strip() == "", out.stderr
    (executed,) = (root / "output" / "runs").glob(f"campaign_{campaign.id}_*.ipynb")
    nb = nbformat.read(executed, as_version=4)
    shown = "\n".join(
        output.get("text", "") + "".join(map(str, output.get("data", {}).values()))
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert_no_noise(shown)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr"]

    # Honest timings: every stage the notebook waited for, the session start first.
    run = report.read_run(executed)
    assert run.payload is not None
    timings = dict(run.payload["timings"])
    assert list(timings)[:2] == ["import libraries", "start Spark (local JVM)"]
    assert timings["start Spark (local JVM)"] > 1  # a JVM start, not the 0.000 it once showed
    job_stages = {"fetch campaign", "read", "filter + score", "write"}
    assert job_stages | {"job: checks and run record", "summaries (Spark)"} <= set(timings)
    assert run.payload["spark_mode"].startswith("classic")

    # The report: what a marketer needs, offline, no code.
    html_path = executed.with_suffix(".html")
    assert f"📄 Run report: {html_path}" in out.stdout
    page = html_path.read_text(encoding="utf-8")
    assert "<script" not in page and 'src="http' not in page
    assert re.search(r'<img id="gains-chart" [^>]*src="data:image/png;base64,', page)
    sha256 = pd.read_parquet(root / "output" / f"predictions_campaign_{campaign.id}.parquet")[
        "model_sha256"
    ].iloc[0]
    assert len(sha256) == 64 and f'<code id="sha256">{sha256}</code>' in page
    output = root / "output" / f"predictions_campaign_{campaign.id}.parquet"
    assert f'<code id="output-path">{output}</code>' in page
    scores = pd.read_parquet(output)[schema.SCORE]
    assert f"Expected conversions</th><td>{scores.sum():,.1f}" in page
    assert "Contact the top 3 deciles" in page and "✅ Succeeded" in page
    assert "run_job(" not in page and "build_spark" not in page  # no code cells


def test_the_job_without_the_api_says_how_to_start_it_in_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    out = python_module(
        "lib.predict", "--campaign-id", "1", "--config-api-url", url, env=project_env(tmp_path)
    )
    assert out.returncode == 6
    (line,) = out.stderr.strip().splitlines()  # the real error is still shown, in one line
    assert line.startswith(f"❌ error: config API unreachable at {url}")
    assert "`make api`" in line
