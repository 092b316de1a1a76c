"""lib.api_client against a real uvicorn server on loopback (the session's shared project)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator

import pytest

from lib.api_client import ApiError, Campaign, ConfigApiClient, Run
from lib.errors import ApiUnavailableError, CampaignNotFoundError
from tests.helpers import seed_body
from tests.project import Project
from tests.servers import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(project: Project) -> Iterator[ConfigApiClient]:
    with project.api() as client:
        yield client


@pytest.fixture
def name() -> str:
    """A campaign name no other test on the shared server uses."""
    return f"client {uuid.uuid4().hex[:8]}"


def test_crud_round_trip_returns_typed_campaigns(api: ConfigApiClient, name: str) -> None:
    created = api.create_campaign(**seed_body(name=name))
    assert isinstance(created, Campaign)
    assert created.created_at.tzinfo is not None
    assert api.get_campaign(created.id) == created
    updated = api.update_campaign(created.id, is_active=False)
    assert updated.is_active is False
    inactive = list(api.iter_campaigns(is_active=False))
    assert created.id in [c.id for c in inactive] and not any(c.is_active for c in inactive)
    assert created.id not in [c.id for c in api.iter_campaigns(is_active=True)]
    assert api.find_campaign(name) == updated
    api.delete_campaign(created.id)
    with pytest.raises(CampaignNotFoundError, match=f"campaign {created.id} does not exist"):
        api.get_campaign(created.id)


def test_iter_campaigns_walks_every_page(api: ConfigApiClient, name: str) -> None:
    before = len(list(api.iter_campaigns()))
    ids = {api.create_campaign(**seed_body(name=f"{name} {i:03d}")).id for i in range(105)}
    listed = [c.id for c in api.iter_campaigns()]
    assert len(listed) == before + 105 == len(set(listed))
    assert ids <= set(listed)


def test_refusals_carry_the_apis_message(api: ConfigApiClient, name: str) -> None:
    with pytest.raises(ApiError) as info:
        api.create_campaign(**seed_body(name=name, audience_filter="reflect('a', 'b')"))
    assert info.value.status_code == 422
    assert "audience_filter: function calls are not allowed" in str(info.value)
    api.create_campaign(**seed_body(name=name))
    with pytest.raises(ApiError, match=r"409.*already exists"):
        api.create_campaign(**seed_body(name=name))


def test_runs_are_typed_and_updatable(api: ConfigApiClient, name: str) -> None:
    campaign = api.create_campaign(**seed_body(name=name))
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
    api: ConfigApiClient, project: Project, name: str
) -> None:
    """The API leaves malformed stored rows out of a page; iteration must not stop there."""
    first = api.create_campaign(**seed_body(name=f"{name} first"))
    broken = [api.create_campaign(**seed_body(name=f"{name} broken {i}")) for i in range(2)]
    last = api.create_campaign(**seed_body(name=f"{name} last"))
    expected = [c.id for c in api.iter_campaigns()]  # every well-formed row, ours included
    database = project.root / "data" / "campaigns.db"
    broken_ids = [(c.id,) for c in broken]
    with sqlite3.connect(database) as connection:  # SQLite cannot check element types
        connection.executemany("UPDATE campaigns SET features = '[1, 2]' WHERE id = ?", broken_ids)
    try:
        seen = [c.id for c in api.iter_campaigns(page_size=1)]
        assert seen == [c for c in expected if c not in {b.id for b in broken}]
        assert first.id in seen and last.id in seen
    finally:  # the server is shared: leave no malformed rows behind
        with sqlite3.connect(database) as connection:
            connection.executemany("DELETE FROM campaigns WHERE id = ?", broken_ids)
