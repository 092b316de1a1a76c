"""The run report a marketer opens after `make score`, in a real browser, from a real run.

The job runs as `make score` runs it (``python -m lib.runner``, notebook 04 under papermill)
over the suite's Spark Connect server (the ``scored_run`` fixture, shared with
tests/notebooks/test_04_report.py); the report it leaves is opened from disk, offline:
the gains chart must really render (a decoded image, not a broken one), the plain-language
box shows, the technical details stay folded until clicked, the contact list link
downloads the CSV of the users to contact, and the page needs nothing from the network.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from playwright.sync_api import Page, expect

from lib import gains, schema
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
    expect(page.locator("#advice")).to_contain_text("best-scoring treatment users")
    expect(page.locator("#deciles")).to_be_visible()
    # What the numbers mean, in plain words, near the top.
    box = page.locator("#plain-language")
    expect(box).to_be_visible()
    expect(box).to_contain_text("whether or not they are contacted")
    # The engineering detail is folded away until the reader asks for it.
    details = page.locator("details#technical")
    assert details.evaluate("d => d.open") is False
    expect(page.locator("#sha256")).to_be_hidden()
    expect(page.locator("#output-path")).to_be_hidden()
    page.locator("details#technical > summary").click()
    expect(page.locator("#sha256")).to_be_visible()
    expect(page.locator("#output-path")).to_contain_text(
        str(project.output(scored_run.campaign_id))
    )
    assert page_requests.off_loopback() == []
    assert [url for url in page_requests.urls if not url.startswith(("file:", "data:"))] == []
    assert page_errors == []


def test_the_contact_list_link_downloads_the_users_to_contact(
    project: Project, scored_run: ScoredRun, page: Page, page_errors: list[str]
) -> None:
    page.goto(scored_run.report.as_uri())
    link = page.locator("#contact-list")
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click()
    csv = Path(download.value.path())
    assert download.value.suggested_filename == f"{scored_run.report.stem}_contacts.csv"
    listed = pd.read_csv(csv)
    predictions = pd.read_parquet(project.output(scored_run.campaign_id))
    treatment = predictions[predictions[schema.GROUP] == "treatment"]
    best = treatment.sort_values([schema.SCORE, schema.USER_ID], ascending=[False, True])
    count = gains.parse_contact_budget(gains.DEFAULT_CONTACT_BUDGET).contacts(len(treatment))
    assert list(listed.columns) == ["rank", "user_id", "score", "decile"]
    assert listed["user_id"].tolist() == best[schema.USER_ID].head(count).tolist()
    assert set(listed["user_id"]) <= set(treatment[schema.USER_ID])  # never the control group
    expect(link).to_contain_text("Download the contact list")
    expect(page.locator("p.download")).to_contain_text(f"{count:,} users")
    assert page_errors == []
