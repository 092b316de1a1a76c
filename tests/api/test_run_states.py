"""Run records hold only possible histories: the state machine of api.run_states, over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.run_states import CLOCK_SKEW, RunTransitionError, check_run
from tests.api.conftest import SEED_BODY


def at(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def campaign_id(client: TestClient) -> int:
    return client.post("/campaigns/", json=SEED_BODY).json()["id"]


def start(client: TestClient, campaign_id: int, **body: Any) -> str:
    run = client.post(f"/campaigns/{campaign_id}/runs", json={"status": "running", **body})
    assert run.status_code == 201, run.text
    return f"/campaigns/{campaign_id}/runs/{run.json()['id']}"


SUCCESS = {
    "status": "succeeded",
    "input_rows": 10,
    "audience_size": 4,
    "scored_rows": 4,
    "output_path": "output/p.parquet",
    "model_sha256": "a" * 64,
}


def test_the_jobs_history_is_accepted(client: TestClient, campaign_id: int) -> None:
    queued = client.post(f"/campaigns/{campaign_id}/runs", json={"status": "queued"}).json()
    url = f"/campaigns/{campaign_id}/runs/{queued['id']}"
    assert client.patch(url, json={"status": "running", "started_at": at(0)}).status_code == 200
    assert client.patch(url, json={"heartbeat_at": at(0)}).status_code == 200
    done = client.patch(url, json={**SUCCESS, "finished_at": at(0)})
    assert done.status_code == 200, done.text
    # Sending the same final update again (a retry whose answer was lost) is a no-op.
    assert (
        client.patch(url, json={**SUCCESS, "finished_at": done.json()["finished_at"]}).json()[
            "status"
        ]
        == "succeeded"
    )


def test_finishing_without_finished_at_takes_the_servers_time(
    client: TestClient, campaign_id: int
) -> None:
    url = start(client, campaign_id)
    before = datetime.now(UTC)
    failed = client.patch(url, json={"status": "failed", "error_message": "lost"}).json()
    assert datetime.fromisoformat(failed["finished_at"]) >= before - timedelta(seconds=1)


# The original report: `succeeded` with a finished_at before the run was created, then back
# to `running` with finished_at still set. Each is refused with its reason, and nothing changes.
ILLEGAL_CHANGES = {
    "finished before it was created": (
        {**SUCCESS, "finished_at": "2020-01-01T00:00:00Z"},
        "before the run was created",
    ),
    "finished before it started": (
        {**SUCCESS, "started_at": at(-1), "finished_at": at(-2)},
        "before started_at",
    ),
    "started long before it was created": ({"started_at": at(-60)}, "clock skew"),
    "finished_at while running": ({"finished_at": at(0)}, "for a finished run"),
    "counts while running": ({"input_rows": 5}, "belong to a succeeded run"),
    "error message on success": (
        {**SUCCESS, "error_message": "oops"},
        "error_message is for a failed run",
    ),
    "counts on failure": ({"status": "failed", "scored_rows": 3}, "belong to a succeeded run"),
    "back to queued": ({"status": "queued"}, "running run cannot become queued"),
}


@pytest.mark.parametrize(("change", "reason"), ILLEGAL_CHANGES.values(), ids=ILLEGAL_CHANGES)
def test_impossible_histories_are_409_with_the_reason(
    client: TestClient, campaign_id: int, change: dict[str, Any], reason: str
) -> None:
    url = start(client, campaign_id)
    before = client.get(url).json()
    response = client.patch(url, json=change)
    assert response.status_code == 409, response.text
    assert reason in response.json()["detail"]
    assert client.get(url).json() == before


@pytest.mark.parametrize(
    "change",
    [{"status": "running"}, {"status": "failed"}, {"heartbeat_at": at(0)}, {"input_rows": 1}],
)
def test_a_finished_run_is_final(
    client: TestClient, campaign_id: int, change: dict[str, Any]
) -> None:
    url = start(client, campaign_id)
    done = client.patch(url, json={**SUCCESS, "finished_at": at(0)}).json()
    response = client.patch(url, json=change)
    assert response.status_code == 409
    assert "already succeeded: a finished run cannot change" in response.json()["detail"]
    assert client.get(url).json() == done


@pytest.mark.parametrize(
    "body",
    [
        {"status": "succeeded"},
        {"status": "failed", "finished_at": at(0)},
        {"finished_at": at(0)},
        {"input_rows": 3},
        {"error_message": "x"},
        {"started_at": "2020-01-01T00:00:00Z"},
    ],
)
def test_a_new_run_starts_queued_or_running_without_an_outcome(
    client: TestClient, campaign_id: int, body: dict[str, Any]
) -> None:
    response = client.post(f"/campaigns/{campaign_id}/runs", json=body)
    assert response.status_code == 409, response.text
    assert client.get(f"/campaigns/{campaign_id}/runs").json() == []


def test_the_state_machine_allows_clock_skew_between_job_and_server() -> None:
    created = datetime.now(UTC)
    slow_clock = created - CLOCK_SKEW + timedelta(seconds=1)
    new = {"status": "running", "created_at": created, "started_at": slow_clock}
    check_run(None, new)
    with pytest.raises(RunTransitionError, match="clock skew"):
        check_run(None, {**new, "started_at": slow_clock - timedelta(seconds=2)})


def test_two_concurrent_final_updates_cannot_both_win(
    client: TestClient, campaign_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both PATCHes are checked against "running"; on SQLite nothing locks the row, so without
    # the run's version both were written: `failed` with `input_rows` from the other.
    import time
    from concurrent.futures import ThreadPoolExecutor

    from api import crud

    url = start(client, campaign_id)
    checked = crud.check_run

    def slow_check(before: Any, after: Any) -> None:
        checked(before, after)
        time.sleep(0.5)  # both requests are now past the check

    monkeypatch.setattr(crud, "check_run", slow_check)
    bodies = [{**SUCCESS, "finished_at": at(0)}, {"status": "failed", "error_message": "boom"}]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda body: client.patch(url, json=body), bodies))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code == 409)
    # SQLite: the version no longer matches; PostgreSQL: the row lock made it wait, then the
    # check saw the finished run.
    assert any(
        reason in loser.json()["detail"]
        for reason in ("kept changing while this update", "a finished run cannot change")
    )
    final = client.get(url).json()
    winner = next(a for a in answers if a.status_code == 200).json()
    assert final == winner
    assert (final["status"], final["input_rows"]) in (("succeeded", 10), ("failed", None))
