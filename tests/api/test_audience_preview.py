"""Audience preview: counts with Ibis on DuckDB, equal to what pandas selects."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
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


def test_preview_refusal_says_what_to_change_and_points_at_the_language(
    client: TestClient, users: pd.DataFrame
) -> None:
    response = client.post("/audience/preview", json={"audience_filter": "country = UK"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "audience_filter"]
    assert error["msg"].startswith("put text values in single quotes: `country = 'UK'`")
    assert error["msg"].endswith("(see /filter-language)")


def test_preview_warns_about_a_text_value_no_user_has(
    client: TestClient, users: pd.DataFrame
) -> None:
    body = client.post("/audience/preview", json={"audience_filter": "country = 'UK'"}).json()
    assert body["matching_users"] == 0
    assert body["warnings"] == [
        "country = 'UK' matches no user: the data has 'BR', 'CA', 'DE', 'FR', 'GB', 'IN', "
        "'JP', 'US'"
    ]
    assert body["message"] == (
        f"This filter selects nobody in the current data (0 of {len(users)} users)."
    )


def test_preview_of_a_filter_that_selects_someone_has_no_message(
    client: TestClient, users: pd.DataFrame
) -> None:
    body = client.post("/audience/preview", json={"audience_filter": "country = 'GB'"}).json()
    assert body["matching_users"] > 0
    assert (body["warnings"], body["message"]) == ([], None)


def test_preview_says_when_numbers_select_nobody_without_warning(
    client: TestClient, users: pd.DataFrame
) -> None:
    body = client.post("/audience/preview", json={"audience_filter": "age > 1000"}).json()
    assert body["matching_users"] == 0
    assert body["warnings"] == []  # numbers are not checked against the data's values
    assert body["message"].startswith("This filter selects nobody")


def test_campaign_audience_carries_the_warnings_too(
    client: TestClient, users: pd.DataFrame
) -> None:
    campaign = client.post(
        "/campaigns/", json={**SEED_BODY, "audience_filter": "country IN ('GB', 'gb')"}
    ).json()
    body = client.get(f"/campaigns/{campaign['id']}/audience").json()
    (warning,) = body["warnings"]
    assert warning.startswith("'gb' in country IN (...) matches no user: text is compared")
    assert body["message"] is None


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


def _garbage(path: Path, users: pd.DataFrame) -> None:
    path.write_bytes(b"this is not a parquet file\n" * 20)


def _without_country(path: Path, users: pd.DataFrame) -> None:
    users.drop(columns=["country"]).to_parquet(path)


def _age_as_text(path: Path, users: pd.DataFrame) -> None:
    users.assign(age=users.age.astype(str)).to_parquet(path)


def _a_directory(path: Path, users: pd.DataFrame) -> None:
    path.unlink()
    path.mkdir()


DAMAGED_USERS = {
    "garbage bytes": (_garbage, "No magic bytes"),
    "missing column": (_without_country, "'country' is not found"),
    "age as text": (_age_as_text, "not comparable"),
    "a directory": (_a_directory, "IO Error"),
}


@pytest.mark.parametrize("damage", DAMAGED_USERS.values(), ids=DAMAGED_USERS.keys())
@pytest.mark.parametrize("endpoint", ["preview", "campaign"])
def test_damaged_users_data_is_503_naming_the_file(
    client: TestClient, users: pd.DataFrame, api_env: Path, damage, endpoint: str
) -> None:
    """Server-side data the API cannot read is the server's problem: 503, never 500."""
    campaign = client.post("/campaigns/", json=SEED_BODY).json()
    path = api_env / "data" / "sample_users.parquet"
    make_damage, cause = damage
    make_damage(path, users)
    if endpoint == "preview":
        body = {"audience_filter": SEED_BODY["audience_filter"]}
        response = client.post("/audience/preview", json=body)
    else:
        response = client.get(f"/campaigns/{campaign['id']}/audience")
    assert response.status_code == 503, response.text
    detail = response.json()["detail"]
    assert detail.startswith(f"users data at {path} is unreadable: "), detail
    assert cause in detail
    assert "\n" not in detail


def test_users_data_with_nan_and_dates_never_500(
    client: TestClient, users: pd.DataFrame, api_env: Path
) -> None:
    """NaN has no JSON spelling (null is sent); a date column cannot be shown (503)."""
    path = api_env / "data" / "sample_users.parquet"
    users.assign(monetary=float("nan")).to_parquet(path)
    response = client.post("/audience/preview", json={"sample_size": 2})
    assert response.status_code == 200, response.text
    assert [row["monetary"] for row in response.json()["sample"]] == [None, None]
    users.assign(signed_up=pd.Timestamp("2026-01-01")).to_parquet(path)
    response = client.post("/audience/preview", json={"sample_size": 2})
    assert response.status_code == 503, response.text
    assert "cannot show" in response.json()["detail"]


def test_openapi_documents_the_users_data_answers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    endpoints = (("/audience/preview", "post"), ("/campaigns/{campaign_id}/audience", "get"))
    for path, method in endpoints:
        responses = paths[path][method]["responses"]
        assert {"404", "503"} <= set(responses)
        assert "users data" in responses["503"]["description"]


# Floats stored as integers or decimals, integers stored as floats: the job accepts them, so
# the preview must too, comparing as Spark SQL compares with the stored types (it answered
# 500: the Ibis form called isnan() on an integer column; and an int64 monetary was compared
# in double, so `= 9007199254740993` selected both 2^53 and 2^53 + 1).
BIG = [2**53, 2**53 + 1, 10, None]
STORED_AS = {
    # column, its values and type: {filter: the user ids it selects}
    "monetary int64": (
        "monetary",
        pa.array(BIG, pa.int64()),
        {
            "monetary = 9007199254740993": [2],
            "monetary > 9.5": [1, 2, 3],
            "monetary < 1e300": [1, 2, 3],
        },
    ),
    "monetary decimal(14,2)": (
        "monetary",
        pa.array([Decimal("1.50"), Decimal("2.25"), Decimal("10.00"), None], pa.decimal128(14, 2)),
        {"monetary > 2.2": [2, 3], "monetary IN (1.5, 10)": [1, 3], "monetary IS NULL": [4]},
    ),
    "engagement float32": (
        "engagement_score",
        pa.array([0.1, 0.25, float("nan"), 1.0], pa.float32()),
        {
            "engagement_score = 0.1": [],
            "engagement_score >= 0.25": [2, 4],
            "engagement_score IS NULL": [3],
        },
    ),
    "age float64": (
        "age",
        pa.array([30.0, 20.5, 40.0, None], pa.float64()),
        {"age > 25": [1, 3], "age BETWEEN 20 AND 21": [2]},
    ),
    "recency int32": (
        "recency",
        pa.array([1, 2, 3, 2**31 - 1], pa.int32()),
        {"recency IN (2, 3, 4294967296)": [2, 3], "recency >= 2147483647": [4]},
    ),
}


@pytest.mark.parametrize(("column", "values", "cases"), STORED_AS.values(), ids=STORED_AS.keys())
def test_preview_follows_the_stored_column_types(
    client: TestClient, api_env: Path, column: str, values: pa.Array, cases: dict[str, list[int]]
) -> None:
    users = {
        "user_id": pa.array([1, 2, 3, 4], pa.int64()),
        "country": pa.array(["US", "US", "GB", "US"]),
        **{name: pa.array([1, 2, 3, 4], pa.int64()) for name in ("age", "recency", "frequency")},
        "monetary": pa.array([1.0, 2.0, 3.0, 4.0]),
        "engagement_score": pa.array([0.5, 0.25, 0.75, 1.0]),
        "days_since_last_purchase": pa.array([1, 2, 3, 4], pa.int64()),
        column: values,
    }
    path = api_env / "data" / "sample_users.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(users), path)
    for condition, expected in cases.items():
        response = client.post(
            "/audience/preview", json={"audience_filter": condition, "sample_size": 50}
        )
        assert response.status_code == 200, (condition, response.text)
        assert sorted(row["user_id"] for row in response.json()["sample"]) == expected, condition
