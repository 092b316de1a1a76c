"""lib.api_client against a real uvicorn server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.api_client import ApiError, Campaign, ConfigApiClient, Run
from lib.errors import ApiUnavailableError, CampaignNotFoundError
from tests.api.conftest import SEED_BODY
from tests.servers import free_port, uvicorn_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path) -> Iterator[str]:
    root = tmp_path_factory.mktemp("client")
    env = {"DATA_DIR": str(root / "data"), "MODEL_DIR": str(trained_model_dir)}
    with uvicorn_server(env, root / "api.log") as url:
        yield url


@pytest.fixture
def api(api_url: str) -> Iterator[ConfigApiClient]:
    with ConfigApiClient(api_url) as client:
        for campaign in list(client.iter_campaigns()):
            client.delete_campaign(campaign.id)
        yield client


def test_crud_round_trip_returns_typed_campaigns(api: ConfigApiClient) -> None:
    created = api.create_campaign(**SEED_BODY)
    assert isinstance(created, Campaign)
    assert created.created_at.tzinfo is not None
    assert api.get_campaign(created.id) == created
    updated = api.update_campaign(created.id, is_active=False)
    assert updated.is_active is False
    assert [c.id for c in api.list_campaigns(is_active=False)] == [created.id]
    assert api.find_campaign(SEED_BODY["name"]) == updated
    api.delete_campaign(created.id)
    with pytest.raises(CampaignNotFoundError, match=f"campaign {created.id} does not exist"):
        api.get_campaign(created.id)


def test_iter_campaigns_walks_every_page(api: ConfigApiClient) -> None:
    for i in range(105):
        api.create_campaign(**{**SEED_BODY, "name": f"c{i:03d}"})
    assert len(list(api.iter_campaigns())) == 105


def test_refusals_carry_the_apis_message(api: ConfigApiClient) -> None:
    with pytest.raises(ApiError) as info:
        api.create_campaign(**{**SEED_BODY, "audience_filter": "reflect('a', 'b')"})
    assert info.value.status_code == 422
    assert "audience_filter: function calls are not allowed" in str(info.value)
    api.create_campaign(**SEED_BODY)
    with pytest.raises(ApiError, match=r"409.*already exists"):
        api.create_campaign(**SEED_BODY)


def test_runs_are_typed_and_updatable(api: ConfigApiClient) -> None:
    campaign = api.create_campaign(**SEED_BODY)
    run = api.create_run(campaign.id, status="running")
    assert isinstance(run, Run)
    done = api.update_run(campaign.id, run.id, status="failed", error_message="boom")
    assert (done.status, done.error_message) == ("failed", "boom")
    assert [r.id for r in api.list_runs(campaign.id)] == [run.id]


def test_unreachable_api_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with (
        ConfigApiClient(url, timeout=2, retries=1) as client,
        pytest.raises(ApiUnavailableError, match=f"config API unreachable at {url}"),
    ):
        client.get_campaign(1)


def test_iter_campaigns_pages_past_a_page_of_malformed_rows(
    api: ConfigApiClient, api_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The API leaves malformed stored rows out of a page; iteration must not stop there."""
    import sqlite3

    first = api.create_campaign(**{**SEED_BODY, "name": "first"})
    broken = [api.create_campaign(**{**SEED_BODY, "name": f"broken {i}"}) for i in range(2)]
    last = api.create_campaign(**{**SEED_BODY, "name": "last"})
    database = next(Path(tmp_path_factory.getbasetemp()).glob("client*/data/campaigns.db"))
    with sqlite3.connect(database) as connection:  # SQLite cannot check element types
        connection.executemany(
            "UPDATE campaigns SET features = '[1, 2]' WHERE id = ?", [(c.id,) for c in broken]
        )
    seen = [c.name for c in api.iter_campaigns(page_size=1)]
    assert seen == [first.name, last.name]
