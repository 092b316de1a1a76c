"""lib.api_client against answers a real API never gives but a proxy or a wrong URL does.

Each must become one PipelineError with the job's exit code (6: the API is unusable;
2: the URL itself is invalid), never an AttributeError or an httpx traceback.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lib.api_client import ConfigApiClient
from lib.errors import (
    ApiUnavailableError,
    CampaignNotFoundError,
    InvalidInputError,
    PipelineError,
)

pytestmark = pytest.mark.e2e

# path -> (status, content type, body, extra headers)
Answer = tuple[int, str, bytes, dict[str, str]]


@pytest.fixture
def fake_api() -> Iterator[tuple[str, dict[str, Answer]]]:
    answers: dict[str, Answer] = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            status, kind, body, headers = answers.get(
                self.path, (404, "application/json", b'{"detail":"Not Found"}', {})
            )
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_PUT = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answers
    finally:
        server.shutdown()
        server.server_close()


JSON = "application/json"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((500, JSON, b"[]", {}), "failed with 500"),
        ((502, "text/html", b"<html>Bad gateway</html>", {}), "failed with 502"),
        ((404, JSON, b'"nope"', {}), "answered 404"),
        ((422, JSON, b'{"detail": ["x", 1]}', {}), "answered 422"),
        ((422, JSON, b'{"detail": [{"loc": "body", "msg": "m"}]}', {}), "answered 422"),
        ((200, "text/html", b"<html>Please sign in</html>", {}), "not the expected Campaign"),
        ((200, JSON, b'{"id": 1}', {}), "not the expected Campaign"),
        ((200, JSON, b"not gzip at all", {"Content-Encoding": "gzip"}), "unreadable answer"),
    ],
)
def test_unusable_answers_are_api_unavailable(
    fake_api: tuple[str, dict[str, Answer]], answer: Answer, message: str
) -> None:
    url, answers = fake_api
    answers["/campaigns/1"] = answer
    with ConfigApiClient(url, retries=0) as api, pytest.raises(PipelineError, match=message) as err:
        api.get_campaign(1)
    assert err.value.exit_code == ApiUnavailableError.exit_code == 6


def test_only_the_apis_own_404_means_unknown_campaign(
    fake_api: tuple[str, dict[str, Answer]],
) -> None:
    url, answers = fake_api
    answers["/campaigns/7"] = (404, JSON, b'{"detail": "Campaign 7 not found"}', {})
    with ConfigApiClient(url) as api:
        with pytest.raises(CampaignNotFoundError):
            api.get_campaign(7)
        with pytest.raises(ApiUnavailableError, match="is this the API's base URL"):
            api.get_campaign(8)  # the route itself is missing: a wrong base URL


@pytest.mark.parametrize("url", ["http://[::1", "ftp://127.0.0.1:21", "127.0.0.1:8000"])
def test_invalid_urls_are_invalid_input(url: str) -> None:
    with pytest.raises(InvalidInputError, match="config API URL"):
        ConfigApiClient(url)


def test_a_total_count_that_is_not_ascii_digits_is_ignored(
    fake_api: tuple[str, dict[str, Answer]],
) -> None:
    url, answers = fake_api
    answers["/campaigns/?offset=0&limit=100"] = (200, JSON, b"[]", {"X-Total-Count": "²"})
    with ConfigApiClient(url) as api:
        assert list(api.iter_campaigns()) == []
