"""What the job says when the config API cannot be reached: a local API gets the command
that starts it; a remote one (a DNS typo, a service that is down, a TLS failure) gets the
underlying error instead of advice that cannot help."""

from __future__ import annotations

import httpx
import pytest

from lib.api_client import ConfigApiClient
from lib.errors import ApiUnavailableError


def refusing(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:8000"])
def test_a_local_api_that_is_not_running_says_how_to_start_it(url: str) -> None:
    api = ConfigApiClient(url, transport=httpx.MockTransport(refusing), retries=0)
    with api, pytest.raises(ApiUnavailableError, match="start it with `make api`"):
        api.get_campaign(1)


def test_the_command_names_the_port_the_client_looked_at() -> None:
    api = ConfigApiClient(
        "http://127.0.0.1:8123", transport=httpx.MockTransport(refusing), retries=0
    )
    with api, pytest.raises(ApiUnavailableError) as caught:
        api.get_campaign(1)
    assert "`make api API_PORT=8123` (or `make up API_PORT=8123`" in str(caught.value)


def test_a_default_http_port_is_named_too() -> None:
    from lib.api_client import not_running_message

    assert "`make api API_PORT=80`" in not_running_message("http://127.0.0.1")


def test_a_remote_api_that_cannot_be_reached_shows_the_underlying_error() -> None:
    url = "http://campaign-api.invalid:8000"
    api = ConfigApiClient(url, transport=httpx.MockTransport(refusing), retries=0)
    with api, pytest.raises(ApiUnavailableError) as caught:
        api.get_campaign(1)
    assert "make api" not in str(caught.value)
    assert "Name or service not known" in str(caught.value)
