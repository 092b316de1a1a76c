"""The run report: one self-contained HTML page a marketer can read, from an executed notebook 04.

    python -m lib.report output/runs/<run>.ipynb     # (re)render a report beside it

Notebook 04 ends with :func:`record_run`, which leaves the run's numbers in the notebook as
one JSON output (the campaign, the run, the model's sha256, the audience, the decile
aggregates, the contact budget, the timings). :func:`render_report` reads them back, with
papermill's own record of the run (parameters, start and end time, the failing cell), and
writes a page without code, for a marketer first: the status (on failure, what failed, in
one line at the top), the campaign and its audience, a box saying what the scores and
"expected conversions" mean and do not mean, whom to contact under the campaign's budget
with a link to the contact list (a CSV beside the report, lib.contacts), a warning when the
audience is too small for its deciles to mean much, the cumulative gains chart and the
decile table, the drift check; then, folded away, the technical details (paths, the model's
sha256, Spark, the stages' timings). Charts are PNG images inside the page and there is no
script at all: it opens offline, from a mail attachment or a file share.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pandas as pd

from lib import contacts, errors, gains
from lib.files import atomic_write_bytes, local_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lib.job import JobResult

__all__ = [
    "REPORT_MIME",
    "ContactOutcome",
    "RunNotebook",
    "build_html",
    "campaign_label",
    "contact_plan",
    "read_run",
    "record_run",
    "render_report",
    "run_payload",
]

# The JSON output notebook 04 leaves for the report (a vendor MIME type: Jupyter shows the
# text/plain twin, the report reads the JSON).
REPORT_MIME = "application/vnd.spark-ml-pipeline.run+json"

# What the model's label is (lib.data draws it; lib.training learns it): the report says so,
# since a score means no more than the label it was trained on.
LABEL_MEANING = (
    "The model learned it from past users' <code>converted</code> label: whether a user "
    "converted. This project's training data is synthetic (lib.data draws that label from "
    "the users' own features) and gives it no time window, such as &quot;buys within 30 "
    "days&quot;: so the scores have none either. Read a score as the chance of converting "
    "over a period like the one the model learned from, not within a number of days."
)


# ---- in the notebook ---------------------------------------------------------------------------
def run_payload(
    result: JobResult,
    deciles: pd.DataFrame,
    histogram: pd.DataFrame | None = None,
    timings: Mapping[str, float] | None = None,
    *,
    spark_mode: str = "",
    contact_budget: str | int | gains.ContactRule = gains.DEFAULT_CONTACT_BUDGET,
) -> dict[str, Any]:
    """The run's numbers as JSON: the job's result, per-decile aggregates, histogram, timings
    and the contact budget (as :func:`lib.gains.parse_contact_budget` reads it).

    ``deciles`` needs ``decile`` (or ``score_decile``), ``users`` and ``expected`` (the sum
    of the scores); ``min_score`` and ``max_score`` are shown when present, ``control`` and
    ``control_expected`` (the held-out users) keep them out of the contacts.
    """
    frame = deciles.rename(columns={"score_decile": gains.DECILE})
    columns = [c for c in (gains.DECILE, *gains.AGGREGATE_COLUMNS) if c in frame.columns]
    return {
        "result": result.to_dict(),
        "deciles": _records(frame[columns]),
        "histogram": _records(histogram) if histogram is not None else [],
        # Pairs, not a mapping: notebooks are saved with sorted keys, and stages have an order.
        "timings": [[name, round(float(s), 3)] for name, s in (timings or result.timings).items()],
        "spark_mode": spark_mode,
        "contact_budget": gains.parse_contact_budget(contact_budget).text,
        "recorded_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def record_run(
    result: JobResult,
    deciles: pd.DataFrame,
    histogram: pd.DataFrame | None = None,
    timings: Mapping[str, float] | None = None,
    *,
    spark_mode: str = "",
    contact_budget: str | int | gains.ContactRule = gains.DEFAULT_CONTACT_BUDGET,
) -> dict[str, Any]:
    """Leave the run's numbers in the executed notebook for :func:`render_report`."""
    from IPython.display import display

    payload = run_payload(
        result, deciles, histogram, timings, spark_mode=spark_mode, contact_budget=contact_budget
    )
    text = (
        f"Run {result.run_id} of campaign {result.campaign_id} recorded for the HTML report "
        "(`make score` writes it; `python -m lib.report <executed notebook>` renders it again)"
    )
    display({REPORT_MIME: payload, "text/plain": text}, raw=True)
    return payload


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {str(k): (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


# ---- from the executed notebook ----------------------------------------------------------------
@dataclass
class RunNotebook:
    """What an executed notebook 04 tells about its run."""

    path: Path
    payload: dict[str, Any] | None
    error: tuple[str, str] | None  # (exception name, message) of the failing cell
    parameters: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    # What a run that failed before recording its numbers still tells: the campaign id of
    # its parameters cells, the name the job printed once it had fetched the campaign.
    campaign_id: int | None = None
    campaign_name: str | None = None


# papermill's cells: the notebook's defaults ("parameters"), then its overrides.
_PARAMETER_TAGS = ("parameters", "injected-parameters")
_CAMPAIGN_ID = re.compile(r"^campaign_id\s*(?::[^=\n]*)?=\s*(\d+)\s*(?:#.*)?$", re.M)
_LOADED = re.compile(r"Loaded campaign: (.+)")  # lib.job's progress line


def read_run(path: Path) -> RunNotebook:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    payload: dict[str, Any] | None = None
    error: tuple[str, str] | None = None
    campaign_id: int | None = None
    name: str | None = None
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if set(cell.metadata.get("tags", [])) & set(_PARAMETER_TAGS):
            for found in _CAMPAIGN_ID.finditer(cell.source):
                campaign_id = int(found.group(1))  # the overrides come last
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and error is None:
                error = (str(output.get("ename", "")), str(output.get("evalue", "")))
            if output.get("output_type") == "stream" and name is None:
                loaded = _LOADED.search(str(output.get("text", "")))
                name = loaded.group(1).strip() if loaded else None
            data = output.get("data", {})
            if REPORT_MIME in data:
                payload = dict(data[REPORT_MIME])
    papermill = nb.metadata.get("papermill", {})
    parameters = dict(papermill.get("parameters", {}))
    if isinstance(parameters.get("campaign_id"), int):
        campaign_id = parameters["campaign_id"]
    return RunNotebook(
        path=path,
        payload=payload,
        error=error,
        parameters=parameters,
        started_at=papermill.get("start_time"),
        finished_at=papermill.get("end_time"),
        campaign_id=campaign_id,
        campaign_name=name or None,
    )


def campaign_label(run: RunNotebook) -> str:
    """The campaign as a marketer knows it: its name, else "Campaign <id>" (a run that
    failed before it fetched the campaign), never a question mark."""
    result = (run.payload or {}).get("result", {})
    name = result.get("campaign_name") or run.campaign_name
    campaign_id = result.get("campaign_id", run.campaign_id)
    if name:
        return str(name)
    return f"Campaign {campaign_id}" if campaign_id is not None else "An unknown campaign"


def _campaign_fact(run: RunNotebook) -> str:
    result = (run.payload or {}).get("result", {})
    name = result.get("campaign_name") or run.campaign_name
    campaign_id = result.get("campaign_id", run.campaign_id)
    if name and campaign_id is not None:
        return f"{html.escape(str(name))} (id {html.escape(str(campaign_id))})"
    if campaign_id is not None:
        return (
            f"Campaign {html.escape(str(campaign_id))} (the run stopped before it read the "
            "campaign's name)"
        )
    return html.escape(campaign_label(run))


# ---- whom to contact ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ContactOutcome:
    """The contact list beside a report, or why there is none."""

    plan: gains.ContactPlan
    written: contacts.ContactList | None = None
    problem: str | None = None  # why it could not be written
    elsewhere: str | None = None  # the predictions are not local: the output table instead


def _decile_table(payload: Mapping[str, Any]) -> pd.DataFrame:
    deciles = pd.DataFrame(payload.get("deciles", []))
    if deciles.empty:
        deciles = pd.DataFrame(columns=[gains.DECILE, "users", "expected"])
    return gains.gains_table(deciles)


def _budget(run: RunNotebook) -> tuple[gains.ContactRule, str]:
    """The run's contact budget, and a note when the recorded one was not understood."""
    payload = run.payload or {}
    given = payload.get("contact_budget", run.parameters.get("contact_budget"))
    if given is None:
        return gains.parse_contact_budget(gains.DEFAULT_CONTACT_BUDGET), ""
    try:
        return gains.parse_contact_budget(given), ""
    except errors.InvalidInputError as err:
        rule = gains.parse_contact_budget(gains.DEFAULT_CONTACT_BUDGET)
        return rule, f"{err}; this report uses the default, {rule.describe()}."


def contact_plan(run: RunNotebook) -> gains.ContactPlan | None:
    """Whom the run's budget contacts, from its decile table (None: no results)."""
    if run.payload is None or not run.payload.get("result"):
        return None
    return gains.plan_contacts(_decile_table(run.payload), _budget(run)[0])


def _write_contacts(run: RunNotebook, target: Path) -> ContactOutcome | None:
    """Write the contact list beside the report ``target``. Whenever this run writes none
    (no plan, remote output, a problem), a list left there by an earlier run of the same
    name is removed: a list beside a report is always that run's."""
    path = contacts.contact_list_path(target)
    outcome = _contact_outcome(run, path)
    if outcome is None or outcome.written is None:
        path.unlink(missing_ok=True)
    return outcome


def _contact_outcome(run: RunNotebook, path: Path) -> ContactOutcome | None:
    plan = contact_plan(run)
    if plan is None or plan.contacts == 0:
        return None if plan is None else ContactOutcome(plan)
    result = (run.payload or {}).get("result", {})
    output = str(result.get("output_path") or "")
    try:
        local = local_path(output) if output else None
    except errors.InvalidInputError as err:
        return ContactOutcome(plan, problem=str(err))
    if local is None:
        return ContactOutcome(plan, elsewhere=output or "the job's output")
    run_id = result.get("run_id")
    try:
        written = contacts.write_contact_list(
            output, path, plan.contacts, run_id=run_id if isinstance(run_id, int) else None
        )
    except (contacts.ContactListError, OSError) as err:
        return ContactOutcome(plan, problem=str(err))
    return ContactOutcome(plan.with_exact_expected(written.expected), written=written)


def render_report(
    executed: Path, target: Path | None = None, *, exit_code: int | None = None
) -> Path:
    """Write the HTML report of an executed notebook 04 (default: beside it, ``.html``) and
    its contact list (``<report>_contacts.csv``), each atomically."""
    run = read_run(executed)
    target = target or executed.with_suffix(".html")
    outcome = _write_contacts(run, target)
    page = build_html(run, exit_code=exit_code, contact_list=outcome)
    atomic_write_bytes(target, page.encode("utf-8"))
    return target


# ---- the page ----------------------------------------------------------------------------------
def _exit_code(run: RunNotebook) -> int:
    if run.error is None:
        return 0
    import lib.api_client  # noqa: F401  (defines ApiError, a PipelineError)

    return errors.exit_code_for(run.error[0])


def _failure_line(run: RunNotebook, exit_code: int) -> str:
    if run.error is None:
        return f"The run failed (exit code {exit_code}); the executed notebook has the details."
    name, message = run.error
    first = (message.strip().splitlines() or [name])[0][:500]
    known = errors.pipeline_error_named(name) is not None
    return f"{first}" if known else f"{name}: {first}"


def _when(text: str | None) -> str:
    if not text:
        return "n/a"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _seconds(run: RunNotebook) -> float | None:
    """The run's duration: papermill's clock, from starting the notebook (its kernel) to
    the end of its last cell. The report's one duration."""
    try:
        start = datetime.fromisoformat(run.started_at or "")
        end = datetime.fromisoformat(run.finished_at or "")
    except ValueError:
        return None
    return (end - start).total_seconds()


def _duration_fact(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    shown = f"{int(minutes)} min {rest:.0f} s" if minutes else f"{seconds:,.1f} s"
    return (
        f"{shown}: the whole run, from starting the notebook to the end of its last step "
        "(writing this report is not included)"
    )


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _gains_chart(table: pd.DataFrame) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2))
    ax = gains.plot_gains(table, fig.subplots(), title="Cumulative gains by decile")
    ax.set(
        xlabel="Share of the audience contacted (best scores first)",
        ylabel="Share of the expected conversions reached",
    )
    return _png(fig)


HISTOGRAM_XLABEL = "Score (estimated chance of converting)"


def _histogram_chart(bins: Sequence[Mapping[str, Any]]) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.subplots()
    ax.bar(
        [float(b["bin"]) for b in bins],
        [int(b["users"]) for b in bins],
        width=0.05,
        align="edge",
        color="#4C72B0",
    )
    ax.set(xlabel=HISTOGRAM_XLABEL, ylabel="Users", title="How the scores are spread", xlim=(0, 1))
    return _png(fig)


def _facts_table(rows: Sequence[tuple[str, str]], table_id: str = "") -> str:
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    attribute = f' id="{table_id}"' if table_id else ""
    return f'<table{attribute} class="facts">{cells}</table>'


def _code(text: Any, element_id: str = "") -> str:
    attribute = f' id="{element_id}"' if element_id else ""
    return f"<code{attribute}>{html.escape(str(text))}</code>"


def _frame_html(frame: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or "", *frame])
    body = "".join(
        "<tr>"
        + f"<th>{html.escape(str(index))}</th>"
        + "".join(f"<td>{html.escape(str(v))}</td>" for v in row)
        + "</tr>"
        for index, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    )
    return (
        f'<div class="scroll"><table id="{table_id}" class="numbers">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:960px;padding:0 1rem;color:#1f2328;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.3rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
.status{padding:.6rem .9rem;border-radius:6px;font-weight:600;margin:1rem 0}
.ok{background:#dafbe1;border:1px solid #4ac26b}.failed{background:#ffebe9;border:1px solid #ff8182}
.box{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.2rem 1rem;margin:1rem 0}
.box h2{border:none;margin-top:.6rem}.caveat{background:#fff8c5;border:1px solid #d4a72c;
border-radius:6px;padding:.6rem .9rem}.download{font-weight:600}
table{border-collapse:collapse;margin:.5rem 0}th,td{padding:.25rem .6rem;text-align:left;
vertical-align:top}table.facts th{color:#57606a;font-weight:500;white-space:nowrap}
table.numbers th,table.numbers td{border-bottom:1px solid #eaeef2}
table.numbers{font-size:.9rem}.scroll{overflow-x:auto}
table.numbers td{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em;
word-break:break-all}img{max-width:100%;height:auto}.advice{font-size:1.1rem}
.muted{color:#57606a;font-size:.9rem}details{margin-top:2rem;border-top:1px solid #d0d7de}
summary{cursor:pointer;font-size:1.1rem;font-weight:600;padding:.6rem 0}
"""


def build_html(
    run: RunNotebook,
    *,
    exit_code: int | None = None,
    contact_list: ContactOutcome | None = None,
) -> str:
    """The report page (no scripts, no external resources). ``contact_list``: the list
    :func:`render_report` wrote beside it (without it, the page names no file)."""
    code = _exit_code(run) if exit_code is None else exit_code
    payload = run.payload or {}
    result: dict[str, Any] = payload.get("result", {})
    title = f"Run report · {campaign_label(run)}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if code:
        parts.append(
            '<p id="status" class="status failed">Failed: '
            f"{html.escape(_failure_line(run, code))}</p>"
        )
    elif run.payload is None:  # never executed, or cut off (a dead kernel, a timeout, a kill)
        parts.append(
            '<p id="status" class="status failed">Incomplete: the run did not reach its '
            "last cell, so there are no results to show; the executed notebook may say why.</p>"
        )
    else:
        parts.append('<p id="status" class="status ok">Succeeded</p>')

    audience = int(result.get("audience_size", 0) or 0)
    input_rows = int(result.get("input_rows", 0) or 0)
    table = _decile_table(payload)
    expected = float(table["expected"].sum()) if not table.empty else 0.0
    mean = result.get("mean_score")
    seconds = _seconds(run)
    facts: list[tuple[str, str]] = [
        ("Campaign", _campaign_fact(run)),
        ("Status", "succeeded" if not code else f"failed (exit code {code})"),
        ("Time", html.escape(f"{_when(run.started_at)} → {_when(run.finished_at)}")),
    ]
    if seconds is not None:
        facts.append(("Duration", html.escape(_duration_fact(seconds))))
    if result:
        share = result.get("audience_share", 0.0) or 0.0
        facts += [
            ("Audience filter", _code(result.get("audience_filter") or "(none: every user)")),
            *(
                [("Snapshot date", html.escape(str(result["as_of"])))]
                if result.get("as_of")
                else []
            ),
            (
                "Audience",
                f"{audience:,} users ({share:.1%} of the {input_rows:,} users in the input)",
            ),
            (
                "Held out",
                f"{int(result.get('control_size') or 0):,} users: the control group "
                f"(the campaign holds out {float(result.get('holdout_share') or 0):.0%}); "
                "they are not contacted, so that notebook 06 can measure the effect",
            ),
            (
                "Expected conversions",
                f"{expected:,.1f}"
                + (f" (average score {mean:.3f})" if isinstance(mean, float) else "")
                + ": how many of these users the model expects to convert, contacted or not",
            ),
        ]
    parts.append(_facts_table(facts))

    if result:
        parts.append(_plain_language(expected, audience, mean))
        parts.append("<h2>Whom to contact</h2>")
        outcome = contact_list or ContactOutcome(gains.plan_contacts(table, _budget(run)[0]))
        parts.append(f'<p id="advice" class="advice">{html.escape(outcome.plan.advice())}</p>')
        note = _budget(run)[1]
        if note:
            parts.append(f'<p class="muted">{html.escape(note)}</p>')
        if contact_list is not None:
            parts.append(_contact_list_html(contact_list))
        caveat = gains.small_audience_caveat(table)
        if caveat:
            parts.append(f'<p id="small-audience" class="caveat">{html.escape(caveat)}</p>')
        parts.append(
            '<p class="muted">The curve shows the share of the expected conversions the '
            "best-scoring deciles hold; the dashed line is contacting users at random. "
            "Lift: how many times the audience's average score a decile's average score is "
            "(1.00: no better than random).</p>"
        )
        parts.append(
            '<img id="gains-chart" alt="Cumulative gains by decile" '
            f'src="data:image/png;base64,{_gains_chart(table)}">'
        )
        parts.append("<h2>Deciles (1 = the best-scoring tenth)</h2>")
        if table.empty:
            parts.append("<p>No users matched the audience filter.</p>")
        else:
            parts.append(_frame_html(gains.display_table(table), "deciles"))
        parts.extend(_drift_section(result))
        bins = payload.get("histogram") or []
        if bins:
            parts.append("<h2>How the scores are spread</h2>")
            parts.append(
                '<img id="histogram" alt="How the scores are spread: users by score" '
                f'src="data:image/png;base64,{_histogram_chart(bins)}">'
            )
    parts.append(_technical_details(run, payload, result, seconds))
    parts.append("</body></html>")
    return "\n".join(parts)


def _plain_language(expected: float, audience: int, mean: Any) -> str:
    """What the scores and expected conversions mean and do not mean, with a baseline."""
    baseline = (
        f"<li><b>Baseline.</b> The audience's average score is {mean:.3f}: picking users at "
        f"random, about {100 * mean:.0f} in 100 would convert. A decile's lift compares its "
        "average score with this one.</li>"
        if isinstance(mean, float)
        else ""
    )
    return (
        '<section id="plain-language" class="box"><h2>What these numbers mean</h2><ul>'
        "<li><b>A score</b> is the model's estimated probability that a user converts (their "
        "propensity): 0.25 means about a 1 in 4 chance. "
        f"{LABEL_MEANING}</li>"
        f"<li><b>Expected conversions</b> ({expected:,.1f} here) is the sum of the {audience:,} "
        "users' scores: how many of them the model expects to convert <em>whether or not they "
        "are contacted</em>. It is <em>not</em> the effect of the campaign: what contacting "
        "changes is measured afterwards, by comparing the contacted users with the control "
        "group that was held out (notebook 06).</li>"
        f"{baseline}</ul></section>"
    )


def _contact_list_html(outcome: ContactOutcome) -> str:
    if outcome.written is not None:
        written = outcome.written
        return (
            f'<p class="download"><a id="contact-list" href="{quote(written.path.name)}" '
            f'download="{html.escape(written.path.name)}">Download the contact list</a> '
            f"(CSV, {written.contacts:,} users, beside this report: "
            f"{_code(written.path.name)})</p>"
            '<p class="muted">One row per user to contact, best score first: <b>rank</b> (1 = '
            "the best score), <b>user_id</b>, <b>score</b> (the estimated chance of "
            "converting, 0 to 1) and <b>decile</b> (1 = the best-scoring tenth of the "
            "audience). Treatment users only: the control group is never in it.</p>"
        )
    if outcome.elsewhere is not None:
        return (
            '<p id="contact-list-elsewhere">The contact list is in the output table, '
            f"{_code(outcome.elsewhere)}: its treatment users (<code>group</code> = "
            "<code>treatment</code>) with the highest <code>prediction_score</code>, the first "
            f"{outcome.plan.contacts:,}. This report writes a list only for predictions "
            "written to a local folder.</p>"
        )
    if outcome.problem is not None:
        return (
            '<p id="contact-list-missing" class="caveat">The contact list could not be '
            f"written: {html.escape(outcome.problem)}.</p>"
        )
    return ""


def _technical_details(
    run: RunNotebook, payload: Mapping[str, Any], result: Mapping[str, Any], seconds: float | None
) -> str:
    """Paths, the model's checksum, Spark, the stages' timings: folded away by default."""
    facts: list[tuple[str, str]] = []
    if result:
        facts += [
            ("Run", html.escape(str(result.get("run_id", "not recorded")))),
            ("Model", _code(result.get("model_path"))),
            ("Model sha256", _code(result.get("model_sha256"), "sha256")),
            ("Input", _code(result.get("input_path"))),
            ("Predictions", _code(result.get("output_path"), "output-path")),
        ]
        if payload.get("spark_mode"):
            facts.append(("Spark", html.escape(str(payload["spark_mode"]))))
        if result.get("scoring_path"):
            facts.append(("Scoring path", html.escape(str(result["scoring_path"]))))
    if run.parameters:
        shown = ", ".join(f"{k} = {v!r}" for k, v in run.parameters.items())
        facts.append(("Parameters", _code(shown)))
    facts.append(("Executed notebook", _code(run.path.absolute())))
    parts = [
        '<details id="technical"><summary>Technical details</summary>',
        _facts_table(facts, "technical-facts"),
    ]
    timings = dict(payload.get("timings") or [])
    if timings:
        frame = pd.DataFrame(
            {"seconds": [f"{float(s):,.3f}" for s in timings.values()]},
            index=pd.Index(list(timings), name="stage"),
        )
        whole = f" of the run's {seconds:,.1f} s" if seconds is not None else ""
        parts.append(
            f'<p class="muted">Where the time went: the stages the notebook waited for, in '
            f"order. They are parts{whole}; the rest is starting the notebook and its own "
            "steps between them.</p>"
        )
        parts.append(_frame_html(frame, "timings"))
    parts.append("</details>")
    return "\n".join(parts)


def _drift_section(result: Mapping[str, Any]) -> list[str]:
    """The input gate's warnings and the run's PSIs with their bands (lib.gate, lib.drift)."""
    from lib.drift import DRIFT_BANDS, DriftReport

    parts = ["<h2>Is this still the population the model learned from?</h2>"]
    warnings = result.get("input_warnings") or []
    if warnings:
        items = "".join(f"<li>{html.escape(str(w))}</li>" for w in warnings)
        parts.append(
            "<p>The input gate let these through (within the campaign's input_tolerance):</p>"
            f'<ul id="input-warnings">{items}</ul>'
        )
    drift = result.get("drift")
    if not drift:
        why = (
            "the audience is empty"
            if result and not result.get("audience_size")
            else "the model has no training reference"
        )
        parts.append(f'<p class="muted">No drift check: {why}.</p>')
        return parts
    known = set(DriftReport.__dataclass_fields__)
    report = DriftReport(**{k: v for k, v in drift.items() if k in known})
    crossed = report.crossed()
    summary = (
        "Stable: every population stability index is below 0.1."
        if not crossed
        else "Look before acting on these scores: "
        + "; ".join(f"{name} {value:.2f} ({level})" for name, value, level in crossed)
        + "."
    )
    parts.append(f'<p id="drift-summary">{html.escape(summary)}</p>')
    table = report.table()
    table["psi"] = table["psi"].map(lambda v: f"{v:.3f}")
    parts.append(_frame_html(table.set_index("what"), "drift"))
    parts.append(
        f'<p class="muted">Population stability index (PSI): {html.escape(DRIFT_BANDS)}. Each '
        "feature of this audience is compared with the model's training data, the scores with "
        "the campaign's last successful run.</p>"
    )
    return parts


def main(argv: Sequence[str] | None = None) -> int:
    # As in lib.runner: nbformat's jsonschema would build an IRI grammar for seconds, to
    # check a string format no notebook uses.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    parser = argparse.ArgumentParser(
        prog="python -m lib.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("notebook", type=Path, help="an executed notebooks/04_spark_scoring.ipynb")
    parser.add_argument("--output", type=Path, default=None, help="default: beside it, .html")
    args = parser.parse_args(argv)
    if not args.notebook.is_file():
        raise errors.InvalidInputError(f"{args.notebook} is not a file")
    print(f"📄 Run report: {render_report(args.notebook, args.output).absolute()}")
    return 0


if __name__ == "__main__":
    errors.run_cli(main)
