"""The run report a marketer opens after `make score`, in a real browser, from a real run.

The job runs as `make score` runs it (``python -m lib.runner``, notebook 04 under papermill)
over the suite's Spark Connect server (the ``scored_run`` fixture, shared with
tests/notebooks/test_04_report.py); the report it leaves is opened from disk, offline:
the gains chart must really render (a decoded image, not a broken one), and the page must
need nothing from the network.
"""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import Project, RequestLog
from tests.conftest import ScoredRun


def test_the_run_report_shows_its_gains_chart(
    project: Project,
    scored_run: ScoredRun,
    page: Page,
    page_requests: RequestLog,
    page_errors: list[str],
) -> None:
    report = scored_run.report
    page.goto(report.as_uri())
    expect(page.locator("#status")).to_contain_text("Succeeded")
    chart = page.locator("#gains-chart")
    expect(chart).to_be_visible()
    width = chart.evaluate("img => img.complete ? img.naturalWidth : 0")
    assert width > 100  # the embedded PNG decoded
    assert chart.bounding_box()["height"] > 100  # type: ignore[index]
    expect(page.locator("#advice")).to_contain_text("Contact the top 3 deciles")
    expect(page.locator("#deciles")).to_be_visible()
    expect(page.locator("#output-path")).to_contain_text(
        str(project.output(scored_run.campaign_id))
    )
    assert page_requests.off_loopback() == []
    assert [url for url in page_requests.urls if not url.startswith(("file:", "data:"))] == []
    assert page_errors == []
