"""The run report: one self-contained HTML page a marketer can read, from an executed notebook 04.

    python -m lib.report output/runs/<run>.ipynb     # (re)render a report beside it

Notebook 04 ends with :func:`record_run`, which leaves the run's numbers in the notebook as
one JSON output (the campaign, the run, the model's sha256, the audience, the decile
aggregates, the timings). :func:`render_report` reads them back, with papermill's own record
of the run (parameters, start and end time, the failing cell), and writes a page without
code: the status (on failure, what failed, in one line at the top), the facts with full
paths and the full sha256, expected conversions, the cumulative gains chart with the
sentence to act on, and the decile table. Charts are PNG images inside the page and there
is no script at all: it opens offline, from a mail attachment or a file share.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lib import errors, gains

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lib.job import JobResult

__all__ = [
    "REPORT_MIME",
    "RunNotebook",
    "build_html",
    "read_run",
    "record_run",
    "render_report",
    "run_payload",
]

# The JSON output notebook 04 leaves for the report (a vendor MIME type: Jupyter shows the
# text/plain twin, the report reads the JSON).
REPORT_MIME = "application/vnd.spark-ml-pipeline.run+json"
TOP_DECILES = 3  # "contact the top 3 deciles": the sentence the report leads with


# ---- in the notebook ---------------------------------------------------------------------------
def run_payload(
    result: JobResult,
    deciles: pd.DataFrame,
    histogram: pd.DataFrame | None = None,
    timings: Mapping[str, float] | None = None,
    *,
    spark_mode: str = "",
) -> dict[str, Any]:
    """The run's numbers as JSON: the job's result, per-decile aggregates, histogram, timings.

    ``deciles`` needs ``decile`` (or ``score_decile``), ``users`` and ``expected`` (the sum
    of the scores); ``min_score`` and ``max_score`` are shown when present.
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
        "recorded_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def record_run(
    result: JobResult,
    deciles: pd.DataFrame,
    histogram: pd.DataFrame | None = None,
    timings: Mapping[str, float] | None = None,
    *,
    spark_mode: str = "",
) -> dict[str, Any]:
    """Leave the run's numbers in the executed notebook for :func:`render_report`."""
    from IPython.display import display

    payload = run_payload(result, deciles, histogram, timings, spark_mode=spark_mode)
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


def read_run(path: Path) -> RunNotebook:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    payload: dict[str, Any] | None = None
    error: tuple[str, str] | None = None
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and error is None:
                error = (str(output.get("ename", "")), str(output.get("evalue", "")))
            data = output.get("data", {})
            if REPORT_MIME in data:
                payload = dict(data[REPORT_MIME])
    papermill = nb.metadata.get("papermill", {})
    return RunNotebook(
        path=path,
        payload=payload,
        error=error,
        parameters=dict(papermill.get("parameters", {})),
        started_at=papermill.get("start_time"),
        finished_at=papermill.get("end_time"),
    )


def render_report(
    executed: Path, target: Path | None = None, *, exit_code: int | None = None
) -> Path:
    """Write the HTML report of an executed notebook 04 (default: beside it, ``.html``)."""
    run = read_run(executed)
    target = target or executed.with_suffix(".html")
    target.write_text(build_html(run, exit_code=exit_code), encoding="utf-8")
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


def _duration(run: RunNotebook) -> str:
    try:
        start = datetime.fromisoformat(run.started_at or "")
        end = datetime.fromisoformat(run.finished_at or "")
    except ValueError:
        return ""
    return f" ({(end - start).total_seconds():,.1f} s)"


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _gains_chart(table: pd.DataFrame) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2))
    gains.plot_gains(table, fig.subplots(), title="Cumulative gains by decile")
    return _png(fig)


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
    ax.set(xlabel="prediction_score", ylabel="users", title="Score histogram", xlim=(0, 1))
    return _png(fig)


def _facts_table(rows: Sequence[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts">{cells}</table>'


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
table{border-collapse:collapse;margin:.5rem 0}th,td{padding:.25rem .6rem;text-align:left;
vertical-align:top}table.facts th{color:#57606a;font-weight:500;white-space:nowrap}
table.numbers th,table.numbers td{border-bottom:1px solid #eaeef2}
table.numbers{font-size:.9rem}.scroll{overflow-x:auto}
table.numbers td{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em;
word-break:break-all}img{max-width:100%;height:auto}.advice{font-size:1.1rem}
.muted{color:#57606a;font-size:.9rem}
"""


def build_html(run: RunNotebook, *, exit_code: int | None = None) -> str:
    """The report page (no scripts, no external resources)."""
    code = _exit_code(run) if exit_code is None else exit_code
    payload = run.payload or {}
    result: dict[str, Any] = payload.get("result", {})
    campaign_id = result.get("campaign_id", run.parameters.get("campaign_id", "?"))
    name = result.get("campaign_name")
    title = f"Run report · {name}" if name else f"Run report · campaign {campaign_id}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if code:
        parts.append(
            f'<p id="status" class="status failed">❌ Failed: '
            f"{html.escape(_failure_line(run, code))}</p>"
        )
    elif run.payload is None:  # never executed, or cut off (a dead kernel, a timeout, a kill)
        parts.append(
            '<p id="status" class="status failed">⚠️ Incomplete: the run did not reach its '
            "last cell, so there are no results to show; the executed notebook may say why.</p>"
        )
    else:
        parts.append('<p id="status" class="status ok">✅ Succeeded</p>')

    audience = int(result.get("audience_size", 0) or 0)
    input_rows = int(result.get("input_rows", 0) or 0)
    deciles = pd.DataFrame(payload.get("deciles", []))
    table = (
        gains.gains_table(deciles)
        if not deciles.empty
        else gains.gains_table(pd.DataFrame(columns=[gains.DECILE, "users", "expected"]))
    )
    expected = float(table["expected"].sum()) if not table.empty else 0.0
    facts: list[tuple[str, str]] = [
        ("Campaign", f"{html.escape(str(name or '?'))} (id {html.escape(str(campaign_id))})"),
        ("Run", html.escape(str(result.get("run_id", "not recorded")))),
        ("Status", "succeeded" if not code else f"failed (exit code {code})"),
        (
            "Time",
            html.escape(f"{_when(run.started_at)} → {_when(run.finished_at)}{_duration(run)}"),
        ),
    ]
    if result:
        share = result.get("audience_share", 0.0) or 0.0
        mean = result.get("mean_score")
        facts += [
            ("Audience filter", _code(result.get("audience_filter") or "(none: every user)")),
            ("Model", _code(result.get("model_path"))),
            ("Model sha256", _code(result.get("model_sha256"), "sha256")),
            ("Input", f"{_code(result.get('input_path'))}: {input_rows:,} users"),
            *(
                [("Snapshot date", html.escape(str(result["as_of"])))]
                if result.get("as_of")
                else []
            ),
            ("Audience", f"{audience:,} users ({share:.1%} of the input)"),
            (
                "Held out",
                f"{int(result.get('control_size') or 0):,} users: the control group "
                f"(the campaign holds out {float(result.get('holdout_share') or 0):.0%}); "
                "they are not contacted, so that notebook 06 can measure the effect",
            ),
            (
                "Expected conversions",
                f"{expected:,.1f}"
                + (f" (mean score {mean:.3f})" if isinstance(mean, float) else ""),
            ),
            ("Predictions", _code(result.get("output_path"), "output-path")),
        ]
        if payload.get("spark_mode"):
            facts.append(("Spark", html.escape(str(payload["spark_mode"]))))
        if result.get("scoring_path"):
            facts.append(("Scoring path", html.escape(str(result["scoring_path"]))))
    facts.append(("Executed notebook", _code(run.path.absolute())))
    parts.append(_facts_table(facts))

    if result:
        parts.append("<h2>Whom to contact</h2>")
        advice = gains.contact_advice(table, TOP_DECILES)
        parts.append(f'<p id="advice" class="advice">{html.escape(advice)}</p>')
        parts.append(
            '<p class="muted">A score is the model\'s probability that the user converts, so '
            "the sum of the scores is the number of conversions to expect. The curve shows the "
            "share of them the best-scoring deciles hold; the dashed line is contacting users "
            "at random. Lift: how many times the random rate a decile converts at.</p>"
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
            parts.append("<h2>Score histogram</h2>")
            parts.append(
                '<img id="histogram" alt="Score histogram" '
                f'src="data:image/png;base64,{_histogram_chart(bins)}">'
            )
        timings = dict(payload.get("timings") or [])
        if timings:
            parts.append("<h2>Where the time went</h2>")
            frame = pd.DataFrame(
                {"seconds": [f"{float(s):,.3f}" for s in timings.values()]},
                index=pd.Index(list(timings), name="stage"),
            )
            parts.append(_frame_html(frame, "timings"))
            total = sum(float(s) for s in timings.values())
            parts.append(f'<p class="muted">Total: {total:,.3f} s (wall clock).</p>')
    parts.append("</body></html>")
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
