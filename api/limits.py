"""What one request may cost: a body size limit, strict JSON, and bounded error echoes.

- Bodies over :data:`MAX_BODY_BYTES` are answered 413 before any parsing, whether the
  client declared their size (Content-Length) or streamed them (chunked).
- JSON bodies are parsed strictly: UTF-8 only, no NaN/Infinity, no key twice in one object
  (Python's json keeps the last silently: ``{"name": "a", "name": "b"}`` would be "b"),
  bounded nesting; anything else is a 422 ``json_invalid`` like FastAPI's own
  malformed-JSON answer, whose ``ctx.error`` says what is wrong (the duplicate key by name).
- 422 answers echo a bounded excerpt of the input: at most :data:`MAX_ERRORS` errors, each
  input cut to :data:`MAX_ECHO_CHARS` characters, and always encodable (unpaired
  surrogates are escaped, non-finite numbers become text).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine, Sequence
from functools import cache
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024  # the largest valid campaign body is well under 100 KB
MAX_DRAIN_BYTES = 8 * MAX_BODY_BYTES  # read and dropped after the limit, so the 413 arrives
MAX_ERRORS = 20
MAX_ECHO_CHARS = 100
MAX_MESSAGE_CHARS = 500


def _text(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, unpaired surrogates written as ``\\udXXX``."""
    cut = value[:limit] + ("…" if len(value) > limit else "")
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def _scrub(value: Any, depth: int = 0) -> Any:
    """A JSON-encodable, size-bounded copy of ``value`` (a few items, a few levels)."""
    if isinstance(value, str):
        return _text(value, MAX_ECHO_CHARS)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**30 else _text(str(value), 40)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= 3:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())
        return {_text(str(k), MAX_ECHO_CHARS): _scrub(v, depth + 1) for k, v in items[:10]}
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value[:10]]
    return _text(str(value), MAX_ECHO_CHARS)


def excerpt(value: Any) -> Any:
    """A short, encodable stand-in for ``value`` to show in an error answer."""
    scrubbed = _scrub(value)
    if isinstance(scrubbed, dict | list):
        text = json.dumps(scrubbed, ensure_ascii=False)
        if len(text) > 2 * MAX_ECHO_CHARS:  # a large object: show its beginning as text
            return _text(text, MAX_ECHO_CHARS)
    return scrubbed


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI-shaped 422 ``detail`` items, bounded and always encodable."""
    shown = []
    for error in errors[:MAX_ERRORS]:
        item: dict[str, Any] = {
            "type": _text(str(error.get("type", "value_error")), MAX_ECHO_CHARS),
            "loc": [
                part if isinstance(part, int) else _text(str(part), MAX_ECHO_CHARS)
                for part in error.get("loc", ())
            ][:10],
            "msg": _text(str(error.get("msg", "")), MAX_MESSAGE_CHARS),
        }
        if "input" in error:
            item["input"] = excerpt(error["input"])
        if isinstance(error.get("ctx"), dict):
            item["ctx"] = {
                _text(str(key), MAX_ECHO_CHARS): excerpt(v if _is_plain(v) else str(v))
                for key, v in list(error["ctx"].items())[:10]
            }
        shown.append(item)
    if len(errors) > MAX_ERRORS:
        shown.append(
            {
                "type": "too_many_errors",
                "loc": [],
                "msg": f"{len(errors) - MAX_ERRORS} more errors not shown",
            }
        )
    return shown


def _is_plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | dict) or value is None


# -- strict JSON -----------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class _DuplicateKeyError(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's pairs as a dict, refusing a key that appears twice."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKeyError(f"duplicate key {_text(key, MAX_ECHO_CHARS)!r} in an object")
        seen[key] = value
    return seen


def parse_json(body: bytes) -> Any:
    """``body`` as strict JSON; every refusal is a :class:`json.JSONDecodeError`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise json.JSONDecodeError("the body is not valid UTF-8", "", err.start) from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError:
        raise
    except ValueError as err:  # NaN, Infinity, -Infinity, a duplicate key
        raise json.JSONDecodeError(str(err), "", 0) from None
    except RecursionError:
        raise json.JSONDecodeError("the JSON is nested too deeply", "", 0) from None


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """A route whose JSON bodies are parsed by :func:`parse_json`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler


# -- HEAD and OPTIONS ---------------------------------------------------------------------------


class HeadAndOptionsMiddleware:
    """HEAD on every GET route, and OPTIONS that lists a path's methods.

    FastAPI routes answer only the methods they declare, so HEAD /campaigns/1 was a 405 where
    HTTP (RFC 9110) and every proxy expect GET's headers without its body. HEAD runs the GET
    handler (same status, headers and Content-Length) and drops the body. OPTIONS on a known
    path answers 204 with ``Allow`` (the route methods plus HEAD and OPTIONS); an unknown
    path stays a 404. No CORS: the API serves no browser origin but its own /docs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method") if scope["type"] == "http" else None
        if method == "HEAD":
            await self.app({**scope, "method": "GET"}, receive, _without_body(send))
        elif method == "OPTIONS" and (allowed := _allowed_methods(scope)):
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [(b"allow", ", ".join(allowed).encode())],
                }
            )
            await send({"type": "http.response.body", "body": b""})
        else:
            await self.app(scope, receive, send)


def _without_body(send: Send) -> Send:
    async def send_headers_only(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_headers_only


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(scope: Scope) -> list[str]:
    """The methods the API documents for this path (empty: not an API path).

    Read from the OpenAPI document (FastAPI builds it once), whose path templates are the
    routes': the documented API is exactly what OPTIONS describes. The docs pages are not in
    it; OPTIONS there is Starlette's 405, with ``Allow``.
    """
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    methods: set[str] = set()
    for template, operations in scope["app"].openapi().get("paths", {}).items():
        if _template(template).fullmatch(path):
            methods |= {method.upper() for method in operations}
    if not methods:
        return []
    methods |= {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())
    return sorted(methods, key=_METHOD_ORDER.index)


@cache
def _template(template: str) -> re.Pattern[str]:
    """``/campaigns/{campaign_id}`` as a pattern: each parameter one path segment."""
    parts = re.split(r"(\{[^}/]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


# -- body size -------------------------------------------------------------------------------


class BodySizeLimitMiddleware:
    """Answer 413 to bodies over ``max_bytes``, declared or streamed.

    The body is read up front (at most ``max_bytes``) and replayed to the app, so the app
    never starts on a body that will turn out too large. The rest of an oversized body is
    read and dropped (up to :data:`MAX_DRAIN_BYTES` more) before answering: a server that
    closes on unread data resets the connection, and the client never sees the 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        too_large = declared.isdigit() and int(declared) > self.max_bytes
        chunks: list[bytes] = []
        size = 0
        more = True
        while more and size <= self.max_bytes + MAX_DRAIN_BYTES:
            if too_large and declared and int(declared) > self.max_bytes + MAX_DRAIN_BYTES:
                break  # not worth reading: answer now and let the connection close
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            too_large = too_large or size > self.max_bytes
            if not too_large:
                chunks.append(chunk)
        if too_large:
            await self._too_large(send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for the disconnect
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
