"""The run report a marketer opens after `make score`, in a real browser, from a real run.

The job runs as `make score` runs it (``python -m lib.runner``, notebook 04 under papermill)
over the suite's Spark Connect server; the report it leaves is opened from disk, offline:
the gains chart must really render (a decoded image, not a broken one), and the page must
need nothing from the network.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import Project, RequestLog
from tests.helpers import run_cmd


def test_the_run_report_shows_its_gains_chart(
    project: Project,
    connect_env: dict[str, str],
    page: Page,
    page_requests: RequestLog,
    page_errors: list[str],
) -> None:
    campaign_id = project.create_campaign("report in a browser", "age > 30")
    out = run_cmd(
        [sys.executable, "-m", "lib.runner", "--campaign-id", str(campaign_id)],
        {**project.env, **connect_env},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found = re.search(r"^📄 Run report: (.+)$", out.stdout, re.M)
    assert found, out.stdout[-2000:]
    report = Path(found.group(1).strip())

    page.goto(report.as_uri())
    expect(page.locator("#status")).to_contain_text("Succeeded")
    chart = page.locator("#gains-chart")
    expect(chart).to_be_visible()
    width = chart.evaluate("img => img.complete ? img.naturalWidth : 0")
    assert width > 100  # the embedded PNG decoded
    assert chart.bounding_box()["height"] > 100  # type: ignore[index]
    expect(page.locator("#advice")).to_contain_text("Contact the top 3 deciles")
    expect(page.locator("#deciles")).to_be_visible()
    expect(page.locator("#output-path")).to_contain_text(str(project.output(campaign_id)))
    assert page_requests.off_loopback() == []
    assert [url for url in page_requests.urls if not url.startswith(("file:", "data:"))] == []
    assert page_errors == []
