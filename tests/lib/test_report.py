"""lib.report: the run report from an executed notebook 04, without Spark or a kernel.

The notebooks are built here as papermill leaves them: the ``record_run`` JSON output of a
run that succeeded, or the one-line error output of a run that failed. Notebook 04 really
running into a report is tested in tests/notebooks/test_04_report.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from lib import report
from lib.job import JobResult

SHA256 = "1aa253e920fd8ad43dfb322799d5a4ccdd9e0639736a18696f75797d9570cb96"
OUTPUT = "/data/team/output/predictions_campaign_7.parquet"


def job_result(audience: int = 12_345) -> JobResult:
    return JobResult(
        campaign_id=7,
        campaign_name="Black Friday <Campaign>",
        run_id=42,
        input_path="/data/team/users.parquet",
        output_path=OUTPUT,
        model_path="models/campaign_model_v1.pkl",
        model_sha256=SHA256,
        audience_filter="country='US' AND age > 25",
        input_rows=1_234_567,
        audience_size=audience,
        mean_score=0.2345678 if audience else None,
        decile_cut_points=[],
        timings={"fetch campaign": 0.02, "write": 1.5},
    )


def deciles(audience: int = 12_345) -> pd.DataFrame:
    users = [audience // 10 + (1 if i < audience % 10 else 0) for i in range(10)]
    means = [0.6 - 0.055 * i for i in range(10)]
    return pd.DataFrame(
        {
            "decile": range(1, 11),
            "users": users,
            "expected": [n * m for n, m in zip(users, means, strict=True)],
            "min_score": [m - 0.02 for m in means],
            "max_score": [m + 0.02 for m in means],
        }
    )


def executed_notebook(tmp_path: Path, outputs: list[dict], exception: bool = False) -> Path:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("spark = build_spark()\nresult = run_job(campaign_id)")
    code.outputs = [nbformat.from_dict(o) for o in outputs]
    nb.cells = [nbformat.v4.new_markdown_cell("# 04"), code]
    nb.metadata["papermill"] = {
        "parameters": {"campaign_id": 7},
        "start_time": "2026-11-28T10:00:00.000000+00:00",
        "end_time": "2026-11-28T10:00:31.500000+00:00",
        "exception": exception,
    }
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    return path


def recorded(audience: int = 12_345) -> dict:
    timings = {"start Spark (local JVM)": 7.5, "fetch campaign": 0.02, "write": 1.5}
    histogram = pd.DataFrame({"bin": [0.0, 0.05], "users": [100, 200]})
    payload = report.run_payload(
        job_result(audience), deciles(audience), histogram, timings, spark_mode="classic"
    )
    return {
        "output_type": "display_data",
        "metadata": {},
        "data": {report.REPORT_MIME: payload, "text/plain": "recorded"},
    }


def test_a_successful_run_reads_as_a_report(tmp_path: Path) -> None:
    html_path = report.render_report(executed_notebook(tmp_path, [recorded()]))
    page = html_path.read_text(encoding="utf-8")
    assert html_path == tmp_path / "run.html"
    assert 'id="status" class="status ok"' in page
    # Offline: no script at all (so no CDN require.js / MathJax), charts inside the page.
    assert "<script" not in page and 'src="http' not in page
    assert re.search(
        r'<img id="gains-chart" [^>]*src="data:image/png;base64,[A-Za-z0-9+/]{1000}', page
    )
    assert 'id="histogram"' in page and "Score histogram" in page
    # The facts in full, escaped, formatted.
    assert f'<code id="sha256">{SHA256}</code>' in page
    assert f'<code id="output-path">{OUTPUT}</code>' in page
    assert "Black Friday &lt;Campaign&gt; (id 7)" in page
    assert "<th>Run</th><td>42</td>" in page
    assert "1,234,567 users" in page and "12,345 users (1.0% of the input)" in page
    assert "mean score 0.235" in page
    assert "2026-11-28 10:00:00 UTC → 2026-11-28 10:00:31 UTC (31.5 s)" in page
    # Expected conversions overall and per decile, the gains sentence, the decile table.
    expected = deciles()["expected"].sum()
    assert f"Expected conversions</th><td>{expected:,.1f}" in page
    assert re.search(r'id="advice"[^>]*>Contact the top 3 deciles: 3,705 users \(30\.0% ', page)
    assert "% of expected conversions" in page
    table = page[page.index('id="deciles"') : page.index("</table>", page.index('id="deciles"'))]
    assert "<th>expected conversions</th>" in table and "<th>lift</th>" in table
    assert table.count("<tr><th>") == 1 + 10  # the header, one row per decile
    # The stages in the order they ran, not sorted by name.
    timings = page[page.index('id="timings"') :]
    assert timings.index("start Spark") < timings.index("fetch campaign") < timings.index("write")
    # No notebook code in a report.
    assert "build_spark" not in page and "run_job" not in page


def test_a_failed_run_says_what_failed_in_one_line_at_the_top(tmp_path: Path) -> None:
    message = (
        "config API unreachable at http://127.0.0.1:8000: nothing is answering there; "
        "start it with `make api` (or `make up`, which also starts Spark Connect)"
    )
    error = {
        "output_type": "error",
        "ename": "ApiUnavailableError",
        "evalue": message,
        "traceback": [f"\x1b[31m❌ error: {message}\x1b[0m"],
    }
    html_path = report.render_report(executed_notebook(tmp_path, [error], exception=True))
    page = html_path.read_text(encoding="utf-8")
    body = page[page.index("<body>") :]
    status = re.search(r'<p id="status" class="status failed">(.*?)</p>', body)
    assert status is not None and "\n" not in status.group(1)
    assert "make api" in status.group(1) and "127.0.0.1:8000" in status.group(1)
    assert body.index('id="status"') < body.index('class="facts"')  # at the top
    assert "failed (exit code 6)" in page  # ApiUnavailableError's exit code
    assert "Run report · campaign 7" in page
    assert "<script" not in page


def test_an_unexpected_error_keeps_its_name(tmp_path: Path) -> None:
    error = {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero"}
    page = report.render_report(executed_notebook(tmp_path, [error]), exit_code=1).read_text()
    assert "❌ Failed: ZeroDivisionError: division by zero" in page


def test_an_empty_audience_reports_nobody_to_contact(tmp_path: Path) -> None:
    page = report.render_report(executed_notebook(tmp_path, [recorded(0)])).read_text()
    assert "nobody to contact" in page
    assert "No users matched the audience filter" in page


def test_the_cli_renders_an_executed_notebook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = executed_notebook(tmp_path, [recorded()])
    assert report.main([str(notebook), "--output", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").is_file()
    assert str(tmp_path / "r.html") in capsys.readouterr().out


def test_a_run_that_never_reached_its_last_cell_is_not_reported_as_succeeded(
    tmp_path: Path,
) -> None:
    """The unexecuted notebook (or one cut off by a dead kernel) has no results: not ✅."""
    page = report.build_html(report.read_run(report_source_notebook()))
    assert "✅ Succeeded" not in page and "⚠️ Incomplete" in page


def report_source_notebook() -> Path:
    from lib.runner import NOTEBOOK

    return NOTEBOOK


def test_an_api_refusal_in_the_notebook_maps_to_the_jobs_exit_code() -> None:
    from lib.errors import pipeline_error_named
    from lib.runner import exit_code_for

    assert exit_code_for("ApiError") == 6  # defined in lib.api_client, not lib.errors
    assert exit_code_for("CampaignNotFoundError") == 4
    assert exit_code_for("ZeroDivisionError") == 1  # a bug, not a pipeline error
    assert pipeline_error_named("Exception") is None
