"""Audience preview: counts with Ibis on DuckDB, equal to what pandas selects."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from lib.data import write_users
from tests.api.conftest import SEED_BODY
from tests.lib.test_audience import EQUIVALENT_FILTERS


@pytest.fixture
def users(api_env: Path) -> pd.DataFrame:
    path = write_users(api_env / "data" / "sample_users.parquet", 1_000, seed=42)
    return pd.read_parquet(path)


@pytest.mark.parametrize(("text", "select"), EQUIVALENT_FILTERS)
def test_preview_counts_what_pandas_selects(
    client: TestClient, users: pd.DataFrame, text: str, select
) -> None:
    response = client.post("/audience/preview", json={"audience_filter": text, "sample_size": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = users[select(users)]
    assert body["total_users"] == len(users)
    assert body["matching_users"] == len(expected)
    assert body["share"] == pytest.approx(len(expected) / len(users))
    assert [row["user_id"] for row in body["sample"]] == sorted(expected.user_id)[:3]
    if body["sample"]:
        assert set(body["sample"][0]) == set(users.columns)


def test_preview_without_filter_is_everyone(client: TestClient, users: pd.DataFrame) -> None:
    body = client.post("/audience/preview", json={}).json()
    assert body["matching_users"] == body["total_users"] == len(users)
    assert len(body["sample"]) == 5


def test_preview_refuses_a_hostile_filter(client: TestClient, users: pd.DataFrame) -> None:
    response = client.post("/audience/preview", json={"audience_filter": "reflect('a', 'b')"})
    assert response.status_code == 422
    assert "function calls" in response.text


def test_preview_without_users_data_is_404(client: TestClient) -> None:
    response = client.post("/audience/preview", json={"audience_filter": "age > 3"})
    assert response.status_code == 404
    assert "python -m lib.data" in response.json()["detail"]


def test_campaign_audience(client: TestClient, users: pd.DataFrame) -> None:
    campaign = client.post("/campaigns/", json=SEED_BODY).json()
    body = client.get(f"/campaigns/{campaign['id']}/audience", params={"sample_size": 0}).json()
    assert body["matching_users"] == int(((users.country == "US") & (users.age > 25)).sum())
    assert body["sample"] == []
    assert client.get("/campaigns/77/audience").status_code == 404


def test_campaign_with_a_filter_stored_around_the_api_is_409(
    client: TestClient, users: pd.DataFrame, database_url: str
) -> None:
    campaign = client.post("/campaigns/", json=SEED_BODY).json()
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE campaigns SET audience_filter = 'java_method(1)'"))
    engine.dispose()
    response = client.get(f"/campaigns/{campaign['id']}/audience")
    assert response.status_code == 409
    assert "stored audience filter is invalid" in response.json()["detail"]
