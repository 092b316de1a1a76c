"""/filter-language: the filter language as the API serves it, generated from the checker."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi.testclient import TestClient

from lib.audience import describe_language
from lib.data import write_users


def test_the_page_lists_columns_operators_and_examples(client: TestClient) -> None:
    response = client.get("/filter-language")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    page = response.text
    description = describe_language()
    for entry in [*description.columns, *description.operators]:
        assert html.escape(entry.example) in page
    assert "days_since_last_purchase" in page
    assert client.head("/filter-language").status_code == 200


def test_the_json_is_the_description_with_the_datas_values(
    client: TestClient, api_env: Path
) -> None:
    body = client.get("/filter-language.json").json()
    assert [c["name"] for c in body["columns"]] == [c.name for c in describe_language().columns]
    assert all(c["values"] is None for c in body["columns"])  # no users data yet
    write_users(api_env / "data" / "sample_users.parquet", 200, seed=42)
    body = client.get("/filter-language.json").json()
    country = next(c for c in body["columns"] if c["name"] == "country")
    assert country["values"] == ["BR", "CA", "DE", "FR", "GB", "IN", "JP", "US"]
    assert "GB" in client.get("/filter-language").text


def test_the_openapi_description_of_every_filter_field_links_the_language(
    client: TestClient,
) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("CampaignCreate", "CampaignUpdate", "AudiencePreviewRequest"):
        assert (
            "GET /filter-language" in schemas[name]["properties"]["audience_filter"]["description"]
        )
    assert "warnings" in schemas["CampaignSaved"]["properties"]
    assert {"warnings", "message"} <= set(schemas["AudiencePreviewPublic"]["properties"])
