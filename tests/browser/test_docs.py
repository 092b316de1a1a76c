"""The config API's interactive docs in a real browser: rendered offline, usable by a marketer.

/docs (Swagger UI) and /redoc (ReDoc) must render from assets the API serves itself: no
request the page makes leaves 127.0.0.1, and nothing fails in the page's console. A campaign
created with "Try it out" is really stored.
"""

from __future__ import annotations

import json
import uuid

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Project, RequestLog
from tests.helpers import seed_body

CAMPAIGN_OPERATIONS = [  # (method, path, summary) as the OpenAPI schema names them
    ("post", "/campaigns/", "Create Campaign"),
    ("get", "/campaigns/", "List Campaigns"),
    ("get", "/campaigns/{campaign_id}", "Read Campaign"),
    ("put", "/campaigns/{campaign_id}", "Update Campaign"),
    ("delete", "/campaigns/{campaign_id}", "Delete Campaign"),
]


def operation(page: Page, method: str, path: str) -> Locator:
    """Swagger UI's block for one operation."""
    return page.locator(f".opblock-{method}").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
    )


def test_root_redirects_to_the_docs(project: Project, page: Page) -> None:
    response = httpx.get(f"{project.url}/")
    assert response.status_code == 307
    assert response.headers["location"] == "/docs"
    page.goto(f"{project.url}/")
    assert page.url == f"{project.url}/docs"
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Campaign Config API")


def test_swagger_ui_creates_a_campaign_offline(
    project: Project, page: Page, page_requests: RequestLog, page_errors: list[str]
) -> None:
    page.goto(f"{project.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Campaign Config API")
    for method, path, _ in CAMPAIGN_OPERATIONS:
        expect(operation(page, method, path)).to_be_visible()

    name = f"Browser campaign {uuid.uuid4().hex[:8]}"
    create = operation(page, "post", "/campaigns/")
    create.locator(".opblock-summary").click()
    create.get_by_role("button", name="Try it out").click()
    create.locator("textarea.body-param__text").fill(json.dumps(seed_body(name=name), indent=2))
    create.get_by_role("button", name="Execute").click()

    answer = create.locator(".live-responses-table .response")
    expect(answer.locator(".response-col_status")).to_have_text("201")
    created = json.loads(answer.locator(".response-col_description pre").first.inner_text())
    assert created["name"] == name

    stored = httpx.get(f"{project.url}/campaigns/{created['id']}")
    assert stored.status_code == 200
    assert stored.json()["name"] == name
    page.wait_for_load_state("networkidle")
    assert page_requests.off_loopback() == []
    assert any(url.endswith("/static/docs/swagger-ui-bundle.js") for url in page_requests.urls)
    assert page_errors == []


def test_redoc_renders_offline(
    project: Project, page: Page, page_requests: RequestLog, page_errors: list[str]
) -> None:
    page.goto(f"{project.url}/redoc")
    expect(page.locator("h1")).to_contain_text("Campaign Config API")
    for _, _, summary in CAMPAIGN_OPERATIONS:
        expect(page.locator("h2", has_text=summary).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert page_requests.off_loopback() == []
    assert any(url.endswith("/static/docs/redoc.standalone.js") for url in page_requests.urls)
    # ReDoc 2 always shows Redocly's logo from its CDN: the page's CSP blocks it (api.docs).
    assert [error for error in page_errors if "cdn.redoc.ly" not in error] == []
