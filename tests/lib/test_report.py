"""lib.report: the run report from an executed notebook 04, without Spark or a kernel.

The notebooks are built here as papermill leaves them: the ``record_run`` JSON output of a
run that succeeded, or the one-line error output of a run that failed. Notebook 04 really
running into a report is tested in tests/notebooks/test_04_report.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib import contacts, gains, report, schema
from lib.files import default_file_mode
from lib.job import JobResult
from lib.settings import PROJECT_ROOT
from tests.helpers import emoji_in, project_env, python_module

SHA256 = "1aa253e920fd8ad43dfb322799d5a4ccdd9e0639736a18696f75797d9570cb96"
OUTPUT = "/data/team/output/predictions_campaign_7.parquet"


def job_result(audience: int = 12_345, output: str = OUTPUT, control: int = 0) -> JobResult:
    return JobResult(
        campaign_id=7,
        campaign_name="Black Friday <Campaign>",
        run_id=42,
        input_path="/data/team/users.parquet",
        output_path=output,
        model_path="models/campaign_model_v1.pkl",
        model_sha256=SHA256,
        audience_filter="country='US' AND age > 25",
        input_rows=1_234_567,
        audience_size=audience,
        mean_score=0.2345678 if audience else None,
        decile_cut_points=[],
        timings={"fetch campaign": 0.02, "write": 1.5},
        holdout_share=0.2 if control else 0.0,
        control_size=control,
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


def executed_notebook(
    tmp_path: Path,
    outputs: list[dict],
    exception: bool = False,
    parameters: dict[str, Any] | None = None,
) -> Path:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("spark = build_spark()\nresult = run_job(campaign_id)")
    code.outputs = [nbformat.from_dict(o) for o in outputs]
    nb.cells = [nbformat.v4.new_markdown_cell("# 04"), code]
    nb.metadata["papermill"] = {
        "parameters": {"campaign_id": 7} if parameters is None else parameters,
        "start_time": "2026-11-28T10:00:00.000000+00:00",
        "end_time": "2026-11-28T10:00:31.500000+00:00",
        "exception": exception,
    }
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    return path


TIMINGS = {"start Spark (local JVM)": 7.5, "fetch campaign": 0.02, "write": 1.5}


def recorded(audience: int = 12_345) -> dict:
    histogram = pd.DataFrame({"bin": [0.0, 0.05], "users": [100, 200]})
    payload = report.run_payload(
        job_result(audience), deciles(audience), histogram, TIMINGS, spark_mode="classic"
    )
    return displayed(payload)


def displayed(payload: dict[str, Any]) -> dict:
    return {
        "output_type": "display_data",
        "metadata": {},
        "data": {report.REPORT_MIME: payload, "text/plain": "recorded"},
    }


def write_predictions(
    path: Path, users: int = 500, run_id: int = 42, seed: int = 3
) -> pd.DataFrame:
    """A job's output as lib.schema has it: scores, deciles by rank, a 20% control group."""
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(users), 2)  # rounded: ties, broken by user id in the list
    frame = pd.DataFrame(
        {
            schema.USER_ID: rng.permutation(np.arange(1_000, 1_000 + users)).astype("int64"),
            schema.CAMPAIGN_ID: 7,
            schema.SCORE: scores,
            schema.DECILE: gains.assign_deciles(scores).to_numpy().astype("int32"),
            schema.GROUP: np.where(rng.random(users) < 0.2, "control", "treatment"),
            "model_sha256": SHA256,
            "run_id": run_id,
            "scored_at": pd.Timestamp("2026-11-28T10:00:20Z"),
        }
    )
    table = pa.Table.from_pandas(frame, schema=schema.PREDICTION_SCHEMA, preserve_index=False)
    path.mkdir(parents=True)
    pq.write_table(table, path / "part-00000.parquet")
    return frame


def scored(predictions: pd.DataFrame, output: str, budget: str | int = "30%") -> dict:
    """The record notebook 04 leaves for these predictions (its own aggregation, in pandas)."""
    bins = gains.by_decile_and_bin(predictions)
    per_decile = bins.groupby(schema.DECILE, as_index=False).agg(
        users=("users", "sum"),
        expected=("expected", "sum"),
        min_score=("min_score", "min"),
        max_score=("max_score", "max"),
        control=("control", "sum"),
        control_expected=("control_expected", "sum"),
    )
    control = int((predictions[schema.GROUP] == "control").sum())
    result = job_result(len(predictions), output, control)
    result.mean_score = float(predictions[schema.SCORE].mean())
    histogram = bins.groupby("bin", as_index=False)["users"].sum()
    payload = report.run_payload(
        result, per_decile, histogram, TIMINGS, spark_mode="classic", contact_budget=budget
    )
    return displayed(payload)


def read_list(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def test_a_successful_run_reads_as_a_report(tmp_path: Path) -> None:
    html_path = report.render_report(executed_notebook(tmp_path, [recorded()]))
    page = html_path.read_text(encoding="utf-8")
    assert html_path == tmp_path / "run.html"
    assert '<p id="status" class="status ok">Succeeded</p>' in page
    # Offline: no script at all (so no CDN require.js / MathJax), charts inside the page.
    assert "<script" not in page and 'src="http' not in page
    assert re.search(
        r'<img id="gains-chart" [^>]*src="data:image/png;base64,[A-Za-z0-9+/]{1000}', page
    )
    assert 'id="histogram"' in page and "How the scores are spread" in page
    # The marketer's facts, escaped and formatted.
    assert "Black Friday &lt;Campaign&gt; (id 7)" in page
    assert "12,345 users (1.0% of the 1,234,567 users in the input)" in page
    assert "average score 0.235" in page
    assert "2026-11-28 10:00:00 UTC → 2026-11-28 10:00:31 UTC" in page
    # Expected conversions overall and per decile, the advice, the decile table.
    expected = deciles()["expected"].sum()
    assert f"Expected conversions</th><td>{expected:,.1f}" in page
    assert re.search(
        r'id="advice"[^>]*>Contact the 3,704 best-scoring treatment users \(the default budget: '
        r"30% of the treatment group, the size of the top 3 deciles",
        page,
    )
    table = page[page.index('id="deciles"') : page.index("</table>", page.index('id="deciles"'))]
    assert "<th>expected conversions</th>" in table and "<th>lift</th>" in table
    assert table.count("<tr><th>") == 1 + 10  # the header, one row per decile
    # No notebook code in a report.
    assert "build_spark" not in page and "run_job" not in page


def technical(page: str) -> str:
    """The collapsed technical section of a report."""
    start = page.index('<details id="technical">')
    return page[start : page.index("</details>", start)]


def test_engineering_details_are_folded_away_in_a_collapsed_section(tmp_path: Path) -> None:
    page = report.render_report(executed_notebook(tmp_path, [recorded()])).read_text()
    assert page.count("<details") == 1 and "<summary>Technical details</summary>" in page
    assert not re.search(r"<details[^>]*\bopen\b", page)  # collapsed until clicked
    folded = technical(page)
    before = page[: page.index('<details id="technical">')]
    for detail in (
        f'<code id="sha256">{SHA256}</code>',
        f'<code id="output-path">{OUTPUT}</code>',
        "<th>Run</th><td>42</td>",
        "models/campaign_model_v1.pkl",
        "/data/team/users.parquet",
        "<th>Spark</th><td>classic</td>",
        str(tmp_path / "run.ipynb"),
        'id="timings"',
    ):
        assert detail in folded and detail not in before, detail
    # The stages in the order they ran, not sorted by name.
    assert folded.index("start Spark") < folded.index("fetch campaign") < folded.index("write")


def test_the_report_gives_one_duration_and_says_what_it_measures(tmp_path: Path) -> None:
    page = report.render_report(executed_notebook(tmp_path, [recorded()])).read_text()
    assert "<th>Duration</th><td>31.5 s: the whole run, from starting the notebook" in page
    # The stages are parts of it, never a second total (they add up to 9.02 s).
    assert "Total" not in page and "wall clock" not in page and "9.0" not in page
    assert re.findall(r"\d+\.\d s\b", page) == ["31.5 s", "31.5 s"]  # the fact; "parts of"


def test_the_report_says_what_scores_and_expected_conversions_mean(tmp_path: Path) -> None:
    page = report.render_report(executed_notebook(tmp_path, [recorded()])).read_text()
    box = page[page.index('id="plain-language"') : page.index("</section>")]
    assert page.index('id="plain-language"') < page.index('id="advice"')  # near the top
    assert "estimated probability that a user converts" in box and "propensity" in box
    assert "<code>converted</code> label" in box and "no time window" in box
    assert "whether or not they are contacted" in box
    assert "<em>not</em> the effect of the campaign" in box and "notebook 06" in box
    assert "average score is 0.235" in box  # the baseline


def test_the_report_links_the_contact_list_it_writes_beside_itself(tmp_path: Path) -> None:
    output = tmp_path / "output" / "predictions_campaign_7.parquet"
    predictions = write_predictions(output)
    notebook = executed_notebook(tmp_path, [scored(predictions, str(output))])
    page = report.render_report(notebook).read_text()
    listed = tmp_path / "run_contacts.csv"
    assert contacts.contact_list_path(tmp_path / "run.html") == listed
    assert re.search(
        r'<a id="contact-list" href="run_contacts\.csv" download="run_contacts\.csv"', page
    )
    frame = read_list(listed)
    assert list(frame.columns) == ["rank", "user_id", "score", "decile"]
    assert listed.stat().st_mode & 0o777 == default_file_mode()  # as open() makes it, not 0600
    treatment = predictions[predictions[schema.GROUP] == "treatment"]
    # The rule: 30% of the treatment users, best score first, ties by user id.
    assert len(frame) == gains.parse_contact_budget("30%").contacts(len(treatment)) > 0
    best = treatment.sort_values([schema.SCORE, schema.USER_ID], ascending=[False, True])
    assert frame["user_id"].tolist() == best[schema.USER_ID].head(len(frame)).tolist()
    assert frame["rank"].tolist() == list(range(1, len(frame) + 1))
    assert set(frame["user_id"]).isdisjoint(
        predictions.loc[predictions.group == "control", "user_id"]
    )
    assert frame["score"].is_monotonic_decreasing
    assert f"(CSV, {len(frame):,} users" in page
    # The advice states the list's own numbers, not an estimate.
    exact = float(best[schema.SCORE].head(len(frame)).sum())
    assert f"{exact:,.1f} of " in page and "hold about" not in page


@pytest.mark.parametrize(("budget", "rows"), [("25", 25), (25, 25), ("50%", None), ("5,000", None)])
def test_the_budget_decides_who_is_listed(
    tmp_path: Path, budget: str | int, rows: int | None
) -> None:
    output = tmp_path / "predictions"
    predictions = write_predictions(output)
    treatment = int((predictions[schema.GROUP] == "treatment").sum())
    expected_rows = rows or gains.parse_contact_budget(budget).contacts(treatment)
    notebook = executed_notebook(tmp_path, [scored(predictions, str(output), budget)])
    page = report.render_report(notebook).read_text()
    assert len(read_list(tmp_path / "run_contacts.csv")) == expected_rows
    assert "your budget" in page


def test_a_contact_list_that_fails_to_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.csv

    class FullDisk:
        def __init__(self, sink: Any, schema: Any, write_options: Any = None) -> None:
            self.sink = sink

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def write_batch(self, batch: Any) -> None:
            self.sink.write(
                b"rank,user_id,score,decile\n1,10"
            )  # half a list, then the disk is full
            raise OSError(28, "No space left on device")

    output = tmp_path / "output" / "predictions"
    predictions = write_predictions(output)
    notebook = executed_notebook(tmp_path, [scored(predictions, str(output))])
    monkeypatch.setattr(pyarrow.csv, "CSVWriter", FullDisk)
    page = report.render_report(notebook).read_text()
    assert "The contact list could not be written" in page and "No space left" in page
    assert 'id="contact-list"' not in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["output", "run.html", "run.ipynb"]


def test_a_list_of_predictions_elsewhere_points_at_the_output_table(tmp_path: Path) -> None:
    table = "bigquery:my-project.marketing.predictions_campaign_7"
    predictions = write_predictions(tmp_path / "unused")
    page = report.render_report(
        executed_notebook(tmp_path, [scored(predictions, table)])
    ).read_text()
    assert 'id="contact-list-elsewhere"' in page and "in the output table" in page
    assert table in page and not (tmp_path / "run_contacts.csv").exists()


def test_predictions_replaced_by_a_later_run_are_not_listed_as_this_runs(tmp_path: Path) -> None:
    output = tmp_path / "predictions"
    write_predictions(output, run_id=43)  # the next run replaced them
    predictions = pd.read_parquet(output).assign(run_id=42)
    page = report.render_report(
        executed_notebook(tmp_path, [scored(predictions, str(output))])
    ).read_text()
    assert "are now run 43&#x27;s, not this run&#x27;s (42)" in page
    assert not (tmp_path / "run_contacts.csv").exists()


def test_a_failed_run_leaves_no_stale_contact_list_beside_its_report(tmp_path: Path) -> None:
    stale = tmp_path / "run_contacts.csv"
    stale.write_text("rank,user_id,score,decile\n1,5,0.9,1\n")  # an earlier run of the same name
    error = {"output_type": "error", "ename": "ModelError", "evalue": "model missing"}
    page = report.render_report(executed_notebook(tmp_path, [error], exception=True)).read_text()
    assert not stale.exists() and "contact-list" not in page


def test_a_small_audience_is_warned_that_its_deciles_are_noise(tmp_path: Path) -> None:
    output = tmp_path / "predictions"
    predictions = write_predictions(output, users=38)
    page = report.render_report(
        executed_notebook(tmp_path, [scored(predictions, str(output))])
    ).read_text()
    caveat = re.search(r'<p id="small-audience" class="caveat">(.*?)</p>', page)
    assert caveat is not None
    assert caveat.group(1).startswith("A small audience: 38 users, so its deciles hold only 3 ")
    assert "Do not rank deciles by lift" in caveat.group(1)
    big = report.render_report(executed_notebook(tmp_path, [recorded()])).read_text()
    assert 'id="small-audience"' not in big


def test_the_charts_axes_are_labelled_in_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures: list[Any] = []
    monkeypatch.setattr(report, "_png", lambda fig: figures.append(fig) or "")
    report.build_html(report.read_run(executed_notebook(tmp_path, [recorded()])))
    labels = [(ax.get_xlabel(), ax.get_ylabel()) for fig in figures for ax in fig.axes]
    assert ("Score (estimated chance of converting)", "Users") in labels
    assert (
        "Share of the audience contacted (best scores first)",
        "Share of the expected conversions reached",
    ) in labels
    assert not [label for pair in labels for label in pair if "_" in label]  # no column names


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
    assert "Run report · Campaign 7" in page and "?" not in page.replace("<!DOCTYPE", "")
    assert "<th>Campaign</th><td>Campaign 7 (the run stopped before it read" in page
    assert "<script" not in page


def test_a_failed_run_is_named_from_what_it_knew(tmp_path: Path) -> None:
    """The name the job printed before failing, else the campaign id of the parameters
    cells (papermill run without -p), never a question mark."""
    loaded = {
        "output_type": "stream",
        "name": "stdout",
        "text": "✅ Loaded campaign: Spring Sale\n",
    }
    error = {"output_type": "error", "ename": "ModelError", "evalue": "model missing"}
    page = report.render_report(executed_notebook(tmp_path, [loaded, error], True)).read_text()
    assert "Run report · Spring Sale" in page and "Spring Sale (id 7)" in page

    notebook = executed_notebook(tmp_path, [error], True, parameters={})
    nb = nbformat.read(notebook, as_version=4)
    defaults = nbformat.v4.new_code_cell("campaign_id: int = 1  # the campaign to score")
    defaults.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell("# Parameters\ncampaign_id = 9\n")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells[1:1] = [defaults, injected]
    nbformat.write(nb, notebook)
    assert report.campaign_label(report.read_run(notebook)) == "Campaign 9"


def test_an_unexpected_error_keeps_its_name(tmp_path: Path) -> None:
    error = {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero"}
    page = report.render_report(executed_notebook(tmp_path, [error]), exit_code=1).read_text()
    assert "Failed: ZeroDivisionError: division by zero" in page


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
    assert "Succeeded" not in page and "Incomplete: the run did not reach" in page
    assert "Run report · Campaign 1" in page  # the parameters cell's default


def test_no_report_has_emoji_or_characters_a_font_may_lack(tmp_path: Path) -> None:
    """Plain words: a status emoji renders as a box where a font lacks it."""
    error = {"output_type": "error", "ename": "ModelError", "evalue": "model missing"}
    output = tmp_path / "predictions"
    small = scored(write_predictions(output, users=38), str(output))
    pages = [
        report.render_report(executed_notebook(tmp_path, outputs)).read_text(encoding="utf-8")
        for outputs in ([recorded()], [recorded(0)], [small], [error])
    ]
    pages.append(report.build_html(report.read_run(report_source_notebook())))
    for page in pages:
        assert emoji_in(page) == []
        assert max(map(ord, page)) <= 0xFFFF  # nothing outside the Basic Multilingual Plane


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


# ---- the budget from `make score` to the notebook ----------------------------------------------
def test_a_bad_budget_stops_the_runner_in_one_line_before_anything_is_written(
    tmp_path: Path,
) -> None:
    out = python_module(
        "lib.runner", "--campaign-id", "7", "--contact-budget", "lots", env=project_env(tmp_path)
    )
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("❌ error: the contact budget is a number of contacts (e.g. 500)")
    assert "'lots'" in line and out.stdout == ""
    assert not (tmp_path / "output").exists()  # no run folder, no notebook, no report


def test_the_runner_hands_the_budget_to_notebook_04(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import papermill

    from lib import runner
    from tests.helpers import configure_env

    configure_env(monkeypatch, tmp_path, SPARK_MASTER="local[1]")  # no Spark Connect lookup
    given: list[dict[str, Any]] = []
    monkeypatch.setattr(
        papermill, "execute_notebook", lambda *a, parameters, **k: given.append(parameters)
    )
    runner.main(["--campaign-id", "7", "--contact-budget", " 1,500 "])
    runner.main(["--campaign-id", "7"])
    assert given[0]["contact_budget"] == "1,500"
    assert "contact_budget" not in given[1]  # the notebook's default (30%)
    assert "--contact-budget" in runner.build_parser().format_help()


def test_make_score_passes_budget_to_the_runner() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert re.search(r"^BUDGET\s+\?=\s*$", makefile, re.M)  # empty: the notebook's default
    assert "--contact-budget '$(BUDGET)'" in makefile
    out = subprocess.run(
        ["make", "-n", "score", "BUDGET=500", f"VENV={Path(sys.executable).parent.parent}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert re.search(r"-m lib\.runner --campaign-id 1 --contact-budget '500'$", out.stdout, re.M)


def test_notebook_04_declares_the_budget_parameter_with_its_default() -> None:
    import papermill

    from lib.runner import NOTEBOOK

    declared = papermill.inspect_notebook(str(NOTEBOOK))["contact_budget"]
    assert declared["inferred_type_name"] == "str"
    assert declared["default"] == f'"{gains.DEFAULT_CONTACT_BUDGET}"'


@pytest.mark.parametrize("case", ["elsewhere", "replaced"])
def test_a_run_that_writes_no_list_removes_an_earlier_runs_list(tmp_path: Path, case: str) -> None:
    # A list beside a report is always that run's: `make demo` reuses its report's name.
    stale = tmp_path / "run_contacts.csv"
    stale.write_text("rank,user_id,score,decile\n1,5,0.9,1\n")
    if case == "elsewhere":
        where, predictions = "bigquery:p.d.t", write_predictions(tmp_path / "unused")
    else:
        output = tmp_path / "predictions"
        write_predictions(output, run_id=43)
        where, predictions = str(output), pd.read_parquet(output).assign(run_id=42)
    report.render_report(executed_notebook(tmp_path, [scored(predictions, where)]))
    assert not stale.exists()
