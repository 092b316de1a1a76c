"""The FastAPI application: routers, error handlers, /health, and the schema check at start.

Serve it with ``uvicorn api.main:app`` (``make api``); interactive docs at ``/docs`` and
``/redoc``, served offline (api.docs); ``/`` redirects to ``/docs``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage

from api.db import dispose_engines, get_engine
from api.docs import add_docs
from api.limits import (
    MAX_BODY_BYTES,
    BodySizeLimitMiddleware,
    HeadAndOptionsMiddleware,
    validation_errors,
)
from api.migrate import SCHEMA_ERRORS, ensure_schema, first_line, shown_url
from api.routes import audience, campaigns, filter_language
from api.schemas import Health, Message
from api.validation import CampaignValidationError

log = logging.getLogger("api")

DATABASE_DOWN = (OperationalError, DisconnectionError, PoolTimeoutError)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield  # the schema is checked at startup by SchemaCheckMiddleware
    dispose_engines()


class SchemaCheckMiddleware:
    """Refuse to serve on a schema we do not know (see api.migrate.ensure_schema).

    Done at the ASGI lifespan level, not in ``lifespan``: Starlette reports any lifespan
    error to the server with its full traceback, and a refused migration or an unmigrated
    database deserves one readable line. The server logs the line and exits non-zero
    (uvicorn: "Application startup failed", exit code 3); the error is re-raised too, so
    the TestClient raises it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        first = await receive()
        if first["type"] == "lifespan.startup":
            try:
                ensure_schema(get_engine())
            except SCHEMA_ERRORS as err:
                line = f"❌ error: cannot start the API on {shown_url()}: {first_line(err)}"
                await send({"type": "lifespan.startup.failed", "message": line})
                raise
        replayed = False

        async def replay() -> ASGIMessage:
            nonlocal replayed
            if not replayed:  # hand the message we read on to the application
                replayed = True
                return first
            return await receive()

        await self.app(scope, replay, send)


def create_app() -> FastAPI:
    app = FastAPI(
        title="Campaign Config API",
        summary="Marketers create and manage campaign configurations for the scoring job.",
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,  # api.docs serves /docs and /redoc without a CDN
        redoc_url=None,
        responses={
            400: {"model": Message, "description": "The body could not be read"},
            413: {"model": Message, "description": f"The body is over {MAX_BODY_BYTES} bytes"},
            503: {"model": Message, "description": "The database is unavailable"},
        },
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(HeadAndOptionsMiddleware)
    app.add_middleware(SchemaCheckMiddleware)
    app.include_router(campaigns.router)
    app.include_router(audience.router)
    app.include_router(filter_language.router)
    add_docs(app)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, err: HTTPException) -> Response:
        if isinstance(err.detail, str):  # messages may quote stored text: keep them encodable
            err.detail = err.detail.encode("utf-8", "backslashreplace").decode("utf-8")
        return await http_exception_handler(request, err)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, err: RequestValidationError) -> JSONResponse:
        # FastAPI's shape, but bounded and always encodable (see api.limits).
        return JSONResponse(status_code=422, content={"detail": validation_errors(err.errors())})

    @app.exception_handler(CampaignValidationError)
    async def _invalid_campaign(_: Request, err: CampaignValidationError) -> JSONResponse:
        # Same shape as FastAPI's own 422 answers, so clients handle one format.
        detail = [{"type": "value_error", "loc": ["body", err.field], "msg": err.message}]
        return JSONResponse(status_code=422, content={"detail": validation_errors(detail)})

    @app.exception_handler(DBAPIError)
    @app.exception_handler(DisconnectionError)
    @app.exception_handler(PoolTimeoutError)
    async def _database_down(_: Request, err: Exception) -> JSONResponse:
        if isinstance(err, DBAPIError) and not (
            isinstance(err, OperationalError) or err.connection_invalidated
        ):
            raise err  # a real bug (e.g. a bad query) is a 500, not "database down"
        log.warning("database unavailable: %s", first_line(err))
        return JSONResponse(
            status_code=503, content={"detail": f"database unavailable: {first_line(err)}"}
        )

    @app.get("/health", response_model=Health, tags=["health"])
    def health() -> JSONResponse:
        """Whether the API can reach its database."""
        try:
            with get_engine().connect() as connection:
                connection.execute(text("SELECT 1"))
        except DATABASE_DOWN as err:
            return JSONResponse(
                status_code=503,
                content={"status": "unavailable", "database": first_line(err)},
            )
        return JSONResponse({"status": "ok", "database": get_engine().dialect.name})

    return app


app = create_app()
