"""CRUD, validation and error codes, on SQLite and on PostgreSQL (``database_url`` fixture)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.helpers import SEED_BODY


def create(client: TestClient, **overrides: object) -> dict:
    response = client.post("/campaigns/", json={**SEED_BODY, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


def error_text(response) -> str:
    detail = response.json()["detail"]
    return detail if isinstance(detail, str) else " | ".join(item["msg"] for item in detail)


def test_seed_request_creates_the_campaign(client: TestClient) -> None:
    body = create(client)
    assert body["id"] == 1
    assert {k: body[k] for k in SEED_BODY} == SEED_BODY
    assert body["is_active"] is True
    for stamp in ("created_at", "updated_at"):
        parsed = datetime.fromisoformat(body[stamp])
        assert parsed.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - parsed) < timedelta(minutes=1)


def test_swaggers_example_body_is_created_after_the_demos_campaign(client: TestClient) -> None:
    # What "Try it out" sends: each field's first example, as the OpenAPI schema lists them.
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    fields = schemas["CampaignCreate"]["properties"]
    example = {name: spec["examples"][0] for name, spec in fields.items() if "examples" in spec}
    assert client.post("/campaigns/", json=SEED_BODY).status_code == 201  # `make demo`'s
    created = client.post("/campaigns/", json=example)
    assert created.status_code == 201, created.json()
    assert created.json()["name"] != SEED_BODY["name"]


def test_read_returns_what_was_created(client: TestClient) -> None:
    created = create(client)
    assert created.pop("warnings") == []  # answered on create and update, never stored
    assert client.get(f"/campaigns/{created['id']}").json() == created


def test_unknown_id_is_404_with_a_message(client: TestClient) -> None:
    response = client.get("/campaigns/42")
    assert response.status_code == 404
    assert response.json() == {"detail": "Campaign 42 not found"}


def test_duplicate_name_is_409(client: TestClient) -> None:
    create(client)
    response = client.post("/campaigns/", json=SEED_BODY)
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]


def test_list_is_in_id_order_with_paging_and_total(client: TestClient) -> None:
    for i in range(5):
        create(client, name=f"campaign {i}", is_active=i % 2 == 0)
    page = client.get("/campaigns/", params={"offset": 1, "limit": 2})
    assert [c["name"] for c in page.json()] == ["campaign 1", "campaign 2"]
    assert page.headers["x-total-count"] == "5"
    active = client.get("/campaigns/", params={"is_active": "true"})
    assert [c["name"] for c in active.json()] == ["campaign 0", "campaign 2", "campaign 4"]
    assert active.headers["x-total-count"] == "3"
    inactive = client.get("/campaigns/", params={"is_active": "false"}).json()
    assert [c["name"] for c in inactive] == ["campaign 1", "campaign 3"]


def test_update_changes_only_given_fields_and_bumps_updated_at(client: TestClient) -> None:
    created = create(client)
    response = client.put(f"/campaigns/{created['id']}", json={"is_active": False})
    assert response.status_code == 200
    updated = response.json()
    assert updated["is_active"] is False
    assert updated["name"] == created["name"]
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] > created["updated_at"]


def test_update_can_clear_the_filter(client: TestClient) -> None:
    created = create(client)
    updated = client.put(f"/campaigns/{created['id']}", json={"audience_filter": None}).json()
    assert updated["audience_filter"] is None


def test_update_to_another_campaigns_name_is_409(client: TestClient) -> None:
    create(client, name="first")
    second = create(client, name="second")
    response = client.put(f"/campaigns/{second['id']}", json={"name": "first"})
    assert response.status_code == 409
    assert client.get(f"/campaigns/{second['id']}").json()["name"] == "second"


def test_update_validates_the_result_as_a_whole(client: TestClient) -> None:
    created = create(client)
    response = client.put(f"/campaigns/{created['id']}", json={"features": ["recency"]})
    assert response.status_code == 422
    assert "missing" in error_text(response)


@pytest.mark.parametrize("field", ["name", "model_path", "features", "is_active"])
def test_update_refuses_null_for_required_fields(client: TestClient, field: str) -> None:
    created = create(client)
    response = client.put(f"/campaigns/{created['id']}", json={field: None})
    assert response.status_code == 422
    assert "may not be null" in error_text(response)


def test_update_of_unknown_id_is_404(client: TestClient) -> None:
    assert client.put("/campaigns/7", json={"is_active": False}).status_code == 404


def test_delete_removes_the_campaign_and_its_runs(client: TestClient) -> None:
    created = create(client)
    client.post(f"/campaigns/{created['id']}/runs", json={})
    assert client.delete(f"/campaigns/{created['id']}").status_code == 204
    assert client.get(f"/campaigns/{created['id']}").status_code == 404
    assert client.delete(f"/campaigns/{created['id']}").status_code == 404
    recreated = create(client)  # the name is free again
    assert client.get(f"/campaigns/{recreated['id']}/runs").json() == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, "at least 1 character"),
        ({"name": "   "}, "at least 1 character"),
        ({"name": "x" * 201}, "at most 200 characters"),
        ({"name": 5}, "valid string"),
        ({"is_active": 0}, "valid boolean"),
        ({"is_active": "yes"}, "valid boolean"),
        ({"features": []}, "at least 1 item"),
        ({"features": "recency"}, "valid list"),
        ({"features": [*SEED_BODY["features"], "recency"]}, "listed twice"),
        ({"features": [*SEED_BODY["features"], "age"]}, "unknown to the model ['age']"),
        ({"features": SEED_BODY["features"][:4]}, "missing ['days_since_last_purchase']"),
        ({"audience_filter": "reflect('java.lang.Runtime', 'exec', 'id')"}, "function calls"),
        ({"audience_filter": "salary > 3"}, "unknown column 'salary'"),
        ({"audience_filter": "country = UK"}, "put text values in single quotes"),
        ({"audience_filter": "x" * 2001}, "at most 2000 characters"),
        ({"unexpected": 1}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_fields_are_422_with_a_message(
    client: TestClient, overrides: dict, message: str
) -> None:
    response = client.post("/campaigns/", json={**SEED_BODY, **overrides})
    assert response.status_code == 422
    assert message in error_text(response)
    assert client.get("/campaigns/").json() == []


def test_a_refused_filter_is_a_422_that_points_at_the_filter_language(
    client: TestClient,
) -> None:
    response = client.post("/campaigns/", json={**SEED_BODY, "audience_filter": "age >= 30 AND"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["type"], error["loc"], error["input"]) == (
        "audience_filter",
        ["body", "audience_filter"],
        "age >= 30 AND",
    )
    assert error["msg"] == (
        "the filter ends with AND: add a condition after it, for example "
        "`age >= 30 AND country = 'DE'` (see /filter-language)"
    )


@pytest.fixture
def users_data(api_env: Path) -> Path:
    from lib.data import write_users

    return write_users(api_env / "data" / "sample_users.parquet", 200, seed=42)


UK_WARNING = "country = 'UK' matches no user: the data has 'BR', 'CA', 'DE', 'FR', 'GB'"


def test_create_warns_about_a_text_value_no_user_has_and_still_creates(
    client: TestClient, users_data: Path
) -> None:
    response = client.post(
        "/campaigns/", json={**SEED_BODY, "audience_filter": "country = 'UK' AND age > 25"}
    )
    assert response.status_code == 201, response.text
    (warning,) = response.json()["warnings"]
    assert warning.startswith(UK_WARNING)
    stored = client.get(f"/campaigns/{response.json()['id']}").json()
    assert stored["audience_filter"] == "country = 'UK' AND age > 25"
    assert "warnings" not in stored


def test_update_warns_about_the_resulting_filter(client: TestClient, users_data: Path) -> None:
    created = create(client)
    assert created["warnings"] == []
    response = client.put(f"/campaigns/{created['id']}", json={"audience_filter": "country = 'gb'"})
    assert response.status_code == 200
    (warning,) = response.json()["warnings"]
    assert "text is compared case-sensitively" in warning
    assert warning.endswith("(did you mean 'GB'?)")
    renamed = client.put(f"/campaigns/{created['id']}", json={"name": "renamed"}).json()
    assert renamed["warnings"] == [warning]  # the filter still selects nobody
    cleared = client.put(f"/campaigns/{created['id']}", json={"audience_filter": None}).json()
    assert cleared["warnings"] == []


def test_numeric_comparisons_are_never_warned(client: TestClient, users_data: Path) -> None:
    assert create(client, audience_filter="age > 1000 AND monetary = -1")["warnings"] == []


def test_without_users_data_saving_warns_about_nothing(client: TestClient) -> None:
    assert create(client, audience_filter="country = 'UK'")["warnings"] == []


def test_missing_required_field_is_422(client: TestClient) -> None:
    body = {k: v for k, v in SEED_BODY.items() if k != "features"}
    response = client.post("/campaigns/", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "features"]


def test_malformed_json_is_422_not_500(client: TestClient) -> None:
    response = client.post(
        "/campaigns/", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


def test_empty_filter_means_every_user(client: TestClient) -> None:
    assert create(client, audience_filter="")["audience_filter"] == ""
    assert create(client, name="all", audience_filter=None)["audience_filter"] is None


def test_native_model_file_is_accepted_too(client: TestClient) -> None:
    assert create(client, model_path="campaign_model_v1.cbm")["model_path"] == (
        "campaign_model_v1.cbm"
    )


HOSTILE_MODEL_PATHS = [
    "/etc/passwd",
    "/tmp/models/campaign_model_v1.pkl",
    "../campaign_model_v1.pkl",
    "models/../../etc/shadow.pkl",
    "models/./campaign_model_v1.pkl",
    "campaign_model_v1.pkl\x00.cbm",
    "http://attacker.example/model.pkl",
    "file:///etc/passwd",
    "s3://bucket/model.pkl",
    "~/model.pkl",
    "models\\campaign_model_v1.pkl",
    "models/registry.json",
    "models/campaign_model_v1.json",
    "models/unregistered.pkl",
    "C:/Windows/model.pkl",
]


@pytest.mark.parametrize("path", HOSTILE_MODEL_PATHS)
def test_hostile_model_paths_are_refused(client: TestClient, path: str) -> None:
    response = client.post("/campaigns/", json={**SEED_BODY, "model_path": path})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][-1] == "model_path"


def test_tampered_model_is_refused(client: TestClient, api_env: Path) -> None:
    (api_env / "models" / "campaign_model_v1.pkl").write_bytes(b"not the registered model")
    response = client.post("/campaigns/", json=SEED_BODY)
    assert response.status_code == 422
    assert "checksum" in error_text(response)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/campaigns/0"),
        ("get", "/campaigns/-1"),
        ("get", "/campaigns/99999999999999999999999"),
        ("get", "/campaigns/abc"),
        ("get", "/campaigns/?limit=0"),
        ("get", "/campaigns/?limit=1001"),
        ("get", "/campaigns/?offset=-1"),
        ("get", "/campaigns/?offset=99999999999999999999"),
        ("get", "/campaigns/?is_active=2"),
        ("delete", "/campaigns/9223372036854775808"),
    ],
)
def test_out_of_range_numbers_are_422_not_500(client: TestClient, method: str, path: str) -> None:
    assert getattr(client, method)(path).status_code == 422


def test_runs_are_recorded_and_updated(client: TestClient) -> None:
    campaign = create(client)
    cid = campaign["id"]
    started = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    first = client.post(f"/campaigns/{cid}/runs", json={"status": "running", "started_at": started})
    assert first.status_code == 201
    run = first.json()
    assert run["status"] == "running"
    assert datetime.fromisoformat(run["started_at"]) == datetime.fromisoformat(started)
    patch = {
        "status": "succeeded",
        "finished_at": datetime.now(UTC).isoformat(),
        "input_rows": 1000,
        "audience_size": 312,
        "scored_rows": 312,
        "output_path": "output/p.parquet",
        "model_sha256": "a" * 64,
        "scoring_path": "python-reads",
    }
    assert run["scoring_path"] is None  # until the job says how it read the users
    updated = client.patch(f"/campaigns/{cid}/runs/{run['id']}", json=patch).json()
    assert updated["status"] == "succeeded"
    assert updated["scoring_path"] == "python-reads"
    assert updated["scored_rows"] == 312
    second = client.post(f"/campaigns/{cid}/runs", json={"status": "queued"}).json()
    assert [r["id"] for r in client.get(f"/campaigns/{cid}/runs").json()] == [
        second["id"],
        run["id"],
    ]
    assert client.get(f"/campaigns/{cid}/runs/{run['id']}").json() == updated


@pytest.mark.parametrize(
    "body",
    [
        {"status": "exploded"},
        {"input_rows": -1},
        {"input_rows": 2**70},
        {"model_sha256": "not-a-sha"},
        {"started_at": "2026-11-26T12:00:00"},  # naive datetimes are ambiguous
        {"scored_rows": True},
        {"scoring_path": "jvm"},
        {"control_size": -1},
        {"max_psi": -0.1},
        {"max_psi": "0.2"},
        {"score_shares": [0.5, 0.5]},
        {"score_shares": [0.1] * 9 + [1.5]},
        {"score_shares": [1.0] * 10},  # shares add up to 1
        {"as_of": "2026-12-01T00:00:00Z"},
        {"as_of": "12/01/2026"},
        {"as_of": 20261201},
        {"as_of": "2026-02-30"},
    ],
)
def test_invalid_run_fields_are_422(client: TestClient, body: dict) -> None:
    cid = create(client)["id"]
    assert client.post(f"/campaigns/{cid}/runs", json=body).status_code == 422


def test_runs_of_unknown_campaign_or_run_are_404(client: TestClient) -> None:
    assert client.post("/campaigns/5/runs", json={}).status_code == 404
    assert client.get("/campaigns/5/runs").status_code == 404
    first = create(client, name="a")["id"]
    second = create(client, name="b")["id"]
    run = client.post(f"/campaigns/{first}/runs", json={}).json()
    assert client.patch(f"/campaigns/{second}/runs/{run['id']}", json={}).status_code == 404


def test_health_reports_the_database(client: TestClient, database_url: str) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] in database_url


def test_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/campaigns/", "/campaigns/{campaign_id}", "/campaigns/{campaign_id}/runs"} <= set(
        paths
    )


def test_a_campaign_holds_out_a_tenth_by_default_and_the_share_is_bounded(
    client: TestClient,
) -> None:
    campaign = create(client)
    assert campaign["holdout_share"] == 0.1 and campaign["input_tolerance"] == 0.05
    url = f"/campaigns/{campaign['id']}"
    assert client.put(url, json={"holdout_share": 0}).json()["holdout_share"] == 0
    assert client.put(url, json={"holdout_share": 0.5}).json()["holdout_share"] == 0.5
    for bad in (-0.01, 0.51, "0.2", None, True, float("inf")):
        body = json.dumps({"holdout_share": bad}, allow_nan=True)
        response = client.put(url, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422, bad
    assert client.get(url).json()["holdout_share"] == 0.5  # unchanged by the refusals
    for bad in (-0.1, 1.1, "0.1"):
        assert client.put(url, json={"input_tolerance": bad}).status_code == 422, bad


def test_a_run_keeps_its_control_size_drift_and_date(client: TestClient) -> None:
    cid = create(client)["id"]
    shares = [0.1] * 10
    body = {"control_size": 31, "max_psi": 0.27, "score_shares": shares, "as_of": "2026-12-01"}
    run = client.post(f"/campaigns/{cid}/runs", json=body).json()
    assert {k: run[k] for k in body} == body
    again = client.get(f"/campaigns/{cid}/runs/{run['id']}").json()
    assert {k: again[k] for k in body} == body
