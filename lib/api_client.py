"""A typed httpx client for the config API, used by notebook 03 and the scoring job.

Connection failures are retried a few times (the API may be starting up or restarting);
every other failure becomes an exception carrying the API's own message.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from lib.contract import CampaignFields, RunFields, campaign_not_found
from lib.errors import (
    ApiUnavailableError,
    CampaignNotFoundError,
    InvalidInputError,
    PipelineError,
)
from lib.settings import get_settings

__all__ = ["ApiError", "Campaign", "ConfigApiClient", "Run", "not_running_message"]


class ApiError(PipelineError):
    """The API refused a request (4xx); ``status_code`` and ``detail`` say why.

    Exit code 6, like an unreachable API: the job cannot go on with what the API answered.
    """

    exit_code = ApiUnavailableError.exit_code

    def __init__(self, status_code: int, detail: str, method: str, path: str) -> None:
        super().__init__(f"config API answered {status_code} to {method} {path}: {detail}")
        self.status_code = status_code
        self.detail = detail


class Campaign(CampaignFields):
    """A campaign as the API answers it (the fields are the contract's)."""


class Run(RunFields):
    """A scoring run as the API answers it."""

    stale: bool = False  # running, but no heartbeat for a while: the job probably died


_CAMPAIGNS = TypeAdapter(list[Campaign])
_RUNS = TypeAdapter(list[Run])


def _parse(adapter: Any, response: httpx.Response) -> Any:
    """The body as the typed result, strictly (``is_active`` must be a JSON boolean).

    A body that is not what the API's contract says (an HTML page from a proxy, a field of
    the wrong type) means the job cannot trust the answer: exit code 6, one line.
    """
    try:
        if isinstance(adapter, type) and issubclass(adapter, BaseModel):
            return adapter.model_validate_json(response.content, strict=True)
        return adapter.validate_json(response.content, strict=True)
    except ValidationError as err:
        kind = response.headers.get("content-type", "unknown content type")
        details = err.errors()
        where = ".".join(str(p) for p in details[0]["loc"]) if details else ""
        problem = details[0]["msg"] if details else "invalid"
        raise ApiUnavailableError(
            f"config API at {response.request.url} answered {response.status_code} with "
            f"something that is not the expected {getattr(adapter, '__name__', 'result')} "
            f"({kind}; {where or 'body'}: {problem})"
        ) from None


def _detail(response: httpx.Response) -> str:
    """The API's message: a string, or FastAPI's list of field errors, as one line.

    Whatever a server (or a proxy in front of it) sends, this returns a short string.
    """
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        parts = []
        for item in detail[:20]:
            if isinstance(item, dict):
                loc = item.get("loc")
                where = ".".join(str(p) for p in loc[1:]) if isinstance(loc, list) else ""
                parts.append(f"{where or 'request'}: {item.get('msg')}")
            else:
                parts.append(str(item))
        return "; ".join(parts)[:1000]
    return str(detail)[:1000]


def not_running_message(base_url: str) -> str:
    """What to say when nothing answers at the config API's address (connection refused):
    the command that serves it *there* (its port, unless the default)."""
    from lib.settings import DEFAULT_API_PORT

    url = httpx.URL(base_url)
    port = url.port or {"http": 80, "https": 443}.get(url.scheme, DEFAULT_API_PORT)
    where = f" API_PORT={port}" if port != DEFAULT_API_PORT else ""
    return (
        f"config API unreachable at {base_url}: nothing is answering there; start it with "
        f"`make api{where}` (or `make up{where}`, which also starts Spark Connect)"
    )


def _on_this_machine(base_url: str) -> bool:
    """A loopback address: an API `make api` / `make up` would start (not a DNS typo, a
    remote service that is down, or a TLS failure, which httpx also calls ConnectError)."""
    from lib.settings import is_loopback

    return is_loopback(httpx.URL(base_url).host)


class ConfigApiClient:
    """``with ConfigApiClient("http://127.0.0.1:8000") as api: api.get_campaign(1)``."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = (base_url or get_settings().config_api_url).rstrip("/")
        try:
            httpx.URL(self.base_url)
        except httpx.InvalidURL as err:
            raise InvalidInputError(f"config API URL {self.base_url!r} is invalid: {err}") from None
        if httpx.URL(self.base_url).scheme not in ("http", "https"):
            raise InvalidInputError(
                f"config API URL must start with http:// or https://, not {self.base_url!r}"
            )
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            # httpx retries only failed connection attempts, never a request the server saw.
            transport=transport or httpx.HTTPTransport(retries=retries),
            headers={"User-Agent": "spark-ml-pipeline"},
        )

    def __enter__(self) -> ConfigApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            # `make api` is the fix only for a local API that is not listening.
            if isinstance(err, httpx.ConnectError) and _on_this_machine(self.base_url):
                raise ApiUnavailableError(not_running_message(self.base_url)) from None
            raise ApiUnavailableError(
                f"config API unreachable at {self.base_url} ({type(err).__name__}: {err})"
            ) from None
        except httpx.HTTPError as err:  # an answer httpx cannot decode (bad gzip, ...)
            raise ApiUnavailableError(
                f"config API at {self.base_url} sent an unreadable answer to {method} {path} "
                f"({type(err).__name__}: {err})"
            ) from None
        if response.status_code >= 500:
            raise ApiUnavailableError(
                f"config API at {self.base_url} failed with {response.status_code} on "
                f"{method} {path}: {_detail(response)}"
            )
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response), method, path)
        return response

    # ---- campaigns ---------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return dict(_parse(TypeAdapter(dict[str, Any]), self._request("GET", "/health")))

    def create_campaign(self, **fields: Any) -> Campaign:
        return _parse(Campaign, self._request("POST", "/campaigns/", json=fields))

    def get_campaign(self, campaign_id: int) -> Campaign:
        try:
            response = self._request("GET", f"/campaigns/{campaign_id}")
        except ApiError as err:
            # Only the API's own answer means "no such campaign"; a 404 for the route itself
            # (a wrong base URL, a proxy) is a misconfigured URL, exit code 6.
            if err.status_code == 404 and err.detail == campaign_not_found(campaign_id):
                raise CampaignNotFoundError(f"campaign {campaign_id} does not exist") from None
            if err.status_code == 404:
                raise ApiUnavailableError(
                    f"config API at {self.base_url} answered 404 ({err.detail}) for "
                    f"/campaigns/{campaign_id}: is this the API's base URL?"
                ) from None
            raise
        return _parse(Campaign, response)

    def list_campaigns(
        self, *, is_active: bool | None = None, offset: int = 0, limit: int = 100
    ) -> list[Campaign]:
        return self._page(is_active=is_active, offset=offset, limit=limit)[0]

    def _page(
        self, *, is_active: bool | None, offset: int, limit: int
    ) -> tuple[list[Campaign], int | None]:
        """One page and the API's count of matching rows (``X-Total-Count``)."""
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if is_active is not None:
            params["is_active"] = str(is_active).lower()
        response = self._request("GET", "/campaigns/", params=params)
        total = response.headers.get("X-Total-Count", "")
        count = int(total) if total.isascii() and total.isdigit() else None
        return list(_parse(_CAMPAIGNS, response)), count

    def iter_campaigns(
        self, *, is_active: bool | None = None, page_size: int = 100
    ) -> Iterator[Campaign]:
        """Every campaign, page by page.

        Pages advance by ``limit``, not by what came back: the API leaves malformed stored
        rows out of a page (``X-Skipped-Count``), so a short page is not the last one.
        """
        offset, limit = 0, page_size
        while True:
            page, total = self._page(is_active=is_active, offset=offset, limit=limit)
            yield from page
            offset += limit
            if (total is not None and offset >= total) or (total is None and not page):
                return

    def find_campaign(self, name: str) -> Campaign | None:
        return next((c for c in self.iter_campaigns() if c.name == name), None)

    def update_campaign(self, campaign_id: int, **changes: Any) -> Campaign:
        response = self._request("PUT", f"/campaigns/{campaign_id}", json=changes)
        return _parse(Campaign, response)

    def delete_campaign(self, campaign_id: int) -> None:
        self._request("DELETE", f"/campaigns/{campaign_id}")

    # ---- runs ----------------------------------------------------------------------------
    def create_run(self, campaign_id: int, **fields: Any) -> Run:
        response = self._request("POST", f"/campaigns/{campaign_id}/runs", json=fields)
        return _parse(Run, response)

    def update_run(self, campaign_id: int, run_id: int, **fields: Any) -> Run:
        response = self._request("PATCH", f"/campaigns/{campaign_id}/runs/{run_id}", json=fields)
        return _parse(Run, response)

    def list_runs(self, campaign_id: int) -> list[Run]:
        response = self._request("GET", f"/campaigns/{campaign_id}/runs")
        return list(_parse(_RUNS, response))
